//! Deterministic tests of the core over the simulated cluster in [`super::sim`]. Every test
//! that uses randomness names its seed in the failure message.

mod election;
mod membership;
mod paper;
mod random;
mod reads;
mod rules;
mod snapshot;
mod timed_reads;

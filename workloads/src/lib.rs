//! Workloads and checkers, as in Jepsen: a workload is a generator, a client and a checker.
//! The history types and the JSONL reader/writer live here too.

pub mod checker;
pub mod history;

// Generators, clients, the recorder and the workload driver.
pub mod client;
pub mod driver;
pub mod fake_node;
pub mod generator;
pub mod recorder;

/// The register workload's generator (at its old path; it lives in [`generator::register`]).
pub use generator::register;
/// The set workload's generator (at its old path; it lives in [`generator::set`]).
pub use generator::set;

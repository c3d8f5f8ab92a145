//! The Raft core: a pure, deterministic state machine. Messages and ticks go in; messages to
//! send, entries and hard state to persist, and committed entries to apply come out. No
//! sockets, clocks or threads live here, so every hard case can be replayed in a test.

pub mod types;

pub use types::*;

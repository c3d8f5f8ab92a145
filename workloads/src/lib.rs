//! Workloads and checkers, as in Jepsen: a workload is a generator, a client and a checker.
//! The history types and the JSONL reader/writer live here too.

pub mod checker;
pub mod history;

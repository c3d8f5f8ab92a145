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
pub mod register;
pub mod set;

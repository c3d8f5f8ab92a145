//! The harness: Jepsen-style tests against a cluster of real `node` processes.
//!
//! - [`cli`]: the command line (`docs/spec/cli.md`).
//! - [`test`]: `harness test` as a pipeline: plan, run, drive (workload and faults), check,
//!   report; soak and self-test run through it.
//! - [`cluster`]: node processes behind the proxy mesh; applying and healing faults.
//! - [`check_cmd`]: `harness check`.
//! - [`report`]: charts and HTML pages from a run directory.
//! - [`run_dir`]: the results layout.
//! - [`results`]: `results.json`, one type written by the run and read by everything else.
//! - [`exit`]: exit codes.
//! - [`observer`]: every member's status polled into `cluster.jsonl` during a run.
//! - [`coverage`]: what the faults did (leader changes, leaderless time, per fault window).
//! - [`selftest`]: `harness selftest`: each deliberate bug caught, the correct node valid.
//! - [`soak`]: `harness soak`: many short seeded runs over a matrix (or one shard of it);
//!   summary page, JUnit; `harness soak-merge` joins shards.

pub mod anomaly_context;
pub mod availability;
pub mod bench_disk;
pub mod check_cmd;
pub mod cli;
pub mod cluster;
pub mod convergence;
pub mod coverage;
pub mod exit;
pub mod interrupt;
pub mod leader;
pub mod observer;
pub mod report;
pub mod results;
pub mod run_dir;
pub mod selftest;
pub mod soak;
pub mod system;
pub mod test;
pub mod text;

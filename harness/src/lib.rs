//! The harness: Jepsen-style tests against a cluster of real `node` processes.
//!
//! - [`cli`]: the command line (`shared/spec/cli.md`).
//! - [`test_cmd`]: `harness test`: cluster, workload, nemesis, check, report.
//! - [`cluster`]: node processes behind the proxy mesh; applying and healing faults.
//! - [`check_cmd`]: `harness check`.
//! - [`report`]: charts and HTML pages from a run directory.
//! - [`run_dir`]: the results layout.
//! - [`exit`]: exit codes.

pub mod check_cmd;
pub mod cli;
pub mod cluster;
pub mod exit;
pub mod report;
pub mod run_dir;
pub mod test_cmd;

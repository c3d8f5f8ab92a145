//! `harness`: runs Jepsen-style tests against a cluster of real `node` processes.

mod report;

fn main() {}

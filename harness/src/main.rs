//! `harness`: runs Jepsen-style tests against a cluster of real `node` processes.

fn main() {}

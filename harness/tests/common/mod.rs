//! Helpers shared by the harness's end-to-end tests: the harness binary, the newest run of a
//! results directory, and cluster options that run the harness binary as each node.

#![allow(dead_code)] // each test file uses some of these

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::cluster::{ClusterOptions, NodeCommand};

/// The `harness` binary under test.
pub fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

/// The run directory `results/latest` points at.
pub fn latest(results: &Path) -> PathBuf {
    let link = results.join("latest");
    let target = std::fs::read_link(&link).expect("results/latest is a link");
    results.join(target)
}

/// Options for `nodes` nodes, each the harness binary run as `harness node ...`.
pub fn cluster_options(nodes: usize, seed: u64) -> ClusterOptions {
    ClusterOptions {
        nodes,
        command: NodeCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_harness")),
            prefix_args: vec!["node".into()],
        },
        extra_args: vec![],
        seed,
        node_env: Default::default(),
        lazy_fs: false,
        power_tear: false,
    }
}

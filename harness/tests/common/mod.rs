//! Helpers shared by the harness's end-to-end tests: the harness binary and one `harness test`
//! run of it, the newest run of a results directory and what it left (history, results), and
//! cluster options that run the harness binary as each node.

#![allow(dead_code)] // each test file uses some of these

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::cluster::{ClusterOptions, NodeCommand};
use serde_json::Value;

/// The `harness` binary under test.
pub fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

/// A finished `harness test`: its exit code and what it printed.
pub struct TestRun {
    /// Its exit code (`None`: ended by a signal).
    pub code: Option<i32>,
    /// Its stdout (lossy UTF-8).
    pub stdout: String,
    /// Its stderr (lossy UTF-8).
    pub stderr: String,
}

impl TestRun {
    /// Its stdout followed directly by its stderr.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` (a [`harness`] command, perhaps given environment) as
/// `harness test ARGS --seed SEED --results-dir RESULTS` and waits for it to end.
pub fn harness_test(mut cmd: Command, args: &[&str], seed: &str, results: &Path) -> TestRun {
    let out = cmd
        .arg("test")
        .args(args)
        .args(["--seed", seed, "--results-dir"])
        .arg(results)
        .output()
        .expect("run harness");
    TestRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every event of the run directory `run`'s `history.jsonl`, in order.
pub fn history(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The run directory `run`'s `results.json`.
pub fn results_json(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap()
}

/// How many of `events` are nemesis starts, and how many are nemesis stops other than the
/// final heal-all (a stop without a start): equal when every fault applied was healed.
pub fn nemesis_starts_and_stops(events: &[Value]) -> (usize, usize) {
    let nemesis = || events.iter().filter(|e| e["process"] == "nemesis");
    let starts = nemesis().filter(|e| e["f"] == "start").count();
    let stops = nemesis()
        .filter(|e| e["f"] == "stop" && e["value"]["fault"] != "heal-all")
        .count();
    (starts, stops)
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

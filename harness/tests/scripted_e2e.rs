//! End-to-end: the scripted nemeses (`figure-8`, `stale-tail`) against a correct 5-node
//! cluster. The scripts must get through their last step at least once in a short run (so
//! they really drive the cluster through the interleaving they aim at), record every part
//! they apply as a nemesis start with a matching stop, and leave the correct node valid.

use std::path::{Path, PathBuf};
use std::process::Command;

fn latest(results: &Path) -> PathBuf {
    let target = std::fs::read_link(results.join("latest")).expect("results/latest is a link");
    results.join(target)
}

#[test]
fn correct_node_stays_valid_through_both_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let seed = std::env::var("TEST_SEED").unwrap_or_else(|_| "5".into());
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([
            "test",
            "--nodes",
            "5",
            "--time-limit",
            "14",
            "--rate",
            "150",
            "--workload",
            "set",
            "--read-mode",
            "follower",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "0.5",
            "--partition-shapes",
            "figure-8,stale-tail",
            "--op-timeout",
            "8",
            "--no-report",
            "--quiet",
            "--seed",
            &seed,
            "--results-dir",
        ])
        .arg(&results)
        .output()
        .expect("run harness");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "seed {seed}:\n{text}");

    let history = std::fs::read_to_string(latest(&results).join("history.jsonl")).unwrap();
    let mut starts = 0;
    let mut stops = 0;
    let mut last_steps = 0;
    for line in history.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        if e["process"] != "nemesis" {
            continue;
        }
        match e["f"].as_str() {
            Some("start") => starts += 1,
            // The final heal-all is a stop without a start.
            Some("stop") if e["value"]["fault"] != "heal-all" => stops += 1,
            _ => {}
        }
        let shape = e["value"]["shape"].as_str().unwrap_or("");
        if e["f"] == "start" && (shape == "figure-8 (d)" || shape == "stale-tail (c)") {
            last_steps += 1;
        }
    }
    assert!(starts > 0, "seed {seed}: no nemesis events");
    assert_eq!(starts, stops, "seed {seed}: every start has its stop");
    assert!(
        last_steps >= 1,
        "seed {seed}: no script reached its last step:\n{text}"
    );
}

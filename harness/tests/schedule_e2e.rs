//! End-to-end: the fault schedule of `harness test` against real node processes. With six
//! families enabled every family is applied (round-robin) and, with overlap on, faults of
//! different families overlap; with `--no-overlap` they never do. What was applied is read
//! back from history.jsonl: each fault part is its own nemesis start/stop pair.

mod common;
use common::{harness, latest};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One fault window: its kind (the event value's "fault") and the history indexes of its start
/// and stop (`u64::MAX` if it never stopped).
#[derive(Debug)]
struct Window {
    kind: String,
    start: u64,
    stop: u64,
}

/// Runs `harness test` with `args`; returns the exit code, its output and the run directory.
fn run(args: &[&str], results: &Path) -> (i32, String, PathBuf) {
    let out = harness()
        .arg("test")
        .args(args)
        .arg("--results-dir")
        .arg(results)
        .output()
        .expect("run harness");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, latest(results))
}

/// The fault windows of a run (the final `heal-all` stop is not a window), paired by kind in
/// history order, and the kinds whose start recorded no error.
fn windows(run_dir: &Path) -> (Vec<Window>, BTreeSet<String>) {
    let text = std::fs::read_to_string(run_dir.join("history.jsonl")).expect("history.jsonl");
    let mut windows: Vec<Window> = Vec::new();
    for line in text.lines() {
        let e: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        if e["process"] != "nemesis" {
            continue;
        }
        let kind = e["value"]["fault"].as_str().unwrap_or("?").to_string();
        let index = e["index"].as_u64().expect("index");
        match e["f"].as_str() {
            Some("start") => windows.push(Window {
                kind,
                start: index,
                stop: u64::MAX,
            }),
            Some("stop") => {
                if let Some(w) = windows
                    .iter_mut()
                    .find(|w| w.kind == kind && w.stop == u64::MAX)
                {
                    w.stop = index;
                }
            }
            _ => {}
        }
    }
    let applied = windows.iter().map(|w| w.kind.clone()).collect();
    (windows, applied)
}

/// Pairs of windows of different kinds that were open at the same time.
fn overlaps(windows: &[Window]) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for (i, a) in windows.iter().enumerate() {
        for b in &windows[i + 1..] {
            if a.kind != b.kind && a.start < b.stop && b.start < a.stop {
                v.push((a.kind.clone(), b.kind.clone()));
            }
        }
    }
    v
}

const SIX: [&str; 6] = ["partition", "delay", "loss", "kill", "pause", "clock"];

#[test]
fn six_families_all_applied_and_overlapping() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let seed = std::env::var("TEST_SEED").unwrap_or_else(|_| "3".into());
    let (code, text, run_dir) = run(
        &[
            "--nodes",
            "5",
            "--time-limit",
            "20",
            "--nemesis-interval",
            "1.5",
            "--nemesis",
            "partition,delay,loss,kill,pause,clock",
            "--rate",
            "50",
            "--no-report",
            "--seed",
            &seed,
        ],
        &results,
    );
    assert!(
        code == 0 || code == 1 || code == 2,
        "seed {seed}: harness test failed ({code}):\n{text}"
    );
    let (windows, applied) = windows(&run_dir);
    for family in SIX {
        assert!(
            applied.contains(family),
            "seed {seed}: {family} never applied; applied {applied:?}"
        );
    }
    assert!(
        windows.iter().all(|w| w.stop != u64::MAX),
        "seed {seed}: a fault was never healed: {windows:?}"
    );
    let both = overlaps(&windows);
    assert!(
        !both.is_empty(),
        "seed {seed}: no two faults overlapped: {windows:?}"
    );
    eprintln!("seed {seed}: applied {applied:?}; overlaps {both:?}");
}

#[test]
fn no_overlap_keeps_faults_apart() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let seed = std::env::var("TEST_SEED").unwrap_or_else(|_| "3".into());
    let (code, text, run_dir) = run(
        &[
            "--nodes",
            "3",
            "--time-limit",
            "12",
            "--nemesis-interval",
            "1",
            "--nemesis",
            "kill,pause,clock",
            "--rate",
            "50",
            "--no-report",
            "--no-overlap",
            "--seed",
            &seed,
        ],
        &results,
    );
    assert!(
        code == 0 || code == 1 || code == 2,
        "seed {seed}: harness test failed ({code}):\n{text}"
    );
    let test_json = std::fs::read_to_string(run_dir.join("test.json")).unwrap();
    assert!(
        test_json.contains("--no-overlap"),
        "seed {seed}: the reproduce command keeps --no-overlap"
    );
    let (windows, applied) = windows(&run_dir);
    for family in ["kill", "pause", "clock"] {
        assert!(
            applied.contains(family),
            "seed {seed}: {family} never applied; applied {applied:?}"
        );
    }
    let both = overlaps(&windows);
    assert!(both.is_empty(), "seed {seed}: overlaps {both:?}");
}

//! End-to-end: the election-window scripts (`deposed-tail`, `new-leader-isolated`) against a
//! correct 3-node cluster, their smallest. Each must get through its last step at least once
//! in a short run (the harness logs `<script> script: Done` once every step happened, which
//! includes the script's own check that the shape was reached), record every part it applies
//! as a nemesis start with a matching stop, end within a bound, and leave the correct node
//! valid.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

/// A run's time limit plus start-up, recovery, checking and slack.
const RUN_BOUND: Duration = Duration::from_secs(60);

/// What one run left: its stdout and stderr together, and its history's events.
struct Run {
    text: String,
    events: Vec<Value>,
}

/// Runs `harness test` on 3 nodes with only the partition shape `script`, and checks what
/// every script run must: valid, bounded, every start stopped, the last step started and the
/// script done at least once.
fn run_script(script: &str, last_step: &str, workload: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let seed = std::env::var("TEST_SEED").unwrap_or_else(|_| "1".into());
    let began = Instant::now();
    let mut cmd = common::harness();
    cmd.env("RUST_LOG", "harness::test::faults=info");
    let out = common::harness_test(
        cmd,
        &[
            "--nodes",
            "3",
            "--time-limit",
            "12",
            "--rate",
            "100",
            "--workload",
            workload,
            "--read-mode",
            "all",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "0.5",
            "--partition-shapes",
            script,
            "--op-timeout",
            "5",
            "--recovery-time",
            "4",
            "--no-report",
            "--quiet",
        ],
        &seed,
        &results,
    );
    let took = began.elapsed();
    let text = out.output();
    assert_eq!(out.code, Some(0), "{script} seed {seed}:\n{text}");
    assert!(took < RUN_BOUND, "{script} seed {seed}: took {took:?}");
    assert!(
        text.contains(&format!("{script} script: Done")),
        "{script} seed {seed}: the script never got through its last step:\n{text}"
    );

    let events = common::history(&common::latest(&results));
    let (starts, stops) = common::nemesis_starts_and_stops(&events);
    assert!(starts > 0, "{script} seed {seed}: no nemesis events");
    assert_eq!(
        starts, stops,
        "{script} seed {seed}: every start has its stop"
    );
    assert!(
        events.iter().any(|e| e["process"] == "nemesis"
            && e["f"] == "start"
            && e["value"]["shape"] == last_step),
        "{script} seed {seed}: no {last_step:?} in the history"
    );
    Run { text, events }
}

#[test]
fn deposed_leader_with_a_long_stale_tail_never_wins() {
    let run = run_script("deposed-tail", "deposed-tail (c)", "set");
    // The script's own report of the shape: the deposed leader's log was the longest.
    assert!(
        run.text.contains("holds entries to"),
        "no report of the tail:\n{}",
        run.text
    );
    assert!(
        !run.text.contains("the election restriction did not hold"),
        "{}",
        run.text
    );
}

#[test]
fn reads_reach_a_new_leader_cut_off_before_its_first_commit() {
    let run = run_script("new-leader-isolated", "new-leader-isolated (b)", "register");
    // Windows of step (b): from its start to its stop, with the node cut off from all.
    let mut windows = Vec::new();
    let mut open: Option<(u64, String)> = None;
    for e in run.events.iter().filter(|e| e["process"] == "nemesis") {
        if e["value"]["shape"] != "new-leader-isolated (b)" {
            continue;
        }
        let t = e["time"].as_u64().unwrap();
        if e["f"] == "start" {
            let grudge = e["value"]["grudge"].as_object().unwrap();
            let cut_off = grudge
                .iter()
                .find(|(_, from)| from.as_array().unwrap().len() == grudge.len() - 1)
                .map(|(n, _)| n.clone())
                .expect("one node cut off from all");
            open = Some((t, cut_off));
        } else if let Some((start, node)) = open.take() {
            windows.push((start, t, node));
        }
    }
    let reads_at_cut_off = run
        .events
        .iter()
        .filter(|e| e["f"] == "read" && e["type"] != "invoke")
        .filter(|e| {
            let t = e["time"].as_u64().unwrap_or(0);
            windows
                .iter()
                .any(|(a, b, n)| (*a..=*b).contains(&t) && e["node"] == n.as_str())
        })
        .count();
    assert!(
        reads_at_cut_off > 0,
        "no read reached the cut-off leader in {windows:?}"
    );
}

//! End-to-end: the scripted nemeses (`figure-8`, `stale-tail`) against a correct 5-node
//! cluster. The scripts must get through their last step at least once in a short run (so
//! they really drive the cluster through the interleaving they aim at), record every part
//! they apply as a nemesis start with a matching stop, and leave the correct node valid.

mod common;

#[test]
fn correct_node_stays_valid_through_both_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let seed = std::env::var("TEST_SEED").unwrap_or_else(|_| "5".into());
    let out = common::harness_test(
        common::harness(),
        &[
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
        ],
        &seed,
        &results,
    );
    let text = out.output();
    assert_eq!(out.code, Some(0), "seed {seed}:\n{text}");

    let events = common::history(&common::latest(&results));
    let (starts, stops) = common::nemesis_starts_and_stops(&events);
    let last_steps = events
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["f"] == "start")
        .filter(|e| {
            let shape = e["value"]["shape"].as_str().unwrap_or("");
            shape == "figure-8 (d)" || shape == "stale-tail (c)"
        })
        .count();
    assert!(starts > 0, "seed {seed}: no nemesis events");
    assert_eq!(starts, stops, "seed {seed}: every start has its stop");
    assert!(
        last_steps >= 1,
        "seed {seed}: no script reached its last step:\n{text}"
    );
}

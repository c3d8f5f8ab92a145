//! `--nemesis failpoint` end to end: a crash failpoint on the leader loses nothing and the
//! crashed node is restarted; the default draw sets several points that fire and are counted
//! in the coverage; `read-before-apply` is caught by an election window; a bad `--failpoints`
//! exits 254.

mod common;

use serde_json::Value;

/// Runs `harness test ARGS --no-report` with `seed`: its exit code, its output (after the
/// seed) and its results (`null` after an exit 254).
fn run(args: &[&str], seed: u64) -> (Option<i32>, String, Value) {
    let t = tempfile::tempdir().unwrap();
    let args = [args, &["--no-report"]].concat();
    let out = common::harness_test(common::harness(), &args, &seed.to_string(), t.path());
    let text = format!("seed {seed}\n{}\n{}", out.stdout, out.stderr);
    let r = if out.code == Some(254) {
        Value::Null
    } else {
        common::results_json(&common::latest(t.path()))
    };
    (out.code, text, r)
}

/// The failpoints a run's coverage lists (none if it lists none).
fn failpoint_uses(r: &Value) -> Vec<Value> {
    r["coverage"]["failpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The acceptance's crash case, short: the leader crashes after persisting a batch and before
/// sending it, the set workload loses nothing, and the heal restarts the node.
#[test]
fn a_crash_after_persist_before_send_on_the_leader_loses_no_add() {
    let seed = 1;
    let (code, text, r) = run(
        &[
            "--nodes",
            "3",
            "--workload",
            "set",
            "--read-mode",
            "log",
            "--nemesis",
            "failpoint",
            "--failpoints",
            "after-persist-before-send=1*panic@leader",
            "--nemesis-interval",
            "1.5",
            "--time-limit",
            "8",
            "--recovery-time",
            "3",
        ],
        seed,
    );
    assert_eq!(code, Some(0), "{text}");
    let uses = failpoint_uses(&r);
    let crashes: u64 = uses.iter().map(|u| u["crashed"].as_u64().unwrap()).sum();
    assert!(crashes >= 1, "no crash happened: {uses:?}\n{text}");
    assert_eq!(r["checkers"]["set"]["lost"]["count"], 0, "{text}");
}

/// Every point drawn, short: at least three different points set, some fired, all counted.
#[test]
fn the_default_draw_sets_several_points_and_counts_their_fires() {
    let seed = 2;
    let (code, text, r) = run(
        &[
            "--nodes",
            "3",
            "--read-mode",
            "all",
            "--nemesis",
            "failpoint",
            "--nemesis-interval",
            "1",
            "--time-limit",
            "12",
            "--recovery-time",
            "3",
        ],
        seed,
    );
    assert_eq!(code, Some(0), "{text}");
    let uses = failpoint_uses(&r);
    assert!(uses.len() >= 3, "{uses:?}\n{text}");
    let fired = uses
        .iter()
        .filter(|u| u["fired"].as_u64().is_some_and(|f| f > 0))
        .count();
    assert!(fired >= 1, "nothing fired: {uses:?}\n{text}");
    assert!(text.contains("failpoints set"), "{text}");
}

/// The bug the failpoints exist for: caught by election windows of
/// `after-commit-before-apply` within a few seeds (each run: 5 nodes, 20 s).
#[test]
fn read_before_apply_is_caught_by_an_election_window() {
    let mut tried = Vec::new();
    for seed in 1..=3 {
        let (code, text, _) = run(
            &[
                "--nodes",
                "5",
                "--read-mode",
                "read-index",
                "--nemesis",
                "failpoint",
                "--failpoints",
                "after-commit-before-apply",
                "--nemesis-interval",
                "2",
                "--time-limit",
                "20",
                "--recovery-time",
                "3",
                "--bug",
                "read-before-apply",
            ],
            seed,
        );
        if code == Some(1) {
            return;
        }
        tried.push(text);
    }
    panic!(
        "read-before-apply not caught in seeds 1-3:\n{}",
        tried.join("\n")
    );
}

#[test]
fn a_bad_failpoints_list_exits_254() {
    for bad in [
        "no-such-point",
        "before-persist=explode",
        "before-persist=off",
        "before-persist@everyone",
    ] {
        let (code, text, _) = run(
            &[
                "--nodes",
                "3",
                "--nemesis",
                "failpoint",
                "--failpoints",
                bad,
            ],
            1,
        );
        assert_eq!(code, Some(254), "{bad}: {text}");
    }
    let (code, text, _) = run(&["--nodes", "3", "--failpoints", "before-persist"], 1);
    assert_eq!(code, Some(254), "--failpoints without the nemesis: {text}");
}

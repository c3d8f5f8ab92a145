//! End-to-end: `harness test` as a user runs it, against real node processes.
//!
//! What this test does: a short register test under partitions with all four linearizable
//! read paths exits 0 and leaves every file of the results layout, with a history that follows
//! the format (checked by `tools/validate-history`); a set test under kill faults loses
//! nothing; bad options exit 254/255 with a one-line error naming the problem.

use std::path::{Path, PathBuf};
use std::process::Command;

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn latest(results: &Path) -> PathBuf {
    let link = results.join("latest");
    let target = std::fs::read_link(&link).expect("results/latest is a link");
    results.join(target)
}

fn run_ok(args: &[&str], results: &Path) -> (i32, String) {
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
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn register_under_partition_is_valid_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let seed = std::env::var("TEST_SEED").unwrap_or_else(|_| "7".into());
    let (code, text) = run_ok(
        &[
            "--nodes",
            "3",
            "--time-limit",
            "8",
            "--rate",
            "150",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "2",
            "--read-mode",
            "all",
            "--seed",
            &seed,
        ],
        &results,
    );
    assert_eq!(code, 0, "seed {seed}: harness test failed:\n{text}");
    let run = latest(&results);
    for f in [
        "test.json",
        "history.jsonl",
        "results.json",
        "index.html",
        "timeline.html",
        "latency-raw.png",
        "latency-quantiles.png",
        "rate.png",
        "nodes/n1/node.log",
        "nodes/n2/node.log",
        "nodes/n3/node.log",
    ] {
        assert!(
            run.join(f).is_file(),
            "seed {seed}: missing {f} in {}",
            run.display()
        );
    }
    assert!(results.join("index.html").is_file());
    let v = Command::new("python3")
        .arg(shared().join("tools/validate-history"))
        .arg(run.join("history.jsonl"))
        .args(["--min-ops", "500"])
        .output()
        .expect("python3");
    assert!(
        v.status.success(),
        "seed {seed}: {}",
        String::from_utf8_lossy(&v.stdout)
    );
    let results_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results_json["valid"], true);
    let modes = results_json["read_modes"].as_object().unwrap();
    for m in ["log", "read-index", "lease", "follower"] {
        assert!(modes.contains_key(m), "no verdict for {m}: {results_json}");
    }
    let test_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("test.json")).unwrap()).unwrap();
    assert_eq!(test_json["seed"].as_u64().unwrap().to_string(), seed);
    assert!(test_json["node_command_lines"].as_array().unwrap().len() == 3);
    // The history has nemesis events for the partitions.
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"fault\":\"partition\""),
        "no partition recorded"
    );
}

#[test]
fn set_under_kill_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let (code, text) = run_ok(
        &[
            "--nodes",
            "3",
            "--time-limit",
            "8",
            "--workload",
            "set",
            "--nemesis",
            "kill",
            "--nemesis-interval",
            "2",
            "--seed",
            "11",
        ],
        &results,
    );
    assert_eq!(code, 0, "harness test failed:\n{text}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(latest(&results).join("results.json")).unwrap())
            .unwrap();
    assert_eq!(r["checkers"]["set"]["lost"]["count"], 0, "{r}");
    assert!(
        r["checkers"]["set"]["acknowledged"].as_u64().unwrap() > 50,
        "{r}"
    );
    // Reads during the run (not only the 3 final ones) classify the elements set-full style.
    let set = &r["checkers"]["set"];
    assert!(set["reads"].as_u64().unwrap() > 3, "{set}");
    assert!(set["stable_count"].as_u64().unwrap() > 50, "{set}");
    assert!(set["stable_latency"]["p50"].is_number(), "{set}");
    assert!(latest(&results).join("set-latency.png").is_file());
}

#[test]
fn bad_options_exit_254_or_255_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<&str>, u8, &str)> = vec![
        (vec!["--nemesis", "flood"], 254, "flood"),
        (vec!["--nodes", "0"], 254, "--nodes"),
        (vec!["--read-mode", "fast"], 254, "fast"),
        (vec!["--bug", "nonsense"], 254, "nonsense"),
        (vec!["--no-such-flag"], 254, "no-such-flag"),
        (
            vec!["--results-dir", "/proc/no/such/dir"],
            255,
            "/proc/no/such/dir",
        ),
    ];
    for (args, want, needle) in cases {
        let mut cmd = harness();
        cmd.arg("test").args(&args);
        if !args.contains(&"--results-dir") {
            cmd.arg("--results-dir").arg(dir.path());
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(want as i32), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or("");
        assert!(
            first.contains(needle),
            "{args:?}: first line does not name {needle}: {err}"
        );
        assert!(
            err.lines().filter(|l| !l.trim().is_empty()).count() <= 3,
            "{args:?}: error should be short: {err}"
        );
    }
}

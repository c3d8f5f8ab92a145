//! `harness test --system etcd` end to end: the same workloads, faults, checker and reports
//! on etcd (Debian's `etcd-server`). Skipped, saying so, when `etcd` is not on PATH; the
//! partition test also needs root and nftables (network namespaces), and says when it
//! cannot run.

mod common;

use std::path::Path;

fn etcd_on_path() -> bool {
    let ok = std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: etcd not on PATH (apt-get install etcd-server)");
    }
    ok
}

/// Runs `harness test --system etcd ARGS` with `seed`: its exit code, its output (after the
/// seed), its results (`null` unless it exited 0 or 1) and its results directory.
fn run(args: &[&str], seed: u64) -> (Option<i32>, String, serde_json::Value, tempfile::TempDir) {
    let t = tempfile::tempdir().unwrap();
    let args = [&["--system", "etcd"], args].concat();
    let out = common::harness_test(common::harness(), &args, &seed.to_string(), t.path());
    let text = format!("seed {seed}\n{}\n{}", out.stdout, out.stderr);
    let results = if matches!(out.code, Some(0) | Some(1)) {
        common::results_json(&common::latest(t.path()))
    } else {
        serde_json::Value::Null
    };
    (out.code, text, results, t)
}

fn nemesis_events(dir: &Path, fault: &str) -> Vec<serde_json::Value> {
    common::history(&common::latest(dir))
        .into_iter()
        .filter(|e| e["process"] == "nemesis" && e["value"]["fault"] == fault)
        .collect()
}

#[test]
fn etcd_runs_the_register_workload_under_kill_pause_and_membership() {
    if !etcd_on_path() {
        return;
    }
    let (code, text, r, dir) = run(
        &[
            "--nodes",
            "3",
            "--nemesis",
            "kill,pause,membership",
            "--read-mode",
            "read-index,follower,log",
            "--time-limit",
            "15",
            "--nemesis-interval",
            "1.5",
            "--recovery-time",
            "4",
        ],
        1,
    );
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(r["system"], "etcd", "{r}");
    let version = r["system_version"].as_str().unwrap_or_default().to_string();
    assert!(
        version.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "no etcd version: {r}"
    );
    for mode in ["read-index", "follower", "log"] {
        assert_eq!(r["read_modes"][mode]["valid"], true, "{mode}: {text}");
    }
    let membership = nemesis_events(dir.path(), "membership");
    assert!(
        membership
            .iter()
            .any(|e| e["f"] == "stop" && e["value"].get("error").is_none()),
        "no membership change was applied and undone: {membership:?}\n{text}"
    );
    let html = std::fs::read_to_string(common::latest(dir.path()).join("index.html")).unwrap();
    assert!(
        html.contains(&format!("({version})")),
        "the report does not name etcd's version"
    );
}

#[test]
fn etcd_survives_partitions_in_network_namespaces() {
    if !etcd_on_path() {
        return;
    }
    if let Err(why) = nemesis::netns::available() {
        eprintln!("SKIPPED: network namespaces cannot be made here: {why}");
        return;
    }
    let (code, text, r, _dir) = run(
        &[
            "--nodes",
            "3",
            "--nemesis",
            "partition",
            "--read-mode",
            "read-index",
            "--time-limit",
            "12",
            "--nemesis-interval",
            "1.5",
            "--recovery-time",
            "4",
        ],
        2,
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        r["coverage"]["leader_changes"]
            .as_u64()
            .is_some_and(|c| c >= 1),
        "no leader change under partitions: {text}"
    );
}

#[test]
fn what_etcd_cannot_do_exits_254_with_the_reason() {
    if !etcd_on_path() {
        return;
    }
    for (args, why) in [
        (&["--read-mode", "lease"][..], "lease"),
        (&["--nemesis", "clock"][..], "clock"),
        (&["--nemesis", "failpoint"][..], "gofail"),
        (&["--bug", "vote-ignores-log"][..], "bug"),
    ] {
        let (code, text, _, _) = run(args, 1);
        assert_eq!(code, Some(254), "{args:?}: {text}");
        assert!(text.contains(why), "{args:?} does not say why: {text}");
    }
}

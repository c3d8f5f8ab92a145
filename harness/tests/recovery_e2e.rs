//! End-to-end: what happens after the faults decides the verdict too.
//!
//! - A cluster that cannot recover (a majority kept paused after the final heal, through the
//!   test-only hook `HARNESS_TEST_HOOK=pause-majority-after-heal`) fails the `availability`
//!   checker: exit 1.
//! - A member whose data diverges (n1 started with the node's test-only divergence fault,
//!   `HARNESS_TEST_HOOK=diverge-n1`) fails the `convergence` check: exit 1, naming the key.
//! - A run interrupted by SIGINT is never valid: exit 2, `interrupted` in results.json.
//! - A healthy run records both checkers as valid.

mod common;
use common::{harness, latest};

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn results_json(results: &Path) -> serde_json::Value {
    let path = latest(results).join("results.json");
    serde_json::from_slice(&std::fs::read(&path).expect("results.json")).expect("json")
}

/// Runs a short 3-node test under kill faults with `hook` set; returns exit code and output.
fn run_with_hook(hook: Option<&str>, results: &Path, seed: &str) -> (i32, String) {
    let mut cmd = harness();
    cmd.args([
        "test",
        "--nodes",
        "3",
        "--time-limit",
        "4",
        "--recovery-time",
        "3",
        "--nemesis",
        "kill",
        "--nemesis-interval",
        "1.5",
        "--seed",
        seed,
        "--no-report",
        "--quiet",
        "--results-dir",
    ])
    .arg(results);
    match hook {
        Some(h) => cmd.env("HARNESS_TEST_HOOK", h),
        None => cmd.env_remove("HARNESS_TEST_HOOK"),
    };
    let out = cmd.output().expect("run harness");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn seed() -> String {
    std::env::var("TEST_SEED").unwrap_or_else(|_| "11".into())
}

#[test]
fn a_healthy_run_passes_availability_and_convergence() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed();
    let (code, text) = run_with_hook(None, dir.path(), &seed);
    assert_eq!(code, 0, "seed {seed}: {text}");
    let r = results_json(dir.path());
    let a = &r["checkers"]["availability"];
    assert_eq!(a["valid"], true, "seed {seed}: {a}");
    assert!(a["first_ok_write_after_heal_s"].as_f64().unwrap() <= 3.0);
    let c = &r["checkers"]["convergence"];
    assert_eq!(c["valid"], true, "seed {seed}: {c}");
    assert_eq!(c["keys_compared"].as_u64(), Some(8), "{c}");
    for m in ["n1", "n2", "n3"] {
        assert_eq!(c["members"][m]["applied"], c["leader_commit"], "{c}");
    }
}

#[test]
fn a_cluster_that_cannot_recover_fails_availability() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed();
    let (code, text) = run_with_hook(Some("pause-majority-after-heal"), dir.path(), &seed);
    assert_eq!(code, 1, "seed {seed}: {text}");
    let r = results_json(dir.path());
    assert_eq!(r["valid"], false);
    let a = &r["checkers"]["availability"];
    assert_eq!(a["valid"], false, "{a}");
    let explanations: Vec<&str> = a["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["explanation"].as_str())
        .collect();
    assert!(
        explanations.contains(&"unavailable after heal: no ok write in 3 s"),
        "seed {seed}: {explanations:?}"
    );
    assert!(text.contains("unavailable after heal"), "{text}");
}

#[test]
fn a_diverged_member_fails_convergence() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed();
    let (code, text) = run_with_hook(Some("diverge-n1"), dir.path(), &seed);
    assert_eq!(code, 1, "seed {seed}: {text}");
    let r = results_json(dir.path());
    let c = &r["checkers"]["convergence"];
    assert_eq!(c["valid"], false, "seed {seed}: {c}");
    let first = c["anomalies"][0]["explanation"].as_str().unwrap();
    // e.g. "k3: n1 has 5, n2 and n3 have 4": n1 is the odd one out.
    assert!(
        first.contains(": n1 has ") && first.contains("n2 and n3 have"),
        "seed {seed}: {first}"
    );
}

#[test]
fn an_interrupted_run_is_unknown_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed();
    let mut child = harness()
        .args([
            "test",
            "--nodes",
            "3",
            "--time-limit",
            "30",
            "--nemesis",
            "partition",
            "--seed",
            &seed,
            "--results-dir",
        ])
        .arg(dir.path())
        .env_remove("HARNESS_TEST_HOOK")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start harness");
    // Event, not a guess: wait until the run has recorded operations, then interrupt.
    let start = Instant::now();
    let history = loop {
        assert!(start.elapsed() < Duration::from_secs(60), "no history");
        if let Some(h) = std::fs::read_dir(dir.path())
            .ok()
            .and_then(|mut d| d.find_map(|e| e.ok().filter(|e| e.path().is_dir())))
            .and_then(|test| std::fs::read_dir(test.path()).ok()?.find_map(|e| e.ok()))
            .map(|run| run.path().join("history.jsonl"))
            .filter(|h| {
                std::fs::metadata(h)
                    .map(|m| m.len() > 2000)
                    .unwrap_or(false)
            })
        {
            break h;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(history.exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("seed {seed}: the harness did not finish after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(2), "seed {seed}");
    let r = results_json(dir.path());
    assert_eq!(r["valid"], "unknown", "seed {seed}");
    assert_eq!(r["interrupted"]["signal"], "SIGINT");
    assert!(r["interrupted"]["at_s"].as_f64().unwrap() < 30.0);
    let page = std::fs::read_to_string(latest(dir.path()).join("index.html")).unwrap();
    assert!(
        page.contains("the verdict covers the recorded part only"),
        "no interrupted banner"
    );
}

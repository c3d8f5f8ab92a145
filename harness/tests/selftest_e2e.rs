//! End-to-end: `harness selftest` on one quick bug (follower-read-local) catches it, keeps the
//! correct node valid under the same seed, exits 0, and writes `selftest/index.html` whose
//! links point at real run reports; bad options exit 254 naming the problem.
//!
//! Seeded: `SELFTEST_SEED` (default 1) is the first seed of the bug's runs, printed on
//! failure. `SELFTEST_NODE_BIN` overrides the node binary.

use std::process::Command;

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

fn node_bin_args() -> Vec<String> {
    match std::env::var("SELFTEST_NODE_BIN") {
        Ok(p) if !p.is_empty() => vec!["--node-bin".into(), p],
        _ => vec![],
    }
}

#[test]
fn selftest_catches_follower_read_local_and_links_reports() {
    let seed: u64 = std::env::var("SELFTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    eprintln!("selftest seed {seed} (set SELFTEST_SEED to change)");
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let out = harness()
        .args([
            "selftest",
            "--bugs",
            "follower-read-local",
            "--budget",
            "150",
            "--seed",
            &seed.to_string(),
        ])
        .args(node_bin_args())
        .arg("--results-dir")
        .arg(&results)
        .output()
        .expect("run harness selftest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "seed {seed}\n{text}");
    assert!(text.contains("follower-read-local"), "{text}");

    let st = results.join("selftest");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(st.join("selftest.json")).unwrap()).unwrap();
    let row = &json["bugs"][0];
    assert_eq!(row["bug"], "follower-read-local");
    assert_eq!(row["caught"], true, "seed {seed}: {row}");
    assert_eq!(row["correct_code"], 0, "seed {seed}: {row}");
    // Every run the page links to has its report.
    let mut runs: Vec<String> = row["bug_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    runs.push(row["correct_run"].as_str().unwrap().to_string());
    let page = std::fs::read_to_string(st.join("index.html")).unwrap();
    for r in &runs {
        assert!(st.join(r).join("index.html").is_file(), "report of {r}");
        assert!(page.contains(&format!("{r}/index.html")), "page links {r}");
    }
    assert!(
        page.contains("--bug follower-read-local"),
        "reproduce command shown"
    );
}

#[test]
fn selftest_rejects_unknown_bugs() {
    let dir = tempfile::tempdir().unwrap();
    let out = harness()
        .args(["selftest", "--bugs", "no-such-bug", "--results-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-bug"), "{err}");
}

//! End-to-end: a short `harness soak` with a forced-failure cell (a deliberate node bug)
//! writes JUnit XML that parses, with one test case per run, the failing cases carrying the
//! command that reproduces them; that command, run again, fails again (exit 1). Also checks
//! the summary page and that passing runs' directories are deleted. A budget too short for
//! every cell lists the cells that did not run (JUnit `<skipped>`, "X of Y cells ran");
//! `--shard I/N` runs one shard; `soak-merge` joins two shards and fails when one is missing.
//!
//! Seeded: `SOAK_TEST_SEED` (default 1) is the soak's first seed, printed on failure.
//! `SELFTEST_NODE_BIN` overrides the node binary (default: the one beside `harness`, or
//! `harness node`).

use std::path::Path;
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

/// Runs a reproduce command (`harness test ...`) with this build's harness; returns its exit code.
fn rerun(command: &str, results: &Path) -> i32 {
    let mut words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
    assert_eq!(
        words.first().map(String::as_str),
        Some("harness"),
        "{command}"
    );
    words.remove(0);
    let out = harness()
        .args(&words)
        .arg("--results-dir")
        .arg(results)
        .output()
        .expect("run harness");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    out.status.code().unwrap_or(-1)
}

#[test]
fn soak_junit_lists_every_run_and_failures_reproduce() {
    let seed: u64 = std::env::var("SOAK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    eprintln!("soak test seed {seed} (set SOAK_TEST_SEED to change)");
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let junit = dir.path().join("out/soak.xml");
    let out = harness()
        .args([
            "soak",
            "--duration",
            "40s",
            "--run-time",
            "8",
            "--nodes",
            "3",
            "--matrix",
            "partition x follower x follower-read-local",
            "--seed",
            &seed.to_string(),
        ])
        .args(node_bin_args())
        .arg("--results-dir")
        .arg(&results)
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("run harness soak");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code().unwrap_or(-1);
    assert_eq!(
        code, 1,
        "seed {seed}: a soak with a forced bug exits 1\n{text}"
    );

    let xml = std::fs::read_to_string(&junit).expect("JUnit file written");
    let doc = roxmltree::Document::parse(&xml)
        .unwrap_or_else(|e| panic!("seed {seed}: JUnit is not XML: {e}\n{xml}"));
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert!(!cases.is_empty(), "seed {seed}: no test cases\n{xml}");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("testsuite");
    assert_eq!(
        suite.attribute("tests"),
        Some(cases.len().to_string().as_str())
    );
    let mut failing = Vec::new();
    for c in &cases {
        assert_eq!(
            c.attribute("classname"),
            Some("register.n3.partition.follower.bug-follower-read-local")
        );
        let name = c.attribute("name").expect("name");
        assert!(name.parse::<u64>().is_ok(), "name is the seed: {name}");
        if let Some(f) = c.children().find(|n| n.has_tag_name("failure")) {
            let body = f.text().unwrap_or("");
            let line = body
                .lines()
                .find_map(|l| l.strip_prefix("reproduce: "))
                .unwrap_or_else(|| {
                    panic!("seed {seed}: failure without a reproduce command: {body}")
                });
            assert!(line.contains(&format!("--seed {name}")), "{line}");
            assert!(line.contains("--bug follower-read-local"), "{line}");
            failing.push(line.to_string());
        }
    }
    assert!(!failing.is_empty(), "seed {seed}: no failing case\n{xml}");

    // The summary page lists the failure with its reproduce command; passing runs are gone.
    let soak_dirs: Vec<_> = std::fs::read_dir(results.join("soak"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(soak_dirs.len(), 1);
    let page = std::fs::read_to_string(soak_dirs[0].join("index.html")).unwrap();
    assert!(
        page.contains(&failing[0].replace('"', "&quot;")),
        "page lists the command"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(soak_dirs[0].join("summary.json")).unwrap()).unwrap();
    for r in summary["runs"].as_array().unwrap() {
        let kept = r["run_dir"].as_str();
        if r["code"] == 0 {
            assert!(kept.is_none(), "passing runs are not kept: {r}");
        } else {
            let d = soak_dirs[0].join(kept.expect("failing runs are kept"));
            assert!(d.join("history.jsonl").is_file(), "{}", d.display());
            assert!(
                d.join("index.html").is_file(),
                "report built for {}",
                d.display()
            );
        }
    }

    // Rerunning the command reproduces the failure. Timing on a loaded machine varies, so one
    // retry is allowed: the schedule is the same, the race it exposes may need a second try.
    let again = dir.path().join("again");
    let mut codes = vec![rerun(&failing[0], &again)];
    if codes[0] != 1 {
        codes.push(rerun(&failing[0], &again));
    }
    assert_eq!(
        codes.last(),
        Some(&1),
        "seed {seed}: {} did not reproduce (exit codes {codes:?})",
        failing[0]
    );
}

fn test_seed() -> u64 {
    let seed = std::env::var("SOAK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    eprintln!("soak test seed {seed} (set SOAK_TEST_SEED to change)");
    seed
}

/// A soak command with the quick options every test below shares: one-second runs on three
/// nodes; 22 s of budget is the least that lets the first run start (1 s + 20 s assumed
/// overhead before anything was measured).
fn quick_soak(seed: u64, results: &Path, extra: &[&str]) -> Command {
    let mut c = harness();
    c.args([
        "soak",
        "--duration",
        "22s",
        "--run-time",
        "1",
        "--nodes",
        "3",
        "--seed",
        &seed.to_string(),
    ])
    .args(extra)
    .args(node_bin_args())
    .arg("--results-dir")
    .arg(results);
    c
}

fn text_of(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The one soak directory under `results/soak`.
fn only_soak_dir(results: &Path) -> std::path::PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(results.join("soak"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

fn summary_of(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

/// (classname, name, skipped message) of every test case.
fn junit_cases(xml: &str) -> Vec<(String, String, Option<String>)> {
    let doc =
        roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("JUnit is not XML: {e}\n{xml}"));
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            (
                c.attribute("classname").unwrap_or("").to_string(),
                c.attribute("name").unwrap_or("").to_string(),
                c.children()
                    .find(|n| n.has_tag_name("skipped"))
                    .map(|k| k.attribute("message").unwrap_or("").to_string()),
            )
        })
        .collect()
}

#[test]
fn soak_lists_cells_the_budget_did_not_reach() {
    let seed = test_seed();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let junit = dir.path().join("soak.xml");
    // 2 workloads x 12 = 24 cells; 22 s cannot hold 24 runs of at least a second each.
    let out = quick_soak(
        seed,
        &results,
        &[
            "--workload",
            "register,set",
            "--matrix",
            "none,partition,kill,pause x log,read-index,lease",
        ],
    )
    .arg("--junit")
    .arg(&junit)
    .output()
    .expect("run harness soak");
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(0), "seed {seed}\n{text}");
    assert!(
        text.contains("warning: at ~6 s a run the budget fits about 3 runs for 24 cells"),
        "seed {seed}: budget warning at start\n{text}"
    );
    let soak = only_soak_dir(&results);
    let summary = summary_of(&soak);
    let ran = summary["cells_run"].as_u64().unwrap();
    assert_eq!(summary["cells_total"], 24);
    assert!(
        (1..24).contains(&ran),
        "seed {seed}: {ran} of 24 ran\n{text}"
    );
    let line = format!("{ran} of 24 cells ran");
    assert!(
        text.contains(&format!("soak: {line}")),
        "seed {seed}\n{text}"
    );
    assert!(
        std::fs::read_to_string(soak.join("index.html"))
            .unwrap()
            .contains(&line),
        "page says {line}"
    );
    assert_eq!(
        summary["skipped"].as_array().unwrap().len() as u64,
        24 - ran
    );

    let xml = std::fs::read_to_string(&junit).expect("--junit written");
    assert_eq!(
        xml,
        std::fs::read_to_string(soak.join("junit.xml")).unwrap(),
        "junit.xml in the soak directory is the same"
    );
    let cases = junit_cases(&xml);
    let skipped: Vec<_> = cases.iter().filter(|c| c.2.is_some()).collect();
    assert_eq!(skipped.len() as u64, 24 - ran, "seed {seed}\n{xml}");
    for (class, _, msg) in &skipped {
        let msg = msg.as_deref().unwrap();
        assert!(
            msg.starts_with("time budget spent before this cell's turn (needs ~")
                && msg.ends_with(" s left)"),
            "{class}: {msg}"
        );
    }
    // Each cell is either run or skipped, never both; names carry workload and size.
    let classes: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(classes.len(), 24, "every cell appears: {classes:?}");
    assert!(classes.contains("set.n3.pause.lease"), "{classes:?}");
    assert!(classes.contains("register.n3.none.log"), "{classes:?}");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(
        suite.attribute("skipped"),
        Some((24 - ran).to_string().as_str())
    );
}

#[test]
fn bad_shards_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    for bad in ["0/2", "3/2", "1/0", "x", "1/2/3"] {
        let out = quick_soak(1, &results, &["--shard", bad]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "--shard {bad}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "--shard {bad}: {err}");
        assert!(err.contains("--shard"), "{err}");
    }
    // A shard that would hold no cell: 2 cells, shard 3 of 3.
    let out = quick_soak(
        1,
        &results,
        &["--matrix", "none x log,lease", "--shard", "3/3"],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(254), "{err}");
    assert!(err.contains("holds no cell"), "{err}");
    assert!(
        !results.join("soak").exists(),
        "nothing written for bad usage"
    );
}

#[test]
fn shards_run_their_cells_and_merge_into_one_summary() {
    let seed = test_seed();
    let dir = tempfile::tempdir().unwrap();
    let matrix = ["--matrix", "none x log,lease,read-index"];
    // Both shards at once, as CI runs them.
    let shards: Vec<_> = (1..=2)
        .map(|i| {
            let results = dir.path().join(format!("shard-{i}"));
            let child = quick_soak(seed, &results, &matrix)
                .args(["--shard", &format!("{i}/2")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start harness soak");
            (results, child)
        })
        .collect();
    let mut soak_dirs = Vec::new();
    for (i, (results, child)) in shards.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let text = text_of(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "seed {seed} shard {}\n{text}",
            i + 1
        );
        let soak = only_soak_dir(&results);
        let s = summary_of(&soak);
        assert_eq!(s["shard"]["index"], i + 1);
        assert_eq!(s["shard"]["count"], 2);
        assert_eq!(s["matrix"].as_array().unwrap().len(), 3);
        // Position mod 2: shard 1 has cells 0 and 2, shard 2 has cell 1.
        let want: &[&str] = if i == 0 {
            &["register.n3.none.log", "register.n3.none.read-index"]
        } else {
            &["register.n3.none.lease"]
        };
        let cells: Vec<&str> = s["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(cells, want);
        for r in s["runs"].as_array().unwrap() {
            assert!(want.contains(&r["cell"].as_str().unwrap()), "{r}");
        }
        let page = std::fs::read_to_string(soak.join("index.html")).unwrap();
        assert!(
            page.contains(&format!("<b>{}/2</b>", i + 1)),
            "shard on the page"
        );
        assert!(text.contains(&format!("(shard {}/2; the matrix has 3 cells)", i + 1)));
        soak_dirs.push(soak);
    }

    // Merge: given the results directories (soak directories are found below them).
    let out_dir = dir.path().join("merged");
    let out = harness()
        .arg("soak-merge")
        .arg(dir.path().join("shard-1"))
        .arg(dir.path().join("shard-2"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(0), "seed {seed}\n{text}");
    let merged = summary_of(&out_dir);
    let runs: usize = soak_dirs
        .iter()
        .map(|d| summary_of(d)["runs"].as_array().unwrap().len())
        .sum();
    assert_eq!(merged["runs"].as_array().unwrap().len(), runs);
    assert_eq!(merged["cells_total"], 3);
    let ran = merged["cells_run"].as_u64().unwrap();
    assert!(text.contains(&format!("{ran} of 3 cells ran")), "{text}");
    assert_eq!(merged["merged_from"].as_array().unwrap().len(), 2);
    let xml = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    let cases = junit_cases(&xml);
    assert_eq!(cases.len(), runs + (3 - ran as usize), "{xml}");
    let page = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    assert!(page.contains("Shards merged"), "merged page");

    // One shard alone: the other is missing, so the merge fails (255) and says which.
    let out = harness()
        .arg("soak-merge")
        .arg(&soak_dirs[0])
        .arg("--out")
        .arg(dir.path().join("half"))
        .output()
        .unwrap();
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(255), "{text}");
    assert!(text.contains("missing shard(s) 2/2"), "{text}");
    let xml = std::fs::read_to_string(dir.path().join("half/junit.xml")).unwrap();
    assert!(
        junit_cases(&xml)
            .iter()
            .any(|c| c.0 == "register.n3.none.lease"
                && c.2.as_deref()
                    == Some("shard 2/2 is missing from the merge (no summary.json for it)")),
        "{xml}"
    );

    // A directory with no summary.json is bad usage.
    let out = harness()
        .arg("soak-merge")
        .arg(dir.path().join("nowhere"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
}

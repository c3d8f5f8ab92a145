//! The checker must agree with every expected verdict of the Knossos corpus
//! (`testdata/histories/knossos/manifest.tsv`); a missing file fails the test.

use std::path::PathBuf;
use std::time::{Duration, Instant};
use workloads::checker::{check_register, CheckOptions, Verdict};
use workloads::history::read_events;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/histories/knossos")
}

#[test]
fn agrees_with_every_knossos_verdict() {
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv"))
        .unwrap_or_else(|e| panic!("cannot read {}/manifest.tsv: {e}", dir.display()));
    let opts = CheckOptions {
        timeout: Duration::from_secs(60),
        ..CheckOptions::default()
    };
    let mut header = None;
    let mut checked = 0;
    let mut failures = Vec::new();
    let started = Instant::now();
    for line in manifest.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let Some(h) = &header else {
            header = Some(cols.iter().map(|c| c.to_string()).collect::<Vec<_>>());
            continue;
        };
        let col = |name: &str| {
            let i = h
                .iter()
                .position(|c| c == name)
                .unwrap_or_else(|| panic!("manifest has no column {name}"));
            cols.get(i)
                .copied()
                .unwrap_or_else(|| panic!("short line: {line}"))
        };
        let (file, expected) = (col("file"), col("expected"));
        let want = match expected {
            "linearizable" => Verdict::Valid,
            "not-linearizable" => Verdict::Invalid,
            other => panic!("unknown expected verdict {other:?} for {file}"),
        };
        let path = dir.join(file);
        let events = read_events(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let ops: usize = col("ops").parse().expect("ops column is a number");
        let invokes = events
            .iter()
            .filter(|e| e.kind == workloads::history::EventType::Invoke)
            .count();
        assert_eq!(
            invokes, ops,
            "{file}: operation count differs from the manifest"
        );
        let report = check_register(&events, &opts).unwrap_or_else(|e| panic!("{file}: {e}"));
        if report.valid != want {
            failures.push(format!("{file}: expected {want:?}, got {:?}", report.valid));
        }
        if want == Verdict::Invalid {
            let a = report.anomalies().next();
            assert!(
                a.is_some_and(|a| !a.ops.is_empty()),
                "{file}: no anomaly detail"
            );
        }
        checked += 1;
    }
    println!("checked {checked} files in {:?}", started.elapsed());
    assert_eq!(checked, 120, "the manifest lists 120 histories");
    assert!(
        failures.is_empty(),
        "disagreements:\n{}",
        failures.join("\n")
    );
}

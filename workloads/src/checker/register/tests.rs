//! Unit tests of `check_register` on small hand-written histories.

use super::*;
use crate::history::{EventType, Process};
use serde_json::{json, Value};

/// (process, type, f, value, read_mode) per line; key "x".
fn h(spec: &[(u64, EventType, &str, Value, Option<&str>)]) -> Vec<Event> {
    spec.iter()
        .enumerate()
        .map(|(i, (p, k, f, v, m))| Event {
            index: i as u64,
            time: i as u64,
            process: Process::Client(*p),
            kind: *k,
            f: f.to_string(),
            key: Some("x".into()),
            value: v.clone(),
            node: Some("n1".into()),
            read_mode: m.map(String::from),
            error: None,
        })
        .collect()
}
use EventType::*;

fn check(ev: &[Event]) -> RegisterReport {
    check_register(ev, &CheckOptions::default()).unwrap()
}

#[test]
fn empty_history_is_valid() {
    let r = check(&[]);
    assert_eq!(r.valid, Verdict::Valid);
    assert!(r.read_modes.contains_key(DEFAULT_MODE));
}

#[test]
fn null_cas_and_reads() {
    let ev = h(&[
        (0, Invoke, "cas", json!([null, 1]), None),
        (0, Ok, "cas", json!([null, 1]), None),
        (1, Invoke, "read", json!(null), None),
        (1, Ok, "read", json!(1), None),
    ]);
    assert_eq!(check(&ev).valid, Verdict::Valid);
}

#[test]
fn failed_write_is_dropped_and_stale_read_explained() {
    let ev = h(&[
        (0, Invoke, "write", json!(1), None),
        (0, Ok, "write", json!(1), None),
        (1, Invoke, "write", json!(2), None),
        (1, Fail, "write", json!(2), None),
        (2, Invoke, "write", json!(3), None),
        (2, Ok, "write", json!(3), None),
        (3, Invoke, "read", json!(null), None),
        (4, Invoke, "write", json!(4), None),
        (3, Ok, "read", json!(1), None),
        (4, Ok, "write", json!(4), None),
    ]);
    let r = check(&ev);
    assert_eq!(r.valid, Verdict::Invalid);
    let a = r.anomalies().next().expect("one anomaly");
    assert_eq!(a.op.f, "read");
    assert_eq!(a.op.invoke_index, 6);
    assert_eq!(a.state_after_prefix, json!(3));
    assert_eq!(a.possible_values, vec![json!(3), json!(4)]);
    assert!(a.ops.contains(&6) && a.ops.contains(&8) && a.ops.contains(&7));
    assert!(
        a.explanation.contains("cannot be placed"),
        "{}",
        a.explanation
    );
}

#[test]
fn verdict_per_read_mode() {
    let ev = h(&[
        (0, Invoke, "write", json!(1), None),
        (0, Ok, "write", json!(1), None),
        (1, Invoke, "read", json!(null), Some("stale")),
        (1, Ok, "read", json!(null), Some("stale")),
        (2, Invoke, "read", json!(null), Some("lease")),
        (2, Ok, "read", json!(1), Some("lease")),
        (3, Invoke, "read", json!(null), None),
        (3, Info, "read", json!(null), None),
    ]);
    let r = check(&ev);
    assert_eq!(r.valid, Verdict::Invalid);
    assert_eq!(r.read_modes["stale"].valid, Verdict::Invalid);
    assert_eq!(r.read_modes["lease"].valid, Verdict::Valid);
    assert_eq!(r.read_modes[DEFAULT_MODE].valid, Verdict::Valid);
    assert_eq!(r.read_modes[DEFAULT_MODE].reads, 0);
    assert_eq!(r.read_modes["lease"].reads, 1);
    assert_eq!(r.stats.info, 1);
}

#[test]
fn info_write_may_land_after_a_later_read() {
    let ev = h(&[
        (0, Invoke, "write", json!(7), None),
        (0, Info, "write", json!(7), None),
        (1, Invoke, "read", json!(null), None),
        (1, Ok, "read", json!(null), None),
        (2, Invoke, "read", json!(null), None),
        (2, Ok, "read", json!(7), None),
    ]);
    assert_eq!(check(&ev).valid, Verdict::Valid);
}

#[test]
fn malformed_ops_are_errors_with_lines() {
    let ev = h(&[(0, Invoke, "cas", json!(3), None)]);
    let e = check_register(&ev, &CheckOptions::default()).unwrap_err();
    assert!(e.to_string().starts_with("line 1:"), "{e}");
    let ev = h(&[(0, Invoke, "add", json!(3), None)]);
    assert!(check_register(&ev, &CheckOptions::default()).is_err());
}

#[test]
fn zero_timeout_is_unknown_never_valid() {
    let ev = crate::checker::gen::generate(&crate::checker::gen::GenConfig {
        ops: 20_000,
        keys: 1,
        concurrency: 20,
        seed: 7,
        ..Default::default()
    });
    let opts = CheckOptions {
        timeout: std::time::Duration::ZERO,
        ..CheckOptions::default()
    };
    let r = check_register(&ev, &opts).unwrap();
    assert_eq!(r.valid, Verdict::Unknown, "seed 7");
    let k = &r.read_modes[DEFAULT_MODE].keys["k0"];
    assert!(k.reason.as_deref().unwrap_or("").contains("time"), "{k:?}");
}

#[test]
fn tiny_memory_budget_is_unknown_never_valid() {
    let ev = crate::checker::gen::generate(&crate::checker::gen::GenConfig {
        ops: 20_000,
        keys: 1,
        concurrency: 20,
        seed: 8,
        ..Default::default()
    });
    let opts = CheckOptions {
        memory_limit: 1,
        ..CheckOptions::default()
    };
    let r = check_register(&ev, &opts).unwrap();
    assert_eq!(r.valid, Verdict::Unknown, "seed 8");
}

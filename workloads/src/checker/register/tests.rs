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

/// The search's shortcuts (greedy reads, absorbed unread writes, unique-source pruning) must
/// never change a verdict: compare with the search without pruning on small random histories,
/// both untouched and with one read's value replaced by a random value of the history (which
/// may or may not be linearizable).
#[test]
fn pruning_never_changes_a_verdict() {
    use crate::checker::gen::{generate, GenConfig};
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};
    let mut disagreements = Vec::new();
    for seed in 0..300u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut ev = generate(&GenConfig {
            ops: 30 + (seed % 40) as usize,
            keys: 1,
            concurrency: 2 + (seed % 6) as usize,
            info_rate: 0.1,
            fail_rate: 0.1,
            read_modes: Vec::new(),
            seed,
        });
        if seed % 2 == 1 {
            let reads: Vec<usize> = (0..ev.len())
                .filter(|&i| ev[i].f == "read" && ev[i].kind == EventType::Ok)
                .collect();
            let vals: Vec<Value> = ev
                .iter()
                .filter(|e| e.f == "write")
                .map(|e| e.value.clone())
                .chain([Value::Null])
                .collect();
            if !reads.is_empty() {
                let r = reads[rng.gen_range(0..reads.len())];
                ev[r].value = vals[rng.gen_range(0..vals.len())].clone();
            }
        }
        let pairs = crate::checker::validate::pair(&ev).unwrap();
        let prep = prepare::prepare(&ev, &pairs).unwrap();
        for task in prep.tasks() {
            let far = Instant::now() + Duration::from_secs(20);
            let mem = search::MemBudget::new(1 << 30);
            let no = AtomicBool::new(false);
            let a = prep.search(&task).run(far, far, &no, &mem);
            let b = prep
                .search(&task)
                .without_pruning()
                .run(far, far, &no, &mem);
            let verdict = |o: &Outcome| match o {
                Outcome::Valid => Verdict::Valid,
                Outcome::Invalid { .. } => Verdict::Invalid,
                _ => Verdict::Unknown,
            };
            if verdict(&a) != verdict(&b) || verdict(&a) == Verdict::Unknown {
                disagreements.push(format!("seed {seed}: {a:?} vs {b:?}"));
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Definitional checker for tiny sub-histories: is there an order of all completed ops and
/// some indeterminate ones that respects real time and the register? Memoized over
/// (linearized set, state).
fn reference(ops: &[(usize, usize, search::ROp)]) -> bool {
    use std::collections::HashSet;
    fn go(
        ops: &[(usize, usize, search::ROp)],
        done: u32,
        state: search::Val,
        seen: &mut HashSet<(u32, search::Val)>,
    ) -> bool {
        if (0..ops.len()).all(|i| done & (1 << i) != 0 || !ops[i].2.required) {
            return true;
        }
        if !seen.insert((done, state)) {
            return false;
        }
        for i in 0..ops.len() {
            if done & (1 << i) != 0 {
                continue;
            }
            // every op that returned before i was called must already be placed
            let minimal =
                (0..ops.len()).all(|j| done & (1 << j) != 0 || j == i || ops[j].1 >= ops[i].0);
            if !minimal {
                continue;
            }
            if let Some(ns) = search::step(state, &ops[i].2) {
                if go(ops, done | (1 << i), ns, seen) {
                    return true;
                }
            }
        }
        false
    }
    go(ops, 0, search::NULL, &mut HashSet::new())
}

/// The search (with all its shortcuts) agrees with the definitional checker on tiny random
/// histories, untouched or with one read's value replaced by a random value.
#[test]
fn search_agrees_with_definition_on_tiny_histories() {
    use crate::checker::gen::{generate, GenConfig};
    use rand::{Rng, SeedableRng};
    let mut bad = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..600u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut ev = generate(&GenConfig {
            ops: 6 + (seed % 10) as usize,
            keys: 1,
            concurrency: 2 + (seed % 4) as usize,
            info_rate: 0.2,
            fail_rate: 0.1,
            read_modes: Vec::new(),
            seed,
        });
        let reads: Vec<usize> = (0..ev.len())
            .filter(|&i| ev[i].f == "read" && ev[i].kind == EventType::Ok)
            .collect();
        if seed % 3 != 0 && !reads.is_empty() {
            let r = reads[rng.gen_range(0..reads.len())];
            let v = rng.gen_range(0..6i64);
            ev[r].value = if v == 0 { Value::Null } else { json!(v) };
        }
        // small values so that values repeat: rewrite writes/cas to values 1..5
        for e in ev.iter_mut() {
            if seed % 2 == 0 {
                break;
            }
            match e.f.as_str() {
                "write" => e.value = json!(e.value.as_i64().unwrap_or(0) % 5 + 1),
                "cas" => {
                    let a = e.value[0].as_i64().map(|x| x % 5 + 1);
                    let b = e.value[1].as_i64().unwrap_or(0) % 5 + 1;
                    e.value = json!([a, b]);
                }
                _ => {}
            }
        }
        let report = check(&ev);
        let pairs = crate::checker::validate::pair(&ev).unwrap();
        let prep = prepare::prepare(&ev, &pairs).unwrap();
        let task_ops: Vec<(usize, usize, search::ROp)> = prep
            .ops
            .iter()
            .map(|o| {
                let required = o.end == prepare::End::Ok;
                let ret = if required {
                    o.pair.complete.unwrap_or(usize::MAX)
                } else {
                    usize::MAX
                };
                (
                    o.pair.invoke,
                    ret,
                    search::ROp {
                        kind: o.kind,
                        a: o.a,
                        b: o.b,
                        required,
                        absorbable: false,
                    },
                )
            })
            .collect();
        let want = if reference(&task_ops) {
            valid += 1;
            Verdict::Valid
        } else {
            invalid += 1;
            Verdict::Invalid
        };
        if report.valid != want {
            bad.push(format!(
                "seed {seed}: search {:?}, definition {want:?}",
                report.valid
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(
        valid > 50 && invalid > 50,
        "{valid} valid, {invalid} invalid: too one-sided"
    );
}

/// Two keys, each with a stale read: by default the first invalid key cancels the other
/// (`unknown`, one anomaly); with `all_anomalies` both are checked and both reported.
#[test]
fn all_anomalies_checks_every_key_after_the_first_invalid_one() {
    let mut ev = Vec::new();
    for key in ["a", "b"] {
        for (p, k, f, v) in [
            (0, Invoke, "write", json!(1)),
            (0, Ok, "write", json!(1)),
            (1, Invoke, "write", json!(2)),
            (1, Ok, "write", json!(2)),
            (2, Invoke, "read", json!(null)),
            (2, Ok, "read", json!(1)),
        ] {
            let mut e = h(&[(p, k, f, v, None)]).remove(0);
            e.key = Some(key.into());
            e.index = ev.len() as u64;
            e.time = ev.len() as u64;
            ev.push(e);
        }
    }
    let one_thread = CheckOptions {
        threads: 1,
        ..CheckOptions::default()
    };
    let first = check_register(&ev, &one_thread).unwrap();
    assert_eq!(first.valid, Verdict::Invalid);
    assert_eq!(first.anomalies().count(), 1);
    let keys = &first.read_modes[DEFAULT_MODE].keys;
    assert!(
        keys.values().any(|k| k.valid == Verdict::Unknown),
        "{keys:?}"
    );
    let all = check_register(
        &ev,
        &CheckOptions {
            all_anomalies: true,
            ..one_thread
        },
    )
    .unwrap();
    assert_eq!(all.valid, Verdict::Invalid);
    assert_eq!(all.anomalies().count(), 2);
    let keys = &all.read_modes[DEFAULT_MODE].keys;
    assert!(
        keys.values().all(|k| k.valid == Verdict::Invalid),
        "{keys:?}"
    );
}

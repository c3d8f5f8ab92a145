//! Synthetic register histories for tests and benchmarks: random concurrent clients run
//! against a real sequential register, so every generated history is linearizable; and
//! [`corrupt_read`], which changes one read so that the history certainly is not.

use crate::history::{Event, EventType, Process};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Operations to invoke.
    pub ops: usize,
    /// Keys spread over (`k0`, `k1`, ...).
    pub keys: usize,
    /// Client processes in flight at once.
    pub concurrency: usize,
    /// Probability that an operation ends `info` (half of those took effect, half did not).
    pub info_rate: f64,
    /// Probability that a write or cas ends `fail` without taking effect.
    pub fail_rate: f64,
    /// Read modes each read picks from at random; empty = no `read_mode` field.
    pub read_modes: Vec<String>,
    /// Seeds every choice.
    pub seed: u64,
}

impl Default for GenConfig {
    /// 1,000 ops, 4 keys, concurrency 10, 1% info, 2% fail, no read modes, seed 0.
    fn default() -> Self {
        GenConfig {
            ops: 1000,
            keys: 4,
            concurrency: 10,
            info_rate: 0.01,
            fail_rate: 0.02,
            read_modes: Vec::new(),
            seed: 0,
        }
    }
}

struct InFlight {
    f: &'static str,
    key: usize,
    value: Value,
    read_mode: Option<String>,
    /// The result once it took effect: the value read, or whether the cas swapped.
    applied: Option<Value>,
}

/// Generates a linearizable history: every operation takes effect atomically on a real
/// register at a random moment between its invocation and its completion (or, for `fail`,
/// never; for `info`, at a random moment or never). Written values are unique integers ≥ 1.
/// Nothing is left pending at the end.
pub fn generate(cfg: &GenConfig) -> Vec<Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let conc = cfg.concurrency.max(1);
    let keys = cfg.keys.max(1);
    let mut regs: Vec<Option<i64>> = vec![None; keys];
    let mut procs: Vec<u64> = (0..conc as u64).collect();
    let mut flight: Vec<Option<InFlight>> = (0..conc).map(|_| None).collect();
    let mut events: Vec<Event> = Vec::with_capacity(cfg.ops * 2);
    let mut next_val: i64 = 1;
    let (mut invoked, mut open) = (0usize, 0usize);
    // Bounded: each iteration either invokes, applies or completes with positive probability.
    let max_iters = cfg.ops.saturating_mul(20).saturating_add(1000);
    for _ in 0..max_iters {
        if invoked >= cfg.ops && open == 0 {
            break;
        }
        let c = rng.gen_range(0..conc);
        let mut push =
            |kind: EventType, f: &str, key: usize, value: Value, mode: &Option<String>| {
                let i = events.len() as u64;
                events.push(Event {
                    index: i,
                    time: i * 1000,
                    process: Process::Client(procs[c]),
                    kind,
                    f: f.to_string(),
                    key: Some(format!("k{key}")),
                    value,
                    node: None,
                    read_mode: mode.clone(),
                    error: None,
                });
            };
        match flight[c].take() {
            None => {
                if invoked >= cfg.ops {
                    continue;
                }
                let key = rng.gen_range(0..keys);
                let roll: f64 = rng.gen();
                let op = if roll < 0.5 {
                    let mode = if cfg.read_modes.is_empty() {
                        None
                    } else {
                        Some(cfg.read_modes[rng.gen_range(0..cfg.read_modes.len())].clone())
                    };
                    InFlight {
                        f: "read",
                        key,
                        value: Value::Null,
                        read_mode: mode,
                        applied: None,
                    }
                } else if roll < 0.8 {
                    next_val += 1;
                    InFlight {
                        f: "write",
                        key,
                        value: json!(next_val),
                        read_mode: None,
                        applied: None,
                    }
                } else {
                    next_val += 1;
                    // Mostly the current value, so that many cas succeed.
                    let expected = if rng.gen_bool(0.7) {
                        json!(regs[key])
                    } else {
                        json!(rng.gen_range(1..=next_val))
                    };
                    InFlight {
                        f: "cas",
                        key,
                        value: json!([expected, next_val]),
                        read_mode: None,
                        applied: None,
                    }
                };
                push(
                    EventType::Invoke,
                    op.f,
                    key,
                    op.value.clone(),
                    &op.read_mode,
                );
                invoked += 1;
                open += 1;
                flight[c] = Some(op);
            }
            Some(mut op) if op.applied.is_none() => {
                let roll: f64 = rng.gen();
                if roll < cfg.info_rate / 2.0 {
                    // times out without taking effect
                    push(
                        EventType::Info,
                        op.f,
                        op.key,
                        op.value.clone(),
                        &op.read_mode,
                    );
                    procs[c] += conc as u64;
                    open -= 1;
                } else if op.f != "read" && roll < cfg.info_rate / 2.0 + cfg.fail_rate {
                    push(
                        EventType::Fail,
                        op.f,
                        op.key,
                        op.value.clone(),
                        &op.read_mode,
                    );
                    open -= 1;
                } else if rng.gen_bool(0.5) {
                    let reg = &mut regs[op.key];
                    op.applied = Some(match op.f {
                        "read" => json!(*reg),
                        "write" => {
                            *reg = op.value.as_i64();
                            Value::Null
                        }
                        _ => {
                            let (e, n) = (&op.value[0], &op.value[1]);
                            let swapped = json!(*reg) == *e;
                            if swapped {
                                *reg = n.as_i64();
                            }
                            json!(swapped)
                        }
                    });
                    flight[c] = Some(op);
                } else {
                    flight[c] = Some(op);
                }
            }
            Some(op) => {
                let result = op.applied.clone().unwrap_or(Value::Null);
                if rng.gen_bool(cfg.info_rate / 2.0) {
                    push(
                        EventType::Info,
                        op.f,
                        op.key,
                        op.value.clone(),
                        &op.read_mode,
                    );
                    procs[c] += conc as u64;
                } else {
                    match op.f {
                        "read" => push(EventType::Ok, op.f, op.key, result, &op.read_mode),
                        "write" => push(EventType::Ok, op.f, op.key, op.value.clone(), &None),
                        _ => {
                            let kind = if result == json!(true) {
                                EventType::Ok
                            } else {
                                EventType::Fail
                            };
                            push(kind, op.f, op.key, op.value.clone(), &None)
                        }
                    }
                }
                open -= 1;
            }
        }
    }
    events
}

/// Changes the value of one `ok` read (chosen with `seed`) to a value that was certainly
/// never current during it, so the history is certainly not linearizable: a value never
/// written, the value of a write that failed, the value of a write invoked only after the read
/// completed, or a value (or `null`) that a later acknowledged blind write had replaced
/// before the read began. Assumes unique written values, as [`generate`] makes. Returns the
/// position of the changed completion and the value put there, or `None` if there is no
/// `ok` read.
pub fn corrupt_read(events: &mut [Event], seed: u64) -> Option<(usize, Value)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Pair invocations with completions (the generator's histories are well-formed).
    let mut open = std::collections::HashMap::new();
    let mut ops: Vec<(usize, Option<usize>)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if let Process::Client(p) = e.process {
            if e.kind == EventType::Invoke {
                open.insert(p, ops.len());
                ops.push((i, None));
            } else if let Some(j) = open.remove(&p) {
                ops[j].1 = Some(i);
            }
        }
    }
    let reads: Vec<(usize, usize)> = ops
        .iter()
        .filter_map(|&(i, c)| {
            let c = c?;
            (events[i].f == "read" && events[c].kind == EventType::Ok).then_some((i, c))
        })
        .collect();
    if reads.is_empty() {
        return None;
    }
    let (ri, rc) = reads[rng.gen_range(0..reads.len())];
    let key = events[ri].key.clone();
    let written = |i: usize| -> Value {
        let e = &events[i];
        if e.f == "cas" {
            e.value[1].clone()
        } else {
            e.value.clone()
        }
    };
    let mut candidates: Vec<Value> = vec![json!(-rng.gen_range(1..1_000_000i64))];
    // The latest acknowledged blind write that completed before the read was invoked.
    let mut barrier: Option<usize> = None;
    for &(i, c) in &ops {
        if events[i].key != key || events[i].f == "read" {
            continue;
        }
        match c.map(|c| events[c].kind) {
            Some(EventType::Fail) if events[i].f == "write" => candidates.push(written(i)),
            _ if i > rc => candidates.push(written(i)),
            Some(EventType::Ok)
                if events[i].f == "write"
                    && c.is_some_and(|c| c < ri)
                    && barrier.is_none_or(|b| i > b) =>
            {
                barrier = Some(i);
            }
            _ => {}
        }
    }
    if let Some(b) = barrier {
        // Null, and every value acknowledged before the barrier write was invoked.
        candidates.push(Value::Null);
        for &(i, c) in &ops {
            let Some(c) = c else { continue };
            if events[i].key == key
                && events[i].f != "read"
                && events[c].kind == EventType::Ok
                && c < b
            {
                candidates.push(written(i));
            }
        }
    }
    let actual = events[rc].value.clone();
    candidates.retain(|v| *v != actual);
    let v = candidates[rng.gen_range(0..candidates.len())].clone();
    events[rc].value = v.clone();
    Some((rc, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::validate;

    #[test]
    fn generated_histories_are_well_formed_and_complete() {
        for seed in 0..5 {
            let cfg = GenConfig {
                ops: 500,
                seed,
                read_modes: vec!["lease".into(), "log".into()],
                info_rate: 0.05,
                ..GenConfig::default()
            };
            let ev = generate(&cfg);
            validate(&ev).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let invokes = ev.iter().filter(|e| e.kind == EventType::Invoke).count();
            assert_eq!(invokes, 500, "seed {seed}");
            assert_eq!(ev.len(), 1000, "seed {seed}: every op completes");
        }
    }
}

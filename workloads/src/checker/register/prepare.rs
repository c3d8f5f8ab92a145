//! From events to search tasks: one task per (read mode, key), holding the key's writes and
//! cas plus that mode's reads, with register values interned to small integers.

use super::search::{Ent, Kind, ROp, Search, Val, NULL};
use crate::checker::fasthash::{FastMap, FastSet};
use crate::checker::validate::Paired;
use crate::history::{Event, EventType, HistoryError, Process};
use serde_json::Value;
use std::collections::BTreeSet;

/// The read mode name given to reads without a `read_mode` field: they went through the
/// node's default path, which is checked like any other mode, on its own.
pub const DEFAULT_MODE: &str = "default";

/// Maps JSON values to dense ids; id 0 is `null` (the register's initial, absent value).
pub(crate) struct Interner {
    ints: FastMap<i64, Val>,
    others: FastMap<String, Val>,
    pub(crate) values: Vec<Value>,
}

impl Interner {
    fn new() -> Self {
        Interner {
            ints: FastMap::default(),
            others: FastMap::default(),
            values: vec![Value::Null],
        }
    }

    fn intern(&mut self, v: &Value) -> Val {
        let next = self.values.len() as Val;
        match v {
            Value::Null => NULL,
            Value::Number(n) if n.as_i64().is_some() => {
                let id = *self
                    .ints
                    .entry(n.as_i64().unwrap_or_default())
                    .or_insert(next);
                if id == next {
                    self.values.push(v.clone());
                }
                id
            }
            other => {
                let id = *self.others.entry(other.to_string()).or_insert(next);
                if id == next {
                    self.values.push(other.clone());
                }
                id
            }
        }
    }
}

/// How a register operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Ok,
    /// `info`, or never completed.
    Unknown,
}

/// A register operation that may matter to the checker (failed ones are already dropped).
#[derive(Clone, Debug)]
pub(crate) struct RegOp {
    pub pair: Paired,
    pub end: End,
    pub kind: Kind,
    pub a: Val,
    pub b: Val,
    pub key: u32,
    /// For reads: index into `Prepared::modes`.
    pub mode: u32,
}

/// Counts over the whole history.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HistoryStats {
    /// Client operations invoked.
    pub ops: usize,
    /// Completed `ok`.
    pub ok: usize,
    /// Completed `fail` (dropped by the checker).
    pub fail: usize,
    /// Completed `info` (outcome unknown).
    pub info: usize,
    /// Never completed (treated like `info`).
    pub pending: usize,
    /// Distinct keys.
    pub keys: usize,
}

/// The register operations of a history, ready to be split into tasks.
pub(crate) struct Prepared {
    pub ops: Vec<RegOp>,
    pub keys: Vec<String>,
    pub modes: Vec<String>,
    /// Ok reads per mode.
    pub reads: Vec<usize>,
    pub values: Interner,
    pub stats: HistoryStats,
}

/// One search to run: a (mode, key) sub-history.
pub(crate) struct Task {
    pub mode: u32,
    pub key: u32,
    /// Indexes into `Prepared::ops`, in invocation order, after pruning.
    pub ops: Vec<u32>,
}

fn int_pair(v: &Value) -> Option<(&Value, &Value)> {
    match v {
        Value::Array(a) if a.len() == 2 => Some((&a[0], &a[1])),
        _ => None,
    }
}

/// Turns validated, paired events into register operations. Errors name the line of an
/// operation the register model cannot read.
pub(crate) fn prepare(events: &[Event], pairs: &[Paired]) -> Result<Prepared, HistoryError> {
    let mut values = Interner::new();
    let mut key_ids: FastMap<&str, u32> = FastMap::default();
    let mut keys: Vec<String> = Vec::new();
    let mut modes: BTreeSet<&str> = BTreeSet::new();
    let mut stats = HistoryStats::default();
    for p in pairs {
        let inv = &events[p.invoke];
        if inv.f == "read" {
            modes.insert(inv.read_mode.as_deref().unwrap_or(DEFAULT_MODE));
        }
    }
    if modes.is_empty() {
        modes.insert(DEFAULT_MODE);
    }
    let modes: Vec<String> = modes.into_iter().map(String::from).collect();
    let mode_id: FastMap<&str, u32> = modes
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i as u32))
        .collect();
    let mut reads = vec![0usize; modes.len()];
    let mut ops = Vec::with_capacity(pairs.len());
    for p in pairs {
        let inv = &events[p.invoke];
        debug_assert!(matches!(inv.process, Process::Client(_)));
        stats.ops += 1;
        let done = p.complete.map(|c| &events[c]);
        let end = match done.map(|d| d.kind) {
            Some(EventType::Ok) => {
                stats.ok += 1;
                End::Ok
            }
            Some(EventType::Fail) => {
                stats.fail += 1;
                continue;
            }
            Some(EventType::Info) => {
                stats.info += 1;
                End::Unknown
            }
            _ => {
                stats.pending += 1;
                End::Unknown
            }
        };
        let key_name = inv.key.as_deref().unwrap_or("");
        let key = match key_ids.get(key_name) {
            Some(&k) => k,
            None => {
                let k = keys.len() as u32;
                keys.push(key_name.to_string());
                key_ids.insert(key_name, k);
                k
            }
        };
        let bad = |what: &str| HistoryError::at(p.invoke, what.to_string());
        let (kind, a, b, mode) = match inv.f.as_str() {
            "read" => {
                // A read that did not complete `ok` observed nothing: it constrains nothing.
                let Some(d) = done.filter(|_| end == End::Ok) else {
                    continue;
                };
                let m = mode_id[inv.read_mode.as_deref().unwrap_or(DEFAULT_MODE)];
                reads[m as usize] += 1;
                (Kind::Read, values.intern(&d.value), NULL, m)
            }
            "write" => (Kind::Write, values.intern(&inv.value), NULL, 0),
            "cas" => {
                let (e, n) =
                    int_pair(&inv.value).ok_or_else(|| bad("cas value must be [expected, new]"))?;
                (Kind::Cas, values.intern(e), values.intern(n), 0)
            }
            other => {
                return Err(bad(&format!(
                    "operation `{other}` is not part of the register model (read, write, cas)"
                )))
            }
        };
        ops.push(RegOp {
            pair: *p,
            end,
            kind,
            a,
            b,
            key,
            mode,
        });
    }
    stats.keys = keys.len();
    Ok(Prepared {
        ops,
        keys,
        modes,
        reads,
        values,
        stats,
    })
}

impl Prepared {
    /// One task per (mode, key), smallest first. Operations of unknown outcome that no read
    /// or cas could have observed are left out: a write (or cas) whose value nobody saw can
    /// always be linearized as never having happened, so leaving it out changes no verdict
    /// and saves the search from trying it everywhere.
    pub(crate) fn tasks(&self) -> Vec<Task> {
        let mut by_key: Vec<Vec<u32>> = vec![Vec::new(); self.keys.len()];
        for (i, op) in self.ops.iter().enumerate() {
            by_key[op.key as usize].push(i as u32);
        }
        let mut tasks = Vec::new();
        for mode in 0..self.modes.len() as u32 {
            for (key, ids) in by_key.iter().enumerate() {
                let mut observed: FastSet<Val> = FastSet::default();
                for &i in ids {
                    let op = &self.ops[i as usize];
                    match op.kind {
                        Kind::Read if op.mode == mode => {
                            observed.insert(op.a);
                        }
                        Kind::Cas => {
                            observed.insert(op.a);
                        }
                        _ => {}
                    }
                }
                let keep: Vec<u32> = ids
                    .iter()
                    .copied()
                    .filter(|&i| {
                        let op = &self.ops[i as usize];
                        match (op.kind, op.end) {
                            (Kind::Read, _) => op.mode == mode,
                            (Kind::Write, End::Unknown) => observed.contains(&op.a),
                            (Kind::Cas, End::Unknown) => observed.contains(&op.b),
                            _ => true,
                        }
                    })
                    .collect();
                tasks.push(Task {
                    mode,
                    key: key as u32,
                    ops: keep,
                });
            }
        }
        tasks.sort_by_key(|t| t.ops.len());
        tasks
    }

    /// The search for a task.
    pub(crate) fn search(&self, task: &Task) -> Search {
        let mut observed: FastSet<Val> = FastSet::default();
        for &i in &task.ops {
            let op = &self.ops[i as usize];
            if matches!(op.kind, Kind::Read | Kind::Cas) {
                observed.insert(op.a);
            }
        }
        // Dense per-task value ids keep the search's per-value tables small.
        let mut local: FastMap<Val, Val> = FastMap::default();
        local.insert(NULL, NULL);
        let mut lid = |v: Val| {
            let n = local.len() as Val;
            *local.entry(v).or_insert(n)
        };
        let mut rops = Vec::with_capacity(task.ops.len());
        let mut pts: Vec<(usize, Ent)> = Vec::with_capacity(task.ops.len() * 2);
        for (j, &i) in task.ops.iter().enumerate() {
            let op = &self.ops[i as usize];
            let required = op.end == End::Ok;
            rops.push(ROp {
                kind: op.kind,
                a: lid(op.a),
                b: if op.kind == Kind::Cas {
                    lid(op.b)
                } else {
                    NULL
                },
                required,
                absorbable: required && op.kind == Kind::Write && !observed.contains(&op.a),
            });
            pts.push((
                op.pair.invoke,
                Ent {
                    op: j as u32,
                    call: true,
                },
            ));
            if required {
                if let Some(c) = op.pair.complete {
                    pts.push((
                        c,
                        Ent {
                            op: j as u32,
                            call: false,
                        },
                    ));
                }
            }
        }
        pts.sort_unstable_by_key(|p| p.0);
        let ents: Vec<Ent> = pts.into_iter().map(|p| p.1).collect();
        Search::new(rops, &ents)
    }
}

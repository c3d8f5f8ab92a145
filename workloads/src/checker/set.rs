//! The set checker: unique integer `add`s and `read`s of the whole set (the set workload's
//! final reads), checked for lost and unexpected elements, as Jepsen's set checker does.
//!
//! The history holds one set (the set workload uses a single key; `key` is not looked at).
//! Definitions, over the reads that completed `ok`:
//! - **lost**: an add acknowledged `ok` that is missing from some read invoked after the
//!   acknowledgement;
//! - **unexpected**: an element read that no add attempted, or whose add `fail`ed (certainly
//!   did not happen);
//! - **recovered**: an add of unknown outcome (`info` or never completed) whose element was
//!   read (it did take effect);
//! - verdict: invalid if anything is lost or unexpected; unknown if there was no `ok` read
//!   (nothing to decide on); else valid.

use super::validate::pair;
use super::Verdict;
use crate::history::{Event, EventType, HistoryError};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// A set of elements with its size (the size first, for readers of large reports).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Elements {
    /// How many.
    pub count: usize,
    /// Which, ascending.
    pub elements: Vec<i64>,
}

impl From<BTreeSet<i64>> for Elements {
    fn from(s: BTreeSet<i64>) -> Self {
        Elements {
            count: s.len(),
            elements: s.into_iter().collect(),
        }
    }
}

/// The story of one lost element, as Jepsen's set-full tells it: when its add was invoked
/// and acknowledged, the last read that still held it, and the first read after the
/// acknowledgement that did not. Times are the history's (ns since the test started).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LostElement {
    /// The element.
    pub element: i64,
    /// History index and time of the add's invocation.
    pub add_index: u64,
    pub add_time: u64,
    /// History index and time of its `ok`.
    pub ack_index: u64,
    pub ack_time: u64,
    /// The node the add went to, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The last `ok` read (completion index, time) that held it; `None` if none ever did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_time: Option<u64>,
    /// The first read invoked after the acknowledgement that missed it (invocation index,
    /// time).
    pub first_missing_index: u64,
    pub first_missing_time: u64,
}

/// At most this many lost elements are described one by one (the count is always exact).
pub const MAX_LOST_DETAILS: usize = 200;

/// The result of [`check_set`].
#[derive(Clone, Debug, Serialize)]
pub struct SetReport {
    /// Invalid if `lost` or `unexpected` is non-empty; unknown without any `ok` read.
    pub valid: Verdict,
    /// Adds invoked.
    pub attempted: usize,
    /// Adds acknowledged `ok`.
    pub acknowledged: usize,
    /// Adds that ended `fail`.
    pub failed: usize,
    /// Adds of unknown outcome (`info` or never completed).
    pub indeterminate: usize,
    /// Reads that completed `ok` (the ones checked against).
    pub reads: usize,
    /// Acknowledged adds missing from a later read.
    pub lost: Elements,
    /// Read elements never (successfully) attempted.
    pub unexpected: Elements,
    /// Indeterminate adds that were read.
    pub recovered: Elements,
    /// The `index` of every read that misses a lost element or holds an unexpected one.
    pub bad_reads: Vec<u64>,
    /// The first [`MAX_LOST_DETAILS`] lost elements, ascending, each with its story.
    pub lost_details: Vec<LostElement>,
    /// Wall-clock time of the check, in milliseconds.
    pub elapsed_ms: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AddEnd {
    Ok(usize),
    Fail,
    Unknown,
}

/// Checks a set history (see the module doc for the definitions). Validates the history
/// first; errors name the line (e.g. a non-integer element).
pub fn check_set(events: &[Event]) -> Result<SetReport, HistoryError> {
    let started = Instant::now();
    let pairs = pair(events)?;
    let mut adds: HashMap<i64, AddEnd> = HashMap::new();
    let mut reads: Vec<(usize, usize, BTreeSet<i64>)> = Vec::new(); // (invoke, complete, elements)
    let (mut attempted, mut acknowledged, mut failed, mut indeterminate) = (0, 0, 0, 0);
    for p in &pairs {
        let inv = &events[p.invoke];
        let done = p.complete.map(|c| (c, &events[c]));
        match inv.f.as_str() {
            "add" => {
                let v = inv.value.as_i64().ok_or_else(|| {
                    HistoryError::at(p.invoke, "set add value must be an integer")
                })?;
                attempted += 1;
                let end = match done.map(|(c, d)| (c, d.kind)) {
                    Some((c, EventType::Ok)) => {
                        acknowledged += 1;
                        AddEnd::Ok(c)
                    }
                    Some((_, EventType::Fail)) => {
                        failed += 1;
                        AddEnd::Fail
                    }
                    _ => {
                        indeterminate += 1;
                        AddEnd::Unknown
                    }
                };
                // With duplicate adds of one element, the most certain outcome wins.
                let slot = adds.entry(v).or_insert(end);
                match (*slot, end) {
                    (AddEnd::Ok(a), AddEnd::Ok(b)) => *slot = AddEnd::Ok(a.min(b)),
                    (AddEnd::Ok(_), _) => {}
                    (_, AddEnd::Ok(_)) => *slot = end,
                    (AddEnd::Fail, AddEnd::Unknown) => *slot = end,
                    _ => {}
                }
            }
            "read" => {
                let Some((c, d)) = done.filter(|(_, d)| d.kind == EventType::Ok) else {
                    continue;
                };
                let arr = d.value.as_array().ok_or_else(|| {
                    HistoryError::at(c, "set read value must be an array of integers")
                })?;
                let mut set = BTreeSet::new();
                for x in arr {
                    set.insert(x.as_i64().ok_or_else(|| {
                        HistoryError::at(c, "set read value must be an array of integers")
                    })?);
                }
                reads.push((p.invoke, c, set));
            }
            other => {
                return Err(HistoryError::at(
                    p.invoke,
                    format!("operation `{other}` is not part of the set model (add, read)"),
                ))
            }
        }
    }
    let (mut lost, mut unexpected, mut recovered) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut bad_reads = Vec::new();
    for (inv, _, set) in &reads {
        let mut bad = false;
        for x in set {
            match adds.get(x) {
                None | Some(AddEnd::Fail) => {
                    unexpected.insert(*x);
                    bad = true;
                }
                Some(AddEnd::Unknown) => {
                    recovered.insert(*x);
                }
                Some(AddEnd::Ok(_)) => {}
            }
        }
        for (x, end) in &adds {
            if let AddEnd::Ok(c) = end {
                if c < inv && !set.contains(x) {
                    lost.insert(*x);
                    bad = true;
                }
            }
        }
        if bad {
            bad_reads.push(events[*inv].index);
        }
    }
    let mut add_invoke: HashMap<i64, usize> = HashMap::new();
    for p in &pairs {
        let inv = &events[p.invoke];
        if inv.f == "add" {
            if let (Some(v), Some(c)) = (inv.value.as_i64(), p.complete) {
                if matches!(adds.get(&v), Some(AddEnd::Ok(ok)) if *ok == c) {
                    add_invoke.insert(v, p.invoke);
                }
            }
        }
    }
    let lost_details = lost
        .iter()
        .take(MAX_LOST_DETAILS)
        .filter_map(|x| {
            let Some(AddEnd::Ok(ack)) = adds.get(x) else {
                return None;
            };
            let add = add_invoke.get(x).copied().unwrap_or(*ack);
            let last_seen = reads
                .iter()
                .filter(|(_, _, set)| set.contains(x))
                .map(|(_, c, _)| *c)
                .max();
            let first_missing = reads
                .iter()
                .filter(|(inv, _, set)| inv > ack && !set.contains(x))
                .map(|(inv, _, _)| *inv)
                .min()?;
            Some(LostElement {
                element: *x,
                add_index: events[add].index,
                add_time: events[add].time,
                ack_index: events[*ack].index,
                ack_time: events[*ack].time,
                node: events[*ack].node.clone(),
                last_seen_index: last_seen.map(|c| events[c].index),
                last_seen_time: last_seen.map(|c| events[c].time),
                first_missing_index: events[first_missing].index,
                first_missing_time: events[first_missing].time,
            })
        })
        .collect();
    let valid = if reads.is_empty() {
        Verdict::Unknown
    } else if lost.is_empty() && unexpected.is_empty() {
        Verdict::Valid
    } else {
        Verdict::Invalid
    };
    Ok(SetReport {
        valid,
        attempted,
        acknowledged,
        failed,
        indeterminate,
        reads: reads.len(),
        lost: lost.into(),
        unexpected: unexpected.into(),
        recovered: recovered.into(),
        bad_reads,
        lost_details,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;
    use serde_json::{json, Value};

    fn h(spec: &[(u64, EventType, &str, Value)]) -> Vec<Event> {
        spec.iter()
            .enumerate()
            .map(|(i, (p, k, f, v))| Event {
                index: i as u64,
                time: i as u64,
                process: Process::Client(*p),
                kind: *k,
                f: f.to_string(),
                key: Some("set".into()),
                value: v.clone(),
                node: None,
                read_mode: None,
                error: None,
            })
            .collect()
    }
    use EventType::*;

    #[test]
    fn all_present_is_valid_and_recovers_indeterminate() {
        let ev = h(&[
            (0, Invoke, "add", json!(1)),
            (0, Ok, "add", json!(1)),
            (1, Invoke, "add", json!(2)),
            (1, Info, "add", json!(2)),
            (2, Invoke, "read", json!(null)),
            (2, Ok, "read", json!([1, 2])),
        ]);
        let r = check_set(&ev).unwrap();
        assert_eq!(r.valid, Verdict::Valid);
        assert_eq!(r.recovered.elements, vec![2]);
        assert_eq!(r.lost.count, 0);
    }

    #[test]
    fn lost_and_unexpected_are_invalid() {
        let ev = h(&[
            (0, Invoke, "add", json!(1)),
            (0, Ok, "add", json!(1)),
            (1, Invoke, "add", json!(3)),
            (1, Fail, "add", json!(3)),
            (2, Invoke, "read", json!(null)),
            (2, Ok, "read", json!([3, 7])),
        ]);
        let r = check_set(&ev).unwrap();
        assert_eq!(r.valid, Verdict::Invalid);
        assert_eq!(r.lost.elements, vec![1]);
        assert_eq!(r.unexpected.elements, vec![3, 7]);
        assert_eq!(r.bad_reads, vec![4]);
    }

    #[test]
    fn a_lost_element_tells_when_it_was_added_acknowledged_last_seen_and_missed() {
        let ev = h(&[
            (0, Invoke, "add", json!(5)),
            (0, Ok, "add", json!(5)),
            (1, Invoke, "read", json!(null)),
            (1, Ok, "read", json!([5])),
            (2, Invoke, "read", json!(null)),
            (2, Ok, "read", json!([])),
        ]);
        let r = check_set(&ev).unwrap();
        assert_eq!(r.lost.elements, vec![5]);
        let d = &r.lost_details[0];
        assert_eq!((d.element, d.add_index, d.ack_index), (5, 0, 1));
        assert_eq!(d.last_seen_index, Some(3));
        assert_eq!(d.first_missing_index, 4);
    }

    #[test]
    fn add_acknowledged_after_read_started_is_not_lost() {
        let ev = h(&[
            (0, Invoke, "add", json!(1)),
            (2, Invoke, "read", json!(null)),
            (0, Ok, "add", json!(1)),
            (2, Ok, "read", json!([])),
        ]);
        assert_eq!(check_set(&ev).unwrap().valid, Verdict::Valid);
    }

    #[test]
    fn no_read_is_unknown_and_bad_values_are_errors() {
        let ev = h(&[(0, Invoke, "add", json!(1)), (0, Ok, "add", json!(1))]);
        assert_eq!(check_set(&ev).unwrap().valid, Verdict::Unknown);
        let ev = h(&[(0, Invoke, "add", json!("x"))]);
        assert!(check_set(&ev).unwrap_err().to_string().contains("line 1"));
    }
}

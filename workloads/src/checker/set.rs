//! The set checker: unique integer `add`s and `read`s of the whole set (the set workload's
//! reads during the run and its final reads), analysed per element as Jepsen's `set-full`
//! checker does.
//!
//! The history holds one set (the set workload uses a single key; `key` is not looked at).
//! Definitions, over the reads that completed `ok` ("after" and "before" compare history
//! positions; a read counts from its invocation):
//! - an element is **known** from the earlier of its add's `ok` and the completion of the
//!   first read that held it;
//! - a read **misses** an element if it was invoked after the element was known and does not
//!   hold it;
//! - **stable**: the last read that held it began after the last read that missed it (if
//!   any): it is in every read that began after some time t. Its stable latency is t (just
//!   after the invocation of the last read that missed it; the element's known time if none
//!   did) minus the known time, at least 0;
//! - **lost**: the last read that missed it began after the last read that held it (if
//!   any): it is absent from every read that began after some time t. Its lost latency is t
//!   (just after the invocation of the last read that held it; the known time if none did)
//!   minus the known time, at least 0;
//! - **never read**: known, but neither (no read began after it was known);
//! - **stale**: stable, but some read missed it first (stable latency above 0); a **stale
//!   read** is a read that missed an element that a later read held;
//! - **unexpected**: an element read that no add attempted, or whose add `fail`ed (certainly
//!   did not happen);
//! - **recovered**: an add of unknown outcome (`info` or never completed) whose element was
//!   read (it did take effect);
//! - verdict: invalid if anything is lost or unexpected, or if a stale read used a
//!   linearizable read path (any but `stale`; a read without a recorded mode counts as
//!   linearizable); unknown if there was no `ok` read (nothing to decide on); else valid.
//!
//! An acknowledged add missing from some read invoked after its acknowledgement (the
//! definition of lost before reads during the run existed) is therefore lost, or stale, and
//! either makes the run invalid unless every read that missed it used the `stale` path.

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
    /// History index and time of its `ok`; for an element whose add was not acknowledged
    /// (`acknowledged` false), of the completion of the first read that held it.
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
    /// False when the add's outcome was unknown and a read made the element known.
    pub acknowledged: bool,
    /// From the known time until just after the last read that held it began (0 if none
    /// did), in ns.
    pub lost_latency_ns: u64,
}

/// A stale element: stable in the end, but missed by some read first.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StaleElement {
    /// The element.
    pub element: i64,
    /// Time (ns) it was known (its ack, or the first read that held it).
    pub known_time: u64,
    /// History index of the last read that missed it (its invocation).
    pub last_missing_index: u64,
    /// Its stable latency, in ns.
    pub stable_latency_ns: u64,
}

/// One of the last reads (no add was invoked after it began, e.g. the final reads),
/// summarised: its size and which acknowledged elements it misses, never the whole set.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReadSummary {
    /// History index of its invocation.
    pub index: u64,
    /// The node it went to, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// How many elements it held.
    pub size: usize,
    /// How many adds acknowledged before it began it misses.
    pub missing_count: usize,
    /// The first [`MAX_SUMMARY_MISSING`] of them, ascending.
    pub missing: Vec<i64>,
}

/// At most this many missing elements are listed per summarised read.
pub const MAX_SUMMARY_MISSING: usize = 20;

/// Quantiles of a latency distribution, in milliseconds (nearest rank).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LatencyQuantiles {
    /// How many values.
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl LatencyQuantiles {
    /// The quantiles of `ns` (any order); `None` when empty.
    pub fn of(ns: &[u64]) -> Option<LatencyQuantiles> {
        let mut v = ns.to_vec();
        v.sort_unstable();
        let n = v.len();
        let q = |p: f64| {
            let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
            v[rank - 1] as f64 / 1e6
        };
        (n > 0).then(|| LatencyQuantiles {
            count: n,
            min: q(0.0),
            p50: q(0.5),
            p95: q(0.95),
            p99: q(0.99),
            max: q(1.0),
        })
    }
}

/// Each stable and lost element's latency, for charts (not serialized: one number per
/// element).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetLatencies {
    /// Stable latencies in ns, by ascending element.
    pub stable_ns: Vec<u64>,
    /// Lost latencies in ns, by ascending element.
    pub lost_ns: Vec<u64>,
    /// Stable latencies measured from the add's invocation instead (see
    /// [`SetReport::stable_latency_since_add`]), by ascending element.
    pub stable_since_add_ns: Vec<u64>,
}

/// At most this many lost elements are described one by one (the count is always exact).
pub const MAX_LOST_DETAILS: usize = 200;

/// At most this many stale elements are described (the worst, by stable latency).
pub const MAX_WORST_STALE: usize = 8;

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
    /// Elements known (acknowledged, or read) and then absent from every read that began
    /// after some point (see the module doc).
    pub lost: Elements,
    /// Read elements never (successfully) attempted.
    pub unexpected: Elements,
    /// Indeterminate adds that were read.
    pub recovered: Elements,
    /// The `index` of every read that misses a lost element, holds an unexpected one, or
    /// (through a linearizable path) misses a stale one.
    pub bad_reads: Vec<u64>,
    /// Elements in every read that began after some time, and in at least one.
    pub stable_count: usize,
    /// Elements known but never read afterwards.
    pub never_read: Elements,
    /// Stable elements some read missed first.
    pub stale_count: usize,
    /// Reads that missed an element a later read held.
    pub stale_reads: usize,
    /// Of those, the ones through a linearizable path (these make the run invalid).
    pub stale_linearizable_reads: usize,
    /// The [`MAX_WORST_STALE`] stale elements with the largest stable latency, worst first.
    pub worst_stale: Vec<StaleElement>,
    /// Quantiles of the stable latencies (`None` without a stable element).
    pub stable_latency: Option<LatencyQuantiles>,
    /// Quantiles of the lost latencies (`None` without a lost element).
    pub lost_latency: Option<LatencyQuantiles>,
    /// Quantiles of the stable latencies measured from each add's invocation (the known time
    /// for an element never added): from then until just after the last read that began
    /// after the invocation and missed it (0 if none did). Jepsen's `stable_latency` counts
    /// only reads begun after the element was known, which a linearizable read never misses,
    /// so it is 0 for every element of a correct run; this one also shows reads that ran
    /// while the add was in flight.
    pub stable_latency_since_add: Option<LatencyQuantiles>,
    /// The reads after which no add began (the final reads), summarised.
    pub final_reads: Vec<ReadSummary>,
    /// Every stable and lost latency (for charts; not in JSON).
    #[serde(skip)]
    pub latencies: SetLatencies,
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
    // (invoke, complete, elements, through a linearizable path)
    let mut reads: Vec<(usize, usize, BTreeSet<i64>, bool)> = Vec::new();
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
                // A read of a set that does not exist (yet, or any more: after a power
                // loss that dropped every add) answers null: the empty set.
                let empty = Vec::new();
                let arr = match &d.value {
                    serde_json::Value::Null => &empty,
                    v => v.as_array().ok_or_else(|| {
                        HistoryError::at(c, "set read value must be an array of integers")
                    })?,
                };
                let mut set = BTreeSet::new();
                for x in arr {
                    set.insert(x.as_i64().ok_or_else(|| {
                        HistoryError::at(c, "set read value must be an array of integers")
                    })?);
                }
                let linearizable = inv.read_mode.as_deref() != Some("stale");
                reads.push((p.invoke, c, set, linearizable));
            }
            other => {
                return Err(HistoryError::at(
                    p.invoke,
                    format!("operation `{other}` is not part of the set model (add, read)"),
                ))
            }
        }
    }
    // When each element became known: its add's `ok`, or the completion of the first read
    // that held it, whichever came first (history positions).
    let mut known: HashMap<i64, usize> = HashMap::new();
    for (x, end) in &adds {
        if let AddEnd::Ok(c) = end {
            known.insert(*x, *c);
        }
    }
    for (_, c, set, _) in &reads {
        for x in set {
            let k = known.entry(*x).or_insert(*c);
            *k = (*k).min(*c);
        }
    }
    // The invocation of each element's add (the acknowledged one when there is one).
    let mut add_invoke: HashMap<i64, usize> = HashMap::new();
    for p in &pairs {
        let inv = &events[p.invoke];
        if inv.f == "add" {
            if let Some(v) = inv.value.as_i64() {
                let acked = matches!(adds.get(&v), Some(AddEnd::Ok(ok)) if Some(*ok) == p.complete);
                if acked || !add_invoke.contains_key(&v) {
                    add_invoke.insert(v, p.invoke);
                }
            }
        }
    }
    // Per element: the last read (invocation) that held it, the first and last that missed it.
    #[derive(Default, Clone, Copy)]
    struct Seen {
        last_present: Option<usize>,
        first_absent: Option<usize>,
        last_absent: Option<usize>,
        /// The last read that missed it and began after its add was invoked.
        last_absent_since_add: Option<usize>,
    }
    let mut seen: HashMap<i64, Seen> = known.keys().map(|x| (*x, Seen::default())).collect();
    for (inv, _, set, _) in &reads {
        for (x, k) in &known {
            let e = seen.get_mut(x).expect("every known element has an entry");
            if set.contains(x) {
                e.last_present = Some(e.last_present.map_or(*inv, |p| p.max(*inv)));
            } else if add_invoke.get(x).unwrap_or(k) < inv {
                e.last_absent_since_add = Some((*inv).max(e.last_absent_since_add.unwrap_or(0)));
            }
            if !set.contains(x) && k < inv {
                e.first_absent = Some(e.first_absent.map_or(*inv, |a| a.min(*inv)));
                e.last_absent = Some(e.last_absent.map_or(*inv, |a| a.max(*inv)));
            }
        }
    }
    let mut elements: Vec<i64> = known.keys().copied().collect();
    elements.sort_unstable();
    let (mut lost, mut never_read) = (BTreeSet::new(), BTreeSet::new());
    let (mut stable_count, mut stale) = (0, Vec::new());
    let mut latencies = SetLatencies::default();
    for x in &elements {
        let e = seen[x];
        let known_time = events[known[x]].time;
        match (e.last_present, e.last_absent) {
            (Some(p), a) if a.is_none_or(|a| a < p) => {
                stable_count += 1;
                let t = a.map_or(0, |a| events[a].time + 1);
                let latency = t.saturating_sub(known_time);
                latencies.stable_ns.push(latency);
                let added = add_invoke.get(x).map_or(known_time, |a| events[*a].time);
                let t = e
                    .last_absent_since_add
                    .map_or(added, |a| events[a].time + 1);
                latencies.stable_since_add_ns.push(t.saturating_sub(added));
                if let Some(a) = a {
                    stale.push(StaleElement {
                        element: *x,
                        known_time,
                        last_missing_index: events[a].index,
                        stable_latency_ns: latency,
                    });
                }
            }
            (p, Some(_)) => {
                lost.insert(*x);
                let t = p.map_or(0, |p| events[p].time + 1);
                latencies.lost_ns.push(t.saturating_sub(known_time));
            }
            _ => {
                never_read.insert(*x);
            }
        }
    }
    let stale_count = stale.len();
    stale.sort_by(|a, b| {
        b.stable_latency_ns
            .cmp(&a.stable_latency_ns)
            .then(a.element.cmp(&b.element))
    });
    stale.truncate(MAX_WORST_STALE);

    let (mut unexpected, mut recovered) = (BTreeSet::new(), BTreeSet::new());
    let mut bad_reads = Vec::new();
    let (mut stale_reads, mut stale_linearizable_reads) = (0, 0);
    for (inv, _, set, linearizable) in &reads {
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
        let mut is_stale = false;
        for (x, k) in &known {
            if k < inv && !set.contains(x) {
                if lost.contains(x) {
                    bad = true;
                } else if seen[x].last_present.is_some_and(|p| p > *inv) {
                    is_stale = true;
                }
            }
        }
        if is_stale {
            stale_reads += 1;
            if *linearizable {
                stale_linearizable_reads += 1;
                bad = true;
            }
        }
        if bad {
            bad_reads.push(events[*inv].index);
        }
    }
    let lost_details = lost
        .iter()
        .take(MAX_LOST_DETAILS)
        .filter_map(|x| {
            let k = known[x];
            let e = seen[x];
            let add = add_invoke.get(x).copied().unwrap_or(k);
            let last_seen = reads
                .iter()
                .filter(|(_, _, set, _)| set.contains(x))
                .map(|(_, c, _, _)| *c)
                .max();
            let first_missing = e.first_absent?;
            let lost_time = e.last_present.map_or(0, |p| events[p].time + 1);
            Some(LostElement {
                element: *x,
                add_index: events[add].index,
                add_time: events[add].time,
                ack_index: events[k].index,
                ack_time: events[k].time,
                node: events[k].node.clone().filter(|_| events[k].f == "add"),
                last_seen_index: last_seen.map(|c| events[c].index),
                last_seen_time: last_seen.map(|c| events[c].time),
                first_missing_index: events[first_missing].index,
                first_missing_time: events[first_missing].time,
                acknowledged: matches!(adds.get(x), Some(AddEnd::Ok(c)) if *c == k),
                lost_latency_ns: lost_time.saturating_sub(events[k].time),
            })
        })
        .collect();
    let last_add = pairs
        .iter()
        .filter(|p| events[p.invoke].f == "add")
        .map(|p| p.invoke)
        .max();
    let final_reads = reads
        .iter()
        .filter(|(inv, _, _, _)| last_add.is_none_or(|a| a < *inv))
        .map(|(inv, c, set, _)| {
            let mut missing: Vec<i64> = adds
                .iter()
                .filter_map(|(x, end)| match end {
                    AddEnd::Ok(ack) if ack < inv && !set.contains(x) => Some(*x),
                    _ => None,
                })
                .collect();
            missing.sort_unstable();
            let missing_count = missing.len();
            missing.truncate(MAX_SUMMARY_MISSING);
            ReadSummary {
                index: events[*inv].index,
                node: events[*c]
                    .node
                    .clone()
                    .or_else(|| events[*inv].node.clone()),
                size: set.len(),
                missing_count,
                missing,
            }
        })
        .collect();
    let valid = if reads.is_empty() {
        Verdict::Unknown
    } else if lost.is_empty() && unexpected.is_empty() && stale_linearizable_reads == 0 {
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
        stable_count,
        never_read: never_read.into(),
        stale_count,
        stale_reads,
        stale_linearizable_reads,
        worst_stale: stale,
        stable_latency: LatencyQuantiles::of(&latencies.stable_ns),
        stable_latency_since_add: LatencyQuantiles::of(&latencies.stable_since_add_ns),
        lost_latency: LatencyQuantiles::of(&latencies.lost_ns),
        final_reads,
        latencies,
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
    fn a_null_read_is_the_empty_set() {
        let ev = h(&[
            (0, Invoke, "add", json!(1)),
            (0, Ok, "add", json!(1)),
            (1, Invoke, "read", json!(null)),
            (1, Ok, "read", json!(null)),
        ]);
        let r = check_set(&ev).unwrap();
        assert_eq!(r.valid, Verdict::Invalid);
        assert_eq!(r.lost.elements, vec![1]);
        let ok = h(&[
            (1, Invoke, "read", json!(null)),
            (1, Ok, "read", json!(null)),
        ]);
        assert_eq!(check_set(&ok).unwrap().valid, Verdict::Valid);
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

    fn read_mode(mut ev: Vec<Event>, mode: &str) -> Vec<Event> {
        for e in &mut ev {
            if e.f == "read" {
                e.read_mode = Some(mode.into());
            }
        }
        ev
    }

    /// Element 1 is missed by a read after its ack and present later (stale, then stable);
    /// 2 is read, then missing from every later read (lost after being seen); 5 is acked after
    /// the last read began (never read); 3 and 4 are in every read after their acks (stable
    /// at once).
    fn set_full_history() -> Vec<Event> {
        h(&[
            (0, Invoke, "add", json!(4)),      // 0
            (0, Ok, "add", json!(4)),          // 1
            (0, Invoke, "add", json!(1)),      // 2
            (0, Ok, "add", json!(1)),          // 3
            (1, Invoke, "add", json!(2)),      // 4
            (1, Ok, "add", json!(2)),          // 5
            (2, Invoke, "read", json!(null)),  // 6
            (2, Ok, "read", json!([2, 4])),    // 7: misses 1 (stale)
            (2, Invoke, "read", json!(null)),  // 8
            (2, Ok, "read", json!([1, 2, 4])), // 9
            (2, Invoke, "read", json!(null)),  // 10
            (0, Invoke, "add", json!(3)),      // 11
            (0, Ok, "add", json!(3)),          // 12
            (2, Ok, "read", json!([1, 4])),    // 13: misses 2
            (2, Invoke, "read", json!(null)),  // 14
            (0, Invoke, "add", json!(5)),      // 15
            (3, Invoke, "read", json!(null)),  // 16
            (0, Ok, "add", json!(5)),          // 17
            (2, Ok, "read", json!([1, 3, 4])), // 18: misses 2
            (3, Ok, "read", json!([1, 3, 4])), // 19
        ])
    }

    #[test]
    fn set_full_classifies_stale_then_stable_lost_after_seen_and_never_read() {
        let ev = set_full_history();
        let r = check_set(&ev).unwrap();
        assert_eq!(r.lost.elements, vec![2]);
        assert_eq!(r.never_read.elements, vec![5]);
        assert_eq!(r.stable_count, 3, "{r:?}");
        assert_eq!((r.stale_count, r.stale_reads), (1, 1));
        assert_eq!(r.worst_stale[0].element, 1);
        // 1 was known at 3, last missed by the read invoked at 6: stable from 7.
        assert_eq!(r.worst_stale[0].stable_latency_ns, 4);
        // Element 4: no read missed it: stable latency 0.
        let q = r.stable_latency.as_ref().unwrap();
        assert_eq!((q.count, q.min), (3, 0.0));
        // 2 was known at 5, last held by the read invoked at 8: lost from 9.
        assert_eq!(r.latencies.lost_ns, vec![4]);
        // From the invocations: 1 was added at 2 (stable from 7), 3 at 11 (the read invoked
        // at 14 held it), 4 at 0 (no read missed it).
        assert_eq!(r.latencies.stable_since_add_ns, vec![5, 0, 0]);
        // The last reads (no add began after them), summarised: size and what is missing.
        let f: Vec<(u64, usize, usize, Vec<i64>)> = r
            .final_reads
            .iter()
            .map(|f| (f.index, f.size, f.missing_count, f.missing.clone()))
            .collect();
        assert_eq!(f, vec![(16, 3, 1, vec![2])]);
        let d = &r.lost_details[0];
        assert_eq!((d.element, d.acknowledged, d.lost_latency_ns), (2, true, 4));
        assert_eq!((d.last_seen_index, d.first_missing_index), (Some(9), 10));
        assert_eq!(r.valid, Verdict::Invalid);
    }

    #[test]
    fn stale_reads_are_invalid_only_through_linearizable_paths() {
        let ev = h(&[
            (0, Invoke, "add", json!(1)),
            (0, Ok, "add", json!(1)),
            (2, Invoke, "read", json!(null)),
            (2, Ok, "read", json!([])),
            (2, Invoke, "read", json!(null)),
            (2, Ok, "read", json!([1])),
        ]);
        let r = check_set(&ev).unwrap();
        // Lost under the old definition (missing from a read after the ack): still invalid.
        assert_eq!(r.valid, Verdict::Invalid);
        assert_eq!((r.lost.count, r.stale_count, r.stale_reads), (0, 1, 1));
        assert_eq!(r.stale_linearizable_reads, 1);
        assert_eq!(r.bad_reads, vec![2]);
        let r = check_set(&read_mode(ev.clone(), "stale")).unwrap();
        assert_eq!(r.valid, Verdict::Valid);
        assert_eq!((r.stale_reads, r.stale_linearizable_reads), (1, 0));
        let r = check_set(&read_mode(ev, "lease")).unwrap();
        assert_eq!(r.valid, Verdict::Invalid);
    }

    #[test]
    fn an_indeterminate_add_seen_then_gone_is_lost() {
        let ev = h(&[
            (0, Invoke, "add", json!(7)),
            (0, Info, "add", json!(7)),
            (2, Invoke, "read", json!(null)),
            (2, Ok, "read", json!([7])),
            (2, Invoke, "read", json!(null)),
            (2, Ok, "read", json!([])),
        ]);
        let r = check_set(&read_mode(ev, "stale")).unwrap();
        assert_eq!(r.lost.elements, vec![7]);
        assert!(!r.lost_details[0].acknowledged);
        assert_eq!(r.lost_details[0].ack_index, 3);
        assert_eq!(r.valid, Verdict::Invalid);
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let q = LatencyQuantiles::of(&[4_000_000, 1_000_000, 3_000_000, 2_000_000]).unwrap();
        assert_eq!(
            (q.count, q.min, q.p50, q.p95, q.max),
            (4, 1.0, 2.0, 4.0, 4.0)
        );
        assert!(LatencyQuantiles::of(&[]).is_none());
    }
}

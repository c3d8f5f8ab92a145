//! Summary statistics of a history: counts by operation and outcome, latency quantiles per
//! operation and per read mode, throughput. The harness stores them in `results.json` as
//! `"stats"`; the run page shows them as a table.

use super::ops::{Digest, Op, Outcome};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use workloads::history::Event;

/// Operation counts by outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    /// All operations invoked.
    pub total: u64,
    /// Certainly took effect.
    pub ok: u64,
    /// Certainly did not take effect.
    pub fail: u64,
    /// Outcome unknown, including operations still pending when the history ended.
    pub info: u64,
    /// Of `info`: operations that never completed.
    pub pending: u64,
}

impl Counts {
    fn add(&mut self, o: Outcome) {
        self.total += 1;
        match o {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Info => self.info += 1,
            Outcome::Pending => {
                self.info += 1;
                self.pending += 1;
            }
        }
    }
}

/// Latency quantiles in milliseconds over the `ok` operations of one group (definite successes:
/// an `info` latency is mostly the client's timeout and would hide the system's behaviour).
/// Values carry hdrhistogram's 3 significant digits of precision.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Quantiles {
    /// How many latencies were recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// Counts and latencies of one group of operations (an operation name or a read mode).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GroupStats {
    /// Operation counts by outcome.
    #[serde(flatten)]
    pub counts: Counts,
    /// Latency quantiles of the `ok` operations.
    pub latency_ms: Quantiles,
    /// `ok` operations per second over the whole history.
    pub ok_per_s: f64,
}

/// Statistics of one history. Same events in, same numbers out.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Client operations invoked.
    pub ops: u64,
    /// Operations that certainly took effect.
    pub ok: u64,
    /// Operations that certainly did not.
    pub fail: u64,
    /// Operations with unknown outcome (including never completed).
    pub info: u64,
    /// Of `info`: operations that never completed.
    pub pending: u64,
    /// Time from the start of the test to the last event, seconds.
    pub duration_s: f64,
    /// Completed operations per second (ok + fail + info, pending excluded).
    pub completed_per_s: f64,
    /// `ok` operations per second.
    pub ok_per_s: f64,
    /// Latency quantiles of all `ok` operations.
    pub latency_ms: Quantiles,
    /// Per operation name (`read`, `write`, `cas`, `add`).
    pub by_op: BTreeMap<String, GroupStats>,
    /// Per read mode (reads only).
    pub by_read_mode: BTreeMap<String, GroupStats>,
    /// Fault windows seen, by fault kind.
    pub faults: BTreeMap<String, u64>,
}

/// Computes the statistics of a history (client operations paired per process; nemesis
/// events counted as fault windows).
pub fn compute(events: &[Event]) -> Stats {
    from_digest(&Digest::from_events(events))
}

/// Latency histogram in microseconds: 1 µs to 1 hour, 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; failure would be a programming error.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Latency of an op in µs, clamped into the histogram's range.
fn latency_us(op: &Op) -> u64 {
    (op.end_ns.saturating_sub(op.start_ns) / 1000).clamp(1, 3_600_000_000)
}

/// Quantiles of a histogram, in ms.
pub(crate) fn quantiles(h: &Histogram<u64>) -> Quantiles {
    if h.is_empty() {
        return Quantiles::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Quantiles {
        count: h.len(),
        p50: ms(h.value_at_quantile(0.50)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
        mean: h.mean().round() / 1000.0,
    }
}

/// Quantiles of the `ok` latencies of some operations, in ms.
pub(crate) fn quantiles_of<'a>(ops: impl Iterator<Item = &'a Op>) -> Quantiles {
    let mut h = new_histogram();
    for op in ops.filter(|o| o.outcome == Outcome::Ok) {
        // Clamped into range above, so recording cannot fail.
        let _ = h.record(latency_us(op));
    }
    quantiles(&h)
}

/// Statistics from an already paired history.
pub fn from_digest(d: &Digest) -> Stats {
    let dur = d.duration_s();
    let mut total = Counts::default();
    let mut all = new_histogram();
    let mut by_op: BTreeMap<String, (Counts, Histogram<u64>)> = BTreeMap::new();
    let mut by_mode: BTreeMap<String, (Counts, Histogram<u64>)> = BTreeMap::new();
    for op in &d.ops {
        total.add(op.outcome);
        let lat = latency_us(op);
        let ok = op.outcome == Outcome::Ok;
        if ok {
            let _ = all.record(lat);
        }
        let e = by_op
            .entry(op.f.clone())
            .or_insert_with(|| (Counts::default(), new_histogram()));
        e.0.add(op.outcome);
        if ok {
            let _ = e.1.record(lat);
        }
        if let (Some(m), "read") = (&op.read_mode, op.f.as_str()) {
            let e = by_mode
                .entry(m.clone())
                .or_insert_with(|| (Counts::default(), new_histogram()));
            e.0.add(op.outcome);
            if ok {
                let _ = e.1.record(lat);
            }
        }
    }
    let group = |(k, (c, h)): (String, (Counts, Histogram<u64>))| {
        let ok_per_s = round3(c.ok as f64 / dur);
        (
            k,
            GroupStats {
                counts: c,
                latency_ms: quantiles(&h),
                ok_per_s,
            },
        )
    };
    let mut faults = BTreeMap::new();
    for w in &d.faults {
        *faults.entry(w.kind.clone()).or_insert(0) += 1;
    }
    Stats {
        ops: total.total,
        ok: total.ok,
        fail: total.fail,
        info: total.info,
        pending: total.pending,
        duration_s: round3(dur),
        completed_per_s: round3((total.total - total.pending) as f64 / dur),
        ok_per_s: round3(total.ok as f64 / dur),
        latency_ms: quantiles(&all),
        by_op: by_op.into_iter().map(group).collect(),
        by_read_mode: by_mode.into_iter().map(group).collect(),
        faults,
    }
}

/// Rounds to 3 decimals so the JSON stays readable.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use workloads::history::{EventType, Process};

    fn ev(index: u64, ms: u64, p: u64, kind: EventType, f: &str, mode: Option<&str>) -> Event {
        Event {
            index,
            time: ms * 1_000_000,
            process: Process::Client(p),
            kind,
            f: f.to_string(),
            key: Some("k1".into()),
            value: serde_json::Value::Null,
            node: None,
            read_mode: mode.map(str::to_string),
            error: None,
        }
    }

    #[test]
    fn counts_and_quantiles() {
        use EventType::*;
        let mut e = Vec::new();
        let mut i = 0;
        // 100 ok reads (lease) of latency 1..=100 ms, sequential on process 0.
        let mut t = 0;
        for lat in 1..=100u64 {
            e.push(ev(i, t, 0, Invoke, "read", Some("lease")));
            e.push(ev(i + 1, t + lat, 0, Ok, "read", Some("lease")));
            i += 2;
            t += lat;
        }
        e.push(ev(i, t, 1, Invoke, "write", None));
        e.push(ev(i + 1, t + 5, 1, Fail, "write", None));
        e.push(ev(i + 2, t + 5, 2, Invoke, "write", None));
        e.push(ev(i + 3, t + 10, 3, Invoke, "cas", None));
        e.push(ev(i + 4, t + 20, 3, Info, "cas", None));
        let s = compute(&e);
        assert_eq!(
            (s.ops, s.ok, s.fail, s.info, s.pending),
            (103, 100, 1, 2, 1)
        );
        let r = &s.by_read_mode["lease"];
        assert_eq!(r.counts.ok, 100);
        assert!((r.latency_ms.p50 - 50.0).abs() < 0.1, "{:?}", r.latency_ms);
        assert!((r.latency_ms.p99 - 99.0).abs() < 0.1, "{:?}", r.latency_ms);
        assert!((r.latency_ms.max - 100.0).abs() < 0.1, "{:?}", r.latency_ms);
        assert_eq!(s.by_op["write"].counts.fail, 1);
        assert_eq!(s.by_op["write"].counts.pending, 1);
        assert_eq!(s.by_op["cas"].counts.info, 1);
        assert_eq!(s.by_op["cas"].latency_ms.count, 0);
        // The JSON has the fields results.json promises.
        let j = serde_json::to_value(&s).unwrap();
        for f in ["ops", "ok", "fail", "info", "latency_ms"] {
            assert!(j.get(f).is_some(), "missing {f}");
        }
        assert_eq!(j["by_read_mode"]["lease"]["ok"], 100);
    }

    #[test]
    fn empty_history_is_fine() {
        let s = compute(&[]);
        assert_eq!(s.ops, 0);
        assert_eq!(s.latency_ms.count, 0);
    }
}

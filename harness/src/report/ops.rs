//! Turns a flat history into what the reports draw: client operations (an invocation paired
//! with its completion) and fault windows (a nemesis `start` paired with its `stop`).

use std::collections::BTreeMap;
use workloads::history::{Event, EventType, Process};

/// How a client operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Certainly took effect.
    Ok,
    /// Certainly did not take effect.
    Fail,
    /// Unknown (timeout, lost connection).
    Info,
    /// Never completed before the history ended; treated like `info` by checkers.
    Pending,
}

impl Outcome {
    /// `ok`, `fail`, `info` or `pending`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
            Outcome::Pending => "pending",
        }
    }
}

/// One client operation: an invocation and (unless pending) its completion.
#[derive(Clone, Debug)]
pub struct Op {
    /// The client process id.
    pub process: u64,
    /// `read`, `write`, `cas`, `add`, ...
    pub f: String,
    /// The key, if the history named one.
    pub key: Option<String>,
    /// The read path, on reads that named one.
    pub read_mode: Option<String>,
    /// The node the request went to, if named.
    pub node: Option<String>,
    /// History line index of the invocation.
    pub invoke_index: u64,
    /// History line index of the completion (`None` while pending).
    pub complete_index: Option<u64>,
    /// Invocation time, ns since the test started.
    pub start_ns: u64,
    /// Completion time, ns; for a pending op, the time of the last event of the history.
    pub end_ns: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// The value of the invocation.
    pub invoke_value: serde_json::Value,
    /// The value of the completion (`Null` when pending).
    pub value: serde_json::Value,
    /// The completion's error, if any.
    pub error: Option<String>,
}

impl Op {
    /// Latency in milliseconds (completion minus invocation; for pending ops up to the end of
    /// the history).
    pub fn latency_ms(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e6
    }

    /// Whether the operation completed (ok, fail or info).
    pub fn completed(&self) -> bool {
        self.outcome != Outcome::Pending
    }

    /// The series an operation belongs to in per-read-mode views: `read <mode>` for reads that
    /// named a mode, otherwise the operation name.
    pub fn group(&self) -> String {
        match (&self.read_mode, self.f.as_str()) {
            (Some(m), "read") => format!("read {m}"),
            _ => self.f.clone(),
        }
    }
}

/// A period during which a fault was active.
#[derive(Clone, Debug)]
pub struct FaultWindow {
    /// The fault kind (`value.fault` of the nemesis event, or `unknown`).
    pub kind: String,
    /// When it started, ns.
    pub start_ns: u64,
    /// When it stopped, ns; the end of the history if it never stopped.
    pub end_ns: u64,
    /// Whether a `stop` was seen.
    pub stopped: bool,
    /// History line index of the `start` event.
    pub start_index: u64,
    /// History line index of the `stop` event, if any.
    pub stop_index: Option<u64>,
    /// The start event's value, compact JSON (e.g. the partition's grudge).
    pub detail: String,
}

/// What the cluster did, as marked on the latency chart (from the run's coverage).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterMarks {
    /// When each new leader after the first was first seen, ns, with its name.
    pub leader_changes: Vec<(u64, String)>,
    /// Spans without a leader followed by a majority, ns.
    pub leaderless: Vec<(u64, u64)>,
}

impl ClusterMarks {
    /// The marks of a coverage (empty when the cluster was not observed).
    pub fn from_coverage(c: &crate::coverage::Coverage) -> ClusterMarks {
        let ns = |s: f64| (s.max(0.0) * 1e9).round() as u64;
        ClusterMarks {
            leader_changes: c
                .elections
                .iter()
                .skip(1)
                .map(|e| (ns(e.time_s), e.leader.clone()))
                .collect(),
            leaderless: c
                .leaderless
                .iter()
                .map(|s| (ns(s.start_s), ns(s.end_s)))
                .collect(),
        }
    }
}

/// Everything the reports draw, derived from one history.
#[derive(Clone, Debug, Default)]
pub struct Digest {
    /// Client operations in invocation order.
    pub ops: Vec<Op>,
    /// Fault windows in start order.
    pub faults: Vec<FaultWindow>,
    /// Time of the last event, ns (0 for an empty history).
    pub end_ns: u64,
    /// Leader changes and leaderless spans; empty unless set from the run's coverage.
    pub cluster: ClusterMarks,
}

impl Digest {
    /// Pairs invocations with completions per process (a process has at most one operation in
    /// flight) and nemesis starts with stops per fault kind. Lines that do not fit (a completion
    /// without invocation, a stop without start) are skipped rather than rejected: a report
    /// must still be drawn for a damaged history.
    pub fn from_events(events: &[Event]) -> Digest {
        let end_ns = events.iter().map(|e| e.time).max().unwrap_or(0);
        let mut ops: Vec<Op> = Vec::new();
        let mut open: BTreeMap<u64, usize> = BTreeMap::new();
        for e in events {
            let Process::Client(p) = e.process else {
                continue;
            };
            match e.kind {
                EventType::Invoke => {
                    // A second invoke on a busy process breaks the contract; keep the earlier op
                    // pending and track the new one.
                    open.insert(p, ops.len());
                    ops.push(Op {
                        process: p,
                        f: e.f.clone(),
                        key: e.key.clone(),
                        read_mode: e.read_mode.clone(),
                        node: e.node.clone(),
                        invoke_index: e.index,
                        complete_index: None,
                        start_ns: e.time,
                        end_ns,
                        outcome: Outcome::Pending,
                        invoke_value: e.value.clone(),
                        value: serde_json::Value::Null,
                        error: None,
                    });
                }
                EventType::Ok | EventType::Fail | EventType::Info => {
                    let Some(i) = open.remove(&p) else { continue };
                    let op = &mut ops[i];
                    op.complete_index = Some(e.index);
                    op.end_ns = e.time.max(op.start_ns);
                    op.outcome = match e.kind {
                        EventType::Ok => Outcome::Ok,
                        EventType::Fail => Outcome::Fail,
                        _ => Outcome::Info,
                    };
                    op.value = e.value.clone();
                    op.error = e.error.clone();
                    if op.read_mode.is_none() {
                        op.read_mode = e.read_mode.clone();
                    }
                    if op.node.is_none() {
                        op.node = e.node.clone();
                    }
                }
            }
        }
        Digest {
            ops,
            faults: fault_windows(events, end_ns),
            end_ns,
            cluster: ClusterMarks::default(),
        }
    }

    /// Duration of the history in seconds (at least a millisecond, so rates stay finite).
    pub fn duration_s(&self) -> f64 {
        (self.end_ns as f64 / 1e9).max(1e-3)
    }

    /// Fault kinds in order of first appearance.
    pub fn fault_kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = Vec::new();
        for w in &self.faults {
            if !kinds.contains(&w.kind) {
                kinds.push(w.kind.clone());
            }
        }
        kinds
    }
}

/// The fault kind named by a nemesis event's value.
fn fault_kind(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(m) => m.get("fault").map(|f| match f {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Pairs nemesis `start`/`stop` events into windows. Jepsen-style nemeses may log an `invoke`
/// and a completion for each action; then only completions are used, as they mark when the
/// fault actually took hold.
fn fault_windows(events: &[Event], end_ns: u64) -> Vec<FaultWindow> {
    let nemesis: Vec<&Event> = events
        .iter()
        .filter(|e| e.process == Process::Nemesis)
        .collect();
    let has_completions = nemesis.iter().any(|e| e.kind != EventType::Invoke);
    let mut windows: Vec<FaultWindow> = Vec::new();
    for e in nemesis {
        if has_completions && e.kind == EventType::Invoke {
            continue;
        }
        let kind = fault_kind(&e.value);
        match e.f.as_str() {
            "start" => windows.push(FaultWindow {
                kind: kind.unwrap_or_else(|| "unknown".to_string()),
                start_ns: e.time,
                end_ns,
                stopped: false,
                start_index: e.index,
                stop_index: None,
                detail: e.value.to_string(),
            }),
            "stop" => {
                // Close the oldest open window of the same kind (or of any kind when the stop
                // does not say which).
                let found = windows
                    .iter_mut()
                    .find(|w| !w.stopped && kind.as_ref().is_none_or(|k| *k == w.kind));
                if let Some(w) = found {
                    w.stopped = true;
                    w.end_ns = e.time.max(w.start_ns);
                    w.stop_index = Some(e.index);
                }
            }
            _ => {}
        }
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(index: u64, time: u64, process: Process, kind: EventType, f: &str) -> Event {
        Event {
            index,
            time,
            process,
            kind,
            f: f.to_string(),
            key: None,
            value: serde_json::Value::Null,
            node: None,
            read_mode: None,
            error: None,
        }
    }

    #[test]
    fn pairs_ops_per_process_and_keeps_pending() {
        let c = Process::Client;
        let events = vec![
            ev(0, 10, c(0), EventType::Invoke, "write"),
            ev(1, 20, c(1), EventType::Invoke, "read"),
            ev(2, 30, c(0), EventType::Ok, "write"),
            ev(3, 40, c(2), EventType::Ok, "read"), // completion without invoke: skipped
            ev(4, 50, c(0), EventType::Invoke, "cas"),
            ev(5, 60, c(0), EventType::Fail, "cas"),
        ];
        let d = Digest::from_events(&events);
        assert_eq!(d.ops.len(), 3);
        assert_eq!(d.ops[0].outcome, Outcome::Ok);
        assert_eq!(d.ops[0].complete_index, Some(2));
        assert_eq!(d.ops[1].outcome, Outcome::Pending);
        assert_eq!(d.ops[1].end_ns, 60);
        assert_eq!(d.ops[2].outcome, Outcome::Fail);
        assert!((d.ops[2].latency_ms() - 10e-6).abs() < 1e-12);
    }

    #[test]
    fn fault_windows_pair_by_kind_and_open_ones_last_to_the_end() {
        let n = Process::Nemesis;
        let mut e = vec![
            ev(0, 100, n, EventType::Info, "start"),
            ev(1, 200, n, EventType::Info, "start"),
            ev(2, 300, n, EventType::Info, "stop"),
            ev(3, 900, Process::Client(0), EventType::Invoke, "read"),
        ];
        e[0].value = json!({"fault": "partition", "grudge": {"n1": ["n2"]}});
        e[1].value = json!({"fault": "kill", "nodes": ["n3"]});
        e[2].value = json!({"fault": "kill"});
        let d = Digest::from_events(&e);
        assert_eq!(d.faults.len(), 2);
        assert_eq!(d.faults[0].kind, "partition");
        assert!(!d.faults[0].stopped);
        assert_eq!(d.faults[0].end_ns, 900);
        assert_eq!(d.faults[1].kind, "kill");
        assert_eq!((d.faults[1].start_ns, d.faults[1].end_ns), (200, 300));
        assert_eq!(d.fault_kinds(), vec!["partition", "kill"]);
    }

    #[test]
    fn nemesis_invokes_are_ignored_when_completions_exist() {
        let n = Process::Nemesis;
        let mut e = vec![
            ev(0, 100, n, EventType::Invoke, "start"),
            ev(1, 150, n, EventType::Info, "start"),
            ev(2, 300, n, EventType::Invoke, "stop"),
            ev(3, 350, n, EventType::Info, "stop"),
        ];
        for x in &mut e {
            x.value = json!({"fault": "pause"});
        }
        let d = Digest::from_events(&e);
        assert_eq!(d.faults.len(), 1);
        assert_eq!((d.faults[0].start_ns, d.faults[0].end_ns), (150, 350));
    }
}

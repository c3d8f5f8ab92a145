//! Turning a failed search into an explanation a person can act on.

use super::prepare::{End, Prepared, Task};
use super::search::{step, Kind, ROp, Val, NULL};
use crate::history::{Event, Process};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// One operation as shown in an explanation; `invoke_index`/`complete_index` are the history
/// lines (`index` fields) to highlight.
#[derive(Clone, Debug, Serialize)]
pub struct OpSummary {
    /// The client process.
    pub process: u64,
    /// `read`, `write` or `cas`.
    pub f: String,
    /// The value read (reads), written (writes) or `[expected, new]` (cas).
    pub value: Value,
    /// `ok`, or `unknown` for `info` and never-completed operations.
    pub outcome: &'static str,
    /// `index` of the invocation.
    pub invoke_index: u64,
    /// `index` of the completion, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_index: Option<u64>,
    /// The node the request went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The read path of a read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_mode: Option<String>,
}

impl OpSummary {
    /// A one-line description, e.g. `process 3 read 4 [#12..#15, node n2, lease]`.
    pub fn describe(&self) -> String {
        let mut s = format!("process {} {} {}", self.process, self.f, self.value);
        let lines = match self.complete_index {
            Some(c) => format!("#{}..#{}", self.invoke_index, c),
            None => format!("#{}..", self.invoke_index),
        };
        s.push_str(&format!(" [{lines}"));
        if self.outcome != "ok" {
            s.push_str(", outcome unknown");
        }
        if let Some(n) = &self.node {
            s.push_str(&format!(", node {n}"));
        }
        if let Some(m) = &self.read_mode {
            s.push_str(&format!(", {m}"));
        }
        s.push(']');
        s
    }
}

/// Why a (mode, key) sub-history is not linearizable.
#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    /// The key.
    pub key: String,
    /// The read mode whose sub-history this is.
    pub read_mode: String,
    /// Human-readable summary (several lines).
    pub explanation: String,
    /// Every history line (`index`) involved: the operation that cannot be placed, the
    /// operations concurrent with it, and the end of the prefix, sorted.
    pub ops: Vec<u64>,
    /// The operation that cannot be placed.
    pub op: OpSummary,
    /// Operations whose real-time interval overlaps it (at most 20).
    pub concurrent: Vec<OpSummary>,
    /// Length of the longest linearizable prefix found, without its trailing operations that
    /// are concurrent with the failing one.
    pub prefix_length: usize,
    /// The last (at most 5) operations of that prefix, in linearization order.
    pub prefix_tail: Vec<OpSummary>,
    /// The register value after that prefix (`null` = absent).
    pub state_after_prefix: Value,
    /// The values the register could hold when the operation ran: the state after the prefix
    /// and whatever the still-pending concurrent writes and cas could have put there.
    pub possible_values: Vec<Value>,
}

fn summary(events: &[Event], prep: &Prepared, i: u32) -> OpSummary {
    let op = &prep.ops[i as usize];
    let inv = &events[op.pair.invoke];
    let value = match op.kind {
        Kind::Read => prep.values.values[op.a as usize].clone(),
        _ => inv.value.clone(),
    };
    OpSummary {
        process: match inv.process {
            Process::Client(p) => p,
            Process::Nemesis => u64::MAX,
        },
        f: inv.f.clone(),
        value,
        outcome: if op.end == End::Ok { "ok" } else { "unknown" },
        invoke_index: inv.index,
        complete_index: op.pair.complete.map(|c| events[c].index),
        node: inv.node.clone(),
        read_mode: inv.read_mode.clone(),
    }
}

/// Builds the anomaly for `task` given the longest linearizable prefix the search found (op
/// positions within the task, in linearization order).
pub(crate) fn explain(events: &[Event], prep: &Prepared, task: &Task, prefix: &[u32]) -> Anomaly {
    let n = task.ops.len();
    let rop = |j: usize| {
        let o = &prep.ops[task.ops[j] as usize];
        ROp {
            kind: o.kind,
            a: o.a,
            b: o.b,
            required: o.end == End::Ok,
            absorbable: false,
        }
    };
    let mut in_prefix = vec![false; n];
    for &j in prefix {
        in_prefix[j as usize] = true;
    }
    let ret_pos = |j: usize| -> usize {
        let o = &prep.ops[task.ops[j] as usize];
        match (o.end, o.pair.complete) {
            (End::Ok, Some(c)) => c,
            _ => usize::MAX,
        }
    };
    let call_pos = |j: usize| prep.ops[task.ops[j] as usize].pair.invoke;
    // The operation that cannot be placed: the unplaced completed op that returned first.
    let blocked = (0..n)
        .filter(|&j| !in_prefix[j] && ret_pos(j) != usize::MAX)
        .min_by_key(|&j| ret_pos(j))
        .unwrap_or(0);
    let (b_call, b_ret) = (call_pos(blocked), ret_pos(blocked));
    let concurrent_with_blocked = |j: usize| call_pos(j) < b_ret && ret_pos(j) > b_call;
    // Show the prefix up to the operations concurrent with the failing one: those are better
    // shown as alternatives ("possible values") than as already placed.
    let mut keep = prefix.len();
    while keep > 0 && concurrent_with_blocked(prefix[keep - 1] as usize) {
        keep -= 1;
        in_prefix[prefix[keep] as usize] = false;
    }
    let prefix = &prefix[..keep];
    let mut state: Val = NULL;
    for &j in prefix {
        state = step(state, &rop(j as usize)).unwrap_or(state);
    }
    let overlapping: Vec<usize> = (0..n)
        .filter(|&j| j != blocked && concurrent_with_blocked(j))
        .collect();
    // Values reachable from `state` by the pending (unplaced) ops invoked before it returned.
    let pending: Vec<ROp> = (0..n)
        .filter(|&j| j != blocked && !in_prefix[j] && call_pos(j) < b_ret)
        .map(rop)
        .filter(|o| o.kind != Kind::Read)
        .collect();
    let mut possible: BTreeSet<Val> = BTreeSet::from([state]);
    for _ in 0..pending.len() + 1 {
        let before = possible.len();
        for o in &pending {
            let add: Vec<Val> = possible.iter().filter_map(|&s| step(s, o)).collect();
            possible.extend(add);
        }
        if possible.len() == before {
            break;
        }
    }
    let val = |v: Val| prep.values.values[v as usize].clone();
    let op = summary(events, prep, task.ops[blocked]);
    let concurrent: Vec<OpSummary> = overlapping
        .iter()
        .take(20)
        .map(|&j| summary(events, prep, task.ops[j]))
        .collect();
    let prefix_tail: Vec<OpSummary> = prefix
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(|&j| summary(events, prep, task.ops[j as usize]))
        .collect();
    let possible_values: Vec<Value> = possible.iter().map(|&v| val(v)).collect();
    let shown = |vs: &[Value]| {
        vs.iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let b = rop(blocked);
    let why = match b.kind {
        Kind::Read => format!(
            "it read {}, but the register could only hold {{{}}} then",
            val(b.a),
            shown(&possible_values)
        ),
        Kind::Cas => format!(
            "it swapped from {}, but the register could only hold {{{}}} then",
            val(b.a),
            shown(&possible_values)
        ),
        Kind::Write => {
            "no order of the operations concurrent with it lets every later read see what it saw"
                .to_string()
        }
    };
    let key = prep.keys[task.key as usize].clone();
    let mode = prep.modes[task.mode as usize].clone();
    let mut text = format!(
        "key {key:?}, read mode {mode}: operation {} cannot be placed: {why}.\n",
        op.describe()
    );
    text.push_str(&format!(
        "  longest linearizable prefix: {} operations, after which the register holds {}",
        prefix.len(),
        val(state)
    ));
    if !prefix_tail.is_empty() {
        text.push_str("; it ends with:\n");
        for s in &prefix_tail {
            text.push_str(&format!("    {}\n", s.describe()));
        }
    } else {
        text.push('\n');
    }
    if concurrent.is_empty() {
        text.push_str("  no operation was concurrent with it.");
    } else {
        text.push_str(&format!(
            "  {} concurrent operation(s){}:\n",
            overlapping.len(),
            if overlapping.len() > concurrent.len() {
                " (first 20 shown)"
            } else {
                ""
            }
        ));
        let lines: Vec<String> = concurrent
            .iter()
            .map(|s| format!("    {}", s.describe()))
            .collect();
        text.push_str(&lines.join("\n"));
    }
    let mut ops: BTreeSet<u64> = BTreeSet::new();
    for s in std::iter::once(&op)
        .chain(concurrent.iter())
        .chain(prefix_tail.iter())
    {
        ops.insert(s.invoke_index);
        if let Some(c) = s.complete_index {
            ops.insert(c);
        }
    }
    Anomaly {
        key,
        read_mode: mode,
        explanation: text,
        ops: ops.into_iter().collect(),
        op,
        concurrent,
        prefix_length: prefix.len(),
        prefix_tail,
        state_after_prefix: val(state),
        possible_values,
    }
}

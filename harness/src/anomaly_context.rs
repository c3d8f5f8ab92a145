//! What was going on when an anomaly happened: the faults active while the operations it
//! cites ran (with the side of a partition the answering node was on), and the cluster's
//! leader and term then, from `cluster.jsonl`. Saves the reader cross-referencing the fault
//! table and the timeline by hand.

use node::raft::Role;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use workloads::history::Event;

use crate::coverage::Window;
use crate::observer::Observation;
use crate::results::Anomaly;
pub use crate::results::{ActiveFault, AnomalyContext};

/// The context of `anomaly` (an element of results.json's `anomalies`) over its `span_ns`
/// ([from, to] in history ns) if it has one, else over its `op` (invocation to completion),
/// else over the lines it cites; `None` when it has none of these.
pub fn of(
    anomaly: &Anomaly,
    events: &[Event],
    windows: &[Window],
    observations: &[Observation],
) -> Option<AnomalyContext> {
    let time_of: HashMap<u64, u64> = events.iter().map(|e| (e.index, e.time)).collect();
    let (span, node) = match (anomaly.span_ns, anomaly.op_lines()) {
        (Some([from, to]), _) => (Some((from, to)), None),
        (None, Some((i, c, node))) => {
            let from = *time_of.get(&i)?;
            let to = c.and_then(|c| time_of.get(&c).copied()).unwrap_or(from);
            (Some((from, to)), node)
        }
        (None, None) => {
            if anomaly.ops.is_empty() {
                return None;
            }
            let times: Vec<u64> = anomaly
                .ops
                .iter()
                .filter_map(|i| time_of.get(i).copied())
                .collect();
            let span = times.iter().min().zip(times.iter().max());
            (span.map(|(a, b)| (*a, *b)), None)
        }
    };
    let (from_ns, to_ns) = span?;
    let (from_s, to_s) = (from_ns as f64 / 1e9, to_ns as f64 / 1e9);
    let faults: Vec<ActiveFault> = windows
        .iter()
        .filter(|w| w.error.is_none())
        .filter(|w| w.start_s <= to_s && w.end_s.is_none_or(|e| e >= from_s))
        .map(|w| ActiveFault {
            fault: w.fault.clone(),
            shape: w.shape.clone(),
            start_s: w.start_s,
            end_s: w.end_s,
            summary: summarise(w, node.as_deref()),
        })
        .collect();
    let views = latest_views(observations, to_ns);
    let leader = views
        .values()
        .filter(|o| o.role == Some(Role::Leader))
        .max_by_key(|o| o.term.unwrap_or(0));
    let node_view = node
        .as_deref()
        .and_then(|n| views.get(n))
        .map(|o| describe_view(o));
    let mut parts = Vec::new();
    if faults.is_empty() {
        parts.push("no fault was active".to_string());
    } else {
        let f: Vec<String> = faults.iter().map(|f| f.summary.clone()).collect();
        parts.push(format!("during {}", f.join("; ")));
    }
    if let Some(l) = leader {
        parts.push(format!(
            "the cluster's leader was {} (term {})",
            l.node,
            l.term.unwrap_or(0)
        ));
    }
    if let (Some(n), Some(v)) = (&node, &node_view) {
        parts.push(format!("{n} was {v}"));
    }
    Some(AnomalyContext {
        from_s,
        to_s,
        node,
        text: parts.join("; "),
        faults,
        leader: leader.map(|l| l.node.clone()),
        term: leader.and_then(|l| l.term),
        node_view,
    })
}

/// Each node's latest observation at or before `t_ns`.
fn latest_views(observations: &[Observation], t_ns: u64) -> BTreeMap<&str, &Observation> {
    let mut views: BTreeMap<&str, &Observation> = BTreeMap::new();
    for o in observations.iter().filter(|o| o.time <= t_ns) {
        let newer = views.get(o.node.as_str()).is_none_or(|p| p.time <= o.time);
        if newer {
            views.insert(&o.node, o);
        }
    }
    views
}

fn describe_view(o: &Observation) -> String {
    if o.unreachable {
        return "not answering the observer".into();
    }
    let term = o.term.map(|t| format!(", term {t}")).unwrap_or_default();
    match (o.role, o.leader.as_deref()) {
        (Some(Role::Leader), _) => format!("leader{term}"),
        (Some(role), Some(l)) => format!("{role} of {l}{term}"),
        (Some(role), None) => format!("{role} with no leader{term}"),
        (None, _) => format!("in an unknown role{term}"),
    }
}

/// One fault in words; a partition says which side `node` was on.
fn summarise(w: &Window, node: Option<&str>) -> String {
    let name = match &w.shape {
        Some(s) => format!("{} {s}", w.fault),
        None => w.fault.clone(),
    };
    let when = match w.end_s {
        Some(e) => format!("{:.2}–{:.2} s", w.start_s, e),
        None => format!("from {:.2} s", w.start_s),
    };
    let detail = match (w.detail.get("grudge"), node) {
        (Some(g), Some(n)) => partition_side(g, n),
        _ if !w.nodes.is_empty() => Some(format!("on {}", w.nodes.join(", "))),
        _ => None,
    };
    match detail {
        Some(d) => format!("{name} ({when}): {d}"),
        None => format!("{name} ({when})"),
    }
}

/// Where `node` stood in a partition given as a grudge (node → nodes it is cut off from):
/// its side is the nodes it can exchange messages with both ways.
fn partition_side(grudge: &Value, node: &str) -> Option<String> {
    let map = grudge.as_object()?;
    let cut = |a: &str, b: &str| {
        map.get(a)
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(b)))
    };
    let all: BTreeSet<&str> = map
        .keys()
        .map(String::as_str)
        .chain(
            map.values()
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(Value::as_str),
        )
        .chain(std::iter::once(node))
        .collect();
    let side: Vec<&str> = all
        .iter()
        .copied()
        .filter(|&m| m == node || (!cut(node, m) && !cut(m, node)))
        .collect();
    let cut_off: Vec<&str> = all
        .iter()
        .copied()
        .filter(|&m| m != node && cut(node, m) && cut(m, node))
        .collect();
    let one_way: Vec<&str> = all
        .iter()
        .copied()
        .filter(|&m| m != node && (cut(node, m) != cut(m, node)))
        .collect();
    let which = if side.len() * 2 > all.len() {
        "majority"
    } else {
        "minority"
    };
    let mut s = format!("{node} on the {which} side {{{}}}", side.join(", "));
    if !cut_off.is_empty() {
        s.push_str(&format!(", cut off from {}", cut_off.join(", ")));
    }
    if !one_way.is_empty() {
        s.push_str(&format!(", one-way cut with {}", one_way.join(", ")));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use workloads::history::{EventType, Process};

    fn ev(index: u64, time_s: f64) -> Event {
        Event {
            index,
            time: (time_s * 1e9) as u64,
            process: Process::Client(1),
            kind: EventType::Invoke,
            f: "read".into(),
            key: Some("k".into()),
            value: Value::Null,
            node: Some("n2".into()),
            read_mode: Some("stale".into()),
            error: None,
        }
    }

    fn window(fault: &str, shape: Option<&str>, detail: Value, start: f64, end: f64) -> Window {
        serde_json::from_value(json!({
            "fault": fault, "shape": shape, "detail": detail, "start_s": start, "end_s": end,
            "leader_changes": null, "leaderless_s": null, "ok": 0, "fail": 0, "info": 0,
            "recovery_s": null, "cut_leader": null
        }))
        .unwrap()
    }

    fn obs(t: f64, node: &str, role: Role, term: u64, leader: Option<&str>) -> Observation {
        Observation::sample(t, node, role, term, leader)
    }

    #[test]
    fn a_stale_read_names_the_partition_and_the_side_of_the_answering_node() {
        let events = vec![ev(10, 4.8), ev(11, 4.9)];
        let grudge = json!({"n1": ["n2"], "n2": ["n1", "n3"], "n3": ["n2"]});
        let windows = vec![
            window(
                "partition",
                Some("isolate-leader"),
                json!({"grudge": grudge}),
                3.4,
                7.3,
            ),
            window("kill", None, json!({}), 8.0, 9.0),
        ];
        let observations = vec![
            obs(4.0, "n1", Role::Leader, 3, Some("n1")),
            obs(4.0, "n2", Role::Leader, 2, Some("n2")),
            obs(4.0, "n3", Role::Follower, 3, Some("n1")),
            obs(5.0, "n1", Role::Follower, 4, None),
        ];
        let anomaly = Anomaly::from_value(
            json!({"op": {"invoke_index": 10, "complete_index": 11, "node": "n2"}}),
        );
        let c = of(&anomaly, &events, &windows, &observations).unwrap();
        assert_eq!(c.faults.len(), 1, "only the partition overlaps");
        assert_eq!(
            c.faults[0].summary,
            "partition isolate-leader (3.40–7.30 s): n2 on the minority side {n2}, cut off from n1, n3"
        );
        assert_eq!((c.leader.as_deref(), c.term), (Some("n1"), Some(3)));
        assert_eq!(c.node_view.as_deref(), Some("leader, term 2"));
        assert!(
            c.text.contains("the cluster's leader was n1 (term 3)"),
            "{}",
            c.text
        );
        // The majority side, seen from n1.
        let s = partition_side(&grudge, "n3").unwrap();
        assert_eq!(s, "n3 on the majority side {n1, n3}, cut off from n2");
    }

    #[test]
    fn no_fault_and_no_operation_are_said_plainly() {
        let events = vec![ev(1, 1.0)];
        let anomaly = Anomaly::from_value(json!({"op": {"invoke_index": 1, "node": "n2"}}));
        let c = of(&anomaly, &events, &[], &[]).unwrap();
        assert_eq!(c.text, "no fault was active");
        assert!(of(
            &Anomaly::from_value(json!({"key": "set"})),
            &events,
            &[],
            &[]
        )
        .is_none());
    }
}

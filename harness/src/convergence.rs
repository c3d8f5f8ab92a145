//! The `convergence` check: once every fault is healed and the workload has stopped, every
//! member must catch up with the leader's commit index, and all members must hold the same
//! data. A wedged or diverged replica is invisible to clients while the majority keeps
//! answering, so the harness asks each member directly: its status, then every key of the
//! run read locally (the `stale` path: what that member's state machine holds).

use node::raft::Role;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use node::protocol::Status;
use node::raft::{node_name, NodeId};
use serde::Serialize;
use workloads::checker::Verdict;

use crate::system::{self, System};

/// One member as last seen by the check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberState {
    /// The member answered its status request.
    pub reachable: bool,
    pub commit: Option<u64>,
    pub applied: Option<u64>,
}

/// One thing the check found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConvergenceAnomaly {
    /// The key the members disagree on, when the anomaly is about data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// One line, e.g. "k3: n1 has 5, n2 and n3 have 7".
    pub explanation: String,
}

/// The check's result (`checkers.convergence` in results.json).
#[derive(Clone, Debug, Serialize)]
pub struct ConvergenceReport {
    /// Valid when every member reached the leader's commit index and all hold the same value
    /// for every key; invalid otherwise; unknown when the check was not run to the end.
    pub valid: Verdict,
    /// The leader's commit index the members had to reach.
    pub leader_commit: Option<u64>,
    /// Seconds the members took to converge (from the start of the check).
    pub converged_after_s: Option<f64>,
    /// Every member's last status.
    pub members: BTreeMap<String, MemberState>,
    /// How many keys were read from every member and compared.
    pub keys_compared: usize,
    pub anomalies: Vec<ConvergenceAnomaly>,
}

impl ConvergenceReport {
    /// A report for a check that did not run (for instance an interrupted run).
    pub fn not_run(reason: &str) -> ConvergenceReport {
        ConvergenceReport {
            valid: Verdict::Unknown,
            leader_commit: None,
            converged_after_s: None,
            members: BTreeMap::new(),
            keys_compared: 0,
            anomalies: vec![ConvergenceAnomaly {
                key: None,
                explanation: format!("not checked: {reason}"),
            }],
        }
    }
}

/// How long one status or read request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause between status polls while waiting for the members to catch up.
const POLL: Duration = Duration::from_millis(100);
/// Reads of every key from every member are retried this often when a member's applied
/// index moved while reading (a late no-op of a new leader, say).
const READ_ROUNDS: usize = 3;

/// Waits (at most `budget`) until every member has applied the leader's commit index, then
/// reads every key in `keys` from every member and compares. Call after the workload stopped
/// and the cluster was healed.
pub async fn check(cluster: &dyn System, keys: &[String], budget: Duration) -> ConvergenceReport {
    let started = Instant::now();
    let ids = cluster.ids();
    let mut last: Vec<(NodeId, Option<Status>)>;
    // Bounded by the budget: every round waits at least POLL.
    let (converged, leader_commit) = loop {
        last = system::poll(cluster, REQUEST_TIMEOUT).await;
        let leader_commit = leader_commit(&last);
        if let Some(target) = leader_commit {
            let all = last
                .iter()
                .all(|(_, s)| s.as_ref().is_some_and(|s| s.applied_index == target));
            if all {
                break (true, Some(target));
            }
        }
        if started.elapsed() + POLL >= budget {
            break (false, leader_commit);
        }
        tokio::time::sleep(POLL).await;
    };
    let mut report = ConvergenceReport {
        valid: Verdict::Valid,
        leader_commit,
        converged_after_s: converged
            .then(|| (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
        members: members(&last),
        keys_compared: 0,
        anomalies: Vec::new(),
    };
    if !converged {
        report.anomalies = lagging(&last, leader_commit, budget);
        report.valid = Verdict::Invalid;
        return report;
    }
    for _ in 0..READ_ROUNDS {
        let before: Vec<Option<u64>> = last
            .iter()
            .map(|(_, s)| s.as_ref().map(|s| s.applied_index))
            .collect();
        let values = read_all(cluster, &ids, keys).await;
        last = system::poll(cluster, REQUEST_TIMEOUT).await;
        let after: Vec<Option<u64>> = last
            .iter()
            .map(|(_, s)| s.as_ref().map(|s| s.applied_index))
            .collect();
        if before != after {
            continue;
        }
        report.members = members(&last);
        report.keys_compared = keys.len();
        match values {
            Ok(values) => report.anomalies = compare(&values),
            Err(e) => {
                report.anomalies = vec![ConvergenceAnomaly {
                    key: None,
                    explanation: e,
                }]
            }
        }
        report.valid = if report.anomalies.is_empty() {
            Verdict::Valid
        } else {
            Verdict::Invalid
        };
        return report;
    }
    report.valid = Verdict::Unknown;
    report.anomalies = vec![ConvergenceAnomaly {
        key: None,
        explanation: format!(
            "members kept applying entries while being read ({READ_ROUNDS} rounds): not compared"
        ),
    }];
    report
}

/// The commit index of the leader of the highest term, if one answers.
fn leader_commit(statuses: &[(NodeId, Option<Status>)]) -> Option<u64> {
    statuses
        .iter()
        .filter_map(|(_, s)| s.as_ref())
        .filter(|s| s.role == Role::Leader)
        .max_by_key(|s| s.term)
        .map(|s| s.commit_index)
}

fn members(statuses: &[(NodeId, Option<Status>)]) -> BTreeMap<String, MemberState> {
    statuses
        .iter()
        .map(|(id, s)| {
            (
                node_name(*id),
                MemberState {
                    reachable: s.is_some(),
                    commit: s.as_ref().map(|s| s.commit_index),
                    applied: s.as_ref().map(|s| s.applied_index),
                },
            )
        })
        .collect()
}

/// Why the members did not converge: no leader, members that did not answer, members that
/// stayed behind the leader's commit index.
fn lagging(
    statuses: &[(NodeId, Option<Status>)],
    leader_commit: Option<u64>,
    budget: Duration,
) -> Vec<ConvergenceAnomaly> {
    let secs = budget.as_secs_f64();
    let Some(target) = leader_commit else {
        return vec![ConvergenceAnomaly {
            key: None,
            explanation: format!("no leader within {secs:.1} s: the members cannot catch up"),
        }];
    };
    statuses
        .iter()
        .filter_map(|(id, s)| match s {
            None => Some(format!(
                "{} did not answer within {secs:.1} s while the cluster is at {target}",
                node_name(*id)
            )),
            Some(s) if s.applied_index != target => Some(format!(
                "{} stuck at applied {} while the cluster is at {target}",
                node_name(*id),
                s.applied_index
            )),
            Some(_) => None,
        })
        .map(|explanation| ConvergenceAnomaly {
            key: None,
            explanation,
        })
        .collect()
}

/// Every key's value on every member: key → member → value (`null` when absent).
type Values = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

/// Reads every key from every member through its local path ([`System::read_local`]).
async fn read_all(system: &dyn System, ids: &[NodeId], keys: &[String]) -> Result<Values, String> {
    let mut out: Values = BTreeMap::new();
    for key in keys {
        let reads = ids.iter().map(|&id| async move {
            let v = system.read_local(id, key).await?;
            Ok::<_, String>((node_name(id), serde_json::to_value(v).unwrap_or_default()))
        });
        for r in futures::future::join_all(reads).await {
            let (node, v) = r?;
            out.entry(key.clone()).or_default().insert(node, v);
        }
    }
    Ok(out)
}

/// One anomaly per key on which the members disagree: "k3: n1 has 5, n2 and n3 have 7"
/// (the smallest groups first, so the odd one out leads).
pub fn compare(values: &Values) -> Vec<ConvergenceAnomaly> {
    let mut out = Vec::new();
    for (key, by_node) in values {
        let mut groups: Vec<(&serde_json::Value, Vec<&str>)> = Vec::new();
        for (node, v) in by_node {
            match groups.iter_mut().find(|(g, _)| *g == v) {
                Some((_, nodes)) => nodes.push(node),
                None => groups.push((v, vec![node])),
            }
        }
        if groups.len() < 2 {
            continue;
        }
        groups.sort_by_key(|(_, nodes)| nodes.len());
        let parts: Vec<String> = groups
            .iter()
            .map(|(v, nodes)| {
                let verb = if nodes.len() == 1 { "has" } else { "have" };
                format!("{} {verb} {}", join_names(nodes), describe(v, &groups))
            })
            .collect();
        out.push(ConvergenceAnomaly {
            key: Some(key.clone()),
            explanation: format!("{key}: {}", parts.join(", ")),
        });
    }
    out
}

/// "n1", "n1 and n2", "n1, n2 and n3".
fn join_names(nodes: &[&str]) -> String {
    match nodes {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A value for an explanation: integers as they are, sets by size and (when small) by the
/// elements the other groups have and this one lacks.
fn describe(v: &serde_json::Value, groups: &[(&serde_json::Value, Vec<&str>)]) -> String {
    match v {
        serde_json::Value::Null => "no value".into(),
        serde_json::Value::Array(a) => {
            let mine: std::collections::BTreeSet<i64> =
                a.iter().filter_map(serde_json::Value::as_i64).collect();
            let mut missing = std::collections::BTreeSet::new();
            for (other, _) in groups {
                if let serde_json::Value::Array(o) = other {
                    missing.extend(
                        o.iter()
                            .filter_map(serde_json::Value::as_i64)
                            .filter(|e| !mine.contains(e)),
                    );
                }
            }
            let mut s = format!("{} elements", a.len());
            if !missing.is_empty() {
                let shown: Vec<String> = missing.iter().take(5).map(i64::to_string).collect();
                let more = if missing.len() > 5 { ", …" } else { "" };
                s.push_str(&format!(
                    " (lacking {}: {}{more})",
                    missing.len(),
                    shown.join(", ")
                ));
            }
            s
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(entries: &[(&str, &[(&str, serde_json::Value)])]) -> Values {
        entries
            .iter()
            .map(|(k, nodes)| {
                (
                    k.to_string(),
                    nodes
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.clone()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn agreeing_members_give_no_anomaly() {
        let v = values(&[(
            "k1",
            &[("n1", json!(3)), ("n2", json!(3)), ("n3", json!(3))],
        )]);
        assert!(compare(&v).is_empty());
    }

    #[test]
    fn the_odd_member_out_is_named_first() {
        let v = values(&[
            (
                "k3",
                &[("n1", json!(5)), ("n2", json!(7)), ("n3", json!(7))],
            ),
            (
                "k4",
                &[("n1", json!(null)), ("n2", json!(1)), ("n3", json!(1))],
            ),
        ]);
        let a = compare(&v);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].explanation, "k3: n1 has 5, n2 and n3 have 7");
        assert_eq!(a[0].key.as_deref(), Some("k3"));
        assert_eq!(a[1].explanation, "k4: n1 has no value, n2 and n3 have 1");
    }

    #[test]
    fn sets_are_described_by_size_and_missing_elements() {
        let v = values(&[(
            "set",
            &[
                ("n1", json!([1, 2])),
                ("n2", json!([1, 2, 3])),
                ("n3", json!([1, 2, 3])),
            ],
        )]);
        let a = compare(&v);
        assert_eq!(
            a[0].explanation,
            "set: n1 has 2 elements (lacking 1: 3), n2 and n3 have 3 elements"
        );
    }

    fn status(id: NodeId, role: Role, term: u64, commit: u64, applied: u64) -> Status {
        Status {
            id,
            role,
            term,
            leader: Some(1),
            commit_index: commit,
            applied_index: applied,
            last_log_index: commit,
            clock: node::protocol::ClockState {
                offset_ms: 0.0,
                rate: 1.0,
                now_ms: 0.0,
            },
        }
    }

    #[test]
    fn a_member_behind_the_leader_is_stuck_and_a_silent_one_is_named() {
        let s = vec![
            (1, Some(status(1, Role::Leader, 3, 2214, 2214))),
            (2, Some(status(2, Role::Follower, 3, 2214, 1541))),
            (3, None),
        ];
        assert_eq!(leader_commit(&s), Some(2214));
        let a = lagging(&s, Some(2214), Duration::from_secs(10));
        assert_eq!(a.len(), 2);
        assert_eq!(
            a[0].explanation,
            "n2 stuck at applied 1541 while the cluster is at 2214"
        );
        assert!(a[1].explanation.starts_with("n3 did not answer"));
        let none = lagging(&s, None, Duration::from_secs(10));
        assert!(none[0].explanation.starts_with("no leader"));
    }
}

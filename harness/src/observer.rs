//! The cluster observed while it is hurt: every member's status polled at a fixed interval
//! and each change written as one JSON line to `cluster.jsonl` (one [`Observation`] a line),
//! on the same clock as the history, so that coverage can say what the faults did.
//!
//! What is written (the rule that keeps the file small under load):
//! - a node's first poll, and every poll whose reachability, role, term or leader differs
//!   from the node's last written line;
//! - a poll where only `commit`/`applied` moved, if at least [`PROGRESS_EVERY`] passed since
//!   that node's last written line (indexes move on every write; one line a second per node
//!   is enough to see progress and stalls);
//! - when the observer stops, each node's latest polled state if it differs from the node's
//!   last written line, so that the file ends on what was last seen.

use node::raft::Role;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::FutureExt;
use node::raft::{node_name, NodeId};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A node whose indexes alone moved gets a new line at most this often.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The default `--observe-interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// One line of `cluster.jsonl`: a node's status as polled at `time`, or that it did not
/// answer. For a reachable node every status field is present but `leader`, which is absent
/// when the node knows of none; for an unreachable one only `time`, `node` and `unreachable`.
/// Lines are in time order, but for the final lines written when the observer stops (readers
/// sort by `time`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Nanoseconds since the test started: the history's clock.
    pub time: u64,
    /// The node polled, e.g. `n2`.
    pub node: String,
    /// True when the poll failed (refused, timed out, closed): the node counts as following
    /// no leader.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreachable: bool,
    /// The node's role, written as `follower`, `candidate`, `pre-candidate` or `leader`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The node's current term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    /// The leader the node knows of, e.g. `n1` (a leader names itself); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The node's commit index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<u64>,
    /// The node's applied index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<u64>,
}

impl Observation {
    /// A reachable node's observation at `t` seconds: for tests.
    #[cfg(test)]
    pub(crate) fn sample(
        t: f64,
        node: &str,
        role: Role,
        term: u64,
        leader: Option<&str>,
    ) -> Observation {
        Observation {
            time: (t * 1e9) as u64,
            node: node.into(),
            unreachable: false,
            role: Some(role),
            term: Some(term),
            leader: leader.map(str::to_string),
            commit: Some(1),
            applied: Some(1),
        }
    }

    /// An observation of a node that answered.
    pub fn of_status(time: u64, s: &node::protocol::Status) -> Observation {
        Observation {
            time,
            node: node_name(s.id),
            unreachable: false,
            role: Some(s.role),
            term: Some(s.term),
            leader: s.leader.map(node_name),
            commit: Some(s.commit_index),
            applied: Some(s.applied_index),
        }
    }

    /// An observation of a node that did not answer.
    pub fn unreachable(time: u64, node: &str) -> Observation {
        Observation {
            time,
            node: node.to_string(),
            unreachable: true,
            role: None,
            term: None,
            leader: None,
            commit: None,
            applied: None,
        }
    }

    /// True when the node considers itself the leader.
    pub fn is_leader(&self) -> bool {
        !self.unreachable && self.role == Some(Role::Leader)
    }

    /// The leader this node follows: the one it names, or itself when it leads; `None` when
    /// unreachable or when it knows of none.
    pub fn follows(&self) -> Option<&str> {
        if self.unreachable {
            None
        } else if self.is_leader() {
            Some(self.node.as_str())
        } else {
            self.leader.as_deref()
        }
    }

    /// Whether reachability, role, term or leader differ (what always gets a line).
    fn differs_in_kind(&self, other: &Observation) -> bool {
        self.unreachable != other.unreachable
            || self.role != other.role
            || self.term != other.term
            || self.leader != other.leader
    }

    /// Whether anything but the time differs.
    fn differs(&self, other: &Observation) -> bool {
        self.differs_in_kind(other) || self.commit != other.commit || self.applied != other.applied
    }
}

/// Reads `cluster.jsonl`. Blank lines are skipped; a malformed LAST line is ignored (the
/// observer may have been killed mid-write), a malformed line anywhere else is an error.
pub fn read_observations(path: &Path) -> anyhow::Result<Vec<Observation>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", path.display()))?;
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Observation>(line) {
            Ok(o) => out.push(o),
            Err(_) if Some(i) == last => break,
            Err(e) => anyhow::bail!("{}:{}: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

/// Decides which polls become lines (see the module documentation for the rule).
#[derive(Debug, Default)]
struct ChangeFilter {
    /// Per node: the last line written and the last state polled.
    nodes: BTreeMap<String, (Observation, Observation)>,
}

impl ChangeFilter {
    /// Records a poll; returns it if it must be written.
    fn offer(&mut self, o: Observation) -> Option<Observation> {
        let progress_ns = PROGRESS_EVERY.as_nanos() as u64;
        match self.nodes.get_mut(&o.node) {
            None => {
                self.nodes.insert(o.node.clone(), (o.clone(), o.clone()));
                Some(o)
            }
            Some((written, latest)) => {
                *latest = o.clone();
                let write = o.differs_in_kind(written)
                    || (o.differs(written) && o.time.saturating_sub(written.time) >= progress_ns);
                if write {
                    *written = o.clone();
                    Some(o)
                } else {
                    None
                }
            }
        }
    }

    /// The latest polled state of each node whose last line does not show it.
    fn flush(&mut self) -> Vec<Observation> {
        let mut out = Vec::new();
        for (written, latest) in self.nodes.values_mut() {
            if latest.differs(written) {
                *written = latest.clone();
                out.push(latest.clone());
            }
        }
        out.sort_by_key(|o| o.time);
        out
    }
}

/// The observer task's settings.
#[derive(Clone, Debug)]
pub struct Observer {
    /// Every node polled.
    pub nodes: Vec<NodeId>,
    /// Time between the starts of two polls of the cluster.
    pub interval: Duration,
    /// Where the lines go (`RUN_DIR/cluster.jsonl`); created or truncated.
    pub path: PathBuf,
    /// The test's start: the history's time zero.
    pub t0: Instant,
}

impl Observer {
    /// Each poll of one node gives up after this long: less than the interval, so a
    /// silent (paused) node never delays the next round.
    pub fn poll_timeout(&self) -> Duration {
        (self.interval * 4 / 5).max(Duration::from_millis(5))
    }

    /// Starts polling every node every `interval`, concurrently, until `stop` is cancelled;
    /// then writes the final states, flushes, and returns every line written, in file order.
    /// Each round is written and flushed before the next, so a killed harness keeps all
    /// but the round in flight. Fails only if the file cannot be created or written.
    pub fn spawn(
        nodes: Vec<(NodeId, SocketAddr)>,
        interval: Duration,
        path: PathBuf,
        t0: Instant,
        stop: CancellationToken,
    ) -> JoinHandle<anyhow::Result<Vec<Observation>>> {
        let obs = Observer {
            nodes: nodes.iter().map(|&(id, _)| id).collect(),
            interval: interval.max(Duration::from_millis(1)),
            path,
            t0,
        };
        let poll = move |id: NodeId, timeout: Duration| {
            let addr = nodes.iter().find(|(n, _)| *n == id).map(|(_, a)| *a);
            async move {
                match addr {
                    Some(a) => nemesis::admin::status_within(a, timeout).await.ok(),
                    None => None,
                }
            }
            .boxed()
        };
        tokio::spawn(async move { obs.poll_with(stop, poll).await })
    }

    /// The polling loop, asking each member of `system` through [`System::status`], on the
    /// current task.
    pub async fn run_on(
        self,
        system: &dyn crate::system::System,
        stop: CancellationToken,
    ) -> anyhow::Result<Vec<Observation>> {
        self.poll_with(stop, |id, timeout| system.status(id, timeout))
            .await
    }

    async fn poll_with<'s>(
        self,
        stop: CancellationToken,
        status: impl Fn(
            NodeId,
            Duration,
        ) -> futures::future::BoxFuture<'s, Option<node::protocol::Status>>,
    ) -> anyhow::Result<Vec<Observation>> {
        let file = std::fs::File::create(&self.path)
            .with_context(|| format!("creating {}", self.path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let mut written = Vec::new();
        let mut filter = ChangeFilter::default();
        let timeout = self.poll_timeout();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let t0 = self.t0;
        let now_ns = move || t0.elapsed().as_nanos() as u64;
        // Ends when cancelled; each round is bounded by the poll timeout.
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let polls = self.nodes.iter().map(|&id| {
                let ask = status(id, timeout);
                async move {
                    let r = ask.await;
                    let t = now_ns();
                    match r {
                        Some(s) => Observation::of_status(t, &s),
                        None => Observation::unreachable(t, &node_name(id)),
                    }
                }
            });
            let mut round = futures::future::join_all(polls).await;
            round.sort_by_key(|o| o.time);
            let lines: Vec<Observation> =
                round.into_iter().filter_map(|o| filter.offer(o)).collect();
            write_lines(&mut out, &lines, &self.path)?;
            written.extend(lines);
        }
        let last = filter.flush();
        write_lines(&mut out, &last, &self.path)?;
        written.extend(last);
        Ok(written)
    }
}

fn write_lines(
    out: &mut std::io::BufWriter<std::fs::File>,
    lines: &[Observation],
    path: &Path,
) -> anyhow::Result<()> {
    for o in lines {
        serde_json::to_writer(&mut *out, o)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leader::test_status as status;
    use node::protocol::{Reply, Request, Response, Status};
    use std::sync::{Arc, Mutex};

    fn reach(time: u64, node: &str, role: Role, term: u64, commit: u64) -> Observation {
        Observation {
            time,
            node: node.into(),
            unreachable: false,
            role: Some(role),
            term: Some(term),
            leader: Some("n1".into()),
            commit: Some(commit),
            applied: Some(commit),
        }
    }

    #[test]
    fn filter_writes_kind_changes_at_once_and_progress_once_a_second() {
        let mut f = ChangeFilter::default();
        let s = 1_000_000_000;
        assert!(
            f.offer(reach(0, "n1", Role::Leader, 1, 1)).is_some(),
            "first poll"
        );
        assert!(
            f.offer(reach(s / 10, "n1", Role::Leader, 1, 1)).is_none(),
            "no change"
        );
        assert!(
            f.offer(reach(s / 5, "n1", Role::Leader, 1, 5)).is_none(),
            "progress too soon"
        );
        assert!(
            f.offer(reach(s / 2, "n1", Role::Follower, 2, 6)).is_some(),
            "role change"
        );
        assert!(f.offer(reach(s, "n1", Role::Follower, 2, 9)).is_none());
        assert!(
            f.offer(reach(s * 3 / 2, "n1", Role::Follower, 2, 12))
                .is_some(),
            "a second later"
        );
        assert!(f.offer(Observation::unreachable(s * 2, "n1")).is_some());
        assert!(f.offer(Observation::unreachable(s * 3, "n1")).is_none());
        assert!(
            f.offer(reach(s * 4, "n2", Role::Follower, 2, 12)).is_some(),
            "other node"
        );
        assert!(
            f.offer(reach(s * 4, "n1", Role::Follower, 2, 12)).is_some(),
            "back"
        );
        assert!(f
            .offer(reach(s * 4 + 1, "n1", Role::Follower, 2, 13))
            .is_none());
        let last = f.flush();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].commit, Some(13));
        assert!(f.flush().is_empty());
    }

    #[test]
    fn observation_json_shape_and_torn_last_line() {
        let o = reach(5, "n1", Role::Leader, 3, 120);
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"time": 5, "node": "n1", "role": "leader", "term": 3,
                               "leader": "n1", "commit": 120, "applied": 120})
        );
        let u = serde_json::to_value(Observation::unreachable(7, "n2")).unwrap();
        assert_eq!(
            u,
            serde_json::json!({"time": 7, "node": "n2", "unreachable": true})
        );
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cluster.jsonl");
        std::fs::write(&p, format!("{}\n\n{}\n{{\"time\": 9, \"no", v, u)).unwrap();
        let read = read_observations(&p).unwrap();
        assert_eq!(read, vec![o, Observation::unreachable(7, "n2")]);
        std::fs::write(&p, format!("{{bad\n{v}\n")).unwrap();
        assert!(read_observations(&p).is_err(), "a bad line before the end");
    }

    /// A status server on loopback: answers with the shared status, or never (silent, like a
    /// SIGSTOPped process holding its connections).
    async fn status_server(status: Arc<Mutex<Option<Status>>>) -> SocketAddr {
        node::client::testing::scripted_node(
            move |req: Request| {
                let current = status.lock().unwrap().clone();
                current
                    .map(|st| {
                        let resp = Response {
                            id: req.id,
                            result: Ok(Reply::Status(st)),
                        };
                        serde_json::to_vec(&resp).unwrap()
                    })
                    .into_iter()
                    .collect()
            },
            false,
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn observes_changes_silence_and_refusal_within_bounded_time() {
        let s1 = Arc::new(Mutex::new(Some(status(1, Role::Leader, 1, Some(1)))));
        let s2 = Arc::new(Mutex::new(Some(status(2, Role::Follower, 1, Some(1)))));
        let a1 = status_server(s1.clone()).await;
        let a2 = status_server(s2.clone()).await;
        // A port with nothing listening: connection refused.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("cluster.jsonl");
        let stop = CancellationToken::new();
        let t0 = Instant::now();
        let h = Observer::spawn(
            vec![(1, a1), (2, a2), (3, dead)],
            Duration::from_millis(20),
            path.clone(),
            t0,
            stop.clone(),
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        // n1 goes silent (paused), n2 starts an election.
        *s1.lock().unwrap() = None;
        *s2.lock().unwrap() = Some(status(2, Role::Candidate, 2, None));
        tokio::time::sleep(Duration::from_millis(150)).await;
        *s2.lock().unwrap() = Some(status(2, Role::Leader, 2, Some(2)));
        tokio::time::sleep(Duration::from_millis(150)).await;
        let stopped = Instant::now();
        stop.cancel();
        let written = tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .expect("the observer stops promptly")
            .unwrap()
            .unwrap();
        assert!(stopped.elapsed() < Duration::from_secs(1));
        let read = read_observations(&path).unwrap();
        assert_eq!(read, written);
        let of = |n: &str| read.iter().filter(|o| o.node == n).collect::<Vec<_>>();
        let n1 = of("n1");
        assert!(n1[0].is_leader(), "{n1:?}");
        assert!(n1.last().unwrap().unreachable, "{n1:?}");
        assert_eq!(n1.len(), 2, "no repeated lines while silent: {n1:?}");
        let n2: Vec<_> = of("n2").iter().map(|o| o.role.unwrap()).collect();
        assert_eq!(n2, [Role::Follower, Role::Candidate, Role::Leader]);
        let n3 = of("n3");
        assert_eq!(n3.len(), 1);
        assert!(n3[0].unreachable);
        assert!(read
            .iter()
            .all(|o| o.time <= t0.elapsed().as_nanos() as u64));
    }
}

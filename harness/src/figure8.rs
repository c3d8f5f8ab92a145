//! The Raft paper's Figure 8, replayed on a live cluster.
//!
//! A fixed schedule cannot hit Figure 8: each step must start the moment the previous one is
//! done (a leader elected, an entry received), and those moments move with every run. This
//! nemesis drives the cluster through the figure with partitions and slow links, moving on as
//! the nodes report (their `Status`) that a step happened, and gives up on a step after a
//! bounded wait. With `--op-timeout` longer than the script (a few seconds), the clients
//! whose writes were caught in step (a) are still waiting when those writes commit in (c),
//! so a node that commits them by counting replicas acknowledges writes that (d) then erases:
//! lost writes. A correct node commits them only with an entry of its own term, which then
//! keeps the usurper from winning (d), so nothing is lost.
//!
//! The cast (five nodes or more): `old` leads at the start, `peer` shares its uncommitted
//! entries, `usurper` leads a later term whose entry reaches nobody, and the rest decide.
//! - (a) Only `old` and `peer` talk to each other: `old` appends client writes it cannot commit.
//! - (b) `old` and `peer` are cut off; `usurper` reaches the rest over slow links and the rest
//!   are cut off from each other, so only `usurper` can win. Once it leads, the nemesis sends
//!   it a write (on a key no workload uses) and, once that is in its log, (c) begins, dropping
//!   the write still on the slow links: `usurper` holds an entry of its term that nobody else has.
//! - (c) `usurper` and `peer` are cut off; `old` and the rest talk, the rest's answers to
//!   `old` slowly. Only `old` holds the writes of (a), so only it can win; once the rest hold
//!   them, `old`'s messages to the rest are cut, so the rest never hear what `old` commits.
//!   The slow answers then arrive: `old` counts the writes of (a) as stored on a majority.
//! - (d) `old` and `peer` are cut off; `usurper` and the rest talk. If the rest hold no entry
//!   of `old`'s term, `usurper`'s log looks more up to date than theirs and it wins, replacing
//!   the writes of (a).
//! - Then every link heals.

use std::time::{Duration, Instant};

use anyhow::Context;
use nemesis::partition::Grudge;
use nemesis::schedule::Fault;
use node::protocol::{Operation, Status, WriteId};
use node::raft::NodeId;
use tokio_util::sync::CancellationToken;
use workloads::recorder::{NemesisPhase, Recorder};

use crate::cluster::Cluster;

/// How often the nodes are asked for their status while a step is awaited.
const POLL: Duration = Duration::from_millis(10);
/// How long one status request may take.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// The slow links' delay: long enough for a status poll and a partition change to land
/// while a message is still on its way.
const SLOW_MS: u64 = 250;
/// The key of the nemesis's own write in (b); no workload uses it.
pub const NEMESIS_KEY: &str = "nemesis-figure-8";

/// Who plays which part.
#[derive(Clone, Debug)]
pub struct Cast {
    pub old: NodeId,
    pub peer: NodeId,
    pub usurper: NodeId,
    /// Every other node.
    pub rest: Vec<NodeId>,
}

impl Cast {
    /// The cast of a [`Fault::Figure8`] among `nodes`.
    pub fn new(nodes: &[NodeId], old: NodeId, peer: NodeId, usurper: NodeId) -> Cast {
        let rest = nodes
            .iter()
            .copied()
            .filter(|n| ![old, peer, usurper].contains(n))
            .collect();
        Cast {
            old,
            peer,
            usurper,
            rest,
        }
    }

    fn all(&self) -> Vec<NodeId> {
        let mut v = vec![self.old, self.peer, self.usurper];
        v.extend(&self.rest);
        v
    }
}

/// How far the script got: the step it stopped at, or that it ran to the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reached {
    /// Every step happened.
    Done,
    /// The step (its letter) that did not happen within its bound, or the run ended first.
    GaveUpAt(char),
}

/// A grudge that lets only the listed pairs talk (both ways).
fn only_pairs(nodes: &[NodeId], pairs: &[(NodeId, NodeId)]) -> Grudge {
    let mut g = Grudge::new();
    for &a in nodes {
        for &b in nodes {
            let talks = pairs.contains(&(a, b)) || pairs.contains(&(b, a));
            if a != b && !talks {
                g.drop_traffic(b, a);
            }
        }
    }
    g
}

fn all_pairs(group: &[NodeId]) -> Vec<(NodeId, NodeId)> {
    let mut v = Vec::new();
    for (i, &a) in group.iter().enumerate() {
        for &b in &group[i + 1..] {
            v.push((a, b));
        }
    }
    v
}

/// Runs the script once; every fault it applied is healed (and recorded) before it returns.
pub async fn run(
    cluster: &Cluster,
    recorder: &Recorder,
    cast: &Cast,
    deadline: Instant,
    stop: &CancellationToken,
) -> anyhow::Result<Reached> {
    let mut script = Script {
        cluster,
        recorder,
        cast,
        deadline,
        stop,
        active: Vec::new(),
    };
    let reached = script.play().await;
    let healed = script.heal().await;
    let reached = reached?;
    healed?;
    Ok(reached)
}

struct Script<'a> {
    cluster: &'a Cluster,
    recorder: &'a Recorder,
    cast: &'a Cast,
    deadline: Instant,
    stop: &'a CancellationToken,
    active: Vec<(Fault, serde_json::Value)>,
}

impl Script<'_> {
    async fn play(&mut self) -> anyhow::Result<Reached> {
        let c = self.cast.clone();
        let nodes = c.all();
        let Some(start) = self.status(c.old).await else {
            return Ok(Reached::GaveUpAt('a'));
        };
        if start.role != "leader" {
            return Ok(Reached::GaveUpAt('a'));
        }

        // (a) old and peer alone: old appends writes it cannot commit.
        self.step(vec![partition(
            "figure-8 (a)",
            only_pairs(&nodes, &[(c.old, c.peer)]),
        )])
        .await?;
        let step_start = Instant::now();
        let base = start.commit_index;
        let got = self
            .wait_for(Duration::from_secs(2), |s| {
                s.node(c.peer).is_some_and(|p| p.last_log_index >= base + 3)
                    && step_start.elapsed() >= Duration::from_millis(200)
            })
            .await;
        if got.is_none() {
            return Ok(Reached::GaveUpAt('a'));
        }
        let Some(old_now) = self.status(c.old).await else {
            return Ok(Reached::GaveUpAt('a'));
        };
        let x_end = old_now.last_log_index;

        // (b) usurper reaches the rest over slow links; the rest cannot reach each other.
        let star: Vec<(NodeId, NodeId)> = c.rest.iter().map(|&r| (c.usurper, r)).collect();
        self.step(vec![
            partition("figure-8 (b)", only_pairs(&nodes, &star)),
            Fault::SlowLinks {
                links: star.clone(),
                fixed_ms: SLOW_MS,
            },
        ])
        .await?;
        let Some(won) = self
            .wait_for(Duration::from_secs(4), |s| {
                s.node(c.usurper).is_some_and(|u| u.role == "leader")
            })
            .await
        else {
            return Ok(Reached::GaveUpAt('b'));
        };
        let before = won.node(c.usurper).map_or(0, |u| u.last_log_index);
        self.send_write(c.usurper);
        if self
            .wait_for(Duration::from_secs(1), |s| {
                s.node(c.usurper).is_some_and(|u| u.last_log_index > before)
            })
            .await
            .is_none()
        {
            return Ok(Reached::GaveUpAt('b'));
        }

        // (c) old and the rest; the rest answer old slowly. Once the rest hold old's
        // entries, old's messages to them are cut too.
        let mut talk = all_pairs(&c.rest);
        talk.extend(c.rest.iter().map(|&r| (c.old, r)));
        let answers: Vec<(NodeId, NodeId)> = c.rest.iter().map(|&r| (r, c.old)).collect();
        self.step(vec![
            partition("figure-8 (c)", only_pairs(&nodes, &talk)),
            Fault::SlowLinks {
                links: answers,
                fixed_ms: SLOW_MS,
            },
        ])
        .await?;
        let rest = c.rest.clone();
        if self
            .wait_for(Duration::from_secs(4), |s| {
                rest.iter()
                    .all(|&r| s.node(r).is_some_and(|n| n.last_log_index >= x_end))
            })
            .await
            .is_none()
        {
            return Ok(Reached::GaveUpAt('c'));
        }
        let mut mute = Grudge::new();
        for &r in &c.rest {
            mute.drop_traffic(r, c.old);
        }
        self.add(partition("figure-8 (c) old muted", mute)).await?;
        if self
            .wait_for(Duration::from_secs(2), |s| {
                s.node(c.old).is_some_and(|o| o.commit_index >= x_end)
            })
            .await
            .is_none()
        {
            return Ok(Reached::GaveUpAt('c'));
        }

        // (d) usurper and the rest.
        let mut talk = all_pairs(&c.rest);
        talk.extend(c.rest.iter().map(|&r| (c.usurper, r)));
        self.step(vec![partition("figure-8 (d)", only_pairs(&nodes, &talk))])
            .await?;
        let mut deciders = c.rest.clone();
        deciders.push(c.usurper);
        // Decided: one of them leads and has committed its log (up to where old's ended).
        let decided = self
            .wait_for(Duration::from_secs(4), |s| {
                deciders.iter().any(|&d| {
                    s.node(d).is_some_and(|n| {
                        n.role == "leader" && n.commit_index >= x_end.min(n.last_log_index)
                    })
                })
            })
            .await;
        if decided.is_none() {
            return Ok(Reached::GaveUpAt('d'));
        }
        // Let the decision reach every node of the majority before healing.
        self.sleep(Duration::from_millis(300)).await;
        Ok(Reached::Done)
    }

    /// Heals what is active and applies `parts` (each recorded as a start).
    async fn step(&mut self, parts: Vec<Fault>) -> anyhow::Result<()> {
        self.heal().await?;
        for p in parts {
            self.add(p).await?;
        }
        Ok(())
    }

    async fn add(&mut self, part: Fault) -> anyhow::Result<()> {
        let desc = part.describe();
        self.recorder.nemesis(NemesisPhase::Start, desc.clone());
        let applied = self.cluster.apply(&part).await;
        self.active.push((part, desc.clone()));
        applied.with_context(|| format!("applying {desc}"))
    }

    async fn heal(&mut self) -> anyhow::Result<()> {
        let mut first_err = None;
        while let Some((part, desc)) = self.active.pop() {
            let r = self.cluster.heal(&part).await;
            self.recorder.nemesis(NemesisPhase::Stop, desc.clone());
            if let Err(e) = r {
                first_err.get_or_insert(e.context(format!("healing {desc}")));
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn status(&self, id: NodeId) -> Option<Status> {
        self.cluster.status(id, STATUS_TIMEOUT).await
    }

    /// Polls every node until `done` holds (bounded by `bound`, the run's deadline and stop).
    async fn wait_for(
        &self,
        bound: Duration,
        done: impl Fn(&Statuses) -> bool,
    ) -> Option<Statuses> {
        let until = (Instant::now() + bound).min(self.deadline);
        let ids = self.cast.all();
        while Instant::now() < until && !self.stop.is_cancelled() {
            let asks = ids.iter().map(|&id| self.status(id));
            let got: Vec<Status> = futures::future::join_all(asks)
                .await
                .into_iter()
                .flatten()
                .collect();
            let s = Statuses(got);
            if done(&s) {
                return Some(s);
            }
            self.sleep(POLL).await;
        }
        None
    }

    async fn sleep(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.stop.cancelled() => {}
        }
    }

    /// Sends one write to `id` without waiting for its answer: it only needs to be in the
    /// leader's log (it cannot commit before the next step cuts the leader off).
    fn send_write(&self, id: NodeId) {
        let Ok(addr) = self.cluster.client_addr(id) else {
            return;
        };
        let op = Operation::Put {
            key: NEMESIS_KEY.into(),
            value: 8,
            write_id: WriteId {
                client: u64::MAX,
                seq: rand::random(),
            },
        };
        tokio::spawn(async move {
            let _ = nemesis::admin::request(addr, op, Duration::from_millis(500)).await;
        });
    }
}

fn partition(shape: &'static str, grudge: Grudge) -> Fault {
    Fault::Partition { shape, grudge }
}

/// The statuses of one poll.
pub struct Statuses(Vec<Status>);

impl Statuses {
    fn node(&self, id: NodeId) -> Option<&Status> {
        self.0.iter().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pairs_cuts_every_other_link() {
        let nodes = [1, 2, 3, 4, 5];
        let g = only_pairs(&nodes, &[(1, 2), (3, 4)]);
        for a in nodes {
            for b in nodes {
                if a == b {
                    continue;
                }
                let talks = [(1, 2), (2, 1), (3, 4), (4, 3)].contains(&(a, b));
                assert_eq!(!g.is_cut(a, b), talks, "{a} -> {b}");
            }
        }
    }

    #[test]
    fn cast_puts_everyone_else_in_the_rest() {
        let c = Cast::new(&[1, 2, 3, 4, 5, 6], 3, 1, 6);
        assert_eq!(c.rest, vec![2, 4, 5]);
        let mut all = c.all();
        all.sort();
        assert_eq!(all, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(all_pairs(&[1, 2, 3]), vec![(1, 2), (1, 3), (2, 3)]);
    }
}

//! Scripted nemeses: sequences of partitions and slow links that move to the next step the
//! moment the nodes report (through `Status`) that the previous one happened.
//!
//! A fixed schedule cannot hit the interleavings some protocol mistakes need (the Raft paper's
//! Figure 8, a follower left with a stale suffix, a deposed leader with a long stale tail
//! standing for election, a leader cut off before its first entry commits): each step must
//! start when a leader has been elected or an entry has arrived, and those moments move with
//! every run. Each step waits a
//! bounded time; a step that does not happen ends the script early (it is retried at the next
//! draw), and whatever happens, every fault applied is healed and recorded before returning.
//! Each part is recorded as its own nemesis start/stop (a partition with its grudge, a delay
//! with its links), so the history and the charts show exactly what was done.

pub mod deposed_tail;
pub mod figure8;
pub mod new_leader_isolated;
pub mod stale_tail;

use node::raft::Role;
use std::time::{Duration, Instant};

use nemesis::partition::Grudge;
use nemesis::schedule::{Fault, Script};
use node::protocol::Status;
use node::raft::NodeId;
use tokio_util::sync::CancellationToken;
use workloads::recorder::Recorder;

use super::active::ActiveFaults;
use crate::system::{self, System};

/// How often the nodes are asked for their status while a step is awaited.
const POLL: Duration = Duration::from_millis(10);
/// How long one status request may take.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// The slow links' delay: long enough for a status poll and a partition change to land
/// while a message is still on its way.
pub const SLOW_MS: u64 = 250;
/// The key of the scripts' own writes; no workload uses it.
pub const NEMESIS_KEY: &str = "nemesis-script";

/// How far a script got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reached {
    /// Every step happened.
    Done,
    /// The step (its letter) that did not happen within its bound, or the run ended first.
    GaveUpAt(char),
}

/// Plays `script` once with `old` (the leader when it was drawn) and `peer`; every fault it
/// applied is healed (and recorded) before it returns.
pub async fn run(
    cluster: &dyn System,
    recorder: &Recorder,
    script: Script,
    old: NodeId,
    peer: NodeId,
    deadline: Instant,
    stop: &CancellationToken,
) -> anyhow::Result<Reached> {
    let mut stage = Stage {
        cluster,
        deadline,
        stop,
        active: ActiveFaults::new(cluster, recorder),
    };
    let reached = match script {
        Script::Figure8 => figure8::play(&mut stage, old, peer).await,
        Script::StaleTail => stale_tail::play(&mut stage, old, peer).await,
        Script::DeposedTail => deposed_tail::play(&mut stage, old, peer).await,
        Script::NewLeaderIsolated => new_leader_isolated::play(&mut stage, old).await,
    };
    let healed = stage.active.heal().await;
    let reached = reached?;
    healed?;
    Ok(reached)
}

/// What a script acts through: the cluster, the history, and the faults it has applied.
pub struct Stage<'a> {
    cluster: &'a dyn System,
    deadline: Instant,
    stop: &'a CancellationToken,
    active: ActiveFaults<'a>,
}

impl Stage<'_> {
    /// Every node of the cluster.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.cluster.ids()
    }

    /// Heals what is active and applies `parts` (each recorded as a start).
    pub async fn step(&mut self, parts: Vec<Fault>) -> anyhow::Result<()> {
        self.active.heal().await?;
        for p in &parts {
            self.active.apply(p).await?;
        }
        Ok(())
    }

    /// Applies one more fault on top of the active ones.
    pub async fn add(&mut self, part: Fault) -> anyhow::Result<()> {
        self.active.apply(&part).await
    }

    /// What node `id` reports, if it answers.
    pub async fn status(&self, id: NodeId) -> Option<Status> {
        self.cluster.status(id, STATUS_TIMEOUT).await
    }

    /// What every node that answers reports now.
    pub async fn poll(&self) -> Statuses {
        Statuses(system::statuses(self.cluster, STATUS_TIMEOUT).await)
    }

    /// Polls every node until `done` holds; `None` after `bound` (or the run's deadline, or
    /// a stop).
    pub async fn wait_for(
        &self,
        bound: Duration,
        done: impl Fn(&Statuses) -> bool,
    ) -> Option<Statuses> {
        let until = (Instant::now() + bound).min(self.deadline);
        while Instant::now() < until && !self.stop.is_cancelled() {
            let s = self.poll().await;
            if done(&s) {
                return Some(s);
            }
            self.sleep(POLL).await;
        }
        None
    }

    /// Sleeps `d`, or less if the run is stopped.
    pub async fn sleep(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.stop.cancelled() => {}
        }
    }

    /// Sends one write to `id` without waiting for its answer: a script only needs it in
    /// that leader's log.
    pub fn send_write(&self, id: NodeId) {
        self.cluster.send_write(id, NEMESIS_KEY);
    }

    /// Waits (bounded) until `id` leads, sends it one write, and waits until that write is in
    /// its log: a leader holding an entry of its own term. False if either did not happen.
    pub async fn lead_then_append(&self, id: NodeId) -> bool {
        let Some(won) = self
            .wait_for(Duration::from_secs(4), |s| {
                s.node(id).is_some_and(|n| n.role == Role::Leader)
            })
            .await
        else {
            return false;
        };
        let before = won.node(id).map_or(0, |n| n.last_log_index);
        self.send_write(id);
        self.wait_for(Duration::from_secs(1), |s| {
            s.node(id).is_some_and(|n| n.last_log_index > before)
        })
        .await
        .is_some()
    }

    /// Sends `id` one write and waits (bounded) until `id` has appended it and counts it
    /// committed: when `id` leads, an entry of its own term committed. The commit index that
    /// covers the write; `None` if either did not happen.
    pub async fn append_and_commit(&self, id: NodeId) -> Option<u64> {
        let before = self.status(id).await?.last_log_index;
        self.send_write(id);
        let appended = self
            .wait_for(Duration::from_secs(1), |s| {
                s.node(id).is_some_and(|n| n.last_log_index > before)
            })
            .await?;
        let index = appended.node(id)?.last_log_index;
        let committed = self
            .wait_for(Duration::from_secs(2), |s| {
                s.node(id).is_some_and(|n| n.commit_index >= index)
            })
            .await?;
        committed.node(id).map(|n| n.commit_index)
    }

    /// Of `candidates`, the one with the longest log (the first of equals), so that the
    /// others, whose logs are no longer, will vote for it.
    pub async fn longest_log(&self, candidates: &[NodeId]) -> Option<NodeId> {
        let poll = self.poll().await;
        let mut best: Option<(u64, NodeId)> = None;
        for &c in candidates {
            let s = poll.node(c)?;
            if best.is_none_or(|(len, _)| s.last_log_index > len) {
                best = Some((s.last_log_index, c));
            }
        }
        best.map(|(_, c)| c)
    }
}

/// The statuses of one poll.
pub struct Statuses(Vec<Status>);

impl Statuses {
    /// What node `id` reported, if it answered.
    pub fn node(&self, id: NodeId) -> Option<&Status> {
        self.0.iter().find(|s| s.id == id)
    }

    /// Of `among`, a node that reports itself leader in a term above `term` (the highest
    /// such term if several do).
    pub fn leader_above(&self, among: &[NodeId], term: u64) -> Option<&Status> {
        among
            .iter()
            .filter_map(|&id| self.node(id))
            .filter(|n| n.role == Role::Leader && n.term > term)
            .max_by_key(|n| n.term)
    }

    /// The longest log of `among` (0 when none answered).
    pub fn longest_of(&self, among: &[NodeId]) -> u64 {
        among
            .iter()
            .filter_map(|&id| self.node(id))
            .map(|n| n.last_log_index)
            .max()
            .unwrap_or(0)
    }
}

/// A partition part named `shape`.
pub fn partition(shape: &'static str, grudge: Grudge) -> Fault {
    Fault::Partition { shape, grudge }
}

/// A grudge under which only the listed pairs talk (both ways).
pub fn only_pairs(nodes: &[NodeId], pairs: &[(NodeId, NodeId)]) -> Grudge {
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

/// Every pair within `group`.
pub fn all_pairs(group: &[NodeId]) -> Vec<(NodeId, NodeId)> {
    let mut v = Vec::new();
    for (i, &a) in group.iter().enumerate() {
        for &b in &group[i + 1..] {
            v.push((a, b));
        }
    }
    v
}

/// `nodes` without `but`.
pub fn others(nodes: &[NodeId], but: &[NodeId]) -> Vec<NodeId> {
    nodes.iter().copied().filter(|n| !but.contains(n)).collect()
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
    fn pairs_and_others() {
        assert_eq!(all_pairs(&[1, 2, 3]), vec![(1, 2), (1, 3), (2, 3)]);
        assert_eq!(others(&[1, 2, 3, 4, 5, 6], &[3, 1, 6]), vec![2, 4, 5]);
    }
}

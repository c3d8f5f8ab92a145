//! A leader cut off right after winning, before any entry of its term commits, replayed on a
//! live cluster.
//!
//! A new leader knows which of its entries are committed only once an entry of its own term
//! (its no-op) commits: until then its commit index may lag what the previous leader
//! committed, and nothing proves it still leads. It must answer no read from its state in that
//! window: a read-index read waits for the no-op, a lease read has no lease (no majority has
//! acknowledged a heartbeat of its term), a log read cannot commit. One that does answer, cut
//! off while the others elect again and commit, serves stale reads. The workload sends reads of
//! every read path to every node, so the cut-off leader gets them.
//!
//! The cast (three nodes or more): `old` leads at the start; `favourite` (of the others, the
//! one with the longest log, so that the rest vote for it) is the likely new leader.
//! - (a) `old` is cut off from everyone, and the rest from each other; `favourite` reaches
//!   the rest at once, their answers reach it after [`ANSWER_MS`]. Its requests for votes and
//!   its no-op arrive at once, the votes and the acknowledgements late: after winning it
//!   leads for about [`ANSWER_MS`] with its no-op uncommitted, a window the status polls (every
//!   10 ms) see as a leader of a new term whose commit index is below its last log index.
//!   (Slowing both ways would make an election's round trip as long as an election timeout,
//!   and the candidates would split the votes again and again.) With three nodes the other
//!   elector may win instead; its no-op then reaches `favourite` late: the same window.
//! - (b) At that moment the new leader is cut off from everyone, both ways, and `old` rejoins
//!   the others at full speed: they elect again while the cut-off leader still believes it
//!   leads. Held for [`HOLD`]; the step happened only if the cut-off leader committed nothing
//!   meanwhile.
//! - (c) Every link heals. Done once the cut-off leader, back among the others, commits past
//!   the point it was cut off at: its uncommitted no-op was replaced or committed by a leader
//!   of the others.

use node::raft::Role;
use std::time::Duration;

use nemesis::schedule::Fault;
use node::raft::{node_name, NodeId};

use super::{all_pairs, only_pairs, others, partition, Reached, Stage};

/// How late the answers to the likely new leader arrive: the window in which it leads with its
/// no-op uncommitted. Ten status polls and more fit in it; it is well below the node's
/// smallest election timeout (300 ms), so that an election's round trips (a pre-vote, then a
/// vote) rarely overlap a rival's and split the votes.
pub const ANSWER_MS: u64 = 120;

/// The node's default largest election timeout, ms (`node --election-timeout-max-ms`).
const ELECTION_TIMEOUT_MAX_MS: u64 = 600;

/// How long the new leader stays cut off: three election timeouts, time for it to notice it
/// lost its majority and for the others to elect a leader and commit under it.
pub const HOLD: Duration = Duration::from_millis(3 * ELECTION_TIMEOUT_MAX_MS);

/// Plays the script once (see the module documentation).
pub async fn play(stage: &mut Stage<'_>, old: NodeId) -> anyhow::Result<Reached> {
    let nodes = stage.nodes();
    let Some(start) = stage.status(old).await.filter(|s| s.role == Role::Leader) else {
        return Ok(Reached::GaveUpAt('a'));
    };
    let electors = others(&nodes, &[old]);

    // (a) old cut off; favourite reaches the rest at once, their answers come slowly.
    let Some(favourite) = stage.longest_log(&electors).await else {
        return Ok(Reached::GaveUpAt('a'));
    };
    let rest = others(&electors, &[favourite]);
    let star: Vec<(NodeId, NodeId)> = rest.iter().map(|&r| (favourite, r)).collect();
    let answers: Vec<(NodeId, NodeId)> = rest.iter().map(|&r| (r, favourite)).collect();
    stage
        .step(vec![
            partition("new-leader-isolated (a)", only_pairs(&nodes, &star)),
            Fault::SlowLinks {
                links: answers,
                fixed_ms: ANSWER_MS,
            },
        ])
        .await?;
    // The first poll that shows the new leader comes within a poll interval of its win, well
    // before the slow acknowledgements of its no-op can arrive: its commit index must then be
    // below its last log index. Waiting for a later poll showing that could pick a moment after
    // the no-op committed and a client's write was appended.
    let Some(won) = stage
        .wait_for(Duration::from_secs(6), |s| {
            s.leader_above(&electors, start.term).is_some()
        })
        .await
    else {
        return Ok(Reached::GaveUpAt('a'));
    };
    let Some((fresh, cut_at)) = won
        .leader_above(&electors, start.term)
        .filter(|n| n.commit_index < n.last_log_index)
        .map(|n| (n.id, n.commit_index))
    else {
        return Ok(Reached::GaveUpAt('a'));
    };
    if let Some(n) = won.node(fresh) {
        tracing::info!(
            "new-leader-isolated: {} leads term {} with its log to {} committed only to {}: \
             cut off",
            node_name(fresh),
            n.term,
            n.last_log_index,
            n.commit_index
        );
    }

    // (b) the new leader cut off from everyone; old back among the others.
    stage
        .step(vec![isolate("new-leader-isolated (b)", &nodes, fresh)])
        .await?;
    stage.sleep(HOLD).await;
    // Cut off, it cannot have committed anything; if it did, a frame slipped through
    // before the cut and the window was missed.
    let kept = stage
        .status(fresh)
        .await
        .is_some_and(|n| n.commit_index == cut_at);
    if !kept {
        return Ok(Reached::GaveUpAt('b'));
    }

    // (c) everything heals; the cut-off leader must catch up with the others.
    stage.step(vec![]).await?;
    let caught_up = stage
        .wait_for(Duration::from_secs(4), |s| {
            s.node(fresh).is_some_and(|n| n.commit_index > cut_at)
        })
        .await;
    if caught_up.is_none() {
        return Ok(Reached::GaveUpAt('c'));
    }
    Ok(Reached::Done)
}

/// A partition named `shape` cutting `target` off from every other node, both ways.
fn isolate(shape: &'static str, nodes: &[NodeId], target: NodeId) -> Fault {
    let rest = others(nodes, &[target]);
    partition(shape, only_pairs(nodes, &all_pairs(&rest)))
}

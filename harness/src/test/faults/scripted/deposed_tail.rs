//! A deposed leader with a long stale tail stands for election, replayed on a live cluster.
//!
//! Raft's election restriction (§5.4.1) compares the last entries' terms first and the lengths
//! only between equal terms. A deposed leader that kept appending while cut off holds a log
//! longer than anyone's but of an older last term; a node that compared lengths first (or
//! only) would vote for it, and its tail would then overwrite an entry the newer leader
//! committed: acknowledged writes lost. A correct node refuses, one of the nodes holding the
//! newer term wins, and the deposed leader's tail is truncated.
//!
//! The cast (three nodes or more): `old` leads at the start; with five nodes or more `peer`
//! stays on `old`'s side, so that the stale tail has a second holder (and a second vote) that
//! a majority still outnumbers; `usurper` is the node the majority elects; the rest decide.
//! - (a) `old` (with `peer` from five nodes) is cut off from the majority. The nemesis sends it
//!   [`TAIL`] writes at once (on a key no workload uses), and the clients that reach it add
//!   theirs: it appends them all while it still believes it leads (a cut-off leader steps down
//!   after one to two minimum election timeouts), and none can commit.
//! - (b) Same partition: the majority elects `usurper`, which commits a write of its own term.
//!   Then `usurper`'s messages reach `old`'s side, one way: `old` takes `usurper`'s term (as a
//!   follower that heard a leader) while its tail stays, since `usurper`'s appends do not
//!   match it and `old`'s refusals never reach `usurper` to walk it back. `old` then stands in
//!   (c) at a term the others accept, so that only the logs decide; without this, `old`'s
//!   requests at its old term are refused on the term alone. The step happened only if `old`
//!   has taken that term and its log is still longer than every log of the majority side: the
//!   tail is long, its last term old.
//! - (c) `usurper` is cut off from everyone and `old`'s side rejoins the rest: `old`, with the
//!   longest log, stands against nodes holding `usurper`'s newer term. Done once a node of a
//!   newer term than `usurper`'s leads and `old` has committed past that leader's log, i.e.
//!   its stale tail was replaced. If `old` wins instead (a correct Raft never lets it), this is
//!   logged and the script goes on: the checkers then find the committed writes it erases.

use node::raft::Role;
use std::time::Duration;

use nemesis::partition::Grudge;
use node::raft::{node_name, NodeId};

use super::{all_pairs, only_pairs, others, partition, Reached, Stage};

/// How many writes the nemesis sends the cut-off leader: tens of entries, more than the
/// majority side appends (a no-op, the nemesis's write, the clients' writes) between its
/// election and step (c).
pub const TAIL: u64 = 30;

/// The smallest cluster in which `peer` can stay with `old` and the others still make a
/// majority (2 of 5).
const PEER_STAYS_FROM: usize = 5;

/// Plays the script once (see the module documentation).
pub async fn play(stage: &mut Stage<'_>, old: NodeId, peer: NodeId) -> anyhow::Result<Reached> {
    let nodes = stage.nodes();
    let Some(start) = stage.status(old).await.filter(|s| s.role == Role::Leader) else {
        return Ok(Reached::GaveUpAt('a'));
    };
    let minority = if nodes.len() >= PEER_STAYS_FROM {
        vec![old, peer]
    } else {
        vec![old]
    };
    let majority = others(&nodes, &minority);

    // (a) old's side cut off from the majority; old fills its tail.
    let mut talk = all_pairs(&minority);
    talk.extend(all_pairs(&majority));
    stage
        .step(vec![partition(
            "deposed-tail (a)",
            only_pairs(&nodes, &talk),
        )])
        .await?;
    for _ in 0..TAIL {
        stage.send_write(old);
    }
    let tail_end = start.last_log_index + TAIL;
    let filled = stage
        .wait_for(Duration::from_secs(1), |s| {
            s.node(old).is_some_and(|n| n.last_log_index >= tail_end)
        })
        .await;
    if filled.is_none() {
        return Ok(Reached::GaveUpAt('a'));
    }

    // (b) the majority elects usurper, which commits an entry of its term.
    let Some(elected) = stage
        .wait_for(Duration::from_secs(4), |s| {
            s.leader_above(&majority, start.term).is_some()
        })
        .await
    else {
        return Ok(Reached::GaveUpAt('b'));
    };
    let Some(usurper) = elected.leader_above(&majority, start.term).map(|n| n.id) else {
        return Ok(Reached::GaveUpAt('b'));
    };
    if stage.append_and_commit(usurper).await.is_none() {
        return Ok(Reached::GaveUpAt('b'));
    }
    // Then old's side hears usurper (one way), so that old takes usurper's term as a follower
    // and stands in (c) at a term the others accept: only the logs then decide. Usurper's
    // appends do not match old's tail, and old's refusals do not reach it, so the tail stays.
    stage
        .step(vec![partition(
            "deposed-tail (b) old hears usurper",
            hears(&nodes, &talk, usurper, &minority),
        )])
        .await?;
    let Some(newer_term) = stage.status(usurper).await.map(|u| u.term) else {
        return Ok(Reached::GaveUpAt('b'));
    };
    let Some(shape) = stage
        .wait_for(Duration::from_secs(1), |s| {
            s.node(old).is_some_and(|n| n.term >= newer_term)
        })
        .await
    else {
        return Ok(Reached::GaveUpAt('b'));
    };
    let (Some(o), Some(u)) = (shape.node(old), shape.node(usurper)) else {
        return Ok(Reached::GaveUpAt('b'));
    };
    let majority_end = shape.longest_of(&majority);
    if o.last_log_index <= majority_end || u.role != Role::Leader || u.term != newer_term {
        tracing::info!(
            "deposed-tail: {}'s log (to {}) is no longer than the majority's (to {}), or {} \
             no longer leads term {newer_term}: step (c) skipped",
            node_name(old),
            o.last_log_index,
            majority_end,
            node_name(usurper),
        );
        return Ok(Reached::GaveUpAt('b'));
    }
    tracing::info!(
        "deposed-tail: {} (last led term {}) holds entries to {}, the majority's logs end by \
         {majority_end}; {} leads term {newer_term} and has committed to {}",
        node_name(old),
        start.term,
        o.last_log_index,
        node_name(usurper),
        u.commit_index
    );

    // (c) usurper cut off; old (with its longest log, of an older last term) campaigns.
    let rest = others(&nodes, &[usurper]);
    stage
        .step(vec![partition(
            "deposed-tail (c)",
            only_pairs(&nodes, &all_pairs(&rest)),
        )])
        .await?;
    let Some(won) = stage
        .wait_for(Duration::from_secs(4), |s| {
            s.leader_above(&rest, newer_term).is_some()
        })
        .await
    else {
        return Ok(Reached::GaveUpAt('c'));
    };
    let Some((winner, win_end)) = won
        .leader_above(&rest, newer_term)
        .map(|n| (n.id, n.last_log_index))
    else {
        return Ok(Reached::GaveUpAt('c'));
    };
    if minority.contains(&winner) {
        tracing::warn!(
            "deposed-tail: {}, holding the stale tail of term {}, won against nodes \
             holding term {newer_term}: the election restriction did not hold",
            node_name(winner),
            start.term
        );
    }
    // old has dropped its tail once it commits past the winner's log as it was at the win.
    stage.send_write(winner);
    let repaired = stage
        .wait_for(Duration::from_secs(3), |s| {
            s.node(old).is_some_and(|n| n.commit_index > win_end)
        })
        .await;
    if repaired.is_none() {
        return Ok(Reached::GaveUpAt('c'));
    }
    Ok(Reached::Done)
}

/// A grudge under which only the `talk` pairs talk (both ways), and `speaker` is heard by the
/// `listeners` without hearing them.
fn hears(
    nodes: &[NodeId],
    talk: &[(NodeId, NodeId)],
    speaker: NodeId,
    listeners: &[NodeId],
) -> Grudge {
    let mut g = Grudge::new();
    for (from, to) in only_pairs(nodes, talk).cut_links().collect::<Vec<_>>() {
        if !(from == speaker && listeners.contains(&to)) {
            g.drop_traffic(to, from);
        }
    }
    g
}

//! The Raft paper's Figure 8, replayed on a live cluster.
//!
//! With `--op-timeout` longer than the script (a few seconds), the clients
//! whose writes were caught in step (a) are still waiting when those writes commit in (c),
//! so a node that commits them by counting replicas acknowledges writes that (d) then erases:
//! lost writes. A correct node commits them only with an entry of its own term, which then
//! keeps the usurper from winning (d), so nothing is lost.
//!
//! The cast (five nodes or more): `old` leads at the start, `peer` shares its uncommitted
//! entries, `usurper` (of the others, the one with the longest log, so that the rest vote for
//! it) leads a later term whose entry reaches nobody, and the rest decide.
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
//!   the writes of (a). The nemesis then sends the winner a write and waits until it commits,
//!   so that the outcome is settled on a majority.
//! - Then every link heals.

use node::raft::Role;
use std::time::Duration;

use nemesis::partition::Grudge;
use nemesis::schedule::Fault;
use node::raft::NodeId;

use super::{all_pairs, only_pairs, others, partition, Reached, Stage, SLOW_MS};

/// Plays the script once (see the module documentation).
pub async fn play(stage: &mut Stage<'_>, old: NodeId, peer: NodeId) -> anyhow::Result<Reached> {
    let nodes = stage.nodes();
    let Some(start) = stage.status(old).await.filter(|s| s.role == Role::Leader) else {
        return Ok(Reached::GaveUpAt('a'));
    };

    // (a) old and peer alone: old appends writes it cannot commit.
    stage
        .step(vec![partition(
            "figure-8 (a)",
            only_pairs(&nodes, &[(old, peer)]),
        )])
        .await?;
    let began = std::time::Instant::now();
    let base = start.commit_index;
    let got = stage
        .wait_for(Duration::from_secs(2), |s| {
            s.node(peer).is_some_and(|p| p.last_log_index >= base + 3)
                && began.elapsed() >= Duration::from_millis(200)
        })
        .await;
    if got.is_none() {
        return Ok(Reached::GaveUpAt('a'));
    }
    let Some(old_now) = stage.status(old).await else {
        return Ok(Reached::GaveUpAt('a'));
    };
    let x_end = old_now.last_log_index;
    let Some(usurper) = stage.longest_log(&others(&nodes, &[old, peer])).await else {
        return Ok(Reached::GaveUpAt('b'));
    };
    let rest = others(&nodes, &[old, peer, usurper]);

    // (b) usurper reaches the rest over slow links; the rest cannot reach each other.
    let star: Vec<(NodeId, NodeId)> = rest.iter().map(|&r| (usurper, r)).collect();
    stage
        .step(vec![
            partition("figure-8 (b)", only_pairs(&nodes, &star)),
            Fault::SlowLinks {
                links: star.clone(),
                fixed_ms: SLOW_MS,
            },
        ])
        .await?;
    if !stage.lead_then_append(usurper).await {
        return Ok(Reached::GaveUpAt('b'));
    }

    // (c) old and the rest; the rest answer old slowly. Once the rest hold old's entries,
    // old's messages to them are cut too.
    let mut talk = all_pairs(&rest);
    talk.extend(rest.iter().map(|&r| (old, r)));
    let answers: Vec<(NodeId, NodeId)> = rest.iter().map(|&r| (r, old)).collect();
    stage
        .step(vec![
            partition("figure-8 (c)", only_pairs(&nodes, &talk)),
            Fault::SlowLinks {
                links: answers,
                fixed_ms: SLOW_MS,
            },
        ])
        .await?;
    if stage
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
    for &r in &rest {
        mute.drop_traffic(r, old);
    }
    stage.add(partition("figure-8 (c) old muted", mute)).await?;
    if stage
        .wait_for(Duration::from_secs(2), |s| {
            s.node(old).is_some_and(|o| o.commit_index >= x_end)
        })
        .await
        .is_none()
    {
        return Ok(Reached::GaveUpAt('c'));
    }

    // (d) usurper and the rest.
    let mut talk = all_pairs(&rest);
    talk.extend(rest.iter().map(|&r| (usurper, r)));
    stage
        .step(vec![partition("figure-8 (d)", only_pairs(&nodes, &talk))])
        .await?;
    let mut deciders = rest.clone();
    deciders.push(usurper);
    let Some(led) = stage
        .wait_for(Duration::from_secs(4), |s| {
            deciders
                .iter()
                .any(|&d| s.node(d).is_some_and(|n| n.role == Role::Leader))
        })
        .await
    else {
        return Ok(Reached::GaveUpAt('d'));
    };
    let Some((leader, before)) = deciders.iter().find_map(|&d| {
        led.node(d)
            .filter(|n| n.role == Role::Leader)
            .map(|n| (d, n.last_log_index))
    }) else {
        return Ok(Reached::GaveUpAt('d'));
    };
    // An entry of the decider's own term, committed on the majority, settles the outcome:
    // without one (a leader with the bug appends no no-op), `old`'s later entries could make
    // it look more up to date once the links heal.
    stage.send_write(leader);
    let settled = stage
        .wait_for(Duration::from_secs(3), |s| {
            s.node(leader).is_some_and(|n| n.commit_index > before)
        })
        .await;
    if settled.is_none() {
        return Ok(Reached::GaveUpAt('d'));
    }
    // Let the decision reach every node of the majority before healing.
    stage.sleep(Duration::from_millis(200)).await;
    Ok(Reached::Done)
}

//! A follower left holding a stale suffix, replayed on a live cluster.
//!
//! A follower whose log conflicts with the leader's must drop its conflicting entry and
//! everything after it (Raft's AppendEntries rule 3). One that only overwrites the entries the
//! leader sent keeps a suffix of the old term behind them; when a leader that holds that same
//! suffix appends after it, the consistency check passes on the stale entry, and the follower
//! commits a log that no leader ever had. With a `follower` read path and the set workload, the
//! follower's reads then miss acknowledged adds. A correct follower truncates, fails the
//! consistency check, and is repaired.
//!
//! The cast (five nodes or more): `old` leads at the start, `peer` (the follower that will
//! hold the stale suffix) shares its uncommitted entries, `usurper` (of the others, the one
//! with the longest log) leads a term in between, and the rest vote.
//! - (a) Only `old` and `peer` talk: `old` appends client adds it cannot commit, at least four
//!   entries past every other node's log.
//! - (b) `old` is cut off; `usurper` reaches `peer` at once and the rest over slow links, and
//!   the rest are cut off from each other, so only `usurper` can win (with the rest's votes).
//!   Its no-op and one write from the nemesis reach `peer`, overwriting the first of `old`'s
//!   entries there; (c) then begins, dropping what is still on the slow links.
//! - (c) `usurper` is cut off; `old` talks with `peer` and the rest, and the rest among
//!   themselves, but `peer` not with the rest. Only `old` holds its adds, so only it can win; it
//!   appends after its last entry, which `peer` (if it kept the stale suffix) also holds.
//!   Once `old` has committed, and `peer` has heard so, every link heals.

use node::raft::Role;
use std::time::{Duration, Instant};

use nemesis::schedule::Fault;
use node::raft::NodeId;

use super::{all_pairs, only_pairs, others, partition, Reached, Stage, SLOW_MS};

/// How many entries `old` must be ahead of every other node in (a), so that `usurper`'s two
/// entries overwrite only the first of them.
const AHEAD: u64 = 4;

/// Plays the script once (see the module documentation).
pub async fn play(stage: &mut Stage<'_>, old: NodeId, peer: NodeId) -> anyhow::Result<Reached> {
    let nodes = stage.nodes();
    if stage
        .status(old)
        .await
        .is_none_or(|s| s.role != Role::Leader)
    {
        return Ok(Reached::GaveUpAt('a'));
    }
    let outsiders = others(&nodes, &[old, peer]);

    // (a) old and peer alone.
    stage
        .step(vec![partition(
            "stale-tail (a)",
            only_pairs(&nodes, &[(old, peer)]),
        )])
        .await?;
    let began = Instant::now();
    let got = stage
        .wait_for(Duration::from_secs(3), |s| {
            let longest_other = outsiders
                .iter()
                .filter_map(|&o| s.node(o).map(|n| n.last_log_index))
                .max();
            let ahead = match (s.node(peer), longest_other) {
                (Some(p), Some(o)) => p.last_log_index >= o + AHEAD,
                _ => false,
            };
            ahead && began.elapsed() >= Duration::from_millis(200)
        })
        .await;
    if got.is_none() {
        return Ok(Reached::GaveUpAt('a'));
    }
    let Some(old_now) = stage.status(old).await else {
        return Ok(Reached::GaveUpAt('a'));
    };
    let x_end = old_now.last_log_index;
    let Some(usurper) = stage.longest_log(&outsiders).await else {
        return Ok(Reached::GaveUpAt('b'));
    };
    let rest = others(&nodes, &[old, peer, usurper]);

    // (b) usurper reaches peer at once and the rest slowly.
    let star: Vec<(NodeId, NodeId)> = rest.iter().map(|&r| (usurper, r)).collect();
    let mut talk = star.clone();
    talk.push((usurper, peer));
    stage
        .step(vec![
            partition("stale-tail (b)", only_pairs(&nodes, &talk)),
            Fault::SlowLinks {
                links: star,
                fixed_ms: SLOW_MS,
            },
        ])
        .await?;
    if !stage.lead_then_append(usurper).await {
        return Ok(Reached::GaveUpAt('b'));
    }
    // The fast link to peer delivers both entries well within this.
    stage.sleep(Duration::from_millis(100)).await;

    // (c) old with peer and the rest; peer and the rest do not talk.
    let mut talk = all_pairs(&rest);
    talk.extend(rest.iter().map(|&r| (old, r)));
    talk.push((old, peer));
    stage
        .step(vec![partition("stale-tail (c)", only_pairs(&nodes, &talk))])
        .await?;
    let done = stage
        .wait_for(Duration::from_secs(5), |s| {
            let led = s
                .node(old)
                .is_some_and(|o| o.role == Role::Leader && o.commit_index > x_end);
            led && s.node(peer).is_some_and(|p| p.commit_index > x_end)
        })
        .await;
    if done.is_none() {
        return Ok(Reached::GaveUpAt('c'));
    }
    Ok(Reached::Done)
}

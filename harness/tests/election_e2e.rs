//! Nodes draw independent election timeouts: on a real 3-node cluster whose leader is
//! isolated again and again, the remaining majority elects a new leader quickly nearly every
//! time (nodes that drew the same timeouts would split their votes round after round).
//!
//! The seed comes from `ELECTION_E2E_SEED` if set, else the clock; it is printed first, so a
//! failing run can be replayed.

mod common;

use node::raft::Role;
use std::time::{Duration, Instant};

use harness::cluster::Cluster;
use nemesis::partition;
use nemesis::schedule::Fault;
use node::raft::NodeId;

/// The node's default largest election timeout (`--election-timeout-max-ms` in node/src/cli.rs).
const MAX_ELECTION_TIMEOUT: Duration = Duration::from_millis(600);
const ROUNDS: usize = 20;
/// How long one status poll may wait for a node (the isolated node still answers clients).
const POLL_TIMEOUT: Duration = Duration::from_millis(300);

fn seed() -> u64 {
    std::env::var("ELECTION_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// Polls until every node reports the same leader in the same term (the old leader has
/// stepped down and caught up); returns it and the term. Bounded by `limit`.
async fn stable_leader(cluster: &Cluster, limit: Duration, seed: u64) -> (NodeId, u64) {
    let start = Instant::now();
    while start.elapsed() < limit {
        let s = cluster.statuses(POLL_TIMEOUT).await;
        if s.len() == cluster.nodes.len() {
            if let Some(l) = s.iter().find(|s| s.role == Role::Leader) {
                if s.iter().all(|o| o.leader == Some(l.id) && o.term == l.term) {
                    return (l.id, l.term);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("seed {seed}: no leader all nodes agree on within {limit:?}");
}

/// Polls until a node other than `old` leads and every node but `old` agrees; returns how
/// long that took and the new term, or `None` if not within `limit`.
async fn new_majority_leader(
    cluster: &Cluster,
    old: NodeId,
    limit: Duration,
) -> Option<(Duration, u64)> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let s = cluster.statuses(POLL_TIMEOUT).await;
        let majority: Vec<_> = s.iter().filter(|s| s.id != old).collect();
        if majority.len() == cluster.nodes.len() - 1 {
            if let Some(l) = majority.iter().find(|s| s.role == Role::Leader) {
                if majority
                    .iter()
                    .all(|o| o.leader == Some(l.id) && o.term == l.term)
                {
                    return Some((start.elapsed(), l.term));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn majority_elects_a_new_leader_promptly_after_each_isolation() {
    let seed = seed();
    println!("seed {seed} (replay with ELECTION_E2E_SEED={seed})");
    let dir = tempfile::tempdir().unwrap();
    let opts = common::cluster_options(3, seed);
    let cluster = Cluster::start(dir.path(), &opts).await.unwrap();
    let bound = MAX_ELECTION_TIMEOUT * 3;
    let mut times = Vec::new();
    let mut slow = 0;
    for round in 0..ROUNDS {
        let (leader, term) = stable_leader(&cluster, Duration::from_secs(10), seed).await;
        let fault = Fault::Partition {
            shape: "isolate-leader",
            grudge: partition::isolate(&cluster.ids(), leader).unwrap(),
        };
        cluster.apply(&fault).await.unwrap();
        // Past the bound we keep waiting a while, to tell slow elections from none at all.
        let took = new_majority_leader(&cluster, leader, Duration::from_secs(5)).await;
        cluster.heal(&fault).await.unwrap();
        match took {
            Some((t, new_term)) => {
                // More than one term means a split vote (or a lost pre-vote) on the way.
                println!(
                    "round {round}: isolated n{leader}, new leader after {t:?} ({} term(s))",
                    new_term.saturating_sub(term)
                );
                if t > bound {
                    slow += 1;
                }
                times.push(t);
            }
            None => {
                println!("round {round}: isolated n{leader}, no new leader within 5 s");
                slow += 1;
            }
        }
    }
    cluster.shutdown().await;
    times.sort();
    if !times.is_empty() {
        println!(
            "election times over {} rounds: min {:?}, median {:?}, max {:?}; {slow} over {bound:?}",
            ROUNDS,
            times[0],
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
    assert!(
        slow <= 1,
        "seed {seed}: {slow} of {ROUNDS} isolations took longer than {bound:?} to elect a new leader"
    );
}

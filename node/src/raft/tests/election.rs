//! Elections are safe and live: from a cold start a 5-node cluster elects exactly one
//! leader within a bounded number of ticks.

use crate::raft::sim::Sim;
use crate::raft::Role;

/// Ticks (each followed by delivering every message) within which a leader must emerge.
/// The first election timeout fires within `election_ticks_max` = 20; the bound leaves room
/// for a few split votes.
const ELECTION_BOUND: usize = 100;

#[test]
fn cold_start_elects_exactly_one_leader_over_1000_seeds() {
    let mut worst = 0;
    for seed in 0..1000u64 {
        let mut sim = Sim::new(5, seed, |_| {});
        let mut elected_at = None;
        for t in 1..=ELECTION_BOUND {
            sim.tick_all();
            sim.deliver_all();
            if let Err(e) = sim.check() {
                panic!("seed {seed}: tick {t}: {e}");
            }
            if !sim.leaders().is_empty() {
                elected_at = Some(t);
                break;
            }
        }
        let t = elected_at
            .unwrap_or_else(|| panic!("seed {seed}: no leader within {ELECTION_BOUND} ticks"));
        worst = worst.max(t);
        let leaders = sim.leaders();
        assert_eq!(leaders.len(), 1, "seed {seed}: leaders {leaders:?}");
        let (leader, term) = leaders[0];
        // The leader keeps its office: a few more election timeouts change nothing.
        sim.run(60);
        sim.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(
            sim.leaders(),
            vec![(leader, term)],
            "seed {seed}: leadership changed"
        );
        for id in sim.ids() {
            let r = sim.raft(id);
            assert_eq!(
                (r.term(), r.leader()),
                (term, Some(leader)),
                "seed {seed}: node {id} does not follow the leader"
            );
            if id != leader {
                assert_eq!(r.role(), Role::Follower, "seed {seed}: node {id}");
            }
            // The new leader's no-op is committed and applied everywhere.
            assert_eq!(sim.applied(id).len(), 1, "seed {seed}: node {id} applied");
        }
    }
    println!("slowest cold-start election over 1000 seeds: {worst} ticks");
    assert!(worst <= ELECTION_BOUND);
}

#[test]
fn single_node_cluster_elects_itself_and_commits_only_persisted_entries() {
    let mut sim = Sim::new(1, 7, |_| {});
    let l = sim
        .wait_stable_leader(40)
        .expect("seed 7: single node never became leader");
    let r = sim.raft_mut(l);
    let (index, _) = r.propose(b"x".to_vec()).unwrap();
    // An entry commits only once persisted (`docs/raft-pitfalls.md` #17): it is in the
    // Ready's entries, but not yet committed with it.
    let rd = r.ready();
    assert!(rd.entries.iter().any(|e| e.index == index));
    assert!(rd.committed.iter().all(|e| e.index < index));
    r.advance(&rd);
    let rd2 = r.ready();
    assert_eq!(rd2.committed.last().map(|e| e.index), Some(index));
    assert_eq!(rd2.hard_state.map(|h| h.commit), Some(index));
}

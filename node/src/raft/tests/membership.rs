//! Joint-consensus membership changes: learners catch up first, C_old,new then C_new are
//! appended, one change at a time, a removed leader steps down, and removed or
//! not-yet-added nodes never campaign.

use crate::raft::sim::Sim;
use crate::raft::{EntryPayload, MessageBody, NodeId, ProposeError, Role};
use std::collections::BTreeSet;

fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
    ids.iter().copied().collect()
}

/// Runs until every node in `members` has `voters` as its non-joint, committed
/// configuration; panics after `rounds`.
fn run_until_config(sim: &mut Sim, members: &[NodeId], voters: &BTreeSet<NodeId>, rounds: usize) {
    for _ in 0..rounds {
        sim.run(1);
        sim.check()
            .unwrap_or_else(|e| panic!("seed {}: {e}", sim.seed));
        let done = members.iter().all(|&id| {
            let r = sim.raft(id);
            let c = r.cluster_config();
            !c.is_joint() && &c.voters == voters && r.log().committed() >= r.log().config_index()
        });
        if done {
            return;
        }
    }
    panic!("seed {}: configuration {voters:?} not reached", sim.seed);
}

#[test]
fn grow_three_to_five_then_remove_the_leader() {
    for seed in 0..20u64 {
        let mut sim = Sim::with_members(5, &[1, 2, 3], seed, |_| {});
        let mut leader = None;
        for _ in 0..300 {
            sim.run(1);
            if let [(l, _)] = sim.leaders()[..] {
                leader = Some(l);
                break;
            }
        }
        let leader = leader.unwrap_or_else(|| panic!("seed {seed}: no leader"));
        assert!(leader <= 3, "seed {seed}: a joining node never campaigns");
        for i in 0..10u32 {
            sim.raft_mut(leader)
                .propose(i.to_be_bytes().to_vec())
                .unwrap();
        }
        sim.flush(leader);
        sim.run(3);
        let all = set(&[1, 2, 3, 4, 5]);
        sim.raft_mut(leader)
            .propose_membership(all.clone(), b"ctx".to_vec())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        sim.flush(leader);
        assert_eq!(
            sim.raft_mut(leader)
                .propose_membership(set(&[1, 2]), Vec::new()),
            Err(ProposeError::ChangeInProgress),
            "seed {seed}: one change at a time"
        );
        run_until_config(&mut sim, &[1, 2, 3, 4, 5], &all, 300);
        assert_eq!(sim.raft(4).cluster_config().context, b"ctx".to_vec());
        // Remove the leader (and one more node).
        let leader = sim.wait_stable_leader(300).expect("leader");
        let mut keep: Vec<NodeId> = (1..=5).filter(|&i| i != leader).collect();
        let gone = keep.remove(0);
        let keep_set = set(&keep);
        sim.raft_mut(leader)
            .propose_membership(keep_set.clone(), Vec::new())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        sim.flush(leader);
        run_until_config(&mut sim, &keep, &keep_set, 300);
        assert_ne!(
            sim.raft(leader).role(),
            Role::Leader,
            "seed {seed}: removed leader stepped down"
        );
        let new_leader = (0..300)
            .find_map(|_| {
                sim.run(1);
                sim.leaders()
                    .into_iter()
                    .find(|(l, _)| keep_set.contains(l))
                    .map(|(l, _)| l)
            })
            .unwrap_or_else(|| panic!("seed {seed}: no leader among {keep:?}"));
        // Removed nodes take no part in elections any more: they never campaign and the
        // members' term stays put.
        let term = sim.raft(new_leader).term();
        for _ in 0..200 {
            sim.run(1);
            sim.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            for i in [leader, gone] {
                let role = sim.raft(i).role();
                assert!(
                    role == Role::Follower,
                    "seed {seed}: removed node {i} is {role:?}"
                );
            }
        }
        for &i in &keep {
            assert_eq!(sim.raft(i).term(), term, "seed {seed}: node {i}");
        }
        assert_eq!(sim.leaders().len(), 1, "seed {seed}");
        let l = sim.leaders()[0].0;
        assert!(
            keep_set.contains(&l),
            "seed {seed}: leader {l} (was {new_leader})"
        );
        sim.raft_mut(l).propose(b"after".to_vec()).unwrap();
        sim.flush(l);
        sim.run(5);
        for &i in &keep {
            assert_eq!(sim.applied(i), sim.applied(l), "seed {seed}: node {i}");
        }
    }
}

#[test]
fn change_is_refused_before_the_leader_commits_in_its_term_and_elsewhere() {
    let seed = 3;
    let mut sim = Sim::new(3, seed, |_| {});
    let leader = sim.wait_stable_leader(300).expect("leader");
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    assert!(matches!(
        sim.raft_mut(follower)
            .propose_membership(set(&[1, 2]), Vec::new()),
        Err(ProposeError::NotLeader { .. })
    ));
    assert_eq!(
        sim.raft_mut(leader)
            .propose_membership(BTreeSet::new(), Vec::new()),
        Err(ProposeError::NoVoters)
    );
    // Shrinking to a single node works and that node then decides alone.
    sim.raft_mut(leader)
        .propose_membership(set(&[leader]), Vec::new())
        .unwrap();
    sim.flush(leader);
    run_until_config(&mut sim, &[leader], &set(&[leader]), 100);
    sim.isolate(leader);
    let (idx, _) = sim.raft_mut(leader).propose(b"alone".to_vec()).unwrap();
    sim.flush(leader);
    sim.run(30);
    assert_eq!(sim.raft(leader).role(), Role::Leader, "seed {seed}");
    assert!(
        sim.applied(leader).iter().any(|e| e.index == idx),
        "seed {seed}"
    );
}

#[test]
fn learner_far_behind_catches_up_through_a_snapshot() {
    let seed = 5;
    let mut sim = Sim::with_members(4, &[1, 2, 3], seed, |c| c.max_snapshot_chunk = 100);
    let leader = sim
        .wait_stable_leader_among(&[1, 2, 3], 300)
        .expect("leader");
    for i in 0..50u32 {
        sim.raft_mut(leader)
            .propose(i.to_be_bytes().to_vec())
            .unwrap();
        sim.flush(leader);
        sim.deliver_all();
    }
    for id in 1..=3 {
        sim.compact(id);
    }
    let all = set(&[1, 2, 3, 4]);
    sim.raft_mut(leader)
        .propose_membership(all.clone(), Vec::new())
        .unwrap();
    sim.flush(leader);
    run_until_config(&mut sim, &[1, 2, 3, 4], &all, 300);
    assert!(
        sim.raft(4).log().snapshot_index() > 0,
        "seed {seed}: via snapshot"
    );
    sim.run(5);
    assert_eq!(sim.applied(4), sim.applied(leader), "seed {seed}");
}

#[test]
fn change_whose_learner_never_catches_up_is_abandoned() {
    let seed = 9;
    let mut sim = Sim::with_members(4, &[1, 2, 3], seed, |_| {});
    let leader = sim
        .wait_stable_leader_among(&[1, 2, 3], 300)
        .expect("leader");
    sim.crash(4);
    sim.raft_mut(leader)
        .propose_membership(set(&[1, 2, 3, 4]), Vec::new())
        .unwrap();
    sim.flush(leader);
    assert_eq!(
        sim.raft_mut(leader)
            .propose_membership(set(&[1, 2, 3]), Vec::new()),
        Err(ProposeError::ChangeInProgress)
    );
    // 20 maximum election timeouts later the change is dropped and a new one accepted.
    sim.run(20 * 20 + 5);
    assert_eq!(sim.leaders().len(), 1, "seed {seed}");
    let leader = sim.leaders()[0].0;
    assert!(sim.raft(leader).pending_change().is_none(), "seed {seed}");
    assert_eq!(sim.raft(leader).cluster_config().voters, set(&[1, 2, 3]));
    let keep: Vec<NodeId> = (1..=3).filter(|&i| i != leader).collect();
    sim.raft_mut(leader)
        .propose_membership(set(&keep), Vec::new())
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    sim.flush(leader);
    run_until_config(&mut sim, &keep, &set(&keep), 300);
}

#[test]
fn removed_node_that_missed_the_commit_is_told_and_stops_campaigning() {
    let seed = 17;
    let mut sim = Sim::new(3, seed, |_| {});
    let leader = sim.wait_stable_leader(300).expect("leader");
    let gone = (1..=3).find(|&i| i != leader).unwrap();
    let keep: Vec<NodeId> = (1..=3).filter(|&i| i != gone).collect();
    sim.raft_mut(leader)
        .propose_membership(set(&keep), Vec::new())
        .unwrap();
    sim.flush(leader);
    // Everything reaches `gone` until the entry C_new does, but not that it committed
    // (lowering a message's commit index only withholds news); then `gone` hears nothing.
    let mut cut = false;
    for _ in 0..50 {
        sim.tick_all();
        for _ in 0..10_000 {
            if sim.in_flight.is_empty() {
                break;
            }
            let mut m = sim.in_flight.remove(0);
            if m.to == gone {
                if cut {
                    continue;
                }
                if let MessageBody::AppendEntries {
                    entries, commit, ..
                } = &mut m.body
                {
                    let final_cfg = entries
                        .iter()
                        .find(|e| matches!(&e.payload, EntryPayload::Config(c) if !c.is_joint()));
                    if let Some(e) = final_cfg {
                        *commit = (*commit).min(e.index - 1);
                        cut = true;
                    }
                }
            }
            sim.deliver(m);
        }
    }
    assert!(cut, "seed {seed}: C_new reached {gone}");
    let r = sim.raft(gone);
    assert!(!r.cluster_config().voters.contains(&gone), "seed {seed}");
    assert!(
        r.log().committed() < r.log().config_index(),
        "seed {seed}: the removal is not known committed at {gone}"
    );
    // Now it campaigns; the leader answers with the commit index and it stops for good.
    sim.run(200);
    sim.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let r = sim.raft(gone);
    assert!(r.log().committed() >= r.log().config_index(), "seed {seed}");
    let term = r.term();
    sim.run(200);
    assert_eq!(sim.raft(gone).role(), Role::Follower, "seed {seed}");
    assert_eq!(sim.raft(gone).term(), term, "seed {seed}");
}

/// A joint configuration is not left behind (`docs/raft-pitfalls.md` #15): a leader elected
/// while C_new (which removes `gone`) is in its log but not committed must replicate to
/// `gone` as well, as the leader that appended C_new did. Otherwise `gone`, which never
/// received C_new, keeps the joint configuration in which it votes, and campaigns forever
/// (the commit index it is told does not reach C_new).
#[test]
fn removed_node_learns_its_removal_from_a_leader_that_inherited_an_uncommitted_c_new() {
    for seed in 0..10u64 {
        let mut sim = Sim::new(5, seed, |_| {});
        let old = sim.wait_stable_leader(300).expect("leader");
        let gone = (1..=5).find(|&i| i != old).unwrap();
        let keep: Vec<NodeId> = (1..=5).filter(|&i| i != gone).collect();
        sim.raft_mut(old)
            .propose_membership(set(&keep), Vec::new())
            .unwrap();
        sim.flush(old);
        // Deliver one message at a time until the old leader appends C_new; from then on
        // `gone` hears nothing from it and nobody's acknowledgement reaches it, so C_new
        // reaches the others but is never committed by the old leader.
        let mut appended = false;
        for _ in 0..100 {
            sim.tick_all();
            for _ in 0..10_000 {
                if sim.in_flight.is_empty() || appended {
                    break;
                }
                let m = sim.in_flight.remove(0);
                sim.deliver(m);
                let c = sim.raft(old).cluster_config();
                if !c.is_joint() && !c.voters.contains(&gone) {
                    appended = true;
                    sim.cut.insert((old, gone));
                    for &k in &keep {
                        sim.cut.insert((k, old));
                    }
                }
            }
            if appended {
                break;
            }
        }
        assert!(appended, "seed {seed}: C_new never appended");
        sim.deliver_all();
        assert!(
            sim.raft(old).log().committed() < sim.raft(old).log().config_index(),
            "seed {seed}: the old leader must not have committed C_new"
        );
        sim.crash(old);
        sim.heal();
        let others: Vec<NodeId> = keep.iter().copied().filter(|&k| k != old).collect();
        let new = sim
            .wait_stable_leader_among(&others, 400)
            .unwrap_or_else(|| panic!("seed {seed}: no new leader"));
        sim.run(200);
        sim.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let r = sim.raft(gone);
        assert!(
            !r.cluster_config().voters.contains(&gone) && !r.cluster_config().is_joint(),
            "seed {seed}: n{gone} never learned C_new from the new leader n{new}"
        );
        // It knows the removal committed and stays quiet.
        sim.run(5);
        for _ in 0..200 {
            sim.tick_all();
            assert!(
                !sim.in_flight
                    .iter()
                    .any(|m| m.from == gone && matches!(m.body, MessageBody::RequestVote { .. })),
                "seed {seed}: n{gone} still campaigns"
            );
            sim.deliver_all();
        }
    }
}

//! Log compaction and InstallSnapshot: a follower that missed more entries than the leader
//! kept catches up through the snapshot, in chunks, and ends with a state machine identical
//! to the leader's; a crash in the middle of receiving leaves its old state usable.

use crate::raft::sim::Sim;
use crate::raft::{MessageBody, NodeId};

/// Proposes `n` commands at `leader` and delivers everything.
fn propose_n(sim: &mut Sim, leader: NodeId, n: u32) {
    for i in 0..n {
        sim.raft_mut(leader)
            .propose(i.to_be_bytes().to_vec())
            .expect("leader accepts");
        sim.flush(leader);
        sim.deliver_all();
    }
}

fn small_chunks(c: &mut crate::raft::Config) {
    c.max_snapshot_chunk = 64;
    c.max_entries_per_msg = 8;
}

#[test]
fn lagging_follower_catches_up_through_a_chunked_snapshot() {
    let seed = 11;
    let mut sim = Sim::new(3, seed, small_chunks);
    let leader = sim.wait_stable_leader(200).expect("leader");
    let lagger = sim.ids().into_iter().find(|&i| i != leader).unwrap();
    sim.isolate(lagger);
    propose_n(&mut sim, leader, 120);
    for id in sim.ids() {
        if id != lagger {
            assert!(sim.compact(id), "seed {seed}: node {id} compacts");
        }
    }
    let snap_index = sim.raft(leader).log().snapshot_index();
    assert!(snap_index >= 120, "seed {seed}: snapshot at {snap_index}");
    assert!(sim.raft(lagger).log().last_index() < 10);
    sim.heal();
    let mut chunks = 0;
    for _ in 0..400 {
        sim.tick_all();
        let mut steps = 0;
        while !sim.in_flight.is_empty() && steps < 100_000 {
            let m = sim.in_flight.remove(0);
            if matches!(m.body, MessageBody::InstallSnapshot { .. }) {
                chunks += 1;
            }
            sim.deliver(m);
            steps += 1;
        }
        sim.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        if sim.raft(lagger).log().applied() >= sim.raft(leader).log().applied() {
            break;
        }
    }
    assert!(chunks > 1, "seed {seed}: snapshot sent in {chunks} chunks");
    assert_eq!(
        sim.raft(lagger).log().snapshot_index(),
        snap_index,
        "seed {seed}: follower installed the snapshot"
    );
    assert_eq!(
        sim.applied(lagger),
        sim.applied(leader),
        "seed {seed}: identical state machines"
    );
    // Replication goes on normally after the install.
    propose_n(&mut sim, leader, 5);
    sim.run(5);
    assert_eq!(sim.applied(lagger), sim.applied(leader), "seed {seed}");
}

#[test]
fn crash_while_receiving_a_snapshot_keeps_the_old_state_usable() {
    let seed = 12;
    let mut sim = Sim::new(3, seed, small_chunks);
    let leader = sim.wait_stable_leader(200).expect("leader");
    let lagger = sim.ids().into_iter().find(|&i| i != leader).unwrap();
    sim.isolate(lagger);
    propose_n(&mut sim, leader, 100);
    assert!(sim.compact(leader));
    sim.heal();
    let before = sim.applied(lagger).to_vec();
    // Deliver chunks until a few arrived at the lagger, then crash it.
    let mut chunks = 0;
    for _ in 0..200 {
        sim.tick(leader);
        let batch = std::mem::take(&mut sim.in_flight);
        for m in batch {
            if m.to == lagger && matches!(m.body, MessageBody::InstallSnapshot { .. }) {
                chunks += 1;
            }
            sim.deliver(m);
        }
        if chunks >= 3 {
            break;
        }
    }
    assert!(chunks >= 3, "seed {seed}: chunks started");
    assert_eq!(
        sim.raft(lagger).log().snapshot_index(),
        0,
        "not installed yet"
    );
    sim.crash(lagger);
    sim.restart(lagger);
    assert_eq!(
        sim.applied(lagger),
        &before[..],
        "seed {seed}: old state after the crash"
    );
    sim.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    sim.run(300);
    sim.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(sim.applied(lagger), sim.applied(leader), "seed {seed}");
    // And the installed snapshot survives another restart.
    sim.crash(lagger);
    sim.restart(lagger);
    sim.run(50);
    assert_eq!(sim.applied(lagger), sim.applied(leader), "seed {seed}");
}

#[test]
fn compaction_keeps_the_term_before_the_first_retained_index() {
    let seed = 13;
    let mut sim = Sim::new(3, seed, |_| {});
    let leader = sim.wait_stable_leader(200).expect("leader");
    propose_n(&mut sim, leader, 10);
    let applied = sim.raft(leader).log().applied();
    let term = sim.raft(leader).log().term(applied);
    assert!(sim.compact(leader));
    let log = sim.raft(leader).log();
    assert_eq!(log.snapshot_index(), applied);
    assert_eq!(
        log.term(applied),
        term,
        "term at the snapshot index is kept"
    );
    assert_eq!(log.term(applied - 1), None, "compacted");
    // A restarted node recovers from snapshot + log and keeps replicating.
    sim.crash(leader);
    sim.restart(leader);
    sim.run(100);
    let l = sim.wait_stable_leader(300).expect("leader after restart");
    propose_n(&mut sim, l, 3);
    sim.run(10);
    for id in sim.ids() {
        assert_eq!(sim.applied(id), sim.applied(l), "seed {seed}: node {id}");
    }
    sim.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
}

/// A follower handed a complete snapshot whose bytes its state machine cannot load (the
/// check installed with `set_snapshot_check` refuses them) drops it: its log, commit index
/// and state stay as they were, nothing is handed to the runtime to install, and it does
/// not acknowledge the snapshot. A loadable snapshot is still installed.
#[test]
fn a_snapshot_the_state_machine_refuses_is_dropped() {
    use crate::raft::{ClusterConfig, Config, HardState, Message, Raft, SnapshotMeta};

    fn only_ok(data: &[u8], _index: crate::raft::LogIndex) -> Result<(), String> {
        if data == b"ok" {
            Ok(())
        } else {
            Err("not a store".into())
        }
    }
    let mut r = Raft::new(
        Config::new(2, vec![1, 2, 3]),
        HardState::default(),
        vec![],
        5,
    );
    r.set_snapshot_check(only_ok);
    let chunk = |data: &[u8]| Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index: 50,
                term: 1,
                config: ClusterConfig::simple([1, 2, 3]),
            },
            offset: 0,
            data: data.to_vec(),
            done: true,
        },
    };
    r.step(chunk(b"garbage"));
    assert_eq!(r.log().last_index(), 0);
    assert_eq!(r.log().committed(), 0);
    assert!(r.snapshot().is_none());
    let rd = r.ready();
    assert!(rd.snapshot.is_none(), "a refused snapshot was handed out");
    assert!(
        rd.messages
            .iter()
            .all(|m| !matches!(m.body, MessageBody::AppendResponse { success: true, .. })),
        "a refused snapshot was acknowledged: {:?}",
        rd.messages
    );
    r.advance(&rd);

    r.step(chunk(b"ok"));
    let rd = r.ready();
    assert_eq!(rd.snapshot.as_ref().map(|s| s.meta.index), Some(50));
    assert_eq!(r.log().committed(), 50);
}

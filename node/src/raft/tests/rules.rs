//! Unit tests of single rules: the vote check, pre-vote, check-quorum, leader stickiness,
//! stale-term answers, and robustness against arbitrary messages.

use crate::raft::sim::Sim;
use crate::raft::{Config, Entry, EntryPayload, HardState, Message, MessageBody, Raft, Role, Term};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn node_with_log(terms: &[Term], term: Term, tweak: impl Fn(&mut Config)) -> Raft {
    let entries = terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry {
            term: t,
            index: i as u64 + 1,
            payload: EntryPayload::Noop,
        })
        .collect();
    let mut cfg = Config::new(1, vec![1, 2, 3]);
    tweak(&mut cfg);
    let hs = HardState {
        term,
        voted_for: None,
        commit: 0,
    };
    Raft::new(cfg, hs, entries, 1)
}

fn vote_request(term: Term, pre_vote: bool, last_index: u64, last_term: Term) -> Message {
    Message {
        from: 2,
        to: 1,
        term,
        body: MessageBody::RequestVote {
            pre_vote,
            last_index,
            last_term,
        },
    }
}

/// The single vote response in the node's next Ready, if any.
fn vote_answer(r: &mut Raft) -> Option<(Term, bool)> {
    let rd = r.ready();
    r.advance(&rd);
    rd.messages.iter().find_map(|m| match m.body {
        MessageBody::VoteResponse { granted, .. } => Some((m.term, granted)),
        _ => None,
    })
}

#[test]
fn vote_requires_an_up_to_date_log() {
    let no_quorum = |c: &mut Config| c.check_quorum = false;
    // Log terms [1, 1, 2]: last (index 3, term 2).
    for (last_index, last_term, want) in [(5, 1, false), (2, 2, false), (3, 2, true), (1, 3, true)]
    {
        let mut r = node_with_log(&[1, 1, 2], 2, no_quorum);
        r.step(vote_request(3, false, last_index, last_term));
        assert_eq!(
            vote_answer(&mut r),
            Some((3, want)),
            "candidate last ({last_index}, {last_term})"
        );
        assert_eq!(r.term(), 3);
        assert_eq!(r.status().voted_for, want.then_some(2));
    }
    // With the deliberate bug the stale candidate gets the vote.
    let mut bad = node_with_log(&[1, 1, 2], 2, |c| {
        c.check_quorum = false;
        c.bugs.vote_ignores_log = true;
    });
    bad.step(vote_request(3, false, 5, 1));
    assert_eq!(vote_answer(&mut bad), Some((3, true)));
}

#[test]
fn one_vote_per_term() {
    let mut r = node_with_log(&[1], 1, |c| c.check_quorum = false);
    r.step(vote_request(2, false, 1, 1));
    assert_eq!(vote_answer(&mut r), Some((2, true)));
    let mut other = vote_request(2, false, 1, 1);
    other.from = 3;
    r.step(other);
    assert_eq!(vote_answer(&mut r), Some((2, false)));
    // The vote is persisted before the answer leaves: both are in the same Ready.
    r.step(vote_request(3, false, 1, 1));
    let rd = r.ready();
    assert_eq!(
        rd.hard_state.map(|h| (h.term, h.voted_for)),
        Some((3, Some(2)))
    );
}

#[test]
fn pre_vote_changes_no_term_or_vote() {
    let mut r = node_with_log(&[1, 1], 1, |c| c.check_quorum = false);
    r.step(vote_request(2, true, 2, 1));
    assert_eq!(
        vote_answer(&mut r),
        Some((2, true)),
        "pre-vote granted in the future term"
    );
    assert_eq!((r.term(), r.status().voted_for), (1, None));
    r.step(vote_request(2, true, 1, 1));
    assert_eq!(
        vote_answer(&mut r),
        Some((1, false)),
        "stale log: refused with own term"
    );
    assert_eq!(r.term(), 1);
}

#[test]
fn partitioned_node_with_pre_vote_does_not_disturb_the_cluster() {
    let mut sim = Sim::new(3, 11, |_| {});
    let leader = sim.wait_stable_leader(100).expect("seed 11: no leader");
    let term = sim.raft(leader).term();
    let lonely = if leader == 3 { 2 } else { 3 };
    sim.isolate(lonely);
    sim.run(200);
    assert_eq!(
        sim.raft(lonely).term(),
        term,
        "pre-candidate bumped its own term"
    );
    assert_ne!(sim.raft(lonely).role(), Role::Leader);
    sim.heal();
    sim.run(30);
    assert_eq!(
        sim.leaders(),
        vec![(leader, term)],
        "rejoining node disturbed the leader"
    );
    sim.check().unwrap();
}

#[test]
fn without_pre_vote_a_rejoining_node_forces_a_new_term() {
    // The contrast that makes the previous test meaningful, and `docs/raft-pitfalls.md` #12
    // (a lower-term heartbeat is answered with the higher term): the stuck node's higher term
    // reaches the leader through its answer to a stale heartbeat.
    let mut sim = Sim::new(3, 12, |c| c.pre_vote = false);
    let leader = sim.wait_stable_leader(100).expect("seed 12: no leader");
    let term = sim.raft(leader).term();
    let lonely = if leader == 3 { 2 } else { 3 };
    sim.isolate(lonely);
    sim.run(100);
    assert!(sim.raft(lonely).term() > term);
    sim.heal();
    let new_leader = sim
        .wait_stable_leader(200)
        .expect("seed 12: cluster never recovered");
    assert!(sim.raft(new_leader).term() > term);
    sim.check().unwrap();
}

#[test]
fn check_quorum_leader_steps_down_when_isolated() {
    let mut sim = Sim::new(5, 13, |_| {});
    let leader = sim.wait_stable_leader(100).expect("seed 13: no leader");
    sim.isolate(leader);
    let min = sim.raft(leader).config().election_ticks_min as usize;
    let mut stepped_down_after = None;
    for t in 1..=3 * min {
        sim.tick_all();
        sim.deliver_all();
        if sim.raft(leader).role() != Role::Leader {
            stepped_down_after = Some(t);
            break;
        }
    }
    let t = stepped_down_after.expect("isolated leader kept leading");
    assert!(t <= 2 * min, "stepped down only after {t} ticks");
    // The majority side elects a new leader meanwhile or soon after.
    sim.run(60);
    assert!(sim.leaders().iter().any(|&(l, _)| l != leader));
    sim.check().unwrap();
}

#[test]
fn without_check_quorum_an_isolated_leader_stays() {
    let mut sim = Sim::new(3, 14, |c| c.check_quorum = false);
    let leader = sim.wait_stable_leader(100).expect("seed 14: no leader");
    sim.isolate(leader);
    sim.run(100);
    assert_eq!(sim.raft(leader).role(), Role::Leader);
}

#[test]
fn follower_that_hears_a_leader_ignores_votes_stickiness() {
    let mut sim = Sim::new(3, 15, |_| {});
    let leader = sim.wait_stable_leader(100).expect("seed 15: no leader");
    let term = sim.raft(leader).term();
    let f = if leader == 1 { 2 } else { 1 };
    let other = 6 - leader - f;
    // A disruptive candidate with a better log and higher term, right after a heartbeat.
    let req = Message {
        from: other,
        to: f,
        term: term + 5,
        body: MessageBody::RequestVote {
            pre_vote: false,
            last_index: 100,
            last_term: term + 4,
        },
    };
    sim.raft_mut(f).step(req.clone());
    assert_eq!(
        sim.raft(f).term(),
        term,
        "sticky follower adopted the candidate's term"
    );
    assert!(!sim.raft_mut(f).has_ready(), "sticky follower answered");
    // After a full minimum election timeout without the leader, the follower listens again.
    sim.isolate(leader);
    let min = sim.raft(f).config().election_ticks_min;
    for _ in 0..min {
        sim.tick(f);
    }
    sim.in_flight.clear();
    if sim.raft(f).role() == Role::Follower {
        sim.raft_mut(f).step(req);
        assert_eq!(sim.raft(f).term(), term + 5);
    }
}

#[test]
fn restarted_node_grants_no_vote_for_one_election_timeout() {
    let mut r = node_with_log(&[1], 1, |_| {});
    r.step(vote_request(2, false, 1, 1));
    assert!(!r.has_ready(), "a just-restarted node must not vote");
    for _ in 0..r.config().election_ticks_min {
        r.tick();
    }
    let rd = r.ready();
    r.advance(&rd);
    if r.role() == Role::Follower {
        r.step(vote_request(5, false, 1, 1));
        assert_eq!(vote_answer(&mut r), Some((5, true)));
    }
}

#[test]
fn lower_term_append_gets_an_answer_that_frees_the_stale_leader() {
    let mut r = node_with_log(&[1], 5, |_| {});
    r.step(Message {
        from: 2,
        to: 1,
        term: 3,
        body: MessageBody::Heartbeat {
            commit: 0,
            round: 1,
        },
    });
    let rd = r.ready();
    assert!(rd
        .messages
        .iter()
        .any(|m| m.to == 2 && m.term == 5 && matches!(m.body, MessageBody::AppendResponse { .. })));
}

#[test]
fn arbitrary_messages_never_panic() {
    let seed = 0x5eed;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sim = Sim::new(3, seed, |_| {});
    sim.wait_stable_leader(100).expect("no leader");
    let pick = |rng: &mut ChaCha8Rng| -> u64 {
        match rng.gen_range(0..4) {
            0 => 0,
            1 => u64::MAX,
            2 => rng.gen_range(0..20),
            _ => rng.gen(),
        }
    };
    for i in 0..3000 {
        let to = rng.gen_range(1..=3);
        let body = match rng.gen_range(0..8) {
            0 => MessageBody::AppendEntries {
                prev_index: pick(&mut rng),
                prev_term: pick(&mut rng),
                entries: (0..rng.gen_range(0..3))
                    .map(|_| Entry {
                        term: pick(&mut rng),
                        index: pick(&mut rng),
                        payload: EntryPayload::Noop,
                    })
                    .collect(),
                commit: pick(&mut rng),
            },
            1 => MessageBody::AppendResponse {
                success: rng.gen(),
                index: pick(&mut rng),
                hint_term: pick(&mut rng),
                hint_index: pick(&mut rng),
            },
            2 => MessageBody::RequestVote {
                pre_vote: rng.gen(),
                last_index: pick(&mut rng),
                last_term: pick(&mut rng),
            },
            3 => MessageBody::VoteResponse {
                pre_vote: rng.gen(),
                granted: rng.gen(),
            },
            4 => MessageBody::Heartbeat {
                commit: pick(&mut rng),
                round: pick(&mut rng),
            },
            5 => MessageBody::HeartbeatResponse {
                round: pick(&mut rng),
            },
            6 => MessageBody::ReadIndexRequest {
                ctx: pick(&mut rng),
            },
            _ => MessageBody::ReadIndexResponse {
                ctx: pick(&mut rng),
                index: Some(pick(&mut rng)),
            },
        };
        let m = Message {
            from: rng.gen_range(0..=4),
            to,
            term: if rng.gen_bool(0.9) {
                sim.raft(to).term()
            } else {
                pick(&mut rng)
            },
            body,
        };
        let r = sim.raft_mut(to);
        r.step(m);
        if rng.gen_bool(0.3) {
            r.tick();
        }
        let rd = r.ready();
        r.advance(&rd);
        let _ = i;
    }
    let _ = seed;
}

#[test]
fn replication_is_batched_and_pipelined_within_the_inflight_bound() {
    let mut sim = Sim::new(3, 16, |c| {
        c.max_entries_per_msg = 2;
        c.max_inflight_msgs = 3;
    });
    let l = sim.wait_stable_leader(100).expect("seed 16: no leader");
    // Followers are in replicate state now; hold every message while proposing.
    for i in 0..20u8 {
        sim.raft_mut(l).propose(vec![i]).unwrap();
    }
    sim.flush(l);
    for f in sim.ids().into_iter().filter(|&f| f != l) {
        let appends: Vec<usize> = sim
            .in_flight
            .iter()
            .filter(|m| m.to == f)
            .filter_map(|m| match &m.body {
                MessageBody::AppendEntries { entries, .. } if !entries.is_empty() => {
                    Some(entries.len())
                }
                _ => None,
            })
            .collect();
        assert!(
            appends.len() <= 3,
            "follower {f}: {} appends in flight",
            appends.len()
        );
        assert!(
            appends.iter().all(|&n| n <= 2),
            "follower {f}: batch sizes {appends:?}"
        );
    }
    // Released, the pipeline drains everything.
    sim.run(10);
    for id in sim.ids() {
        assert_eq!(
            sim.raft(id).log().committed(),
            sim.raft(l).log().last_index(),
            "node {id}"
        );
    }
    sim.check().unwrap();
}

/// The runtime's frame limit: the peer transport drops any message that encodes larger.
const FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Delivers everything in flight as the runtime's transport would: a message that does not
/// fit one frame is dropped. Returns the largest encoded AppendEntries seen.
fn deliver_framed(sim: &mut Sim) -> usize {
    let mut largest = 0;
    sim.deliver_all_filtered(100_000, |m| {
        let len = bincode::serialize(m).map_or(usize::MAX, |b| b.len());
        if matches!(m.body, MessageBody::AppendEntries { .. }) {
            largest = largest.max(len);
        }
        len <= FRAME_BYTES
    });
    largest
}

#[test]
fn large_entries_replicate_in_byte_bounded_batches_and_a_lagging_follower_catches_up() {
    let mut sim = Sim::new(3, 18, |_| {});
    let l = sim.wait_stable_leader(100).expect("seed 18: no leader");
    let lagging = sim.ids().into_iter().find(|&f| f != l).unwrap();
    // 300 entries of 20 KiB: 256 of them (the entry-count bound) are 5 MiB, over a frame.
    sim.isolate(lagging);
    for i in 0..300u32 {
        let mut payload = vec![(i % 251) as u8; 20 * 1024];
        payload[..4].copy_from_slice(&i.to_le_bytes());
        sim.raft_mut(l).propose(payload).unwrap();
        sim.flush(l);
        deliver_framed(&mut sim);
    }
    sim.heal();
    let mut largest = 0;
    for _ in 0..200 {
        sim.tick_all();
        largest = largest.max(deliver_framed(&mut sim));
        if sim.raft(lagging).log().committed() == sim.raft(l).log().last_index() {
            break;
        }
    }
    assert_eq!(
        sim.raft(lagging).log().committed(),
        sim.raft(l).log().last_index(),
        "seed 18: the lagging follower did not catch up (largest AppendEntries {largest} bytes)"
    );
    // Batches were cut by bytes (the header of a message is well under 1 KiB), yet many
    // entries went in one message: the catch-up did not degrade to one entry per message.
    let max = Config::new(1, vec![1]).max_bytes_per_msg;
    assert!(
        largest <= max + 1024,
        "seed 18: an AppendEntries of {largest} bytes exceeds the {max}-byte bound"
    );
    assert!(
        largest > max / 2,
        "seed 18: batches of only {largest} bytes"
    );
    sim.check().unwrap();
}

#[test]
fn leader_applies_only_entries_it_persisted_even_if_followers_acked_them() {
    let mut sim = Sim::new(3, 17, |_| {});
    let l = sim.wait_stable_leader(100).expect("seed 17: no leader");
    let (index, _) = sim.raft_mut(l).propose(b"p".to_vec()).unwrap();
    // The leader hands out the entry but has not yet fsynced it (no advance).
    let rd1 = sim.raft_mut(l).ready();
    for m in rd1.messages.clone() {
        sim.deliver(m);
    }
    // Followers persisted and acked: a majority without the leader, so it is committed.
    for m in std::mem::take(&mut sim.in_flight) {
        if m.to == l {
            sim.raft_mut(l).step(m);
        }
    }
    assert_eq!(sim.raft(l).log().committed(), index);
    let rd2 = sim.raft_mut(l).ready();
    assert!(
        rd2.committed.iter().all(|e| e.index < index),
        "an entry not yet persisted locally was handed out for applying"
    );
    sim.raft_mut(l).advance(&rd2);
    let rd3 = sim.raft_mut(l).ready();
    assert_eq!(rd3.committed.last().map(|e| e.index), Some(index));
}

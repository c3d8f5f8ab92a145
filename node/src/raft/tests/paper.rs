//! The Raft paper's Figures 7 and 8, replayed step by step.

use crate::raft::sim::Sim;
use crate::raft::{Entry, EntryPayload, HardState, Message, MessageBody, NodeId, Role, Term};

fn is_vote(m: &Message) -> bool {
    matches!(
        m.body,
        MessageBody::RequestVote { .. } | MessageBody::VoteResponse { .. }
    )
}

fn log_of(terms: &[Term]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &term)| Entry {
            term,
            index: i as u64 + 1,
            payload: EntryPayload::Command(vec![i as u8, term as u8]),
        })
        .collect()
}

/// Ticks only `id` until it starts a new election, then delivers messages allowed by
/// `keep`; repeats until `id` leads (bounded). Only the candidate ticks, so no other node
/// times out meanwhile.
fn campaign_until_leader(sim: &mut Sim, id: NodeId, keep: &dyn Fn(&Message) -> bool) {
    for _ in 0..20 {
        let term = sim.raft(id).term();
        for _ in 0..100 {
            if sim.raft(id).term() > term {
                break;
            }
            sim.tick(id);
        }
        sim.deliver_all_filtered(10_000, keep);
        if sim.raft(id).role() == Role::Leader {
            // A leader with the `commit_by_count` bug appends no no-op; give it one entry of
            // its term as a client would, so that the figure keeps its shape.
            let r = sim.raft(id);
            if r.log().term(r.log().last_index()) != Some(r.term()) {
                sim.raft_mut(id)
                    .propose(vec![0xF8])
                    .expect("the leader accepts a proposal");
                sim.flush(id);
                sim.deliver_all_filtered(10_000, keep);
            }
            return;
        }
    }
    panic!("node {id} never won an election");
}

/// Paper config for scripted scenarios: no pre-vote or check-quorum (so that voters that are
/// not ticked do not hold on to the old leader), one entry per message (so that replicating
/// an old entry without the new one is a separate step).
fn scripted(c: &mut crate::raft::Config) {
    c.pre_vote = false;
    c.check_quorum = false;
    c.max_entries_per_msg = 1;
}

/// Runs the invariant checker, remembering the first violation.
fn note(sim: &mut Sim, first: &mut Option<String>) {
    if let Err(e) = sim.check() {
        first.get_or_insert(e);
    }
}

/// Outcome of the Figure 8 replay: whether S1 committed the term-2 entry in step (c), and the
/// invariant check at the end.
struct Figure8 {
    s1_committed_old_entry: bool,
    check: Result<(), String>,
    sim: Sim,
}

/// Figure 8 of the Raft paper with five servers S1..S5 (each new leader also appends its
/// no-op, so every leader of the figure has one extra entry of its own term):
/// (a) S1 leads term 2 and replicates index 2 to S2 only; (b) S1 crashes, S5 wins term 3
/// with S3, S4 and appends index 2 of term 3 locally; (c) S5 crashes, S1 restarts, wins a
/// later term and replicates its index 2 (term 2) to S3: now on a majority; (d) S1 crashes,
/// S5 restarts and wins with S3, S4 (its last term 3 beats their 2), overwriting index 2.
fn figure8(bugs: crate::raft::Bugs) -> Figure8 {
    let mut sim = Sim::new(5, 8, |c| {
        scripted(c);
        c.bugs = bugs;
    });
    let mut first_violation = None;
    // Prologue: S1 leads term 1; everyone holds its no-op (index 1, term 1).
    campaign_until_leader(&mut sim, 1, &|_| true);
    sim.deliver_all();
    for id in 1..=5 {
        assert_eq!(sim.log_terms(id), vec![1], "prologue: node {id}");
    }
    // (a) S1 restarts and leads term 2; its index 2 reaches S2 only.
    sim.crash(1);
    sim.restart(1);
    let s1_s2 =
        |m: &Message| is_vote(m) || (m.from == 1 && m.to == 2) || (m.from == 2 && m.to == 1);
    campaign_until_leader(&mut sim, 1, &s1_s2);
    assert_eq!(sim.raft(1).term(), 2);
    note(&mut sim, &mut first_violation);
    for (id, want) in [
        (1, vec![1, 2]),
        (2, vec![1, 2]),
        (3, vec![1]),
        (4, vec![1]),
        (5, vec![1]),
    ] {
        assert_eq!(sim.log_terms(id), want, "(a) node {id}");
    }
    // (b) S1 crashes; S5 wins term 3 with S3 and S4; its entry stays local.
    sim.crash(1);
    campaign_until_leader(&mut sim, 5, &is_vote);
    assert_eq!(sim.raft(5).term(), 3);
    assert_eq!(sim.log_terms(5), vec![1, 3]);
    note(&mut sim, &mut first_violation);
    // (c) S5 crashes; S1 restarts and wins (term 4); index 2 (term 2) reaches S3, so it is
    // stored on S1, S2, S3; S1's own no-op reaches S2 only. Nothing tells S2 or S3 of a new
    // commit index (S1 crashes first, as in the figure).
    sim.crash(5);
    sim.restart(1);
    let first_to_s3 = std::cell::Cell::new(true);
    let fig_c = |m: &Message| {
        if is_vote(m) || (m.from == 2 && m.to == 1) || (m.from == 3 && m.to == 1) {
            return true;
        }
        match &m.body {
            // (An empty probe may pass too while it carries no news of index 2 committing;
            // without a no-op, S1's first message to S2 is such a probe.)
            MessageBody::AppendEntries {
                entries, commit, ..
            } if m.from == 1 && m.to == 2 => !entries.is_empty() || *commit < 2,
            // The first append to S3 (prev index 2) is rejected by S3 and makes S1 back off
            // to index 2; later ones may carry only index 2.
            MessageBody::AppendEntries { entries, .. } if m.from == 1 && m.to == 3 => {
                first_to_s3.replace(false)
                    || (!entries.is_empty() && entries.iter().all(|e| e.term <= 2))
            }
            _ => false,
        }
    };
    campaign_until_leader(&mut sim, 1, &fig_c);
    sim.deliver_all_filtered(10_000, fig_c);
    note(&mut sim, &mut first_violation);
    let s1_term = sim.raft(1).term();
    assert!(s1_term >= 4);
    assert_eq!(sim.log_terms(1), vec![1, 2, s1_term]);
    assert_eq!(sim.log_terms(2), vec![1, 2, s1_term]);
    assert_eq!(sim.log_terms(3), vec![1, 2]);
    let s1_committed_old_entry = sim.raft(1).log().committed() >= 2;
    // (d) S1 crashes; S5 restarts and wins with S3, S4; it overwrites index 2 everywhere.
    sim.crash(1);
    sim.restart(5);
    campaign_until_leader(&mut sim, 5, &|_| true);
    sim.deliver_all();
    let s5_term = sim.raft(5).term();
    // (With the bug, S2 may have heard that index 2 committed, and then refuses to let it
    // be overwritten; S3..S5, a majority, are overwritten either way.)
    let first = if bugs.commit_by_count { 3 } else { 2 };
    for id in first..=5 {
        assert_eq!(sim.log_terms(id), vec![1, 3, s5_term], "(d) node {id}");
        assert_eq!(sim.raft(id).log().committed(), 3, "(d) node {id}");
    }
    note(&mut sim, &mut first_violation);
    let check = match first_violation {
        Some(e) => Err(e),
        None => Ok(()),
    };
    Figure8 {
        s1_committed_old_entry,
        check,
        sim,
    }
}

#[test]
fn figure8_old_term_entry_is_not_committed_by_counting_replicas() {
    let f = figure8(Default::default());
    assert!(
        !f.s1_committed_old_entry,
        "S1 committed an entry of an earlier term by counting replicas"
    );
    assert_eq!(f.check, Ok(()));
    // No node ever applied the overwritten entry (index 2, term 2).
    let applied = f.sim.inv.applied_at(2).expect("index 2 committed in (d)");
    assert_eq!(applied.term, 3);
}

#[test]
fn figure8_with_commit_by_count_bug_commits_wrongly_and_is_caught() {
    let bugs = crate::raft::Bugs {
        commit_by_count: true,
        ..Default::default()
    };
    let f = figure8(bugs);
    assert!(
        f.s1_committed_old_entry,
        "the bug should commit index 2 of term 2"
    );
    let err = f
        .check
        .expect_err("the checker must see the overwritten committed entry");
    assert!(err.contains("state machine safety"), "{err}");
}

/// Figure 8 (e): if S1 replicates an entry of its own term to a majority before crashing,
/// that entry and the earlier ones are committed, and S5 can no longer win.
#[test]
fn figure8_e_entry_of_current_term_commits_earlier_ones() {
    let mut sim = Sim::new(5, 80, scripted);
    campaign_until_leader(&mut sim, 1, &|_| true);
    sim.deliver_all();
    sim.crash(1);
    sim.restart(1);
    let s1_s2 =
        |m: &Message| is_vote(m) || (m.from == 1 && m.to == 2) || (m.from == 2 && m.to == 1);
    campaign_until_leader(&mut sim, 1, &s1_s2);
    sim.crash(1);
    campaign_until_leader(&mut sim, 5, &is_vote);
    sim.crash(5);
    sim.restart(1);
    // This time S1's current-term entry reaches S2 and S3.
    let to_s2_s3 =
        |m: &Message| is_vote(m) || [(1, 2), (2, 1), (1, 3), (3, 1)].contains(&(m.from, m.to));
    campaign_until_leader(&mut sim, 1, &to_s2_s3);
    sim.deliver_all_filtered(10_000, to_s2_s3);
    assert_eq!(sim.raft(1).log().committed(), 3);
    assert_eq!(sim.inv.applied_at(2).map(|e| e.term), Some(2));
    sim.crash(1);
    sim.restart(5);
    for _ in 0..200 {
        sim.tick(5);
        sim.deliver_all();
        assert_ne!(
            sim.raft(5).role(),
            Role::Leader,
            "S5 won without the committed entries"
        );
    }
    sim.check().unwrap();
}

/// Figure 7: a leader of term 8 with log terms [1,1,1,4,4,5,5,6,6,6] repairs each of the six
/// divergent follower logs (a)-(f) to its own (plus its term-8 no-op).
#[test]
fn figure7_every_divergent_follower_is_repaired() {
    let leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let cases: [(&str, &[Term]); 6] = [
        ("a", &[1, 1, 1, 4, 4, 5, 5, 6, 6]),
        ("b", &[1, 1, 1, 4]),
        ("c", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]),
        ("d", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]),
        ("e", &[1, 1, 1, 4, 4, 4, 4]),
        ("f", &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]),
    ];
    for (name, follower) in cases {
        let hs = HardState {
            term: 7,
            voted_for: None,
            commit: 0,
        };
        let states = vec![
            (hs, log_of(&leader_log)),
            (hs, log_of(follower)),
            (hs, Vec::new()),
        ];
        let mut sim = Sim::with_states(7, states, scripted);
        // Node 3 is down; its vote for the leader is injected, as the follower of cases
        // (c) and (d) would refuse (its log is more up-to-date).
        sim.crash(3);
        for _ in 0..100 {
            if sim.raft(1).role() == Role::Candidate {
                break;
            }
            sim.tick(1);
        }
        assert_eq!(sim.raft(1).term(), 8, "case {name}");
        sim.deliver(Message {
            from: 3,
            to: 1,
            term: 8,
            body: MessageBody::VoteResponse {
                pre_vote: false,
                granted: true,
            },
        });
        assert_eq!(sim.raft(1).role(), Role::Leader, "case {name}");
        for _ in 0..20 {
            sim.tick(1);
            sim.deliver_all();
        }
        let mut want: Vec<Term> = leader_log.to_vec();
        want.push(8);
        assert_eq!(sim.log_terms(2), want, "case ({name}) not repaired");
        assert_eq!(
            sim.raft(1).log().entries(),
            sim.raft(2).log().entries(),
            "case {name}"
        );
        assert_eq!(sim.raft(2).log().committed(), 11, "case {name}");
        sim.check().unwrap_or_else(|e| panic!("case {name}: {e}"));
    }
}

//! The read paths' safety in the core: an old leader isolated in a minority while a new
//! leader commits a write never answers a read with the overwritten value on the `log`,
//! `read-index`, `lease` and `follower` paths; the `stale` path and the bugs
//! `read_index_no_confirm` and follower-read-local do. Lease reads stay linearizable while
//! the old leader's clock rate is inside the drift bound and go stale beyond it.
//!
//! The register is the last applied write: a write is `W` + u32, a log read is `R` + u64.

use crate::raft::sim::Sim;
use crate::raft::{Bugs, Entry, EntryPayload, NodeId, Role};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Log,
    ReadIndex,
    Lease,
    Follower,
    FollowerLocal,
    Stale,
}

/// Tick at which the partition heals.
const HEAL_AT: usize = 120;
const V1: u32 = 1;
const V2: u32 = 2;

fn write(v: u32) -> Vec<u8> {
    let mut p = vec![b'W'];
    p.extend_from_slice(&v.to_be_bytes());
    p
}

/// The register value after applying `entries`, and the ctx of every log read among them
/// with the value it saw.
fn replay(entries: &[Entry]) -> (Option<u32>, Vec<(u64, Option<u32>)>) {
    let mut value = None;
    let mut reads = Vec::new();
    for e in entries {
        if let EntryPayload::Command(p) = &e.payload {
            match (p.first(), p.len()) {
                (Some(b'W'), 5) => value = Some(u32::from_be_bytes([p[1], p[2], p[3], p[4]])),
                (Some(b'R'), 9) => {
                    let ctx = u64::from_be_bytes(p[1..9].try_into().unwrap());
                    reads.push((ctx, value));
                }
                _ => {}
            }
        }
    }
    (value, reads)
}

/// A read issued at `node` at global tick `issued`, waiting for its answer.
struct Read {
    ctx: u64,
    node: NodeId,
    issued: usize,
    /// Confirmed read index, once known (read-index / follower paths).
    index: Option<u64>,
}

#[derive(Debug, Default)]
struct Outcome {
    /// Reads answered with V1 although V2 was committed before they were issued.
    stale: usize,
    /// Reads answered with V2.
    fresh: usize,
    /// Reads served from the lease.
    lease_hits: usize,
}

/// Runs the isolated-old-leader scenario on a 5-node cluster. The old leader and one
/// follower form the minority; reads are issued every tick at the old leader (or at that
/// follower for the follower paths); the old leader's clock runs at `old_rate`.
fn isolated_old_leader(mode: Mode, bugs: Bugs, old_rate: f64, seed: u64) -> Outcome {
    let mut sim = Sim::new(5, seed, |c| c.bugs = bugs);
    let old = sim
        .wait_stable_leader(100)
        .unwrap_or_else(|| panic!("seed {seed}: no leader"));
    sim.raft_mut(old).propose(write(V1)).unwrap();
    sim.flush(old);
    sim.run(4);
    let buddy = if old == 1 { 2 } else { 1 };
    let majority: Vec<NodeId> = sim
        .ids()
        .into_iter()
        .filter(|&i| i != old && i != buddy)
        .collect();
    sim.partition(&[vec![old, buddy], majority.clone()]);

    let mut reader = match mode {
        Mode::Follower | Mode::FollowerLocal => buddy,
        _ => old,
    };
    let mut pending: Vec<Read> = Vec::new();
    let mut out = Outcome::default();
    let mut v2_committed_at: Option<usize> = None;
    let mut acc = 0.0;
    for t in 0..HEAL_AT + 80 {
        if t == HEAL_AT {
            // Heal; from now on leader-side reads go to whoever leads (liveness of the path).
            sim.heal();
        }
        if t >= HEAL_AT && !matches!(mode, Mode::Follower | Mode::FollowerLocal) {
            if let Some(&(l, _)) = sim.leaders().first() {
                reader = l;
            }
        }
        // Clocks: the old leader ticks at `old_rate`, everyone else at rate 1.
        for id in sim.ids() {
            if id == old {
                acc += old_rate;
                while acc >= 1.0 {
                    acc -= 1.0;
                    sim.tick(id);
                }
            } else {
                sim.tick(id);
            }
        }
        sim.deliver_all();
        sim.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        // The majority side: once it has a leader, write V2 there.
        if let Some(&(l, _)) = sim.leaders().iter().find(|(l, _)| majority.contains(l)) {
            if t % 10 == 0 && v2_committed_at.is_none() {
                let _ = sim.raft_mut(l).propose(write(V2));
                sim.flush(l);
            }
        }
        if v2_committed_at.is_none()
            && majority
                .iter()
                .any(|&i| replay(sim.applied(i)).0 == Some(V2))
        {
            v2_committed_at = Some(t);
        }
        // Issue one read on the minority side.
        let ctx = t as u64 + 1;
        let local = replay(sim.applied(reader)).0;
        let answer = |value: Option<u32>, issued: usize, out: &mut Outcome| {
            if value == Some(V2) {
                out.fresh += 1;
            } else if v2_committed_at.is_some_and(|c| c < issued) {
                out.stale += 1;
            }
        };
        match mode {
            Mode::Stale | Mode::FollowerLocal => answer(local, t, &mut out),
            Mode::Lease if sim.raft(reader).lease_read_ok() => {
                out.lease_hits += 1;
                answer(local, t, &mut out)
            }
            Mode::Log => {
                let mut p = vec![b'R'];
                p.extend_from_slice(&ctx.to_be_bytes());
                if sim.raft_mut(reader).propose(p).is_ok() {
                    pending.push(Read {
                        ctx,
                        node: reader,
                        issued: t,
                        index: None,
                    });
                }
                sim.flush(reader);
            }
            Mode::ReadIndex | Mode::Lease | Mode::Follower => {
                if sim.raft_mut(reader).read_index(ctx).is_ok() {
                    pending.push(Read {
                        ctx,
                        node: reader,
                        issued: t,
                        index: None,
                    });
                }
                sim.flush(reader);
            }
        }
        // Answer pending reads whose confirmation arrived and whose index is applied.
        let mut still = Vec::new();
        for mut r in pending.drain(..) {
            let (value, log_reads) = replay(sim.applied(r.node));
            if mode == Mode::Log {
                if let Some(&(_, v)) = log_reads.iter().find(|(c, _)| *c == r.ctx) {
                    answer(v, r.issued, &mut out);
                    continue;
                }
            } else {
                if r.index.is_none() {
                    r.index = sim
                        .read_states(r.node)
                        .iter()
                        .find(|s| s.ctx == r.ctx)
                        .map(|s| s.index);
                }
                if let Some(i) = r.index {
                    if sim.applied(r.node).last().map_or(0, |e| e.index) >= i {
                        answer(value, r.issued, &mut out);
                        continue;
                    }
                }
            }
            still.push(r);
        }
        pending = still;
    }
    assert!(
        v2_committed_at.is_some(),
        "seed {seed}: the majority never committed V2"
    );
    out
}

const SEEDS: std::ops::Range<u64> = 0..20;

fn no_bugs() -> Bugs {
    Bugs::default()
}

#[test]
fn linearizable_paths_never_read_the_overwritten_value() {
    for mode in [Mode::Log, Mode::ReadIndex, Mode::Lease, Mode::Follower] {
        for seed in SEEDS {
            let o = isolated_old_leader(mode, no_bugs(), 1.0, seed);
            assert_eq!(
                o.stale, 0,
                "seed {seed}: {mode:?} served a stale read: {o:?}"
            );
            assert!(
                o.fresh > 0,
                "seed {seed}: {mode:?} never answered after healing: {o:?}"
            );
            if mode == Mode::Lease {
                assert!(o.lease_hits > 0, "seed {seed}: the lease never held: {o:?}");
            }
        }
    }
}

#[test]
fn stale_paths_and_read_bugs_do_read_the_overwritten_value() {
    let no_confirm = Bugs {
        read_index_no_confirm: true,
        ..Default::default()
    };
    for (mode, bugs) in [
        (Mode::Stale, no_bugs()),
        (Mode::FollowerLocal, no_bugs()),
        (Mode::ReadIndex, no_confirm),
        (Mode::Follower, no_confirm),
    ] {
        let stale: usize = SEEDS
            .map(|s| isolated_old_leader(mode, bugs, 1.0, s).stale)
            .sum();
        assert!(
            stale > 0,
            "{mode:?} with {bugs:?} never read stale: the scenario exposes nothing"
        );
    }
}

#[test]
fn lease_within_drift_bound_is_linearizable() {
    for rate in [1.0, 0.95, 0.91] {
        for seed in SEEDS {
            let o = isolated_old_leader(Mode::Lease, no_bugs(), rate, seed);
            assert_eq!(
                o.stale, 0,
                "seed {seed}: rate {rate}: stale lease read: {o:?}"
            );
        }
    }
}

#[test]
fn lease_beyond_drift_bound_or_without_margin_reads_stale() {
    let no_margin = Bugs {
        lease_no_margin: true,
        ..Default::default()
    };
    for (bugs, rate) in [(no_bugs(), 0.5), (no_margin, 0.5)] {
        let stale: usize = SEEDS
            .map(|s| isolated_old_leader(Mode::Lease, bugs, rate, s).stale)
            .sum();
        assert!(
            stale > 0,
            "lease with {bugs:?} at rate {rate} never read stale"
        );
    }
}

#[test]
fn read_index_waits_for_an_entry_of_the_leaders_term() {
    let mut sim = Sim::new(3, 21, |_| {});
    // Deliver one message at a time, to catch the leader before its no-op commits.
    for _ in 0..100 {
        sim.tick_all();
        for _ in 0..1000 {
            if sim.in_flight.is_empty() {
                break;
            }
            let m = sim.in_flight.remove(0);
            sim.deliver(m);
            if let Some(&(l, _)) = sim.leaders().first() {
                assert_eq!(
                    sim.raft_mut(l).read_index(1),
                    Err(crate::raft::ReadError::LeaderNotReady)
                );
                sim.deliver_all();
                assert_eq!(sim.raft_mut(l).read_index(2), Ok(()));
                sim.flush(l);
                sim.deliver_all();
                let rs = sim.read_states(l);
                assert_eq!(rs.len(), 1);
                assert_eq!(rs[0].ctx, 2);
                assert_eq!(rs[0].index, sim.raft(l).log().committed());
                return;
            }
        }
    }
    panic!("seed 21: no leader");
}

#[test]
fn a_late_reply_to_an_old_round_does_not_confirm_a_newer_read() {
    let mut sim = Sim::new(3, 22, |_| {});
    let l = sim.wait_stable_leader(100).expect("seed 22: no leader");
    // Round A goes out; hold its replies.
    sim.raft_mut(l).read_index(1).unwrap();
    sim.flush(l);
    for m in std::mem::take(&mut sim.in_flight) {
        sim.deliver(m);
    }
    let late_replies = std::mem::take(&mut sim.in_flight);
    assert!(!late_replies.is_empty());
    // Read 2 is issued after round A was sent: it needs a newer round.
    sim.raft_mut(l).read_index(2).unwrap();
    sim.flush(l);
    sim.in_flight.clear(); // round B is lost
    for m in late_replies {
        sim.deliver(m);
    }
    let ctxs: Vec<u64> = sim.read_states(l).iter().map(|s| s.ctx).collect();
    assert_eq!(
        ctxs,
        vec![1],
        "read 2 was confirmed by a reply to an older round"
    );
    assert_eq!(sim.raft(l).role(), Role::Leader);
}

/// Leader stickiness is what makes the lease safe under a partial partition: a follower cut
/// off from the leader (only) campaigns; the others, still hearing the leader, must ignore
/// it. With `lease_no_margin` (no stickiness) it wins, and as soon as a higher term appears
/// the old leader is cut off entirely (its news arrives late), so it keeps serving lease
/// reads while the new leader commits V2. Returns the number of stale lease reads.
fn partial_partition_lease(bugs: Bugs, seed: u64) -> usize {
    let mut sim = Sim::new(5, seed, |c| c.bugs = bugs);
    let old = sim
        .wait_stable_leader(100)
        .unwrap_or_else(|| panic!("seed {seed}: no leader"));
    let term = sim.raft(old).term();
    sim.raft_mut(old).propose(write(V1)).unwrap();
    sim.flush(old);
    sim.run(4);
    let f = if old == 1 { 2 } else { 1 };
    sim.cut.insert((old, f));
    sim.cut.insert((f, old));
    let mut stale = 0;
    let mut v2_at = None;
    for t in 0..150 {
        sim.tick_all();
        sim.deliver_all();
        sim.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        if sim.ids().iter().any(|&i| sim.raft(i).term() > term) {
            sim.isolate(old);
        }
        if let Some(&(l, _)) = sim.leaders().iter().find(|(l, _)| *l != old) {
            if v2_at.is_none() {
                let _ = sim.raft_mut(l).propose(write(V2));
                sim.flush(l);
                sim.deliver_all();
                if replay(sim.applied(l)).0 == Some(V2) {
                    v2_at = Some(t);
                }
            }
        }
        if v2_at.is_some_and(|c| c < t)
            && sim.raft(old).lease_read_ok()
            && replay(sim.applied(old)).0 == Some(V1)
        {
            stale += 1;
        }
    }
    stale
}

#[test]
fn stickiness_protects_the_lease_under_a_partial_partition() {
    let no_margin = Bugs {
        lease_no_margin: true,
        ..Default::default()
    };
    for seed in SEEDS {
        assert_eq!(partial_partition_lease(no_bugs(), seed), 0, "seed {seed}");
    }
    let stale: usize = SEEDS.map(|s| partial_partition_lease(no_margin, s)).sum();
    assert!(
        stale > 0,
        "lease_no_margin never read stale under a partial partition"
    );
}

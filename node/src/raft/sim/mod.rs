//! A simulated cluster for tests: every node's [`Raft`], a "disk" holding exactly what each
//! node persisted through its Readies, a network of in-flight messages that tests deliver,
//! drop, duplicate or reorder at will, and an invariant checker run after every step.
//! Everything is deterministic given the seed.

mod invariants;
pub mod timed;

pub use invariants::Invariants;

use super::{Config, Entry, HardState, Message, NodeId, Raft, ReadState, Role, Snapshot};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Bound on Ready rounds processed for one node in one flush (each round is finite; a
/// correct core needs at most a few).
const MAX_READY_ROUNDS: usize = 64;

/// One simulated node: its core (None while crashed), its disk and what it applied.
pub struct SimNode {
    /// The node's configuration (kept across restarts).
    pub cfg: Config,
    /// The live core; None while crashed.
    pub raft: Option<Raft>,
    /// The hard state as persisted through Readies.
    pub disk_hs: HardState,
    /// The log as persisted through Readies (the entries after `disk_snapshot`).
    pub disk_log: Vec<Entry>,
    /// The snapshot as persisted (taken locally by [`Sim::compact`] or received).
    pub disk_snapshot: Option<Snapshot>,
    /// The state machine: every entry applied, from index 1 (restored from the snapshot at
    /// a restart, whose data is exactly this list).
    pub applied: Vec<Entry>,
    /// Read states delivered since the last (re)start.
    pub read_states: Vec<ReadState>,
    /// Failed read ctxs delivered since the last (re)start.
    pub failed_reads: Vec<u64>,
    /// How many times the node was started.
    pub starts: u64,
}

/// The simulated cluster.
pub struct Sim {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Node `i + 1` is `nodes[i]`.
    pub nodes: Vec<SimNode>,
    /// Messages sent and not yet delivered or dropped.
    pub in_flight: Vec<Message>,
    /// Directed links (from, to) that drop every message delivered over them.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// The invariant checker.
    pub inv: Invariants,
    /// The seeded generator for test decisions.
    pub rng: ChaCha8Rng,
}

impl Sim {
    /// A cold-started cluster of nodes 1..=n, each with `Config::new` adjusted by `tweak`.
    pub fn new(n: u64, seed: u64, tweak: impl Fn(&mut Config)) -> Sim {
        let states = (1..=n)
            .map(|_| (HardState::default(), Vec::new()))
            .collect();
        Sim::with_states(seed, states, tweak)
    }

    /// A cluster of nodes 1..=total of which only `initial` start as voters; the others
    /// start with no configuration and wait to be added (`--join`).
    pub fn with_members(
        total: u64,
        initial: &[NodeId],
        seed: u64,
        tweak: impl Fn(&mut Config),
    ) -> Sim {
        let initial: Vec<NodeId> = initial.to_vec();
        let states = (1..=total)
            .map(|_| (HardState::default(), Vec::new()))
            .collect();
        Sim::with_states(seed, states, |c| {
            c.voters = if initial.contains(&c.id) {
                initial.clone()
            } else {
                Vec::new()
            };
            tweak(c)
        })
    }

    /// A cluster whose node `i + 1` recovers `states[i]` (hard state, log) from its disk.
    pub fn with_states(
        seed: u64,
        states: Vec<(HardState, Vec<Entry>)>,
        tweak: impl Fn(&mut Config),
    ) -> Sim {
        let ids: Vec<NodeId> = (1..=states.len() as NodeId).collect();
        let mut sim = Sim {
            seed,
            nodes: Vec::new(),
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
            inv: Invariants::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        for (i, (hs, log)) in states.into_iter().enumerate() {
            let mut cfg = Config::new(ids[i], ids.clone());
            tweak(&mut cfg);
            sim.nodes.push(SimNode {
                cfg,
                raft: None,
                disk_hs: hs,
                disk_log: log,
                disk_snapshot: None,
                applied: Vec::new(),
                read_states: Vec::new(),
                failed_reads: Vec::new(),
                starts: 0,
            });
        }
        for &id in &ids {
            sim.restart(id);
        }
        sim
    }

    /// All node ids, ascending.
    pub fn ids(&self) -> Vec<NodeId> {
        (1..=self.nodes.len() as NodeId).collect()
    }

    fn node(&self, id: NodeId) -> &SimNode {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut SimNode {
        &mut self.nodes[(id - 1) as usize]
    }

    /// The live core of `id`; panics (test bug) if it is crashed.
    pub fn raft(&self, id: NodeId) -> &Raft {
        self.node(id).raft.as_ref().expect("node is crashed")
    }

    /// The live core of `id`, mutably; panics (test bug) if it is crashed.
    pub fn raft_mut(&mut self, id: NodeId) -> &mut Raft {
        self.node_mut(id).raft.as_mut().expect("node is crashed")
    }

    /// Whether `id` is running.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).raft.is_some()
    }

    /// Entries `id` applied since its last start.
    pub fn applied(&self, id: NodeId) -> &[Entry] {
        &self.node(id).applied
    }

    /// Read states `id` received since its last start.
    pub fn read_states(&self, id: NodeId) -> &[ReadState] {
        &self.node(id).read_states
    }

    /// Terms (index 1 first) of the node's in-memory log.
    pub fn log_terms(&self, id: NodeId) -> Vec<u64> {
        self.raft(id)
            .log()
            .entries()
            .iter()
            .map(|e| e.term)
            .collect()
    }

    /// Live leaders with their terms.
    pub fn leaders(&self) -> Vec<(NodeId, u64)> {
        self.nodes
            .iter()
            .filter_map(|n| n.raft.as_ref())
            .filter(|r| r.role() == Role::Leader)
            .map(|r| (r.id(), r.term()))
            .collect()
    }

    /// Carries out every pending Ready of `id` exactly as the runtime would: persist, send,
    /// apply, advance.
    pub fn flush(&mut self, id: NodeId) {
        for _ in 0..MAX_READY_ROUNDS {
            let node = self.node_mut(id);
            let Some(raft) = node.raft.as_mut() else {
                return;
            };
            if !raft.has_ready() {
                return;
            }
            let rd = raft.ready();
            let mut installed = None;
            if let Some(snap) = &rd.snapshot {
                node.disk_snapshot = Some(snap.clone());
                node.disk_log.clear();
                node.applied = decode_state(snap);
                installed = Some(node.applied.clone());
            }
            if let Some(hs) = rd.hard_state {
                node.disk_hs = hs;
            }
            persist_entries(
                &mut node.disk_log,
                snap_index(&node.disk_snapshot),
                &rd.entries,
            );
            node.applied.extend(rd.committed.iter().cloned());
            node.read_states.extend(rd.read_states.iter().copied());
            node.failed_reads.extend(rd.failed_reads.iter().copied());
            raft.advance(&rd);
            if let Some(state) = installed {
                self.inv.on_restart(id);
                for e in &state {
                    self.inv.on_apply(id, e);
                }
            }
            for e in &rd.committed {
                self.inv.on_apply(id, e);
            }
            self.in_flight.extend(rd.messages);
        }
        panic!("seed {}: node {id} never ran out of Ready", self.seed);
    }

    /// Ticks one node (if up) and carries out its Ready.
    pub fn tick(&mut self, id: NodeId) {
        if let Some(r) = self.node_mut(id).raft.as_mut() {
            r.tick();
            self.flush(id);
        }
    }

    /// Ticks every live node once, in id order.
    pub fn tick_all(&mut self) {
        for id in self.ids() {
            self.tick(id);
        }
    }

    /// Steps one message into its receiver without processing the Ready, so that several
    /// messages land in one Ready as in a runtime that batches (then call [`Sim::flush`]).
    pub fn step_only(&mut self, m: Message) {
        if self.cut.contains(&(m.from, m.to)) || m.to == 0 || m.to > self.nodes.len() as u64 {
            return;
        }
        if let Some(r) = self.node_mut(m.to).raft.as_mut() {
            r.step(m);
        }
    }

    /// Delivers one message now (unless its link is cut or its receiver is down).
    pub fn deliver(&mut self, m: Message) {
        if self.cut.contains(&(m.from, m.to)) || m.to == 0 || m.to > self.nodes.len() as u64 {
            return;
        }
        let to = m.to;
        if let Some(r) = self.node_mut(to).raft.as_mut() {
            r.step(m);
            self.flush(to);
        }
    }

    /// Delivers in-flight messages in FIFO order, including the ones they cause, until none
    /// is left (or `max_msgs` were handled). Messages for which `keep` is false are dropped.
    /// Returns the number of messages handled.
    pub fn deliver_all_filtered(
        &mut self,
        max_msgs: usize,
        mut keep: impl FnMut(&Message) -> bool,
    ) -> usize {
        let mut handled = 0;
        while handled < max_msgs && !self.in_flight.is_empty() {
            let batch = std::mem::take(&mut self.in_flight);
            for m in batch {
                handled += 1;
                if keep(&m) {
                    self.deliver(m);
                }
            }
        }
        handled
    }

    /// Delivers everything in flight, and what it causes, in FIFO order.
    pub fn deliver_all(&mut self) -> usize {
        self.deliver_all_filtered(100_000, |_| true)
    }

    /// Ticks every node and delivers everything, `rounds` times.
    pub fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.tick_all();
            self.deliver_all();
        }
    }

    /// Crashes `id`: its memory is lost; only its disk survives.
    pub fn crash(&mut self, id: NodeId) {
        self.node_mut(id).raft = None;
    }

    /// Crashes `id` after persisting its pending Ready but before sending its messages.
    pub fn crash_after_persist(&mut self, id: NodeId) {
        let node = self.node_mut(id);
        if let Some(raft) = node.raft.as_mut() {
            if raft.has_ready() {
                let rd = raft.ready();
                if let Some(snap) = &rd.snapshot {
                    node.disk_snapshot = Some(snap.clone());
                    node.disk_log.clear();
                }
                if let Some(hs) = rd.hard_state {
                    node.disk_hs = hs;
                }
                persist_entries(
                    &mut node.disk_log,
                    snap_index(&node.disk_snapshot),
                    &rd.entries,
                );
            }
        }
        self.crash(id);
    }

    /// (Re)starts `id` from its disk.
    pub fn restart(&mut self, id: NodeId) {
        let seed = self.seed;
        let node = self.node_mut(id);
        node.starts += 1;
        let raft = Raft::restore(
            node.cfg.clone(),
            node.disk_hs,
            node.disk_snapshot.clone(),
            node.disk_log.clone(),
            seed.wrapping_add(node.starts.wrapping_mul(7919)),
        );
        node.raft = Some(raft);
        node.applied = node.disk_snapshot.as_ref().map_or(Vec::new(), decode_state);
        node.read_states.clear();
        node.failed_reads.clear();
        let state = node.applied.clone();
        self.inv.on_restart(id);
        for e in &state {
            self.inv.on_apply(id, e);
        }
        self.flush(id);
    }

    /// Takes a snapshot of `id`'s state machine at its applied index, persists it and
    /// compacts the log, as the runtime does. Returns whether the log was compacted.
    pub fn compact(&mut self, id: NodeId) -> bool {
        let node = self.node_mut(id);
        let Some(raft) = node.raft.as_mut() else {
            return false;
        };
        let index = raft.log().applied();
        let Some(meta) = raft.snapshot_meta(index) else {
            return false;
        };
        if index <= raft.log().snapshot_index() {
            return false;
        }
        assert_eq!(
            node.applied.len() as u64,
            index,
            "state machine holds the applied prefix"
        );
        let snap = Snapshot {
            meta,
            data: Arc::new(bincode::serialize(&node.applied).expect("entries encode")),
        };
        raft.compact(snap.clone())
            .expect("compaction at the applied index");
        node.disk_log.retain(|e| e.index > index);
        node.disk_snapshot = Some(snap);
        true
    }

    /// Cuts both directions between `id` and everyone else.
    pub fn isolate(&mut self, id: NodeId) {
        for other in self.ids() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    /// Cuts every link between different groups.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        self.cut.clear();
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for &x in a {
                        for &y in b {
                            self.cut.insert((x, y));
                        }
                    }
                }
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Checks every safety invariant over the current state.
    pub fn check(&mut self) -> Result<(), String> {
        let nodes: Vec<(NodeId, Option<&Raft>)> = self
            .nodes
            .iter()
            .map(|n| (n.cfg.id, n.raft.as_ref()))
            .collect();
        self.inv.check(&nodes)
    }

    /// A random number in `[0, n)` from the simulation's seeded generator.
    pub fn rand(&mut self, n: usize) -> usize {
        self.rng.gen_range(0..n.max(1))
    }

    /// Ticks and delivers until a single leader among `members` is followed, in its term,
    /// by every live node of `members`; returns it, or None after `max_rounds`.
    pub fn wait_stable_leader_among(
        &mut self,
        members: &[NodeId],
        max_rounds: usize,
    ) -> Option<NodeId> {
        for _ in 0..max_rounds {
            self.tick_all();
            self.deliver_all();
            let leaders: Vec<_> = self
                .leaders()
                .into_iter()
                .filter(|(l, _)| members.contains(l))
                .collect();
            if let [(l, term)] = leaders[..] {
                let all_follow = members
                    .iter()
                    .filter_map(|&m| self.node(m).raft.as_ref())
                    .all(|r| r.term() == term && r.leader() == Some(l));
                if all_follow {
                    return Some(l);
                }
            }
        }
        None
    }

    /// Ticks and delivers until a single leader emerges whose term all live nodes share and
    /// that every live node follows; returns it, or None after `max_rounds`.
    pub fn wait_stable_leader(&mut self, max_rounds: usize) -> Option<NodeId> {
        for _ in 0..max_rounds {
            self.tick_all();
            self.deliver_all();
            let leaders = self.leaders();
            if let [(l, term)] = leaders[..] {
                let all_follow = self
                    .nodes
                    .iter()
                    .filter_map(|n| n.raft.as_ref())
                    .all(|r| r.term() == term && r.leader() == Some(l));
                if all_follow {
                    return Some(l);
                }
            }
        }
        None
    }
}

/// What a storage layer does with a Ready's entries: the first one replaces its index and
/// everything after it.
fn persist_entries(disk: &mut Vec<Entry>, offset: u64, entries: &[Entry]) {
    if let Some(first) = entries.first() {
        assert!(first.index > offset, "Ready entries below the snapshot");
        disk.truncate((first.index - offset - 1) as usize);
        assert_eq!(
            offset + disk.len() as u64 + 1,
            first.index,
            "Ready entries leave a gap on disk"
        );
        disk.extend_from_slice(entries);
    }
}

fn snap_index(s: &Option<Snapshot>) -> u64 {
    s.as_ref().map_or(0, |s| s.meta.index)
}

/// The sim's state machine is the list of applied entries; a snapshot holds it encoded.
fn decode_state(s: &Snapshot) -> Vec<Entry> {
    bincode::deserialize(&s.data).expect("the sim encodes snapshots itself")
}

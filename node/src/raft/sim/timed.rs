//! A continuous-time simulation of a cluster with clients, for the read paths.
//!
//! Unlike the step-based [`Sim`](super::Sim), time here is real: one global clock in
//! microseconds and an event queue. Every node has its own clock (a rate, an offset that can
//! jump) turned into ticks by the same [`ClockModel`] and [`Ticker`] the runtime uses, so
//! ticks of different nodes are unaligned and run at different speeds. Messages take random
//! delays and may be lost or cut by partitions; nodes crash and restart from what they
//! persisted, or pause (inputs queue up, ticks wait) and resume in the order `RaftLoop::run`
//! follows. A node handles its Ready as the runtime does (persist, send), but applying
//! committed entries is a separate event with its own delay, so reads meet entries that are
//! committed and not yet applied.
//!
//! Simulated clients issue writes and reads on every path to the nodes, following the rules
//! of `runtime/raft_loop.rs` (`TimedSim::invoke_now` mirrors `RaftLoop::handle_read`), and
//! the history is checked against the committed log by [`TimedSim::check_history`].
//! Deterministic given the seed.

use super::persist_entries;
use crate::clock::{ClockModel, Ticker};
use crate::raft::{Bugs, Config, Entry, EntryPayload, HardState, Message, NodeId, Raft, Role};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Real time, in microseconds since the start of the run.
pub type Micros = u64;

/// Bound on Ready rounds handled for one node in one go (as in the runtime).
const MAX_READY_ROUNDS: usize = 64;

/// The read paths of the node (`ReadMode` in the protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReadPath {
    /// A read entry through the log.
    Log,
    /// The leader's read index.
    ReadIndex,
    /// The leader's lease, else its read index.
    Lease,
    /// A read index from the leader, served by any node once applied.
    Follower,
    /// Local state at once: not linearizable, the control.
    Stale,
}

/// The linearizable read paths.
pub const LINEARIZABLE_PATHS: [ReadPath; 4] = [
    ReadPath::Log,
    ReadPath::ReadIndex,
    ReadPath::Lease,
    ReadPath::Follower,
];

/// The cluster and network of one run.
#[derive(Clone, Debug)]
pub struct Params {
    /// Number of nodes (all voters).
    pub nodes: u64,
    /// Passed to [`Config`].
    pub election_ticks_min: u32,
    /// Passed to [`Config`].
    pub election_ticks_max: u32,
    /// Passed to [`Config`].
    pub heartbeat_ticks: u32,
    /// Passed to [`Config`].
    pub max_clock_drift: f64,
    /// Passed to [`Config`].
    pub bugs: Bugs,
    /// One tick, in milliseconds of the node's own clock.
    pub tick_ms: f64,
    /// Clock rate of node `i + 1` (1.0 = real time); missing entries are 1.0.
    pub rates: Vec<f64>,
    /// Message delay, uniform in `[lo, hi]`.
    pub delay_us: (Micros, Micros),
    /// Probability that a message is lost.
    pub loss: f64,
    /// Delay between a Ready handing out committed entries and their being applied (each
    /// apply event applies a random part of what is queued), uniform in `[lo, hi]`.
    pub apply_delay_us: (Micros, Micros),
    /// Feed the ticker the wall reading (monotonic + offset) instead of the monotonic one:
    /// what the runtime did before ticks came from the monotonic clock, so that an offset
    /// jump forward became a burst of catch-up ticks.
    pub ticks_from_wall: bool,
    /// After a pause, deliver the ticks that fell due before handling the inputs that
    /// queued up (the order `RaftLoop::run` should follow); false handles the inputs first,
    /// with the tick count of before the pause, as `RaftLoop::run` did.
    pub ticks_first_after_pause: bool,
}

impl Params {
    /// `nodes` nodes with [`Config::new`]'s timeouts, 10 ms ticks, every clock at rate 1,
    /// delays of 0.1 to 2 ms, no loss, applies within 0 to 3 ms.
    pub fn new(nodes: u64) -> Params {
        let c = Config::new(1, vec![1]);
        Params {
            nodes,
            election_ticks_min: c.election_ticks_min,
            election_ticks_max: c.election_ticks_max,
            heartbeat_ticks: c.heartbeat_ticks,
            max_clock_drift: c.max_clock_drift,
            bugs: Bugs::default(),
            tick_ms: 10.0,
            rates: Vec::new(),
            delay_us: (100, 2_000),
            loss: 0.0,
            apply_delay_us: (0, 3_000),
            ticks_from_wall: false,
            ticks_first_after_pause: true,
        }
    }

    /// The node's configuration (the runtime's defaults are 30..60 ticks, heartbeat 5).
    pub fn with_timeouts(mut self, min: u32, max: u32, heartbeat: u32) -> Params {
        self.election_ticks_min = min;
        self.election_ticks_max = max;
        self.heartbeat_ticks = heartbeat;
        self
    }
}

/// The simulated clients.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Number of clients; each has one request outstanding at a time.
    pub clients: usize,
    /// Read paths to draw from (uniformly).
    pub paths: Vec<ReadPath>,
    /// Share of requests that are writes.
    pub write_share: f64,
    /// Keys are `0..keys`.
    pub keys: u8,
    /// Pause between a client's requests, uniform in `[lo, hi]`.
    pub think_us: (Micros, Micros),
    /// A client gives up on a request after this long.
    pub timeout_us: Micros,
    /// Clients `0..leader_followers` send every request to the live leader of the highest
    /// term (a client that learns of a new leader at once); the others keep their node
    /// until a request fails (a client that learns late).
    pub leader_followers: usize,
    /// Clients from this index on only read (so that none of them waits on a write the
    /// isolated leader will never commit) and keep their node after a failure (a client
    /// configured with one node); see [`TimedSim::pin_readers`].
    pub readers_from: usize,
}

impl Workload {
    /// `clients` clients reading on `paths`, half writes, 3 keys, 0.2 to 5 ms between
    /// requests, 500 ms timeout.
    pub fn new(clients: usize, paths: &[ReadPath]) -> Workload {
        Workload {
            clients,
            paths: paths.to_vec(),
            write_share: 0.5,
            keys: 3,
            think_us: (200, 5_000),
            timeout_us: 500_000,
            leader_followers: 0,
            readers_from: usize::MAX,
        }
    }
}

/// The faults injected, one every `every_us`.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Time between faults, uniform in `[lo, hi]`; (0, 0) for none.
    pub every_us: (Micros, Micros),
    /// Isolate the current leader (its old links are restored first), in two steps: one
    /// follower loses it first, the others up to two heartbeat intervals later, so that
    /// its lease may rest on acknowledgements that follower never sent.
    pub isolate_leader: bool,
    /// Split the nodes into two random groups.
    pub partitions: bool,
    /// Crash a node and restart it from its disk 50 ms to 1 s later.
    pub crashes: bool,
    /// Jump a node's clock offset by up to this many ms either way (0: never).
    pub clock_jump_ms: f64,
    /// Pause a node (as SIGSTOP) for 50 ms to 1 s.
    pub pauses: bool,
}

/// What a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Set `key` to `value` (values are unique in a run).
    Write {
        /// The key.
        key: u8,
        /// The value.
        value: u64,
    },
    /// Read `key` on `path`.
    Read {
        /// The key.
        key: u8,
        /// The path.
        path: ReadPath,
    },
}

/// What a client got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// The write was applied.
    Written,
    /// The read saw this value (None: the key was never written).
    Value(Option<u64>),
    /// Refused, lost, or timed out: says nothing.
    Failed,
}

/// One request in the history.
#[derive(Clone, Debug)]
pub struct Op {
    /// The client that sent it.
    pub client: usize,
    /// The node it went to.
    pub node: NodeId,
    /// What was asked.
    pub kind: OpKind,
    /// When it was sent.
    pub invoke_us: Micros,
    /// The highest commit index of any node when it was sent.
    pub invoke_commit: u64,
    /// When it completed, the highest commit index then, and the result.
    pub done: Option<(Micros, u64, OpResult)>,
}

#[derive(Clone, Debug)]
enum Ev {
    Tick { node: NodeId, gen: u64 },
    Deliver(Message),
    Apply { node: NodeId, inc: u64 },
    Issue { client: usize },
    Timeout { op: usize },
    Fault,
    Restart { node: NodeId },
    Isolate { node: NodeId },
    Resume { node: NodeId },
}

/// An input that reached a paused node, handled when it resumes.
#[derive(Clone, Debug)]
enum Held {
    Msg(Message),
    Op(usize),
}

/// One simulated node process.
struct TNode {
    cfg: Config,
    raft: Option<Raft>,
    /// Incarnation: bumped at each crash, so that events of a dead process are ignored.
    inc: u64,
    starts: u64,
    disk_hs: HardState,
    disk_log: Vec<Entry>,
    clock: ClockModel,
    ticker: Ticker,
    /// Tick events of an older generation are stale (the tick was rescheduled).
    tick_gen: u64,
    /// The key-value state machine and the last index applied to it.
    kv: BTreeMap<u8, u64>,
    kv_applied: u64,
    /// Committed entries handed out by Readies and not yet applied.
    apply_queue: VecDeque<Entry>,
    apply_scheduled: bool,
    /// Writes and log reads by index: (term, op).
    pending_writes: BTreeMap<u64, (u64, usize)>,
    /// Read-index requests by ctx.
    pending_read_index: BTreeMap<u64, usize>,
    /// Reads waiting for the state machine to reach an index.
    waiting_apply: BTreeMap<u64, Vec<usize>>,
    next_ctx: u64,
    last_role: Role,
    /// Stopped (SIGSTOP): inputs queue up in `held`, nothing runs.
    paused: bool,
    held: Vec<Held>,
}

/// The continuous-time simulated cluster.
pub struct TimedSim {
    /// The run's seed.
    pub seed: u64,
    /// The cluster and network.
    pub params: Params,
    workload: Option<Workload>,
    faults: Faults,
    rng: ChaCha8Rng,
    now: Micros,
    queue: BTreeMap<(Micros, u64), Ev>,
    seq: u64,
    nodes: Vec<TNode>,
    /// Directed links that lose every message.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// The committed log as observed so far (index 1 first).
    pub committed: Vec<Entry>,
    /// Every request issued, by op id.
    pub ops: Vec<Op>,
    /// Safety violations seen while running (committed entries that differ, applies that
    /// differ from the committed log).
    pub errors: Vec<String>,
    next_value: u64,
    /// Client `i`'s node of choice.
    client_target: Vec<NodeId>,
    /// The node and term whose lease is watched by [`TimedSim::watch_lease`].
    watched: Option<(NodeId, u64)>,
    /// Set when an entry of a later term was committed while the watched leader still
    /// reported `lease_read_ok()`: (time, term of the committed entry).
    pub lease_overlap: Option<(Micros, u64)>,
}

fn uniform(rng: &mut ChaCha8Rng, (lo, hi): (Micros, Micros)) -> Micros {
    if hi <= lo {
        lo
    } else {
        rng.gen_range(lo..=hi)
    }
}

fn encode_write(key: u8, value: u64) -> Vec<u8> {
    let mut p = vec![b'W', key];
    p.extend_from_slice(&value.to_be_bytes());
    p
}

fn encode_read(key: u8, op: usize) -> Vec<u8> {
    let mut p = vec![b'R', key];
    p.extend_from_slice(&(op as u64).to_be_bytes());
    p
}

/// The write (key, value) an entry carries, if it is one.
fn decode_write(e: &Entry) -> Option<(u8, u64)> {
    match &e.payload {
        EntryPayload::Command(p) if p.len() == 10 && p[0] == b'W' => {
            Some((p[1], u64::from_be_bytes(p[2..10].try_into().ok()?)))
        }
        _ => None,
    }
}

fn decode_read_key(e: &Entry) -> Option<u8> {
    match &e.payload {
        EntryPayload::Command(p) if p.len() == 10 && p[0] == b'R' => Some(p[1]),
        _ => None,
    }
}

impl TimedSim {
    /// A cold-started cluster; nodes' tick phases are random. Call [`TimedSim::run_until`].
    pub fn new(seed: u64, params: Params) -> TimedSim {
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let ids: Vec<NodeId> = (1..=params.nodes).collect();
        let mut nodes = Vec::new();
        for &id in &ids {
            let mut cfg = Config::new(id, ids.clone());
            cfg.election_ticks_min = params.election_ticks_min;
            cfg.election_ticks_max = params.election_ticks_max;
            cfg.heartbeat_ticks = params.heartbeat_ticks;
            cfg.max_clock_drift = params.max_clock_drift;
            cfg.bugs = params.bugs;
            let rate = params.rates.get(id as usize - 1).copied().unwrap_or(1.0);
            let mut clock = ClockModel::new();
            clock
                .set(0.0, None, Some(rate))
                .expect("test clock rates are valid");
            let ticker = Ticker::new(params.tick_ms, 0.0);
            nodes.push(TNode {
                cfg,
                raft: None,
                inc: 0,
                starts: 0,
                disk_hs: HardState::default(),
                disk_log: Vec::new(),
                clock,
                ticker,
                tick_gen: 0,
                kv: BTreeMap::new(),
                kv_applied: 0,
                apply_queue: VecDeque::new(),
                apply_scheduled: false,
                pending_writes: BTreeMap::new(),
                pending_read_index: BTreeMap::new(),
                waiting_apply: BTreeMap::new(),
                next_ctx: 1,
                last_role: Role::Follower,
                paused: false,
                held: Vec::new(),
            });
        }
        let mut sim = TimedSim {
            seed,
            params,
            workload: None,
            faults: Faults::default(),
            rng,
            now: 0,
            queue: BTreeMap::new(),
            seq: 0,
            nodes,
            cut: BTreeSet::new(),
            committed: Vec::new(),
            ops: Vec::new(),
            errors: Vec::new(),
            next_value: 1,
            client_target: Vec::new(),
            watched: None,
            lease_overlap: None,
        };
        // Each node starts at a random moment of the first tick, so that ticks are unaligned.
        for id in ids {
            let at = sim
                .rng
                .gen_range(0..(sim.params.tick_ms * 1000.0) as Micros);
            sim.schedule(at, Ev::Restart { node: id });
        }
        sim
    }

    /// Starts clients that run until the end of the run.
    pub fn with_workload(mut self, w: Workload) -> TimedSim {
        for c in 0..w.clients {
            self.client_target.push(1 + (c as u64 % self.params.nodes));
            let at = uniform(&mut self.rng, w.think_us);
            self.schedule(at, Ev::Issue { client: c });
        }
        self.workload = Some(w);
        self
    }

    /// Injects faults until the end of the run.
    pub fn with_faults(mut self, f: Faults) -> TimedSim {
        if f.every_us.1 > 0 {
            let at = uniform(&mut self.rng, f.every_us);
            self.schedule(at, Ev::Fault);
        }
        self.faults = f;
        self
    }

    /// The current real time.
    pub fn now(&self) -> Micros {
        self.now
    }

    /// A random number in `[0, n)` from the run's generator.
    pub fn rand(&mut self, n: u64) -> u64 {
        self.rng.gen_range(0..n.max(1))
    }

    /// The live core of `id`, if it is up.
    pub fn raft(&self, id: NodeId) -> Option<&Raft> {
        self.nodes[(id - 1) as usize].raft.as_ref()
    }

    /// The live leader of the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|n| n.raft.as_ref())
            .filter(|r| r.role() == Role::Leader)
            .max_by_key(|r| r.term())
            .map(|r| r.id())
    }

    /// A leader that every live node follows in its term, if there is one.
    pub fn stable_leader(&self) -> Option<NodeId> {
        let l = self.leader()?;
        let term = self.raft(l)?.term();
        let all = self
            .nodes
            .iter()
            .filter_map(|n| n.raft.as_ref())
            .all(|r| r.term() == term && r.leader() == Some(l));
        all.then_some(l)
    }

    /// Sets `id`'s clock rate from now on (its reading does not jump).
    pub fn set_rate(&mut self, id: NodeId, rate: f64) {
        let real_ms = self.now as f64 / 1000.0;
        let n = &mut self.nodes[(id - 1) as usize];
        n.clock
            .set(real_ms, None, Some(rate))
            .expect("test clock rates are valid");
        self.reschedule_tick(id);
    }

    /// Jumps `id`'s clock offset by `delta_ms` (the wall reading jumps; the monotonic one
    /// does not).
    pub fn jump_clock(&mut self, id: NodeId, delta_ms: f64) {
        let real_ms = self.now as f64 / 1000.0;
        let n = &mut self.nodes[(id - 1) as usize];
        let offset = n.clock.state(real_ms).offset_ms + delta_ms;
        n.clock
            .set(real_ms, Some(offset), None)
            .expect("test clock offsets are valid");
        self.reschedule_tick(id);
    }

    /// Sends the read-only clients (see [`Workload::readers_from`]) to `id` from now on.
    pub fn pin_readers(&mut self, id: NodeId) {
        let from = self
            .workload
            .as_ref()
            .map_or(usize::MAX, |w| w.readers_from);
        for t in self.client_target.iter_mut().skip(from) {
            *t = id;
        }
    }

    /// Cuts both directions between `id` and every other node.
    pub fn isolate(&mut self, id: NodeId) {
        for other in 1..=self.params.nodes {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    /// From now on, records in [`TimedSim::lease_overlap`] the first moment an entry of a
    /// term after `term` is committed while `leader` still reports `lease_read_ok()` in
    /// `term`.
    pub fn watch_lease(&mut self, leader: NodeId, term: u64) {
        self.watched = Some((leader, term));
    }

    /// Runs events until real time `until` (or the queue is empty). Bounded: the queue only
    /// holds events up to a finite time and every event schedules finitely many.
    pub fn run_until(&mut self, until: Micros) {
        while self.step_before(until) {}
        self.now = self.now.max(until);
    }

    /// Handles the next event if it falls at or before `until`; false if there is none.
    fn step_before(&mut self, until: Micros) -> bool {
        let Some((&(at, seq), _)) = self.queue.first_key_value() else {
            return false;
        };
        if at > until {
            return false;
        }
        let ev = self.queue.remove(&(at, seq)).expect("just seen");
        self.now = at;
        self.handle(ev);
        self.sync_commit();
        self.check_watch();
        true
    }

    /// Runs until `pred` holds (checked after every event) or real time `until`; returns
    /// whether it held.
    pub fn run_until_pred(&mut self, until: Micros, pred: impl Fn(&TimedSim) -> bool) -> bool {
        while !pred(self) {
            if !self.step_before(until) {
                break;
            }
        }
        pred(self)
    }

    fn schedule(&mut self, at: Micros, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn node_mut(&mut self, id: NodeId) -> &mut TNode {
        &mut self.nodes[(id - 1) as usize]
    }

    /// The reading the node's ticker is fed.
    fn tick_reading(&self, id: NodeId) -> f64 {
        let n = &self.nodes[(id - 1) as usize];
        let real_ms = self.now as f64 / 1000.0;
        if self.params.ticks_from_wall {
            n.clock.wall_ms(real_ms)
        } else {
            n.clock.mono_ms(real_ms)
        }
    }

    /// Schedules `id`'s next tick event at the real time its clock reaches the ticker's
    /// next tick, superseding any scheduled one.
    fn reschedule_tick(&mut self, id: NodeId) {
        let reading = self.tick_reading(id);
        let now = self.now;
        let n = self.node_mut(id);
        if n.raft.is_none() {
            return;
        }
        n.tick_gen += 1;
        let gen = n.tick_gen;
        let wait_ms = n.clock.real_ms_for(n.ticker.next_tick_at() - reading);
        // Rounded up, plus one: at that instant the reading has certainly reached the tick.
        let at = now + (wait_ms * 1000.0).ceil() as Micros + 1;
        self.schedule(at, Ev::Tick { node: id, gen });
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Tick { node, gen } => {
                let n = &self.nodes[(node - 1) as usize];
                // A paused node's ticks are delivered when it resumes.
                if n.tick_gen != gen || n.paused {
                    return;
                }
                self.deliver_due_ticks(node);
                self.process_ready(node);
                self.reschedule_tick(node);
            }
            Ev::Deliver(m) => {
                if self.cut.contains(&(m.from, m.to)) {
                    return;
                }
                let to = m.to;
                let n = self.node_mut(to);
                if n.paused {
                    n.held.push(Held::Msg(m));
                } else if let Some(r) = n.raft.as_mut() {
                    r.step(m);
                    self.process_ready(to);
                }
            }
            Ev::Apply { node, inc } => {
                if self.nodes[(node - 1) as usize].paused {
                    self.schedule(self.now + 1_000, Ev::Apply { node, inc });
                } else {
                    self.apply_some(node, inc);
                }
            }
            Ev::Resume { node } => self.resume(node),
            Ev::Issue { client } => self.issue(client),
            Ev::Timeout { op } => self.complete(op, OpResult::Failed),
            Ev::Fault => self.fault(),
            Ev::Restart { node } => self.start(node),
            Ev::Isolate { node } => self.isolate(node),
        }
    }

    /// (Re)starts `id` from its disk with a fresh ticker, as the runtime does.
    fn start(&mut self, id: NodeId) {
        let seed = self.seed;
        let reading = {
            let n = self.node_mut(id);
            n.starts += 1;
            n.raft = Some(Raft::new(
                n.cfg.clone(),
                n.disk_hs,
                n.disk_log.clone(),
                seed.wrapping_add(n.starts.wrapping_mul(7919)),
            ));
            n.kv.clear();
            n.kv_applied = 0;
            n.last_role = Role::Follower;
            self.tick_reading(id)
        };
        let tick_ms = self.params.tick_ms;
        self.node_mut(id).ticker = Ticker::new(tick_ms, reading);
        self.reschedule_tick(id);
        self.process_ready(id);
    }

    fn crash(&mut self, id: NodeId) {
        let n = self.node_mut(id);
        n.raft = None;
        n.inc += 1;
        n.tick_gen += 1;
        n.apply_queue.clear();
        n.apply_scheduled = false;
        n.pending_writes.clear();
        n.pending_read_index.clear();
        n.waiting_apply.clear();
        n.paused = false;
        n.held.clear();
    }

    /// Carries out `id`'s Readies as `RaftLoop::process_ready` does (persist, send, hand
    /// read states to the apply wait list), except that committed entries are queued for a
    /// later apply event instead of being applied at once.
    fn process_ready(&mut self, id: NodeId) {
        for _ in 0..MAX_READY_ROUNDS {
            let n = &mut self.nodes[(id - 1) as usize];
            let Some(raft) = n.raft.as_mut() else {
                return;
            };
            if !raft.has_ready() {
                break;
            }
            let rd = raft.ready();
            if rd.snapshot.is_some() {
                self.errors
                    .push(format!("node {id}: snapshot without compaction"));
            }
            if let Some(hs) = rd.hard_state {
                n.disk_hs = hs;
            }
            persist_entries(&mut n.disk_log, 0, &rd.entries);
            let mut failed = Vec::new();
            for ctx in &rd.failed_reads {
                if let Some(op) = n.pending_read_index.remove(ctx) {
                    failed.push(op);
                }
            }
            for rs in &rd.read_states {
                if let Some(op) = n.pending_read_index.remove(&rs.ctx) {
                    n.waiting_apply.entry(rs.index).or_default().push(op);
                }
            }
            n.apply_queue.extend(rd.committed.iter().cloned());
            raft.advance(&rd);
            let need_apply = !n.apply_queue.is_empty() && !n.apply_scheduled;
            if need_apply {
                n.apply_scheduled = true;
            }
            let inc = n.inc;
            for m in rd.messages {
                self.send(m);
            }
            for op in failed {
                self.complete(op, OpResult::Failed);
            }
            if need_apply {
                let at = self.now + uniform(&mut self.rng, self.params.apply_delay_us);
                self.schedule(at, Ev::Apply { node: id, inc });
            }
        }
        self.release_reads(id);
        // As `RaftLoop::note_role_change`: a leader that lost its role fails the reads
        // waiting for its quorum round.
        let n = &mut self.nodes[(id - 1) as usize];
        let role = n.raft.as_ref().map_or(Role::Follower, |r| r.role());
        if role != n.last_role {
            let mut failed = Vec::new();
            if n.last_role == Role::Leader {
                failed = std::mem::take(&mut n.pending_read_index)
                    .into_values()
                    .collect();
            }
            n.last_role = role;
            for op in failed {
                self.complete(op, OpResult::Failed);
            }
        }
    }

    fn send(&mut self, m: Message) {
        if self.cut.contains(&(m.from, m.to)) || m.to == 0 || m.to > self.params.nodes {
            return;
        }
        if self.params.loss > 0.0 && self.rng.gen_bool(self.params.loss) {
            return;
        }
        let at = self.now + uniform(&mut self.rng, self.params.delay_us);
        self.schedule(at, Ev::Deliver(m));
    }

    /// Applies a random part of `id`'s queued committed entries, answering writes and log
    /// reads as `RaftLoop::apply` does and then the reads waiting for the applied index.
    fn apply_some(&mut self, id: NodeId, inc: u64) {
        let n = &mut self.nodes[(id - 1) as usize];
        if n.inc != inc || n.raft.is_none() {
            return;
        }
        n.apply_scheduled = false;
        let count = self.rng.gen_range(1..=n.apply_queue.len().max(1));
        let mut done = Vec::new();
        for _ in 0..count {
            let Some(e) = n.apply_queue.pop_front() else {
                break;
            };
            match self.committed.get(e.index as usize - 1) {
                Some(c) if c == &e => {}
                other => self.errors.push(format!(
                    "node {id} applies {e:?} at index {} but the committed entry is {other:?}",
                    e.index
                )),
            }
            if let Some((key, value)) = decode_write(&e) {
                n.kv.insert(key, value);
            }
            n.kv_applied = e.index;
            let read_value = decode_read_key(&e).map(|k| n.kv.get(&k).copied());
            while let Some((&idx, _)) = n.pending_writes.first_key_value() {
                if idx > e.index {
                    break;
                }
                let (term, op) = n.pending_writes.pop_first().expect("non-empty").1;
                let result = if idx == e.index && term == e.term {
                    match read_value {
                        Some(v) => OpResult::Value(v),
                        None => OpResult::Written,
                    }
                } else {
                    OpResult::Failed
                };
                done.push((op, result));
            }
        }
        let more = !n.apply_queue.is_empty();
        if more {
            n.apply_scheduled = true;
        }
        for (op, r) in done {
            self.complete(op, r);
        }
        self.release_reads(id);
        if more {
            let at = self.now + uniform(&mut self.rng, self.params.apply_delay_us);
            self.schedule(at, Ev::Apply { node: id, inc });
        }
    }

    /// Answers the reads whose index `id` has applied.
    fn release_reads(&mut self, id: NodeId) {
        let n = &mut self.nodes[(id - 1) as usize];
        let mut ready = Vec::new();
        while let Some((&idx, _)) = n.waiting_apply.first_key_value() {
            if idx > n.kv_applied {
                break;
            }
            ready.extend(n.waiting_apply.pop_first().expect("non-empty").1);
        }
        for op in ready {
            self.answer_read(id, op);
        }
    }

    fn answer_read(&mut self, id: NodeId, op: usize) {
        let OpKind::Read { key, .. } = self.ops[op].kind else {
            return;
        };
        let v = self.nodes[(id - 1) as usize].kv.get(&key).copied();
        self.complete(op, OpResult::Value(v));
    }

    fn complete(&mut self, op: usize, result: OpResult) {
        if self.ops[op].done.is_some() {
            return;
        }
        let commit = self.sync_commit();
        self.ops[op].done = Some((self.now, commit, result));
        let client = self.ops[op].client;
        let pinned = self
            .workload
            .as_ref()
            .is_some_and(|w| client >= w.readers_from);
        if result == OpResult::Failed && !pinned {
            // Like a real client: after a failure, ask the leader (as a redirect would
            // tell), or try some node.
            let target = match self.leader() {
                Some(l) if self.rng.gen_bool(0.7) => l,
                _ => 1 + self.rand(self.params.nodes),
            };
            self.client_target[client] = target;
        }
        let think = self.workload.as_ref().map_or((0, 0), |w| w.think_us);
        let at = self.now + uniform(&mut self.rng, think);
        self.schedule(at, Ev::Issue { client });
    }

    /// A client sends its next request to the node of its choice.
    fn issue(&mut self, client: usize) {
        let Some(w) = self.workload.clone() else {
            return;
        };
        let key = self.rng.gen_range(0..w.keys.max(1));
        let kind = if client < w.readers_from && self.rng.gen_bool(w.write_share) {
            self.next_value += 1;
            OpKind::Write {
                key,
                value: self.next_value,
            }
        } else {
            let path = w.paths[self.rng.gen_range(0..w.paths.len())];
            OpKind::Read { key, path }
        };
        if client < w.leader_followers {
            if let Some(l) = self.leader() {
                self.client_target[client] = l;
            }
        } else if self.rng.gen_bool(0.05) {
            self.client_target[client] = 1 + self.rand(self.params.nodes);
        }
        let node = self.client_target[client];
        let invoke_commit = self.sync_commit();
        let op = self.ops.len();
        self.ops.push(Op {
            client,
            node,
            kind,
            invoke_us: self.now,
            invoke_commit,
            done: None,
        });
        self.schedule(self.now + w.timeout_us, Ev::Timeout { op });
        self.invoke(node, op);
    }

    /// Hands request `op` to node `id` (queued while it is paused).
    fn invoke(&mut self, id: NodeId, op: usize) {
        let n = self.node_mut(id);
        if n.paused {
            n.held.push(Held::Op(op));
        } else {
            self.invoke_now(id, op);
        }
    }

    /// Stops `id` (as SIGSTOP) for `for_us`: its inputs queue up, its ticks wait.
    pub fn pause(&mut self, id: NodeId, for_us: Micros) {
        let n = self.node_mut(id);
        if n.raft.is_none() || n.paused {
            return;
        }
        n.paused = true;
        self.schedule(self.now + for_us, Ev::Resume { node: id });
    }

    /// Delivers the ticks that fell due on `id`'s clock (see [`Ticker::due`]).
    fn deliver_due_ticks(&mut self, id: NodeId) {
        let reading = self.tick_reading(id);
        let n = self.node_mut(id);
        let due = n.ticker.due(reading);
        if let Some(r) = n.raft.as_mut() {
            for _ in 0..due {
                r.tick();
            }
        }
    }

    /// `id` continues after a pause, as `RaftLoop::run` does: the first input it was waiting
    /// for and the ones queued behind it are handled in one batch, then the Ready; the
    /// ticks that fell due meanwhile come before the batch with
    /// [`Params::ticks_first_after_pause`], else after it.
    fn resume(&mut self, id: NodeId) {
        let n = self.node_mut(id);
        if !n.paused {
            return;
        }
        n.paused = false;
        let held = std::mem::take(&mut n.held);
        let ticks_first = self.params.ticks_first_after_pause;
        if ticks_first {
            self.deliver_due_ticks(id);
        }
        for h in held {
            match h {
                Held::Msg(m) => {
                    if let Some(r) = self.node_mut(id).raft.as_mut() {
                        r.step(m);
                    }
                }
                Held::Op(op) => self.invoke_now(id, op),
            }
        }
        self.process_ready(id);
        if !ticks_first {
            self.deliver_due_ticks(id);
            self.process_ready(id);
        }
        self.reschedule_tick(id);
    }

    /// Hands request `op` to node `id`, mirroring `RaftLoop::propose` and
    /// `RaftLoop::handle_read` (same cases in the same order), then handles the Ready.
    fn invoke_now(&mut self, id: NodeId, op: usize) {
        let kind = self.ops[op].kind;
        let n = &mut self.nodes[(id - 1) as usize];
        let Some(raft) = n.raft.as_mut() else {
            return self.complete(op, OpResult::Failed);
        };
        let is_leader = raft.role() == Role::Leader;
        let propose =
            |raft: &mut Raft, n_pw: &mut BTreeMap<u64, (u64, usize)>, p: Vec<u8>| match raft
                .propose(p)
            {
                Ok((index, term)) => {
                    n_pw.insert(index, (term, op));
                    true
                }
                Err(_) => false,
            };
        let ok = match kind {
            OpKind::Write { key, value } => {
                propose(raft, &mut n.pending_writes, encode_write(key, value))
            }
            OpKind::Read { key, path } => match path {
                ReadPath::Stale => {
                    self.answer_read(id, op);
                    true
                }
                ReadPath::Log => propose(raft, &mut n.pending_writes, encode_read(key, op)),
                ReadPath::Lease if is_leader && raft.lease_read_ok() => {
                    // As the runtime: no earlier than the commit index at arrival.
                    let index = raft.log().committed();
                    n.waiting_apply.entry(index).or_default().push(op);
                    true
                }
                ReadPath::ReadIndex | ReadPath::Lease if !is_leader => false,
                ReadPath::ReadIndex | ReadPath::Lease | ReadPath::Follower => {
                    let ctx = n.next_ctx;
                    n.next_ctx += 1;
                    match raft.read_index(ctx) {
                        Ok(()) => {
                            n.pending_read_index.insert(ctx, op);
                            true
                        }
                        Err(_) => false,
                    }
                }
            },
        };
        if !ok {
            self.complete(op, OpResult::Failed);
        }
        self.process_ready(id);
    }

    fn fault(&mut self) {
        let f = self.faults.clone();
        let mut kinds = Vec::new();
        if f.isolate_leader {
            kinds.push(0);
        }
        if f.partitions {
            kinds.push(1);
        }
        if f.isolate_leader || f.partitions {
            kinds.push(2);
            kinds.push(2);
        }
        if f.crashes {
            kinds.push(3);
        }
        if f.clock_jump_ms > 0.0 {
            kinds.push(4);
            kinds.push(4);
        }
        if f.pauses {
            kinds.push(5);
        }
        if kinds.is_empty() {
            return;
        }
        let nodes = self.params.nodes;
        match kinds[self.rng.gen_range(0..kinds.len())] {
            0 => {
                if let Some(l) = self.leader() {
                    self.cut.clear();
                    let first = 1 + self.rand(nodes);
                    self.cut.insert((l, first));
                    self.cut.insert((first, l));
                    let tick_us = (self.params.tick_ms * 1000.0) as Micros;
                    let hb = Micros::from(self.params.heartbeat_ticks);
                    let at = self.now + self.rand(2 * hb * tick_us);
                    self.schedule(at, Ev::Isolate { node: l });
                }
            }
            1 => {
                self.cut.clear();
                let side: Vec<bool> = (0..nodes).map(|_| self.rng.gen_bool(0.5)).collect();
                for a in 1..=nodes {
                    for b in 1..=nodes {
                        if side[(a - 1) as usize] != side[(b - 1) as usize] {
                            self.cut.insert((a, b));
                        }
                    }
                }
            }
            2 => self.cut.clear(),
            3 => {
                let id = 1 + self.rand(nodes);
                let down = self.nodes.iter().filter(|n| n.raft.is_none()).count() as u64;
                // At most a minority down at once, so that the run keeps making progress.
                if self.nodes[(id - 1) as usize].raft.is_some() && 2 * (down + 1) < nodes {
                    self.crash(id);
                    let at = self.now + self.rng.gen_range(50_000..1_000_000);
                    self.schedule(at, Ev::Restart { node: id });
                }
            }
            4 => {
                let id = 1 + self.rand(nodes);
                let delta = self.rng.gen_range(-f.clock_jump_ms..=f.clock_jump_ms);
                self.jump_clock(id, delta);
            }
            _ => {
                let id = 1 + self.rand(nodes);
                let d = self.rng.gen_range(50_000..1_000_000);
                self.pause(id, d);
            }
        }
        let at = self.now + uniform(&mut self.rng, f.every_us);
        self.schedule(at, Ev::Fault);
    }

    /// Extends the observed committed log from every live node and returns its length;
    /// records an error if two nodes committed different entries at one index.
    fn sync_commit(&mut self) -> u64 {
        for n in &self.nodes {
            let Some(r) = n.raft.as_ref() else {
                continue;
            };
            let c = r.log().committed();
            let known = self.committed.len() as u64;
            if c > known {
                for i in known + 1..=c {
                    match r.log().entry(i) {
                        Some(e) => self.committed.push(e.clone()),
                        None => {
                            self.errors
                                .push(format!("node {} commits {i} but lacks it", r.id()));
                            break;
                        }
                    }
                }
            } else if c > 0 && r.log().term(c) != Some(self.committed[c as usize - 1].term) {
                self.errors.push(format!(
                    "node {} committed term {:?} at index {c}, another node term {}",
                    r.id(),
                    r.log().term(c),
                    self.committed[c as usize - 1].term
                ));
            }
        }
        self.committed.len() as u64
    }

    fn check_watch(&mut self) {
        let Some((old, term)) = self.watched else {
            return;
        };
        if self.lease_overlap.is_some() {
            return;
        }
        let Some(newer) = self.committed.last().map(|e| e.term).filter(|&t| t > term) else {
            return;
        };
        let holds = self
            .raft(old)
            .is_some_and(|r| r.term() == term && r.lease_read_ok());
        if holds {
            self.lease_overlap = Some((self.now, newer));
        }
    }

    /// Checks the history against the committed log: every completed read returned the
    /// key's value after some committed prefix whose length lies between the commit index
    /// known (anywhere) when it was sent and when it completed; every acknowledged write is
    /// in the committed log by the time it was acknowledged. Returns the violations.
    pub fn check_history(&self) -> Vec<String> {
        // Per key: (index, value) of each committed write, ascending.
        let mut writes: BTreeMap<u8, Vec<(u64, u64)>> = BTreeMap::new();
        let mut write_index: BTreeMap<u64, u64> = BTreeMap::new();
        for e in &self.committed {
            if let Some((k, v)) = decode_write(e) {
                writes.entry(k).or_default().push((e.index, v));
                write_index.insert(v, e.index);
            }
        }
        let value_at = |k: u8, p: u64| -> Option<u64> {
            let w = writes.get(&k)?;
            let i = w.partition_point(|&(idx, _)| idx <= p);
            (i > 0).then(|| w[i - 1].1)
        };
        let mut out = Vec::new();
        for (id, op) in self.ops.iter().enumerate() {
            let Some((at, hi, result)) = op.done else {
                continue;
            };
            let lo = op.invoke_commit;
            match (op.kind, result) {
                (OpKind::Read { key, path }, OpResult::Value(v)) => {
                    let mut allowed = vec![value_at(key, lo)];
                    if let Some(w) = writes.get(&key) {
                        allowed.extend(
                            w.iter()
                                .filter(|&&(idx, _)| idx > lo && idx <= hi)
                                .map(|&(_, v)| Some(v)),
                        );
                    }
                    if !allowed.contains(&v) {
                        out.push(format!(
                            "op {id}: {path:?} read of key {key} at node {} returned {v:?}; \
                             committed prefixes {lo}..={hi} allow {allowed:?} (sent at {} us, \
                             answered at {at} us)",
                            op.node, op.invoke_us
                        ));
                    }
                }
                (OpKind::Write { key, value }, OpResult::Written) => {
                    match write_index.get(&value) {
                        Some(&idx) if idx <= hi => {}
                        other => out.push(format!(
                            "op {id}: write {key}={value} acknowledged at {at} us by node {} \
                         (commit {hi}) but committed at {other:?}",
                            op.node
                        )),
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Completed reads per path with a value.
    pub fn reads_by_path(&self) -> BTreeMap<ReadPath, usize> {
        let mut m = BTreeMap::new();
        for op in &self.ops {
            if let (OpKind::Read { path, .. }, Some((_, _, OpResult::Value(_)))) =
                (op.kind, op.done)
            {
                *m.entry(path).or_insert(0) += 1;
            }
        }
        m
    }
}

//! The Raft loop: one OS thread that owns the Raft core, the write-ahead log and the
//! key-value store, and does, in order, what the core's `Ready` asks: persist (one fsync for
//! the whole batch: group commit), send, apply, answer clients.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};

use crate::bugs::Bug;
use crate::clock::{Clock, Ticker};
use crate::command;
use crate::failpoints::{crash, Effect, Failpoint, Failpoints};
use crate::kv::{Command, KvStore, Outcome};
use crate::protocol::{
    ErrorKind, ErrorReply, MemberAddrs, Members, Operation, ReadMode, Reply, Status,
};
use crate::raft::{
    Config as RaftConfig, Entry, EntryPayload, LogIndex, Message, NodeId, ProposeError, Raft, Role,
    Snapshot, Term,
};
use crate::runtime::wall_lease::WallLease;
use crate::storage::{Storage, StorageOptions};

use super::input::{ClientResult, Handle, Input};
use super::peer_net;
use super::NodeConfig;

/// Opens storage, builds the core and starts the loop thread. Returns once recovery is done,
/// so a corrupt log is reported before the node claims to be up.
pub fn start(
    config: Arc<NodeConfig>,
    clock: Arc<Clock>,
    failpoints: Arc<Failpoints>,
    rt: tokio::runtime::Handle,
) -> anyhow::Result<(Handle, std::thread::JoinHandle<anyhow::Result<()>>)> {
    let (storage, recovered) = Storage::open(
        &config.data_dir,
        StorageOptions {
            fsync: config.fsync,
        },
    )
    .with_context(|| format!("opening the log in {}", config.data_dir.display()))?;
    tracing::info!(
        term = recovered.hard_state.term,
        commit = recovered.hard_state.commit,
        entries = recovered.entries.len(),
        "recovered from storage"
    );

    let mut voters: Vec<NodeId> = Vec::new();
    if !config.join {
        voters = config.peers.keys().copied().collect();
        voters.push(config.id);
        voters.sort_unstable();
        voters.dedup();
    }
    let mut rc = RaftConfig::new(config.id, voters);
    rc.heartbeat_ticks = config.heartbeat_ticks;
    rc.election_ticks_min = config.election_ticks_min;
    rc.election_ticks_max = config.election_ticks_max;
    rc.bugs = crate::bugs::raft_bugs(&config.bugs);
    rc.max_clock_drift = config.max_clock_drift;
    let kv = match &recovered.snapshot {
        Some(s) => KvStore::from_snapshot(&s.data, s.meta.index)
            .with_context(|| format!("loading the snapshot at index {}", s.meta.index))?,
        None => KvStore::new(),
    };
    let mut raft = Raft::restore(
        rc,
        recovered.hard_state,
        recovered.snapshot,
        recovered.entries,
        config.seed,
    );
    // A leader's snapshot the store cannot load is dropped by the core before it replaces
    // anything, rather than failing the install below and stopping the node.
    raft.set_snapshot_check(|data, index| {
        KvStore::from_snapshot(data, index)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });

    let (tx, rx) = std_mpsc::channel();
    let span = tracing::Span::current();
    let mut state = RaftLoop::new(config, clock, rt, storage, raft, kv);
    state.failpoints = failpoints;
    let initial: Vec<(NodeId, String)> = state
        .config
        .peers
        .iter()
        .map(|(&id, a)| (id, a.clone()))
        .collect();
    for (id, addr) in initial {
        state.set_peer_addr(id, addr);
    }
    state.learn_config_addrs();
    let thread = std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            let _enter = span.enter();
            state.run(rx)
        })
        .context("spawning the Raft thread")?;
    Ok((Handle::new(tx), thread))
}

/// A client waiting for its write (or log read) at `index` to be applied.
struct PendingWrite {
    term: Term,
    reply: oneshot::Sender<ClientResult>,
}

/// A read waiting for its read index, then for the state machine to reach it.
struct PendingRead {
    key: String,
    /// The path it came by (its failpoint; a lease read re-checks the lease when answered).
    mode: ReadMode,
    reply: oneshot::Sender<ClientResult>,
}

/// Most messages a new leader's held-back output keeps (the rest are dropped, as a lossy
/// network would; Raft resends).
const MAX_HELD_MESSAGES: usize = 100_000;

struct RaftLoop {
    raft: Raft,
    storage: Storage,
    kv: KvStore,
    clock: Arc<Clock>,
    config: Arc<NodeConfig>,
    rt: tokio::runtime::Handle,
    peers: HashMap<NodeId, mpsc::Sender<Message>>,
    /// The address each peer sender uses (from the command line, then config entries).
    peer_addrs: BTreeMap<NodeId, String>,
    /// Each node's client address, for "not leader" hints.
    client_addrs: BTreeMap<NodeId, String>,
    /// The (voters, outgoing, context) whose addresses were last learned.
    seen_config: Option<(BTreeSet<NodeId>, BTreeSet<NodeId>, Vec<u8>)>,
    /// The admin request waiting for its membership change to complete.
    pending_change: Option<(BTreeSet<NodeId>, oneshot::Sender<ClientResult>)>,
    pending_writes: BTreeMap<LogIndex, PendingWrite>,
    pending_read_index: HashMap<u64, PendingRead>,
    waiting_apply: BTreeMap<LogIndex, Vec<PendingRead>>,
    next_read_ctx: u64,
    /// For the `ack-before-persist` bug: when the buffered log was last made durable.
    last_sync: Instant,
    unsynced: bool,
    last_role: Role,
    last_sweep: Instant,
    /// Turns the clock's monotonic readings into ticks.
    ticker: Ticker,
    /// With the `lease-wall-clock` bug: the wall reading of recent ticks.
    wall_lease: WallLease,
    /// The node's failpoints (all off unless the harness set some).
    failpoints: Arc<Failpoints>,
    /// Committed entries not yet applied, each with the time it may be applied: empty
    /// unless `after-commit-before-apply` deferred some (entries are applied in order).
    apply_queue: VecDeque<(Instant, Entry)>,
    /// The term in which this node last became leader (to see the first Ready of a win).
    led_term: Term,
    /// Until when a new leader's outgoing messages are held back
    /// (`after-election-before-first-append`), and the messages held.
    hold_until: Option<Instant>,
    held: Vec<Message>,
}

/// The most bytes of an encoded command the loop proposes. A log entry travels to followers
/// in one peer frame, in an AppendEntries message that carries at least that entry, so a
/// larger command could never replicate: it is refused `invalid` before it is proposed. The
/// margin covers the message's and the entry's own fields.
pub const MAX_PROPOSAL_BYTES: usize = crate::protocol::MAX_FRAME_BYTES - 64 * 1024;

/// Most inputs handled between two Ready rounds; bounds the latency a batch can add.
const MAX_BATCH_INPUTS: usize = 4096;
/// With `ack-before-persist`, how long acknowledged entries may sit in memory only.
const BUGGY_SYNC_INTERVAL: Duration = Duration::from_millis(500);

impl RaftLoop {
    /// A loop over recovered state, with no peer senders yet and nothing pending.
    fn new(
        config: Arc<NodeConfig>,
        clock: Arc<Clock>,
        rt: tokio::runtime::Handle,
        storage: Storage,
        raft: Raft,
        kv: KvStore,
    ) -> RaftLoop {
        let ticker = Ticker::new(config.tick_ms as f64, clock.mono_ms());
        RaftLoop {
            raft,
            storage,
            kv,
            clock,
            client_addrs: config.client_addrs.clone(),
            config,
            rt,
            peers: HashMap::new(),
            peer_addrs: BTreeMap::new(),
            seen_config: None,
            pending_change: None,
            pending_writes: BTreeMap::new(),
            pending_read_index: HashMap::new(),
            waiting_apply: BTreeMap::new(),
            next_read_ctx: first_read_ctx(),
            last_sync: Instant::now(),
            unsynced: false,
            last_role: Role::Follower,
            last_sweep: Instant::now(),
            ticker,
            wall_lease: WallLease::default(),
            failpoints: Arc::new(Failpoints::new()),
            apply_queue: VecDeque::new(),
            led_term: 0,
            hold_until: None,
            held: Vec::new(),
        }
    }

    fn run(&mut self, rx: std_mpsc::Receiver<Input>) -> anyhow::Result<()> {
        loop {
            self.deliver_due_ticks();
            let wait = self.until_next_tick();
            match rx.recv_timeout(wait) {
                Ok(input) => {
                    // The wait may have outlasted its timeout (a paused process, a loaded
                    // machine): count the ticks that fell due first, or a lease read queued
                    // meanwhile is judged by the tick count of before the pause
                    // (`timed_reads::a_resumed_leader_counts_the_ticks_it_missed...`).
                    self.deliver_due_ticks();
                    self.handle(input);
                    for input in rx.try_iter().take(MAX_BATCH_INPUTS) {
                        self.handle(input);
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            self.process_ready()?;
            // Deferred applies and held messages fall due with time, not with inputs.
            self.apply_due();
            self.release_reads();
            self.flush_held();
            self.learn_config_addrs();
            self.check_membership_change();
            self.note_role_change();
            if self.last_sweep.elapsed() > Duration::from_millis(100) {
                self.sweep_abandoned();
                self.last_sweep = Instant::now();
            }
        }
    }

    /// Delivers the ticks that fell due since the last call (see [`Ticker`]).
    fn deliver_due_ticks(&mut self) {
        // The monotonic reading: an offset bump must not fast-forward timers and leases.
        let now = self.clock.mono_ms();
        for _ in 0..self.ticker.due(now) {
            self.raft.tick();
            if self.config.has(Bug::LeaseWallClock) {
                self.wall_lease
                    .on_tick(self.raft.ticks(), self.clock.now_ms());
            }
        }
    }

    /// Real time until the next tick, deferred apply or held-message release is due.
    fn until_next_tick(&self) -> Duration {
        let tick = self
            .clock
            .real_duration_for(self.ticker.next_tick_at() - self.clock.mono_ms());
        let now = Instant::now();
        let apply = self.apply_queue.front().map(|(at, _)| *at);
        [apply, self.hold_until]
            .into_iter()
            .flatten()
            .map(|at| at.saturating_duration_since(now))
            .fold(tick, Duration::min)
    }

    /// Whether a lease read may be answered locally: the core's lease on the monotonic
    /// clock, or with the `lease-wall-clock` bug the same lease measured on the wall clock.
    fn lease_holds(&self) -> bool {
        if self.config.has(Bug::LeaseWallClock) {
            let tick_ms = self.config.tick_ms as f64;
            self.wall_lease
                .holds(self.raft.lease(), tick_ms, self.clock.now_ms())
        } else {
            self.raft.lease_read_ok()
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Peer(msg) => self.raft.step(msg),
            Input::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Input::Client { op, reply } => self.handle_client(op, reply),
        }
    }

    fn status(&self) -> Status {
        let s = self.raft.status();
        Status {
            id: s.id,
            role: s.role,
            term: s.term,
            leader: s.leader,
            commit_index: s.commit,
            applied_index: self.kv.applied_index(),
            last_log_index: s.last_index,
            clock: self.clock.state(),
        }
    }

    fn not_leader(&self) -> ErrorReply {
        let leader = self.raft.leader().filter(|&l| l != self.config.id);
        let addr = leader.and_then(|l| self.client_addrs.get(&l).cloned());
        ErrorReply::not_leader(leader, addr)
    }

    fn handle_client(&mut self, op: Operation, reply: oneshot::Sender<ClientResult>) {
        let cmd = match op {
            Operation::Put(c) => Command::Put(c),
            Operation::Cas(c) => Command::Cas(c),
            Operation::Add(c) => Command::Add(c),
            Operation::Get { key, mode } => {
                let mode = mode.unwrap_or(self.config.default_read_mode);
                return self.handle_read(key, mode, reply);
            }
            Operation::Members => {
                let _ = reply.send(Ok(Reply::Members(self.members())));
                return;
            }
            Operation::ChangeMembership { voters, addrs } => {
                return self.change_membership(voters, addrs, reply);
            }
            Operation::Status
            | Operation::Clock { .. }
            | Operation::Failpoint { .. }
            | Operation::Failpoints => {
                let _ = reply.send(Err(ErrorReply {
                    kind: ErrorKind::Invalid,
                    definite: true,
                    message: "admin requests are not key-value operations".into(),
                }));
                return;
            }
        };
        self.propose(cmd, reply);
    }

    fn members(&self) -> Members {
        let c = self.raft.cluster_config();
        let index = self.raft.log().config_index();
        Members {
            voters: c.voters.iter().copied().collect(),
            outgoing: c.outgoing.iter().copied().collect(),
            config_index: index,
            committed: index <= self.raft.log().committed(),
            snapshot_index: self.raft.log().snapshot_index(),
        }
    }

    fn change_membership(
        &mut self,
        voters: Vec<NodeId>,
        addrs: Vec<MemberAddrs>,
        reply: oneshot::Sender<ClientResult>,
    ) {
        let refuse = |message: String| ErrorReply {
            kind: ErrorKind::Invalid,
            definite: true,
            message,
        };
        let voters: BTreeSet<NodeId> = voters.into_iter().collect();
        if let Some(v) = voters.iter().find(|&&v| {
            v != self.config.id
                && !addrs.iter().any(|a| a.id == v)
                && !self.peer_addrs.contains_key(&v)
        }) {
            let _ = reply.send(Err(refuse(format!("no address given for n{v}"))));
            return;
        }
        if self.pending_change.is_some() {
            let _ = reply.send(Err(refuse(
                "a membership change is already in progress".into(),
            )));
            return;
        }
        let context = match serde_json::to_vec(&addrs) {
            Ok(c) => c,
            Err(e) => {
                let _ = reply.send(Err(refuse(format!("cannot encode addresses: {e}"))));
                return;
            }
        };
        match self.raft.propose_membership(voters.clone(), context) {
            Ok(()) => {
                // The learners must be reachable before the config entries name them.
                self.learn_addrs(&addrs);
                tracing::info!(?voters, "membership change started");
                self.pending_change = Some((voters, reply));
            }
            Err(ProposeError::NotLeader { .. }) => {
                let _ = reply.send(Err(self.not_leader()));
            }
            Err(e) => {
                let _ = reply.send(Err(refuse(format!("membership change refused: {e}"))));
            }
        }
    }

    /// Answers the pending membership change once its final configuration is committed
    /// (or fails it when this node lost leadership first).
    fn check_membership_change(&mut self) {
        let Some((voters, _)) = &self.pending_change else {
            return;
        };
        let c = self.raft.cluster_config();
        let done = !c.is_joint()
            && &c.voters == voters
            && self.raft.log().config_index() <= self.raft.log().committed()
            && self.raft.pending_change().is_none();
        if done {
            let (_, reply) = self.pending_change.take().expect("checked");
            tracing::info!(voters = ?c.voters, "membership change committed");
            let _ = reply.send(Ok(Reply::Members(self.members())));
        } else if self.raft.role() == Role::Leader
            && self.raft.pending_change().is_none()
            && !c.is_joint()
            && self.raft.log().config_index() <= self.raft.log().committed()
        {
            // Neither done nor under way: the core abandoned it (learners did not catch up).
            let (_, reply) = self.pending_change.take().expect("checked");
            let _ = reply.send(Err(ErrorReply {
                kind: ErrorKind::Unavailable,
                definite: true,
                message: "membership change abandoned: the new nodes did not catch up in time"
                    .into(),
            }));
        } else if self.raft.role() != Role::Leader {
            let (_, reply) = self.pending_change.take().expect("checked");
            let _ = reply.send(Err(ErrorReply {
                kind: ErrorKind::LeadershipLost,
                definite: false,
                message: "lost leadership during the membership change; check the members".into(),
            }));
        }
    }

    /// Points the sender to `id` at `addr`, replacing a sender that used another address.
    fn set_peer_addr(&mut self, id: NodeId, addr: String) {
        if id == self.config.id || self.peer_addrs.get(&id) == Some(&addr) {
            return;
        }
        tracing::info!(peer = id, %addr, "peer address");
        let tx = peer_net::spawn_sender(&self.rt, self.config.id, id, addr.clone());
        self.peers.insert(id, tx);
        self.peer_addrs.insert(id, addr);
    }

    fn learn_addrs(&mut self, addrs: &[MemberAddrs]) {
        let me = self.config.id;
        for a in addrs {
            let peer = a
                .peer_via
                .iter()
                .find(|(from, _)| *from == me)
                .map_or(&a.peer, |(_, addr)| addr)
                .clone();
            self.client_addrs.insert(a.id, a.client.clone());
            self.set_peer_addr(a.id, peer);
        }
    }

    /// Learns the members' addresses from the configuration in effect when it changed.
    fn learn_config_addrs(&mut self) {
        let c = self.raft.cluster_config();
        let key = (c.voters.clone(), c.outgoing.clone(), c.context.clone());
        if self.seen_config.as_ref() == Some(&key) {
            return;
        }
        if !key.2.is_empty() {
            match serde_json::from_slice::<Vec<MemberAddrs>>(&key.2) {
                Ok(addrs) => self.learn_addrs(&addrs),
                Err(e) => tracing::warn!(error = %e, "undecodable addresses in a config entry"),
            }
        }
        self.seen_config = Some(key);
    }

    fn propose(&mut self, cmd: Command, reply: oneshot::Sender<ClientResult>) {
        let payload = match cmd.try_encode() {
            Some(p) if p.len() <= MAX_PROPOSAL_BYTES => p,
            too_large => {
                let len = too_large.map_or_else(|| "too many".to_string(), |p| p.len().to_string());
                let _ = reply.send(Err(ErrorReply {
                    kind: ErrorKind::Invalid,
                    definite: true,
                    message: format!(
                        "request too large: {len} bytes as a log entry, at most \
                         {MAX_PROPOSAL_BYTES} fit one replication message"
                    ),
                }));
                return;
            }
        };
        match self.raft.propose(payload) {
            Ok((index, term)) => {
                self.pending_writes
                    .insert(index, PendingWrite { term, reply });
            }
            Err(_) => {
                let _ = reply.send(Err(self.not_leader()));
            }
        }
    }

    fn handle_read(&mut self, key: String, mode: ReadMode, reply: oneshot::Sender<ClientResult>) {
        let is_leader = self.raft.role() == Role::Leader;
        let read = PendingRead { key, mode, reply };
        match mode {
            ReadMode::Stale => self.answer_read(read),
            ReadMode::Log => self.propose(Command::Read { key: read.key }, read.reply),
            ReadMode::Follower if !is_leader && self.config.has(Bug::FollowerReadLocal) => {
                self.answer_read(read)
            }
            ReadMode::Lease if is_leader && self.lease_holds() => {
                // The commit index may have moved past the applied index earlier in this
                // batch (entries are applied only after it): an acknowledged write could
                // be committed but not yet in the store. Read no earlier than the commit
                // index at the time the read is accepted.
                let index = self.raft.log().committed();
                if self.config.has(Bug::ReadBeforeApply) {
                    // Deliberate bug: answered from the store as it is.
                    self.answer_read(read);
                } else {
                    self.read_when_applied(index, read);
                }
            }
            ReadMode::ReadIndex | ReadMode::Lease if !is_leader => {
                let _ = read.reply.send(Err(self.not_leader()));
            }
            ReadMode::ReadIndex | ReadMode::Lease | ReadMode::Follower => {
                // A lease read without a lease is served by the read-index path, and is
                // answered (and delayed by failpoints) as one.
                let mut read = read;
                if read.mode == ReadMode::Lease {
                    read.mode = ReadMode::ReadIndex;
                }
                let ctx = self.next_read_ctx;
                self.next_read_ctx += 1;
                match self.raft.read_index(ctx) {
                    Ok(()) => {
                        self.pending_read_index.insert(ctx, read);
                    }
                    Err(e) => {
                        let _ = read.reply.send(Err(ErrorReply {
                            kind: ErrorKind::Unavailable,
                            definite: true,
                            message: format!("read index refused: {e}"),
                        }));
                    }
                }
            }
        }
    }

    /// Answers `read` once the store has applied `index`: now if it has, else when
    /// [`RaftLoop::release_reads`] sees it applied.
    fn read_when_applied(&mut self, index: LogIndex, read: PendingRead) {
        if self.kv.applied_index() >= index {
            self.answer_read(read);
        } else {
            self.waiting_apply.entry(index).or_default().push(read);
        }
    }

    /// Takes the read's value from the store and answers. A lease read is answered only if
    /// the lease still holds once the value is taken: time passed since the lease was checked
    /// (a wait for apply, a pause, the read's failpoint), and a new leader may have committed
    /// writes once the lease ran out; checking after taking the value makes the moment the
    /// value was taken one at which no other leader could have committed anything.
    fn answer_read(&mut self, read: PendingRead) {
        self.failpoints.block(Failpoint::before_read(read.mode));
        let value = self.kv.get(&read.key);
        if read.mode == ReadMode::Lease {
            self.deliver_due_ticks();
            if !self.lease_holds() {
                let _ = read.reply.send(Err(ErrorReply {
                    kind: ErrorKind::LeadershipLost,
                    definite: true,
                    message: "the lease ran out before the read was answered".into(),
                }));
                return;
            }
        }
        let _ = read.reply.send(Ok(Reply::Value { value }));
    }

    fn process_ready(&mut self) -> anyhow::Result<()> {
        // Bounded: each round either makes progress or leaves has_ready false.
        for _ in 0..8 {
            if !self.raft.has_ready() {
                break;
            }
            let rd = self.raft.ready();
            self.note_new_leadership();
            if let Some(snap) = &rd.snapshot {
                self.install_snapshot(snap)?;
            }
            let writing = rd.hard_state.is_some() || !rd.entries.is_empty();
            if writing {
                self.failpoints.block(Failpoint::BeforePersist);
            }
            let buggy = self.config.has(Bug::AckBeforePersist);
            if buggy {
                // Deliberate bug: acknowledge first; the log reaches the disk only now and then.
                self.send_all(&rd.messages);
            }
            let mut wrote = false;
            if let Some(hs) = &rd.hard_state {
                self.storage.save_hard_state(hs)?;
                wrote = true;
            }
            if !rd.entries.is_empty() {
                self.storage.append(&rd.entries)?;
                wrote = true;
            }
            if wrote {
                self.unsynced = true;
            }
            if self.unsynced && (!buggy || self.last_sync.elapsed() >= BUGGY_SYNC_INTERVAL) {
                if wrote {
                    self.failpoints.block(Failpoint::AfterWriteBeforeFsync);
                }
                self.storage.sync()?;
                self.unsynced = false;
                self.last_sync = Instant::now();
            }
            if !buggy {
                if wrote && !rd.messages.is_empty() {
                    self.failpoints.block(Failpoint::AfterPersistBeforeSend);
                }
                self.send_all(&rd.messages);
            }
            for ctx in &rd.failed_reads {
                if let Some(pr) = self.pending_read_index.remove(ctx) {
                    let _ = pr.reply.send(Err(ErrorReply {
                        kind: ErrorKind::LeadershipLost,
                        definite: true,
                        message: "the read could not be confirmed by a leader".into(),
                    }));
                }
            }
            for rs in &rd.read_states {
                if let Some(pr) = self.pending_read_index.remove(&rs.ctx) {
                    if self.config.has(Bug::ReadBeforeApply) {
                        // Deliberate bug: the commit index reached the read index, so the
                        // read is answered without waiting for the store to apply it.
                        self.answer_read(pr);
                    } else {
                        self.waiting_apply.entry(rs.index).or_default().push(pr);
                    }
                }
            }
            self.commit(&rd.committed);
            self.raft.advance(&rd);
            self.release_reads();
            self.maybe_snapshot()?;
        }
        Ok(())
    }

    /// Replaces the state machine and the log by a snapshot from the leader: the store is
    /// decoded first (a bad snapshot is a fatal error before anything changes on disk), then
    /// the snapshot is made durable, then the store swapped in.
    fn install_snapshot(&mut self, snap: &Snapshot) -> anyhow::Result<()> {
        self.failpoints.block(Failpoint::BeforeInstallSnapshot);
        let index = snap.meta.index;
        let kv = KvStore::from_snapshot(&snap.data, index)
            .with_context(|| format!("decoding the leader's snapshot at index {index}"))?;
        self.storage
            .save_snapshot(snap)
            .with_context(|| format!("saving the leader's snapshot at index {index}"))?;
        self.kv = kv;
        // Deferred entries the snapshot covers are in the store now.
        self.apply_queue.retain(|(_, e)| e.index > index);
        tracing::info!(
            index,
            bytes = snap.data.len(),
            "installed snapshot from the leader"
        );
        // Writes proposed here at or below the snapshot: their outcome is unknown here.
        while let Some((&idx, _)) = self.pending_writes.first_key_value() {
            if idx > index {
                break;
            }
            let p = self.pending_writes.pop_first().expect("non-empty").1;
            let _ = p.reply.send(Err(lost_leadership()));
        }
        self.failpoints.block(Failpoint::AfterInstallSnapshot);
        Ok(())
    }

    /// Takes a snapshot and compacts the log once `snapshot_entries` entries were applied
    /// since the last one.
    fn maybe_snapshot(&mut self) -> anyhow::Result<()> {
        let every = self.config.snapshot_entries;
        let applied = self.raft.log().applied();
        if every == 0 || applied < self.raft.log().snapshot_index().saturating_add(every) {
            return Ok(());
        }
        if self.kv.applied_index() != applied {
            return Ok(());
        }
        let Some(meta) = self.raft.snapshot_meta(applied) else {
            return Ok(());
        };
        let started = Instant::now();
        let snap = Snapshot {
            meta,
            data: Arc::new(self.kv.to_snapshot()),
        };
        self.storage
            .save_snapshot(&snap)
            .with_context(|| format!("saving a snapshot at index {applied}"))?;
        let bytes = snap.data.len();
        self.raft.compact(snap)?;
        tracing::info!(
            index = applied,
            bytes,
            ms = started.elapsed().as_millis() as u64,
            "snapshot taken; log compacted"
        );
        Ok(())
    }

    fn send_all(&mut self, messages: &[Message]) {
        if self.hold_until.is_some() {
            let room = MAX_HELD_MESSAGES.saturating_sub(self.held.len());
            self.held.extend(messages.iter().take(room).cloned());
            return;
        }
        for m in messages {
            if let Some(tx) = self.peers.get(&m.to) {
                // A full queue means the peer is unreachable or slow: Raft tolerates the loss.
                let _ = tx.try_send(m.clone());
            }
        }
    }

    /// The command as this replica applies it: unchanged, except under the test-only
    /// divergence fault (see [`NodeConfig::test_diverge_puts`]).
    fn diverge(&self, cmd: Command) -> Command {
        match cmd {
            Command::Put(command::Put {
                key,
                value,
                write_id,
            }) if self.config.test_diverge_puts => Command::Put(command::Put {
                key,
                value: value.wrapping_add(1),
                write_id,
            }),
            other => other,
        }
    }

    /// The first Ready after this node won an election: `after-election-before-first-append`
    /// may crash it, or hold its messages back for a while (it keeps serving meanwhile).
    fn note_new_leadership(&mut self) {
        let term = self.raft.term();
        if self.raft.role() != Role::Leader || self.led_term == term {
            return;
        }
        self.led_term = term;
        match self
            .failpoints
            .eval(Failpoint::AfterElectionBeforeFirstAppend)
        {
            Some(Effect::Sleep(d)) => self.hold_until = Some(Instant::now() + d),
            Some(Effect::Panic) => crash(Failpoint::AfterElectionBeforeFirstAppend),
            None => {}
        }
    }

    /// Sends the messages a new leader held back, once their time is up.
    fn flush_held(&mut self) {
        if self.hold_until.is_some_and(|t| Instant::now() >= t) {
            self.hold_until = None;
            let held = std::mem::take(&mut self.held);
            self.send_all(&held);
        }
    }

    /// Hands newly committed entries to the store: applied now, or (when
    /// `after-commit-before-apply` delays them, or earlier ones still wait) queued until due.
    fn commit(&mut self, committed: &[Entry]) {
        if committed.is_empty() {
            return;
        }
        let delay = match self.failpoints.eval(Failpoint::AfterCommitBeforeApply) {
            Some(Effect::Sleep(d)) => d,
            Some(Effect::Panic) => crash(Failpoint::AfterCommitBeforeApply),
            None => Duration::ZERO,
        };
        if delay.is_zero() && self.apply_queue.is_empty() {
            self.apply(committed);
            return;
        }
        let at = Instant::now() + delay;
        self.apply_queue
            .extend(committed.iter().map(|e| (at, e.clone())));
        self.apply_due();
    }

    /// Applies the queued entries whose time has come, in log order (an entry due later
    /// holds back the ones after it).
    fn apply_due(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        while self.apply_queue.front().is_some_and(|(at, _)| *at <= now) {
            due.push(self.apply_queue.pop_front().expect("non-empty").1);
        }
        if !due.is_empty() {
            self.apply(&due);
        }
    }

    fn apply(&mut self, committed: &[Entry]) {
        for e in committed {
            let outcome = match &e.payload {
                EntryPayload::Noop => {
                    self.kv.note_applied(e.index);
                    None
                }
                EntryPayload::Config(_) => {
                    self.failpoints.block(Failpoint::BeforeApplyConfigChange);
                    self.kv.note_applied(e.index);
                    None
                }
                EntryPayload::Command(bytes) => Some(match Command::decode(bytes) {
                    Ok(cmd) => {
                        if matches!(cmd, Command::Read { .. }) {
                            self.failpoints.block(Failpoint::BeforeReadLog);
                        }
                        self.kv.apply(e.index, &self.diverge(cmd))
                    }
                    Err(err) => {
                        self.kv.note_applied(e.index);
                        Outcome::Error(format!("undecodable command: {err}"))
                    }
                }),
            };
            // Pending writes at or below this index that are not this entry were overwritten.
            while let Some((&idx, _)) = self.pending_writes.first_key_value() {
                if idx > e.index {
                    break;
                }
                let p = self.pending_writes.pop_first().expect("non-empty").1;
                let result = if idx == e.index && p.term == e.term {
                    match &outcome {
                        Some(o) => outcome_to_result(o.clone()),
                        None => Err(lost_leadership()),
                    }
                } else {
                    Err(lost_leadership())
                };
                let _ = p.reply.send(result);
            }
        }
    }

    fn release_reads(&mut self) {
        let applied = self.kv.applied_index();
        while let Some((&idx, _)) = self.waiting_apply.first_key_value() {
            if idx > applied {
                break;
            }
            for pr in self.waiting_apply.pop_first().expect("non-empty").1 {
                self.answer_read(pr);
            }
        }
    }

    fn note_role_change(&mut self) {
        let role = self.raft.role();
        if role != self.last_role {
            // Reads waiting for a quorum round that will never complete: tell the clients
            // now rather than at their timeout (reads change nothing, so this is safe).
            if self.last_role == Role::Leader {
                for (_, pr) in self.pending_read_index.drain() {
                    let _ = pr.reply.send(Err(ErrorReply {
                        kind: ErrorKind::LeadershipLost,
                        definite: true,
                        message: "lost leadership before the read was confirmed".into(),
                    }));
                }
            }
            self.last_role = role;
        }
    }

    /// Forgets requests whose client stopped waiting, so abandoned requests cannot pile up.
    fn sweep_abandoned(&mut self) {
        self.pending_writes.retain(|_, p| !p.reply.is_closed());
        self.pending_read_index.retain(|_, p| !p.reply.is_closed());
        for v in self.waiting_apply.values_mut() {
            v.retain(|p| !p.reply.is_closed());
        }
        self.waiting_apply.retain(|_, v| !v.is_empty());
        // The core keeps driving an abandoned admin request's change; only the answer goes.
        if self
            .pending_change
            .as_ref()
            .is_some_and(|(_, r)| r.is_closed())
        {
            self.pending_change = None;
        }
    }
}

fn lost_leadership() -> ErrorReply {
    ErrorReply {
        kind: ErrorKind::LeadershipLost,
        definite: false,
        message: "leadership changed; the entry was overwritten or its outcome is unknown".into(),
    }
}

fn outcome_to_result(o: Outcome) -> ClientResult {
    match o {
        Outcome::Written => Ok(Reply::Written),
        Outcome::Cas { swapped, current } => Ok(Reply::Cas { swapped, current }),
        Outcome::Value(value) => Ok(Reply::Value { value }),
        // Conservative: a refusal from the state machine might be a duplicate of a request
        // that did apply, so it is reported as not definite.
        Outcome::Error(message) => Err(ErrorReply {
            kind: ErrorKind::Invalid,
            definite: false,
            message,
        }),
    }
}

/// The id of this incarnation's first read-index request, drawn from the operating system's
/// randomness (never from the node's seed, which a restart repeats). Ids that started at 1 in
/// every process would let a leader's answer to the previous incarnation, sent before a
/// crash and delivered after a restart in the same term, release a new read at an index
/// older than writes acknowledged since. Drawn below 2^62 so counting up never wraps.
fn first_read_ctx() -> u64 {
    (rand::random::<u64>() >> 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{WriteId, MAX_FRAME_BYTES};
    use crate::raft::{Entry, HardState, MessageBody};
    use crate::storage::FsyncPolicy;

    /// The largest command the loop proposes still travels alone in one peer frame, encoded
    /// as the peer transport encodes it.
    #[test]
    fn largest_proposal_fits_one_peer_frame() {
        let cmd = Command::Put(command::Put {
            key: String::new(),
            value: i64::MIN,
            write_id: WriteId {
                client: u64::MAX,
                seq: u64::MAX,
            },
        });
        let overhead = cmd.encode().len();
        let cmd = Command::Put(command::Put {
            key: "k".repeat(MAX_PROPOSAL_BYTES - overhead),
            value: i64::MIN,
            write_id: WriteId {
                client: u64::MAX,
                seq: u64::MAX,
            },
        });
        let payload = cmd.try_encode().unwrap();
        assert_eq!(payload.len(), MAX_PROPOSAL_BYTES);
        let msg = Message {
            from: u64::MAX,
            to: u64::MAX,
            term: u64::MAX,
            body: MessageBody::AppendEntries {
                prev_index: u64::MAX,
                prev_term: u64::MAX,
                entries: vec![Entry {
                    term: u64::MAX,
                    index: u64::MAX,
                    payload: EntryPayload::Command(payload),
                }],
                commit: u64::MAX,
            },
        };
        let encoded = bincode::serialize(&msg).unwrap();
        assert!(encoded.len() <= MAX_FRAME_BYTES, "{} bytes", encoded.len());
    }

    fn node_config(id: NodeId, dir: &std::path::Path) -> NodeConfig {
        NodeConfig {
            id,
            peer_listen: String::new(),
            client_listen: String::new(),
            peers: BTreeMap::new(),
            join: false,
            snapshot_entries: 0,
            client_addrs: BTreeMap::new(),
            data_dir: dir.to_path_buf(),
            tick_ms: 10,
            heartbeat_ticks: 2,
            election_ticks_min: 20,
            election_ticks_max: 40,
            default_read_mode: ReadMode::Lease,
            max_clock_drift: 0.1,
            fsync: FsyncPolicy::Never,
            bugs: Default::default(),
            test_diverge_puts: false,
            request_timeout_ms: 1000,
            seed: 7,
            limits: Default::default(),
        }
    }

    /// Everything the loop sent to the peers since the last call.
    fn sent(rxs: &mut BTreeMap<NodeId, mpsc::Receiver<Message>>) -> Vec<Message> {
        let mut out = Vec::new();
        for rx in rxs.values_mut() {
            while let Ok(m) = rx.try_recv() {
                out.push(m);
            }
        }
        out
    }

    /// Node 2 of {1, 2, 3}, its loop built over a store holding `entries` and `hs`, with a
    /// channel standing in for each peer. The runtime and directory must outlive the loop.
    struct TestLoop {
        rl: RaftLoop,
        peers: BTreeMap<NodeId, mpsc::Receiver<Message>>,
        _rt: tokio::runtime::Runtime,
        _dir: tempfile::TempDir,
    }

    fn test_loop(hs: HardState, entries: Vec<Entry>) -> TestLoop {
        test_loop_with(hs, entries, |_| {})
    }

    /// [`test_loop`] with the node's configuration changed by `adjust` (a deliberate bug).
    fn test_loop_with(
        hs: HardState,
        entries: Vec<Entry>,
        adjust: impl FnOnce(&mut NodeConfig),
    ) -> TestLoop {
        let dir = tempfile::tempdir().unwrap();
        let mut config = node_config(2, dir.path());
        adjust(&mut config);
        let config = Arc::new(config);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (mut storage, _) = Storage::open(
            dir.path(),
            StorageOptions {
                fsync: FsyncPolicy::Never,
            },
        )
        .unwrap();
        storage.append(&entries).unwrap();
        storage.save_hard_state(&hs).unwrap();
        let mut rc = RaftConfig::new(2, vec![1, 2, 3]);
        rc.heartbeat_ticks = config.heartbeat_ticks;
        rc.election_ticks_min = config.election_ticks_min;
        rc.election_ticks_max = config.election_ticks_max;
        rc.max_clock_drift = config.max_clock_drift;
        let raft = Raft::new(rc, hs, entries, config.seed);
        let mut rl = RaftLoop::new(
            config,
            Arc::new(Clock::new()),
            rt.handle().clone(),
            storage,
            raft,
            KvStore::new(),
        );
        let mut peers = BTreeMap::new();
        for id in [1, 3] {
            let (tx, rx) = mpsc::channel(1 << 16);
            rl.peers.insert(id, tx);
            peers.insert(id, rx);
        }
        TestLoop {
            rl,
            peers,
            _rt: rt,
            _dir: dir,
        }
    }

    /// A clock offset bump (an NTP step) moves the wall reading only: the loop's ticks follow
    /// the monotonic reading, so a follower's election timer (and with it the vote refusal
    /// that leader leases rely on) is not fast-forwarded. Before the fix a +250 ms bump
    /// became 25 catch-up ticks at once; here a minute's bump would have been 200.
    #[test]
    fn an_offset_bump_does_not_fast_forward_the_election_timer() {
        let mut t = test_loop(HardState::default(), Vec::new());
        let rl = &mut t.rl;
        let started = Instant::now();
        rl.deliver_due_ticks();
        let before = rl.raft.ticks();
        rl.clock.set(Some(60_000.0), None).unwrap();
        rl.deliver_due_ticks();
        let real_ticks = started.elapsed().as_millis() as u64 / rl.config.tick_ms + 1;
        let delivered = rl.raft.ticks() - before;
        assert!(
            delivered <= real_ticks,
            "{delivered} ticks delivered in {real_ticks} ticks of real time"
        );
        // A backward bump stalls nothing either: ticks keep coming with real time.
        rl.clock.set(Some(-60_000.0), None).unwrap();
        let at = rl.raft.ticks();
        let deadline = Instant::now() + Duration::from_secs(5);
        while rl.raft.ticks() < at + 3 && Instant::now() < deadline {
            std::thread::sleep(rl.until_next_tick());
            rl.deliver_due_ticks();
        }
        assert!(
            rl.raft.ticks() >= at + 3,
            "ticks stalled after a backward bump"
        );
    }

    /// Hands the loop a client read of `key` through `mode`; the answer comes on the receiver.
    fn get(rl: &mut RaftLoop, key: &str, mode: ReadMode) -> oneshot::Receiver<ClientResult> {
        let (tx, rx) = oneshot::channel();
        rl.handle(Input::Client {
            op: Operation::Get {
                key: key.into(),
                mode: Some(mode),
            },
            reply: tx,
        });
        rx
    }

    /// A follower restarted in the same term must not take the previous incarnation's
    /// read-index answer (sent to it before the crash, delivered after) for one of its own
    /// new reads: the index in it can be older than a write acknowledged since.
    #[test]
    fn a_read_index_answer_to_a_previous_incarnation_releases_no_new_read() {
        let TestLoop {
            mut rl,
            peers: mut rxs,
            _rt,
            _dir,
        } = test_loop(
            HardState {
                term: 1,
                voted_for: Some(1),
                commit: 0,
            },
            Vec::new(),
        );
        // n1 leads term 1: n2 learns it from a heartbeat.
        rl.handle(Input::Peer(Message {
            from: 1,
            to: 2,
            term: 1,
            body: MessageBody::Heartbeat {
                commit: 0,
                round: 1,
            },
        }));
        rl.process_ready().unwrap();
        let mut rx = get(&mut rl, "x", ReadMode::Follower);
        rl.process_ready().unwrap();
        let asked: Vec<u64> = sent(&mut rxs)
            .into_iter()
            .filter_map(|m| match m.body {
                MessageBody::ReadIndexRequest { ctx } if m.to == 1 => Some(ctx),
                _ => None,
            })
            .collect();
        assert_eq!(asked.len(), 1, "one read-index request to the leader");
        // The previous incarnation's first read had the id a fresh process starts from, if
        // every process starts from the same one: its late answer must match nothing.
        for old_ctx in 1..=3 {
            rl.handle(Input::Peer(Message {
                from: 1,
                to: 2,
                term: 1,
                body: MessageBody::ReadIndexResponse {
                    ctx: old_ctx,
                    index: Some(0),
                },
            }));
            rl.process_ready().unwrap();
        }
        assert!(
            rx.try_recv().is_err(),
            "a late answer to another incarnation released this read"
        );
    }

    /// n2 holds W (x = 42) at index 2 of term 1, committed and acknowledged by the old leader
    /// n1, but n2 only knows commit = 1. It wins term 2 and gets its lease; then n3's
    /// acknowledgement of the no-op is handed to the loop (commit jumps to 3, over W) without
    /// processing the Ready: the store has applied only index 1, and the lease holds.
    fn leader_with_lease_over_an_unapplied_write(adjust: impl FnOnce(&mut NodeConfig)) -> TestLoop {
        let write = Command::Put(command::Put {
            key: "x".into(),
            value: 42,
            write_id: WriteId { client: 1, seq: 1 },
        });
        let entries = vec![
            Entry {
                term: 1,
                index: 1,
                payload: EntryPayload::Noop,
            },
            Entry {
                term: 1,
                index: 2,
                payload: EntryPayload::Command(write.encode()),
            },
        ];
        let hs = HardState {
            term: 1,
            voted_for: Some(1),
            commit: 1,
        };
        let mut t = test_loop_with(hs, entries, adjust);
        let (rl, rxs) = (&mut t.rl, &mut t.peers);
        rl.process_ready().unwrap();
        assert_eq!(rl.kv.applied_index(), 1);

        // Election: n3 grants the pre-vote and the vote.
        for _ in 0..1000 {
            if rl.raft.role() != Role::Follower {
                break;
            }
            rl.raft.tick();
            rl.process_ready().unwrap();
        }
        for _ in 0..2 {
            let pre_vote = rl.raft.role() == Role::PreCandidate;
            let term = if pre_vote {
                rl.raft.term() + 1
            } else {
                rl.raft.term()
            };
            rl.handle(Input::Peer(Message {
                from: 3,
                to: 2,
                term,
                body: MessageBody::VoteResponse {
                    pre_vote,
                    granted: true,
                },
            }));
            rl.process_ready().unwrap();
            if rl.raft.role() == Role::Leader {
                break;
            }
        }
        assert_eq!(rl.raft.role(), Role::Leader);
        assert_eq!(rl.raft.term(), 2);
        assert_eq!(rl.raft.log().last_index(), 3, "the no-op of term 2");

        // The lease: n3 acknowledges a heartbeat round.
        let mut round = None;
        for _ in 0..50 {
            rl.raft.tick();
            rl.process_ready().unwrap();
            round = sent(rxs).into_iter().find_map(|m| match m.body {
                MessageBody::Heartbeat { round, .. } if m.to == 3 => Some(round),
                _ => None,
            });
            if round.is_some() {
                break;
            }
        }
        let round = round.expect("a heartbeat to n3");
        rl.handle(Input::Peer(Message {
            from: 3,
            to: 2,
            term: 2,
            body: MessageBody::HeartbeatResponse { round },
        }));
        rl.process_ready().unwrap();
        assert!(
            !rl.raft.lease_read_ok(),
            "nothing of term 2 is committed yet"
        );
        assert_eq!(rl.kv.applied_index(), 1);

        // One batch: n3 acknowledges the no-op, then a lease read arrives.
        rl.handle(Input::Peer(Message {
            from: 3,
            to: 2,
            term: 2,
            body: MessageBody::AppendResponse {
                success: true,
                index: 3,
                hint_term: 0,
                hint_index: 0,
            },
        }));
        assert!(rl.raft.lease_read_ok());
        t
    }

    fn value_of(rx: &mut oneshot::Receiver<ClientResult>) -> Option<crate::protocol::Value> {
        match rx.try_recv() {
            Ok(Ok(Reply::Value { value })) => value,
            other => panic!("unexpected answer: {other:?}"),
        }
    }

    /// One batch carries the no-op's acknowledgement and a lease read: the read must see W,
    /// although the store had applied only index 1 when the read was accepted.
    #[test]
    fn lease_read_waits_for_apply_of_the_commit_index() {
        let mut t = leader_with_lease_over_an_unapplied_write(|_| {});
        let rl = &mut t.rl;
        let mut rx = get(rl, "x", ReadMode::Lease);
        rl.process_ready().unwrap();
        assert_eq!(rl.kv.applied_index(), 3);
        assert_eq!(
            value_of(&mut rx),
            Some(crate::protocol::Value::Int(42)),
            "the lease read missed the committed write"
        );
    }

    /// `after-commit-before-apply` defers the apply of W while the loop goes on: a lease read
    /// (and a read-index read) waits for it. With the `read-before-apply` bug the same reads
    /// are answered at once, without W: the window the failpoint exists to widen.
    #[test]
    fn a_deferred_apply_holds_reads_back_unless_the_read_before_apply_bug_is_on() {
        for bug in [false, true] {
            // A lease of 179 ticks of 10 ms: it outlasts the deferral by far.
            let mut t = leader_with_lease_over_an_unapplied_write(|c| {
                if bug {
                    c.bugs.insert(Bug::ReadBeforeApply);
                }
                c.election_ticks_min = 200;
                c.election_ticks_max = 400;
            });
            let rl = &mut t.rl;
            rl.failpoints
                .configure("after-commit-before-apply", "1*sleep(300)")
                .unwrap();
            let started = Instant::now();
            let mut lease = get(rl, "x", ReadMode::Lease);
            rl.process_ready().unwrap();
            assert_eq!(rl.raft.log().committed(), 3);
            assert_eq!(rl.kv.applied_index(), 1, "the apply was deferred");
            if bug {
                assert_eq!(value_of(&mut lease), None, "bug: answered before apply");
                continue;
            }
            assert!(lease.try_recv().is_err(), "answered before W was applied");
            while rl.kv.applied_index() < 3 && started.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(rl.until_next_tick());
                rl.apply_due();
                rl.release_reads();
            }
            assert!(started.elapsed() >= Duration::from_millis(300));
            assert_eq!(rl.kv.applied_index(), 3);
            assert_eq!(value_of(&mut lease), Some(crate::protocol::Value::Int(42)));
        }
    }

    /// `before-read-lease` stalls the loop after the lease was checked, longer than the lease
    /// lasts (17 ticks of 10 ms): the value taken afterwards may be older than writes a new
    /// leader committed meanwhile, so the read is refused rather than answered.
    #[test]
    fn a_lease_read_whose_lease_ran_out_before_its_value_was_taken_is_refused() {
        let mut t = leader_with_lease_over_an_unapplied_write(|_| {});
        let rl = &mut t.rl;
        rl.process_ready().unwrap();
        assert_eq!(rl.kv.applied_index(), 3);
        rl.deliver_due_ticks();
        assert!(rl.lease_holds());
        rl.failpoints
            .configure("before-read-lease", "1*sleep(400)")
            .unwrap();
        let mut rx = get(rl, "x", ReadMode::Lease);
        match rx.try_recv() {
            Ok(Err(e)) => {
                assert_eq!(e.kind, ErrorKind::LeadershipLost);
                assert!(e.definite, "a refused read changed nothing");
            }
            other => panic!("a lease read answered after its lease ran out: {other:?}"),
        }
        // The point fired once; the lease is gone, so the next lease read gets no value from
        // this node without a new quorum round.
        let mut rx = get(rl, "x", ReadMode::Lease);
        assert!(
            !matches!(rx.try_recv(), Ok(Ok(_))),
            "answered without a lease"
        );
    }
}

//! The Raft loop: one OS thread that owns the Raft core, the write-ahead log and the
//! key-value store, and does, in order, what the core's `Ready` asks: persist (one fsync for
//! the whole batch: group commit), send, apply, answer clients.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::kv::{Command, KvStore, Outcome};
use crate::protocol::{ErrorKind, ErrorReply, Operation, ReadMode, Reply, Status};
use crate::raft::{
    Config as RaftConfig, EntryPayload, LogIndex, Message, NodeId, Raft, Role, Term,
};
use crate::storage::{Storage, StorageOptions};

use super::peer_net;
use super::NodeConfig;

/// The answer to a client request.
pub type ClientResult = Result<Reply, ErrorReply>;

/// What other threads hand to the Raft loop.
pub enum Input {
    /// A message from a peer, already decoded.
    Peer(Message),
    /// A client's key-value request (Get, Put, Cas, Add).
    Client {
        op: Operation,
        reply: oneshot::Sender<ClientResult>,
    },
    /// An admin status request.
    Status(oneshot::Sender<Status>),
}

/// A cheap, clonable way to reach the Raft loop from any thread or task.
#[derive(Clone)]
pub struct Handle {
    tx: std_mpsc::Sender<Input>,
}

impl Handle {
    /// Queues an input; false if the loop has stopped.
    pub fn send(&self, input: Input) -> bool {
        self.tx.send(input).is_ok()
    }
}

/// Opens storage, builds the core and starts the loop thread. Returns once recovery is done,
/// so a corrupt log is reported before the node claims to be up.
pub fn start(
    config: Arc<NodeConfig>,
    clock: Arc<Clock>,
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

    let mut voters: Vec<NodeId> = config.peers.keys().copied().collect();
    voters.push(config.id);
    voters.sort_unstable();
    voters.dedup();
    let mut rc = RaftConfig::new(config.id, voters);
    rc.heartbeat_ticks = config.heartbeat_ticks;
    rc.election_ticks_min = config.election_ticks_min;
    rc.election_ticks_max = config.election_ticks_max;
    rc.bugs = config.bugs;
    rc.max_clock_drift = config.max_clock_drift;
    let raft = Raft::new(rc, recovered.hard_state, recovered.entries, config.seed);

    let mut peers = HashMap::new();
    for (&id, addr) in &config.peers {
        if id != config.id {
            peers.insert(id, peer_net::spawn_sender(&rt, config.id, id, addr.clone()));
        }
    }

    let (tx, rx) = std_mpsc::channel();
    let span = tracing::Span::current();
    let mut state = RaftLoop {
        raft,
        storage,
        kv: KvStore::new(),
        clock,
        config,
        peers,
        pending_writes: BTreeMap::new(),
        pending_read_index: HashMap::new(),
        waiting_apply: BTreeMap::new(),
        next_read_ctx: 1,
        last_sync: Instant::now(),
        unsynced: false,
        last_role: Role::Follower,
        last_sweep: Instant::now(),
    };
    let thread = std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            let _enter = span.enter();
            state.run(rx)
        })
        .context("spawning the Raft thread")?;
    Ok((Handle { tx }, thread))
}

/// A client waiting for its write (or log read) at `index` to be applied.
struct PendingWrite {
    term: Term,
    reply: oneshot::Sender<ClientResult>,
}

/// A read waiting for its read index, then for the state machine to reach it.
struct PendingRead {
    key: String,
    reply: oneshot::Sender<ClientResult>,
}

struct RaftLoop {
    raft: Raft,
    storage: Storage,
    kv: KvStore,
    clock: Arc<Clock>,
    config: Arc<NodeConfig>,
    peers: HashMap<NodeId, mpsc::Sender<Message>>,
    pending_writes: BTreeMap<LogIndex, PendingWrite>,
    pending_read_index: HashMap<u64, PendingRead>,
    waiting_apply: BTreeMap<LogIndex, Vec<PendingRead>>,
    next_read_ctx: u64,
    /// For the `ack-before-persist` bug: when the buffered log was last made durable.
    last_sync: Instant,
    unsynced: bool,
    last_role: Role,
    last_sweep: Instant,
}

/// Most inputs handled between two Ready rounds; bounds the latency a batch can add.
const MAX_BATCH_INPUTS: usize = 4096;
/// Most ticks delivered at once after a clock jump forward (more would only spin).
const MAX_CATCHUP_TICKS: u32 = 200;
/// With `ack-before-persist`, how long acknowledged entries may sit in memory only.
const BUGGY_SYNC_INTERVAL: Duration = Duration::from_millis(500);

impl RaftLoop {
    fn run(&mut self, rx: std_mpsc::Receiver<Input>) -> anyhow::Result<()> {
        let tick_ms = self.config.tick_ms as f64;
        let mut next_tick = self.clock.now_ms() + tick_ms;
        loop {
            let now = self.clock.now_ms();
            if now >= next_tick {
                let mut n = 0;
                while now >= next_tick && n < MAX_CATCHUP_TICKS {
                    self.raft.tick();
                    next_tick += tick_ms;
                    n += 1;
                }
                if now >= next_tick {
                    next_tick = now + tick_ms;
                }
            }
            let wait = self
                .clock
                .real_duration_for(next_tick - self.clock.now_ms());
            match rx.recv_timeout(wait) {
                Ok(input) => {
                    self.handle(input);
                    for input in rx.try_iter().take(MAX_BATCH_INPUTS) {
                        self.handle(input);
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            self.process_ready()?;
            self.note_role_change();
            if self.last_sweep.elapsed() > Duration::from_millis(100) {
                self.sweep_abandoned();
                self.last_sweep = Instant::now();
            }
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
            role: s.role.as_str().to_string(),
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
        let addr = leader.and_then(|l| self.config.client_addrs.get(&l).cloned());
        ErrorReply::not_leader(leader, addr)
    }

    fn handle_client(&mut self, op: Operation, reply: oneshot::Sender<ClientResult>) {
        let cmd = match op {
            Operation::Put {
                key,
                value,
                write_id,
            } => Command::Put {
                key,
                value,
                write_id,
            },
            Operation::Cas {
                key,
                expected,
                new,
                write_id,
            } => Command::Cas {
                key,
                expected,
                new,
                write_id,
            },
            Operation::Add {
                key,
                element,
                write_id,
            } => Command::Add {
                key,
                element,
                write_id,
            },
            Operation::Get { key, mode } => {
                let mode = mode.unwrap_or(self.config.default_read_mode);
                return self.handle_read(key, mode, reply);
            }
            Operation::Status | Operation::Clock { .. } => {
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

    fn propose(&mut self, cmd: Command, reply: oneshot::Sender<ClientResult>) {
        match self.raft.propose(cmd.encode()) {
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
        match mode {
            ReadMode::Stale => self.answer_read(&key, reply),
            ReadMode::Log => self.propose(Command::Read { key }, reply),
            ReadMode::Follower if !is_leader && self.config.follower_read_local => {
                self.answer_read(&key, reply)
            }
            ReadMode::Lease if is_leader && self.raft.lease_read_ok() => {
                self.answer_read(&key, reply)
            }
            ReadMode::ReadIndex | ReadMode::Lease if !is_leader => {
                let _ = reply.send(Err(self.not_leader()));
            }
            ReadMode::ReadIndex | ReadMode::Lease | ReadMode::Follower => {
                let ctx = self.next_read_ctx;
                self.next_read_ctx += 1;
                match self.raft.read_index(ctx) {
                    Ok(()) => {
                        self.pending_read_index
                            .insert(ctx, PendingRead { key, reply });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(ErrorReply {
                            kind: ErrorKind::Unavailable,
                            definite: true,
                            message: format!("read index refused: {e}"),
                        }));
                    }
                }
            }
        }
    }

    fn answer_read(&self, key: &str, reply: oneshot::Sender<ClientResult>) {
        let _ = reply.send(Ok(Reply::Value {
            value: self.kv.get(key),
        }));
    }

    fn process_ready(&mut self) -> anyhow::Result<()> {
        // Bounded: each round either makes progress or leaves has_ready false.
        for _ in 0..8 {
            if !self.raft.has_ready() {
                break;
            }
            let rd = self.raft.ready();
            let buggy = self.config.ack_before_persist;
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
                self.storage.sync()?;
                self.unsynced = false;
                self.last_sync = Instant::now();
            }
            if !buggy {
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
                    self.waiting_apply.entry(rs.index).or_default().push(pr);
                }
            }
            self.apply(&rd.committed);
            self.raft.advance(&rd);
            self.release_reads();
        }
        Ok(())
    }

    fn send_all(&self, messages: &[Message]) {
        for m in messages {
            if let Some(tx) = self.peers.get(&m.to) {
                // A full queue means the peer is unreachable or slow: Raft tolerates the loss.
                let _ = tx.try_send(m.clone());
            }
        }
    }

    fn apply(&mut self, committed: &[crate::raft::Entry]) {
        for e in committed {
            let outcome = match &e.payload {
                EntryPayload::Noop | EntryPayload::Config(_) => {
                    self.kv.note_applied(e.index);
                    None
                }
                EntryPayload::Command(bytes) => Some(match Command::decode(bytes) {
                    Ok(cmd) => self.kv.apply(e.index, &cmd),
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
                self.answer_read(&pr.key, pr.reply);
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

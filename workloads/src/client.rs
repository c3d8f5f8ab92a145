//! A client process: performs intended operations against the cluster over the node's client
//! protocol and records each one in the history.
//!
//! Every operation is recorded as one `invoke` (before anything is sent) and exactly one
//! completion:
//! - `ok` when the node answered that it took effect (a read's `ok` carries the value);
//! - `fail` only when it certainly did not: the node said so (`ErrorReply.definite`), a cas
//!   found another value (`"cas mismatch"`), or no request could be sent at all (connection
//!   refused before sending);
//! - `info` in every case of doubt: timeout, connection lost after sending, non-definite error,
//!   an answer that makes no sense. After an `info` the client continues under a fresh process
//!   id (Jepsen: id + concurrency) with fresh connections, as the spec requires.
//!
//! Writes, and reads in the `log`, `read-index` and `lease` modes, go to the leader: the client
//! sends them to the last leader it learned of (else to its bound node) and follows
//! `NotLeader { leader_addr }` hints a bounded number of times, keeping the same history
//! operation and the same `WriteId`. `follower` and `stale` reads go to the bound node only.
//!
//! The recording and the process-id rules are the system's business no more: [`Client`]
//! records, and talks to the cluster through a [`KvClient`], which performs one operation
//! against a member and classifies its outcome. [`NodeClient`] is our node's; other systems
//! under test bring their own (the driver takes any [`KvClients`]).

use node::command;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use node::client::{ClientError, Connection};
use node::protocol::{ErrorKind, ErrorReply, Operation, ReadMode, Reply, Value, WriteId};
use tokio::time::Instant;

use crate::generator::IntendedOp;
use crate::history::EventType;
use crate::recorder::{OpRecord, Recorder};

/// A node as clients see it: its name in the history and its client address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddr {
    /// The node's name, e.g. `n2` (recorded in each event's `node`).
    pub name: String,
    /// The node's client port (a loopback address).
    pub client_addr: SocketAddr,
}

/// Per-client settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// The longest an operation may take, from invocation to completion, including connecting
    /// and following leader hints; then it completes as `info` (`"timeout"`).
    pub op_timeout: Duration,
    /// How many `NotLeader` hints one operation follows before it completes as `fail`.
    pub max_redirects: usize,
    /// The longest pause between attempts while the bound node refuses connections (the
    /// pause doubles from 10 ms up to this).
    pub max_backoff: Duration,
    /// Every key sent to a node is padded to this many bytes (see [`wire_key`]); 0 sends
    /// keys as they are. The history keeps the short names: padding is one-to-one, so the
    /// checkers' verdicts do not change, while the nodes replicate entries of this size.
    pub key_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            op_timeout: Duration::from_secs(1),
            max_redirects: 3,
            max_backoff: Duration::from_secs(1),
            key_bytes: 0,
        }
    }
}

/// The least pause after a refused connection.
const MIN_BACKOFF: Duration = Duration::from_millis(10);

/// How a client gets a fresh process id after an `info`.
#[derive(Clone, Debug)]
pub enum ProcessIds {
    /// Jepsen's convention: the next id is the current one plus `stride` (the concurrency).
    Stride(u64),
    /// Ask the recorder for an id above every one in use (for one-off clients).
    Reserve,
}

/// How one operation ended, as recorded.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It took effect; the completion's value.
    Ok(serde_json::Value),
    /// It certainly did not take effect; why.
    Fail(String),
    /// Unknown; why.
    Info(String),
}

impl Outcome {
    /// The history type of the completion.
    pub fn event_type(&self) -> EventType {
        match self {
            Outcome::Ok(_) => EventType::Ok,
            Outcome::Fail(_) => EventType::Fail,
            Outcome::Info(_) => EventType::Info,
        }
    }
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    name: String,
    addr: SocketAddr,
}

/// An operation whose `invoke` is recorded and that is not yet complete.
#[derive(Debug)]
pub struct Pending {
    op: IntendedOp,
    record: OpRecord,
    /// The key's length on the wire (see [`ClientConfig::key_bytes`]).
    key_bytes: usize,
}

impl Pending {
    /// The operation being performed.
    pub fn op(&self) -> &IntendedOp {
        &self.op
    }
}

/// What a [`KvClient`] needs to know about the operation it performs beyond the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpContext {
    /// The recording client's current process id (our node's write ids carry it).
    pub process: u64,
    /// The operation must complete by then (as `info` `"timeout"` if in doubt).
    pub deadline: Instant,
    /// Pad the key to this many bytes on the wire (see [`wire_key`]); systems that cannot
    /// pad may ignore it only if they also never get a non-zero value (the harness decides).
    pub key_bytes: usize,
}

/// What a [`KvClient`] did with one operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Executed {
    /// How it ended: `ok` only if it took effect, `fail` only if it certainly did not.
    pub outcome: Outcome,
    /// The member that gave the answer (or was last tried): recorded as the completion's
    /// `node`.
    pub member: String,
}

/// A client of one system under test, bound to one member, used by one client process at a
/// time. Implementations perform an operation and classify its outcome; they never record
/// (the [`Client`] wrapping them does) and never retry a write that may have been sent.
///
/// Contract of [`KvClient::execute`]:
/// - `ok`: the operation took effect (a read's value: `null` if absent, an integer for a
///   register, the sorted array of elements for a set);
/// - `fail`: it certainly did not (nothing was sent, the system said so, a cas found another
///   value: `"cas mismatch"`);
/// - `info`: anything else; it completes by `ctx.deadline` (plus scheduling noise).
///
/// Set reads are `Read`s of the key that `Add`s go to ([`crate::set::SET_KEY`]).
pub trait KvClient: Send {
    /// The member `op` will be sent to first (its name is recorded in the invocation);
    /// called right before [`KvClient::execute`] of the same `op`.
    fn route(&mut self, op: &IntendedOp) -> String;
    /// Performs `op` and classifies the outcome (see the trait's contract).
    fn execute<'a>(&'a mut self, op: &'a IntendedOp, ctx: OpContext) -> BoxFuture<'a, Executed>;
    /// How long to pause before the next operation because the bound member refused
    /// connections (zero when it did not).
    fn backoff(&self) -> Duration;
    /// After an `info`: forget connections, leader guesses and per-process sequence numbers,
    /// as a fresh process must.
    fn reset(&mut self);
}

/// Makes the [`KvClient`]s of one cluster: what the driver needs of a system under test.
pub trait KvClients: Send + Sync {
    /// How many members clients can be bound to (at least 1 to run a workload).
    fn members(&self) -> usize;
    /// Member `i`'s name in the history (`n1`, ...). `i < members()`.
    fn member_name(&self, i: usize) -> String;
    /// A client bound to member `bound` (`bound < members()`).
    fn client(&self, bound: usize, config: &ClientConfig) -> Box<dyn KvClient>;
}

impl KvClients for Vec<NodeAddr> {
    fn members(&self) -> usize {
        self.len()
    }
    fn member_name(&self, i: usize) -> String {
        self[i].name.clone()
    }
    fn client(&self, bound: usize, config: &ClientConfig) -> Box<dyn KvClient> {
        Box::new(NodeClient::new(self.clone(), bound, config.clone()))
    }
}

/// One attempt's result: done, or go to another node.
enum Step {
    Done(Outcome),
    Redirect(Target),
}

/// A client process: records every operation it performs (one `invoke`, then exactly one
/// completion) and performs it through its [`KvClient`]. After an `info` it continues under
/// a fresh process id, with the [`KvClient`] reset.
pub struct Client {
    process: u64,
    ids: ProcessIds,
    kv: Box<dyn KvClient>,
    config: ClientConfig,
    recorder: Recorder,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("process", &self.process)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of our node with process id `process`, bound to `nodes[bound]`. `nodes`
    /// names every node so that leader hints can be recorded by name.
    ///
    /// Panics if `bound` is out of range (a programming error, not input).
    pub fn new(
        process: u64,
        ids: ProcessIds,
        nodes: Vec<NodeAddr>,
        bound: usize,
        config: ClientConfig,
        recorder: Recorder,
    ) -> Client {
        let kv = Box::new(NodeClient::new(nodes, bound, config.clone()));
        Client::with_kv(process, ids, kv, config, recorder)
    }

    /// A client with process id `process` performing its operations through `kv` (any
    /// system under test). `config` gives the operation timeout and key padding.
    pub fn with_kv(
        process: u64,
        ids: ProcessIds,
        kv: Box<dyn KvClient>,
        config: ClientConfig,
        recorder: Recorder,
    ) -> Client {
        Client {
            process,
            ids,
            kv,
            config,
            recorder,
        }
    }

    /// The current logical process id.
    pub fn process(&self) -> u64 {
        self.process
    }

    /// How long to pause before the next operation because the bound node refused
    /// connections (zero when it did not).
    pub fn backoff(&self) -> Duration {
        self.kv.backoff()
    }

    /// Records the invocation of `op` and returns it for [`Client::finish`]. Synchronous, so a
    /// caller may draw the operation and invoke it under one lock (then the history's
    /// invocations follow the generator's order).
    pub fn begin(&mut self, op: IntendedOp) -> Pending {
        let key_bytes = self.config.key_bytes;
        self.begin_with_key_bytes(op, key_bytes)
    }

    /// [`Client::begin`] with the key padded to `key_bytes` on the wire instead of the
    /// configured length: one oversized request among normal traffic.
    pub fn begin_with_key_bytes(&mut self, op: IntendedOp, key_bytes: usize) -> Pending {
        let node = self.kv.route(&op);
        let record = OpRecord {
            process: self.process,
            f: op.f(),
            key: op.key().to_string(),
            value: op.invoke_value(),
            node,
            read_mode: op.read_mode(),
        };
        self.recorder.invoke(&record);
        Pending {
            op,
            record,
            key_bytes,
        }
    }

    /// Performs a begun operation and records its one completion. Takes at most the
    /// configured `op_timeout` (plus scheduling noise).
    pub async fn finish(&mut self, mut p: Pending) -> Outcome {
        let ctx = OpContext {
            process: self.process,
            deadline: Instant::now() + self.config.op_timeout,
            key_bytes: p.key_bytes,
        };
        let Executed { outcome, member } = self.kv.execute(&p.op, ctx).await;
        let value = match &outcome {
            Outcome::Ok(v) => v.clone(),
            _ if p.op.is_write() => p.record.value.clone(),
            _ => serde_json::Value::Null,
        };
        let error = match &outcome {
            Outcome::Ok(_) => None,
            Outcome::Fail(e) | Outcome::Info(e) => Some(e.clone()),
        };
        p.record.node = member;
        self.recorder
            .complete(&p.record, outcome.event_type(), value, error);
        if let Outcome::Info(_) = outcome {
            self.become_fresh_process();
        }
        outcome
    }

    /// Begins and finishes `op`.
    pub async fn perform(&mut self, op: IntendedOp) -> Outcome {
        let p = self.begin(op);
        self.finish(p).await
    }

    /// After an `info`: a new process id, and a client that forgets what the old one knew.
    fn become_fresh_process(&mut self) {
        self.process = match self.ids {
            ProcessIds::Stride(s) => self.process + s,
            ProcessIds::Reserve => self.recorder.reserve_process(),
        };
        self.kv.reset();
    }
}

/// Our node's [`KvClient`], bound to one node. Holds at most one connection per node it talks
/// to (its bound node and leaders it was sent to), so its state is bounded by the cluster
/// size.
pub struct NodeClient {
    bound: Target,
    nodes: Vec<NodeAddr>,
    leader_hint: Option<Target>,
    conns: HashMap<SocketAddr, Connection>,
    write_seq: u64,
    backoff: Duration,
    config: ClientConfig,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("bound", &self.bound)
            .field("leader_hint", &self.leader_hint)
            .finish_non_exhaustive()
    }
}

/// One operation as [`NodeClient`] sends it.
struct NodeOp<'a> {
    op: &'a IntendedOp,
    write_id: Option<WriteId>,
    target: Target,
    to_leader: bool,
    key_bytes: usize,
}

impl KvClient for NodeClient {
    fn route(&mut self, op: &IntendedOp) -> String {
        self.first_target(op).0.name
    }

    fn execute<'a>(&'a mut self, op: &'a IntendedOp, ctx: OpContext) -> BoxFuture<'a, Executed> {
        self.run(op, ctx).boxed()
    }

    fn backoff(&self) -> Duration {
        self.backoff
    }

    /// A fresh process: new write ids, no connections, no leader guess.
    fn reset(&mut self) {
        self.write_seq = 0;
        self.conns.clear();
        self.leader_hint = None;
    }
}

impl NodeClient {
    /// A client of `nodes[bound]`. Panics if `bound` is out of range.
    pub fn new(nodes: Vec<NodeAddr>, bound: usize, config: ClientConfig) -> NodeClient {
        let b = &nodes[bound];
        NodeClient {
            bound: Target {
                name: b.name.clone(),
                addr: b.client_addr,
            },
            nodes,
            leader_hint: None,
            conns: HashMap::new(),
            write_seq: 0,
            backoff: Duration::ZERO,
            config,
        }
    }

    /// Where `op` goes first, and whether it must reach the leader. Writes, and reads in the
    /// `log`, `read-index` and `lease` modes, go to the last leader learned of.
    fn first_target(&self, op: &IntendedOp) -> (Target, bool) {
        let to_leader = match op.read_mode() {
            None => true,
            Some(ReadMode::Log | ReadMode::ReadIndex | ReadMode::Lease) => true,
            Some(ReadMode::Follower | ReadMode::Stale) => false,
        };
        let target = match (&self.leader_hint, to_leader) {
            (Some(l), true) => l.clone(),
            _ => self.bound.clone(),
        };
        (target, to_leader)
    }

    /// Sends `op`, following leader hints up to `max_redirects` times with the same write id.
    async fn run(&mut self, op: &IntendedOp, ctx: OpContext) -> Executed {
        let write_id = op.is_write().then(|| {
            self.write_seq += 1;
            WriteId {
                client: ctx.process,
                seq: self.write_seq,
            }
        });
        let (target, to_leader) = self.first_target(op);
        let mut p = NodeOp {
            op,
            write_id,
            target,
            to_leader,
            key_bytes: ctx.key_bytes,
        };
        let mut redirects = 0;
        let outcome = loop {
            match self.attempt(&p, ctx.deadline).await {
                Step::Done(o) => break o,
                Step::Redirect(t) => {
                    if redirects >= self.config.max_redirects {
                        break Outcome::Fail(format!(
                            "not leader; gave up after {redirects} redirects"
                        ));
                    }
                    redirects += 1;
                    p.target = t;
                }
            }
        };
        Executed {
            outcome,
            member: p.target.name,
        }
    }
    /// One request to `p.target`.
    async fn attempt(&mut self, p: &NodeOp<'_>, deadline: Instant) -> Step {
        let target = p.target.clone();
        if let Err(e) = self.ensure_connection(&target, deadline).await {
            // Nothing was sent: the operation certainly did not happen here.
            if self.leader_hint.as_ref() == Some(&target) {
                self.leader_hint = None;
            }
            if target != self.bound && p.to_leader {
                // A stale leader guess: ask the bound node instead (counts as a redirect).
                return Step::Redirect(self.bound.clone());
            }
            if target == self.bound {
                self.backoff =
                    (self.backoff * 2).clamp(MIN_BACKOFF, self.config.max_backoff.max(MIN_BACKOFF));
            }
            return Step::Done(Outcome::Fail(format!("connect to {}: {e}", target.addr)));
        }
        if target == self.bound {
            self.backoff = Duration::ZERO;
        }
        let Some(conn) = self.conns.get_mut(&target.addr) else {
            return Step::Done(Outcome::Fail("connection vanished before sending".into()));
        };
        let op = wire_operation(p.op, p.write_id, p.key_bytes);
        let id = match conn.send(op, deadline).await {
            Ok(id) => id,
            // Encoding or size refused before writing: nothing was sent, so it is definite.
            Err(e) if e.not_sent() => return Step::Done(Outcome::Fail(exchange_error(&e))),
            Err(e) => {
                let why = match e {
                    ClientError::Io { source, .. } => {
                        format!("connection lost while sending: {source}")
                    }
                    other => exchange_error(&other),
                };
                self.drop_connection(&target);
                return Step::Done(Outcome::Info(why));
            }
        };
        let result = match conn.receive(id, deadline).await {
            Ok(r) => r,
            Err(e) => {
                self.drop_connection(&target);
                return Step::Done(Outcome::Info(exchange_error(&e)));
            }
        };
        match result {
            Ok(reply) => Step::Done(classify_reply(p.op, reply)),
            Err(err) => self.classify_error(p, &target, err),
        }
    }

    fn classify_error(&mut self, p: &NodeOp<'_>, target: &Target, err: ErrorReply) -> Step {
        if let ErrorKind::NotLeader {
            leader,
            leader_addr,
        } = &err.kind
        {
            if self.leader_hint.as_ref() == Some(target) {
                self.leader_hint = None;
            }
            if err.definite && p.to_leader {
                if let Some(t) = leader_addr
                    .as_deref()
                    .and_then(|a| self.leader_target(*leader, a))
                {
                    if t != *target {
                        self.leader_hint = Some(t.clone());
                        return Step::Redirect(t);
                    }
                }
            }
        }
        if err.definite {
            Step::Done(Outcome::Fail(err.message))
        } else {
            Step::Done(Outcome::Info(err.message))
        }
    }

    /// The node a leader hint names, if its address is a loopback socket address.
    fn leader_target(&self, leader: Option<u64>, addr: &str) -> Option<Target> {
        let sa: SocketAddr = addr.parse().ok()?;
        if !sa.ip().is_loopback() {
            return None;
        }
        let name = self
            .nodes
            .iter()
            .find(|n| n.client_addr == sa)
            .map(|n| n.name.clone())
            .or_else(|| leader.map(|l| format!("n{l}")))
            .unwrap_or_else(|| addr.to_string());
        Some(Target { name, addr: sa })
    }

    fn drop_connection(&mut self, target: &Target) {
        self.conns.remove(&target.addr);
    }

    /// A live connection to `target`: the cached one unless it was closed by the peer, else a
    /// new one (connect bounded by `deadline`). The error says why nothing could be sent.
    async fn ensure_connection(
        &mut self,
        target: &Target,
        deadline: Instant,
    ) -> Result<(), String> {
        // Late answers to requests that timed out are read and dropped by `is_alive`, so they
        // never meet a later request.
        let alive = match self.conns.get_mut(&target.addr) {
            Some(c) => c.is_alive(),
            None => false,
        };
        if !alive {
            self.conns.remove(&target.addr);
            // Bound the cache: it only ever holds nodes this client talked to, but leader
            // addresses come from the network, so never let it grow past the cluster size.
            if self.conns.len() > self.nodes.len() {
                self.conns.clear();
            }
            let timeout = deadline.saturating_duration_since(Instant::now());
            let conn = Connection::connect(target.addr, timeout)
                .await
                .map_err(|e| match e {
                    // "connect timed out", or the OS's reason ("Connection refused ...").
                    ClientError::Connect { source, .. } => source.to_string(),
                    other => other.to_string(),
                })?;
            self.conns.insert(target.addr, conn);
        }
        Ok(())
    }
}

/// How a failed exchange is recorded (the completion's error).
fn exchange_error(e: &ClientError) -> String {
    match e {
        ClientError::Timeout { .. } => "timeout".into(),
        ClientError::Closed { .. } => "connection closed before the answer".into(),
        ClientError::Io { source, .. } => format!("connection lost: {source}"),
        ClientError::BadResponse { source, .. } => format!("malformed response: {source}"),
        ClientError::NoMatchingResponse { .. } => "too many responses to other requests".into(),
        ClientError::Encode { source, .. } => format!("cannot encode request: {source}"),
        ClientError::TooLarge { .. } | ClientError::Connect { .. } => e.to_string(),
    }
}

/// The key a node sees for history key `key` padded to `bytes` bytes: `key` itself when it
/// is at least that long, else `key~xxx…`. One-to-one for keys without `~`.
pub fn wire_key(key: &str, bytes: usize) -> String {
    if bytes <= key.len() {
        return key.to_string();
    }
    let mut k = String::with_capacity(bytes);
    k.push_str(key);
    k.push('~');
    k.extend(std::iter::repeat_n('x', bytes - key.len() - 1));
    k
}

/// The request that performs `op`, its key padded to `key_bytes` (see [`wire_key`]).
fn wire_operation(op: &IntendedOp, write_id: Option<WriteId>, key_bytes: usize) -> Operation {
    let wid = write_id.unwrap_or(WriteId { client: 0, seq: 0 });
    let key = wire_key(op.key(), key_bytes);
    match op {
        IntendedOp::Read { mode, .. } => Operation::Get {
            key,
            mode: Some(*mode),
        },
        IntendedOp::Write { value, .. } => Operation::Put(command::Put {
            key,
            value: *value,
            write_id: wid,
        }),
        IntendedOp::Cas { expected, new, .. } => Operation::Cas(command::Cas {
            key,
            expected: *expected,
            new: *new,
            write_id: wid,
        }),
        IntendedOp::Add { element, .. } => Operation::Add(command::Add {
            key,
            element: *element,
            write_id: wid,
        }),
    }
}

/// What a successful reply means for `op`. A reply of the wrong kind is doubt (`info`).
pub fn classify_reply(op: &IntendedOp, reply: Reply) -> Outcome {
    match (op, reply) {
        (IntendedOp::Read { .. }, Reply::Value { value }) => Outcome::Ok(match value {
            None => serde_json::Value::Null,
            Some(Value::Int(i)) => i.into(),
            Some(Value::Set(mut v)) => {
                v.sort_unstable();
                v.into()
            }
        }),
        (IntendedOp::Write { .. } | IntendedOp::Add { .. }, Reply::Written) => {
            Outcome::Ok(op.invoke_value())
        }
        (IntendedOp::Cas { .. }, Reply::Cas { swapped: true, .. }) => {
            Outcome::Ok(op.invoke_value())
        }
        (IntendedOp::Cas { .. }, Reply::Cas { swapped: false, .. }) => {
            Outcome::Fail("cas mismatch".into())
        }
        (_, other) => Outcome::Info(format!("unexpected reply to {}: {other:?}", op.f())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_keys_are_padded_one_to_one() {
        assert_eq!(wire_key("k1", 0), "k1");
        assert_eq!(wire_key("k1", 2), "k1");
        assert_eq!(wire_key("k1", 6), "k1~xxx");
        assert_eq!(wire_key("k1", 20_480).len(), 20_480);
        assert_ne!(wire_key("k1", 64), wire_key("k10", 64));
        let put = wire_operation(
            &IntendedOp::Write {
                key: "k".into(),
                value: 3,
            },
            None,
            10,
        );
        assert!(
            matches!(put, Operation::Put(command::Put { key, value: 3, .. }) if key == "k~xxxxxxxx")
        );
    }

    fn cas() -> IntendedOp {
        IntendedOp::Cas {
            key: "k1".into(),
            expected: Some(1),
            new: 2,
        }
    }

    #[test]
    fn replies_are_classified_by_certainty() {
        assert_eq!(
            classify_reply(
                &cas(),
                Reply::Cas {
                    swapped: false,
                    current: Some(5)
                }
            ),
            Outcome::Fail("cas mismatch".into())
        );
        assert_eq!(
            classify_reply(
                &cas(),
                Reply::Cas {
                    swapped: true,
                    current: Some(1)
                }
            ),
            Outcome::Ok(serde_json::json!([1, 2]))
        );
        // A write answered like a read is doubt, never fail.
        assert!(matches!(
            classify_reply(&cas(), Reply::Written),
            Outcome::Info(_)
        ));
        let read = IntendedOp::Read {
            key: "set".into(),
            mode: ReadMode::Log,
        };
        assert_eq!(
            classify_reply(
                &read,
                Reply::Value {
                    value: Some(Value::Set(vec![3, 1, 2]))
                }
            ),
            Outcome::Ok(serde_json::json!([1, 2, 3]))
        );
        assert_eq!(
            classify_reply(&read, Reply::Value { value: None }),
            Outcome::Ok(serde_json::Value::Null)
        );
    }

    #[tokio::test]
    async fn refused_connection_is_a_fail_with_backoff() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let rec = Recorder::in_memory();
        let nodes = vec![NodeAddr {
            name: "n1".into(),
            client_addr: addr,
        }];
        let mut c = Client::new(
            0,
            ProcessIds::Stride(1),
            nodes,
            0,
            ClientConfig::default(),
            rec.clone(),
        );
        let o = c
            .perform(IntendedOp::Write {
                key: "k0".into(),
                value: 1,
            })
            .await;
        assert!(
            matches!(o, Outcome::Fail(ref e) if e.starts_with("connect")),
            "{o:?}"
        );
        assert_eq!(c.process(), 0, "fail keeps the process");
        assert!(c.backoff() >= MIN_BACKOFF);
        let evs = rec.events();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1].kind, EventType::Fail);
        assert_eq!(evs[1].value, serde_json::json!(1));
    }
}

//! A fake node for testing clients: a loopback TCP server that speaks the node's client
//! protocol over a key-value store shared by every fake of a "cluster", with behaviour that a
//! test can change at run time (delays, errors, silence, disconnects, leadership).
//!
//! It is not a replicated system: every fake applies operations atomically to the one shared
//! store, so a history recorded against fakes that answer is linearizable by construction.
//! Every task it starts ends when the [`FakeNode`] is dropped or [`FakeNode::stop`]ped.

use node::command;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use node::protocol::{
    frame_codec, ErrorReply, Operation, ReadMode, Reply, Request, Response, Value,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// The store shared by the fakes of one cluster.
pub type SharedStore = Arc<Mutex<HashMap<String, Value>>>;

/// A new empty shared store.
pub fn new_store() -> SharedStore {
    Arc::new(Mutex::new(HashMap::new()))
}

/// How a fake node answers; change it with [`FakeNode::set_behaviour`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Behaviour {
    /// `None`: this node is the leader. `Some((id, addr))`: it is a follower and refuses writes
    /// and leader reads with `NotLeader { leader: id, leader_addr: addr }`.
    pub follower_of: Option<(Option<u64>, Option<String>)>,
    /// Waits this long before applying and answering each request.
    pub delay: Duration,
    /// Answers every request with this error instead of performing it.
    pub error: Option<ErrorReply>,
    /// Applies each request, then closes the connection without answering.
    pub close_after_apply: bool,
    /// Never answers (but keeps reading), like a paused process.
    pub silent: bool,
}

/// A running fake node.
#[derive(Debug)]
pub struct FakeNode {
    addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    requests: Arc<AtomicU64>,
    cancel: CancellationToken,
}

impl FakeNode {
    /// Starts a fake node on an ephemeral loopback port over `store`.
    pub async fn start(store: SharedStore, behaviour: Behaviour) -> std::io::Result<FakeNode> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let node = FakeNode {
            addr,
            behaviour: Arc::new(Mutex::new(behaviour)),
            requests: Arc::new(AtomicU64::new(0)),
            cancel: CancellationToken::new(),
        };
        let (b, r, cancel) = (
            node.behaviour.clone(),
            node.requests.clone(),
            node.cancel.clone(),
        );
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = cancel.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(
                    stream,
                    store.clone(),
                    b.clone(),
                    r.clone(),
                    cancel.clone(),
                ));
            }
        });
        Ok(node)
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the behaviour (affects requests read from now on).
    pub fn set_behaviour(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap_or_else(|p| p.into_inner()) = b;
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn serve(
    stream: TcpStream,
    store: SharedStore,
    behaviour: Arc<Mutex<Behaviour>>,
    requests: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    let mut conn = Framed::new(stream, frame_codec());
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => return,
            f = conn.next() => f,
        };
        let Some(Ok(frame)) = frame else { return };
        requests.fetch_add(1, Ordering::Relaxed);
        let Ok(req) = serde_json::from_slice::<Request>(&frame) else {
            return;
        };
        let b = behaviour.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if b.silent {
            continue;
        }
        if !b.delay.is_zero() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(b.delay) => {}
            }
        }
        let result = if let Some(e) = b.error {
            Err(e)
        } else {
            match (&b.follower_of, needs_leader(&req.op)) {
                (Some((id, addr)), true) => Err(ErrorReply::not_leader(*id, addr.clone())),
                _ => apply(&store, &req.op),
            }
        };
        if b.close_after_apply {
            return;
        }
        let resp = Response { id: req.id, result };
        let Ok(bytes) = serde_json::to_vec(&resp) else {
            return;
        };
        if conn.send(Bytes::from(bytes)).await.is_err() {
            return;
        }
    }
}

fn needs_leader(op: &Operation) -> bool {
    match op {
        Operation::Get { mode, .. } => !matches!(mode, Some(ReadMode::Follower | ReadMode::Stale)),
        Operation::Put(_) | Operation::Cas(_) | Operation::Add(_) => true,
        Operation::Status
        | Operation::Clock { .. }
        | Operation::Members
        | Operation::ChangeMembership { .. }
        | Operation::Failpoint { .. }
        | Operation::Failpoints => false,
    }
}

fn invalid(message: &str) -> ErrorReply {
    ErrorReply {
        kind: node::protocol::ErrorKind::Invalid,
        definite: true,
        message: message.into(),
    }
}

fn apply(store: &SharedStore, op: &Operation) -> Result<Reply, ErrorReply> {
    let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
    match op {
        Operation::Get { key, .. } => Ok(Reply::Value {
            value: s.get(key).cloned(),
        }),
        Operation::Put(command::Put { key, value, .. }) => {
            s.insert(key.clone(), Value::Int(*value));
            Ok(Reply::Written)
        }
        Operation::Cas(command::Cas {
            key, expected, new, ..
        }) => {
            let current = match s.get(key) {
                None => None,
                Some(Value::Int(i)) => Some(*i),
                Some(Value::Set(_)) => return Err(invalid("cas on a set")),
            };
            let swapped = current == *expected;
            if swapped {
                s.insert(key.clone(), Value::Int(*new));
            }
            Ok(Reply::Cas { swapped, current })
        }
        Operation::Add(command::Add { key, element, .. }) => {
            match s
                .entry(key.clone())
                .or_insert_with(|| Value::Set(Vec::new()))
            {
                Value::Set(v) => {
                    if !v.contains(element) {
                        v.push(*element);
                    }
                    Ok(Reply::Written)
                }
                Value::Int(_) => Err(invalid("add to a register")),
            }
        }
        Operation::Status
        | Operation::Clock { .. }
        | Operation::Members
        | Operation::ChangeMembership { .. }
        | Operation::Failpoint { .. }
        | Operation::Failpoints => Err(invalid("not supported by the fake")),
    }
}

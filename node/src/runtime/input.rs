//! How other threads and tasks reach the Raft loop: the [`Input`]s it takes and the [`Handle`]
//! that queues them. Its own module so that the tasks feeding the loop ([`super::peer_net`],
//! [`super::client_server`]) and the loop itself ([`super::raft_loop`]) depend on it, and not
//! on each other.

use std::sync::mpsc as std_mpsc;

use tokio::sync::oneshot;

use crate::protocol::{ErrorReply, Operation, Reply, Status};
use crate::raft::Message;

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

/// A cheap, clonable way to reach the Raft loop from any thread or task. Inputs from one
/// handle arrive in the order they were sent.
#[derive(Clone)]
pub struct Handle {
    tx: std_mpsc::Sender<Input>,
}

impl Handle {
    /// A handle that queues into `tx` (the loop holds the receiving end).
    pub(super) fn new(tx: std_mpsc::Sender<Input>) -> Handle {
        Handle { tx }
    }

    /// Queues an input; false if the loop has stopped.
    pub fn send(&self, input: Input) -> bool {
        self.tx.send(input).is_ok()
    }
}

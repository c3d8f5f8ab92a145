//! Peer transport: Raft messages as bincode inside length-prefixed frames over TCP.
//!
//! Each node keeps one outgoing connection per peer (reconnecting with backoff) and accepts
//! incoming connections from any peer. Messages are fire-and-forget: Raft tolerates loss,
//! duplication and reordering, so a full queue or a broken connection simply drops messages.

use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;
use tracing::Instrument;

use crate::protocol::{frame_codec, MAX_FRAME_BYTES};
use crate::raft::{Message, NodeId};

use super::conn_limit::PortLimits;
use super::frames::FrameReader;
use super::input::{Handle, Input};

/// The largest term a peer message may carry; a message above it is dropped and its
/// connection closed. Terms only grow by one per election, so no real cluster comes near
/// it, while a forged term at (or near) `u64::MAX` would leave the core unable to raise its
/// term for a new election: the cluster stalls for good, or a node votes twice in one term
/// and its storage refuses that (the node exits). Found by `port_fuzz_e2e`.
pub const MAX_PEER_TERM: u64 = u64::MAX / 2;

/// Messages queued for one peer before new ones are dropped.
const PEER_QUEUE: usize = 4096;

/// Starts the task that delivers messages to peer `to` at `addr`; returns its queue.
pub fn spawn_sender(
    rt: &tokio::runtime::Handle,
    from: NodeId,
    to: NodeId,
    addr: String,
) -> mpsc::Sender<Message> {
    let (tx, rx) = mpsc::channel(PEER_QUEUE);
    rt.spawn(sender_task(from, to, addr, rx).instrument(tracing::Span::current()));
    tx
}

async fn sender_task(from: NodeId, to: NodeId, addr: String, mut rx: mpsc::Receiver<Message>) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let stream = match TcpStream::connect(&addr).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(peer = to, %addr, error = %e, "cannot connect to peer");
                // Drop what queued up while the peer was unreachable: it is stale by now.
                while rx.try_recv().is_ok() {}
                if rx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        backoff = Duration::from_millis(10);
        let mut sink = FramedWrite::new(stream, frame_codec());
        loop {
            let Some(msg) = rx.recv().await else { return };
            debug_assert_eq!(msg.from, from);
            let bytes = match bincode::serialize(&msg) {
                Ok(b) if b.len() <= MAX_FRAME_BYTES => b,
                Ok(b) => {
                    tracing::warn!(
                        peer = to,
                        bytes = b.len(),
                        "message larger than a frame; dropped"
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!(peer = to, error = %e, "cannot encode message; dropped");
                    continue;
                }
            };
            // Send what is queued as one batch before flushing.
            let mut ok = sink.feed(Bytes::from(bytes)).await.is_ok();
            while ok {
                match rx.try_recv() {
                    Ok(m) => match bincode::serialize(&m) {
                        Ok(b) if b.len() <= MAX_FRAME_BYTES => {
                            ok = sink.feed(Bytes::from(b)).await.is_ok();
                        }
                        _ => {}
                    },
                    Err(_) => break,
                }
            }
            if !ok || SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                tracing::debug!(peer = to, "peer connection broke; reconnecting");
                break;
            }
        }
    }
}

/// Accepts peer connections and feeds every well-formed message addressed to this node into
/// the Raft loop. A malformed frame closes its connection; other connections go on.
///
/// Within `limits`: at most the cap of open connections (the longest-idle one is closed for
/// a newcomer, so a restarted peer always gets back in), each frame complete within the
/// frame timeout of its first byte, partial frames drawing on the node's frame budget.
pub async fn serve(listener: TcpListener, me: NodeId, handle: Handle, limits: PortLimits) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed on the peer port");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let guard = limits.conns.admit(Some(remote));
        let mut frames = FrameReader::new(stream, limits.budget.clone(), limits.frame_timeout);
        let handle = handle.clone();
        let serve_connection = async move {
            let read_messages = async {
                loop {
                    let frame = match frames.next_frame().await {
                        Ok(Some(f)) => f,
                        Ok(None) => return,
                        Err(e) => {
                            tracing::warn!(%remote, error = %e, "bad frame on the peer port; closing");
                            return;
                        }
                    };
                    let msg: Message = match bincode::DefaultOptions::new()
                        .with_limit(MAX_FRAME_BYTES as u64)
                        .with_fixint_encoding()
                        .allow_trailing_bytes()
                        .deserialize(&frame)
                    {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(%remote, error = %e, "undecodable peer message; closing");
                            return;
                        }
                    };
                    if msg.to != me {
                        tracing::warn!(%remote, to = msg.to, "message for another node; closing");
                        return;
                    }
                    if msg.term > MAX_PEER_TERM {
                        tracing::warn!(%remote, term = msg.term, "message with an impossible term; closing");
                        return;
                    }
                    guard.touch();
                    if !handle.send(Input::Peer(msg)) {
                        return;
                    }
                }
            };
            tokio::select! {
                biased;
                _ = guard.evicted() => {}
                _ = read_messages => {}
            }
        };
        tokio::spawn(serve_connection.instrument(tracing::Span::current()));
    }
}

use bincode::Options;

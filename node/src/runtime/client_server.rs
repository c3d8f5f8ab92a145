//! The client port: JSON requests in length-prefixed frames, answered in any order (each
//! response names its request), so one connection may carry many requests at once.
//!
//! The requests of one connection reach the Raft loop in the order they were sent: the
//! connection's reader hands each one to the loop itself, and only the wait for the answer
//! runs in a task of its own. A client that pipelines writes with increasing `seq` thus
//! has them proposed in that order, which the state machine's per-client de-duplication
//! (it refuses a `seq` below the latest applied one) relies on.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedWrite;
use tracing::Instrument;

use crate::clock::Clock;
use crate::failpoints::{crash, Effect, Failpoint, Failpoints};
use crate::protocol::{frame_codec, ErrorKind, ErrorReply, Operation, Reply, Request, Response};

use super::conn_limit::{ConnGuard, PortLimits};
use super::frames::{FrameError, FrameReader};
use super::input::{Handle, Input};

/// Responses queued per connection before the connection is considered stuck.
const RESPONSE_QUEUE: usize = 4096;

/// Serves the client port forever, within `limits`: at most `limits.conns`' cap of open
/// connections (the longest-idle one is closed for a newcomer), each frame complete within
/// the frame timeout of its first byte, partial frames drawing on the node's frame budget.
/// A connection with no frame started may idle for ever (clients keep connections open
/// between bursts; the cap bounds how many can).
pub async fn serve(
    listener: TcpListener,
    handle: Handle,
    clock: Arc<Clock>,
    failpoints: Arc<Failpoints>,
    request_timeout: Duration,
    limits: PortLimits,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed on the client port");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let guard = limits.conns.admit(Some(remote));
        tokio::spawn(
            serve_connection(
                stream,
                guard,
                limits.clone(),
                handle.clone(),
                clock.clone(),
                failpoints.clone(),
                request_timeout,
            )
            .instrument(tracing::Span::current()),
        );
    }
}

async fn serve_connection(
    stream: TcpStream,
    guard: ConnGuard,
    limits: PortLimits,
    handle: Handle,
    clock: Arc<Clock>,
    failpoints: Arc<Failpoints>,
    timeout: Duration,
) {
    let _ = stream.set_nodelay(true);
    let remote = stream.peer_addr().ok();
    let (read_half, write_half) = stream.into_split();
    let mut frames = FrameReader::new(read_half, limits.budget, limits.frame_timeout);
    let (tx, mut rx) = mpsc::channel::<Response>(RESPONSE_QUEUE);

    let writer = tokio::spawn(async move {
        let mut sink = FramedWrite::new(write_half, frame_codec());
        while let Some(resp) = rx.recv().await {
            let Ok(bytes) = serde_json::to_vec(&resp) else {
                continue;
            };
            if sink.feed(Bytes::from(bytes)).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                let Ok(bytes) = serde_json::to_vec(&more) else {
                    continue;
                };
                if sink.feed(Bytes::from(bytes)).await.is_err() {
                    return;
                }
            }
            if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                return;
            }
        }
    });

    // Reads requests until the connection ends; true when it must close at once rather
    // than send the answers still due. Raced against eviction, which ends it at any await
    // (also while the response queue is full because the client reads nothing).
    let read_requests = async {
        loop {
            let frame = match frames.next_frame().await {
                Ok(Some(f)) => f,
                Ok(None) => return false,
                Err(FrameError::TooLong(n)) => {
                    // We cannot find the next frame, so close; say why first.
                    tracing::warn!(
                        ?remote,
                        bytes = n,
                        "oversized frame on the client port; closing"
                    );
                    let _ = tx
                        .send(error_response(
                            0,
                            ErrorKind::Invalid,
                            format!("bad frame: {}", FrameError::TooLong(n)),
                        ))
                        .await;
                    return false;
                }
                Err(e) => {
                    tracing::warn!(?remote, error = %e, "bad frame on the client port; closing");
                    return true;
                }
            };
            guard.touch();
            let request: Request = match serde_json::from_slice(&frame) {
                Ok(r) => r,
                Err(e) => {
                    // The frame boundary is intact, so the connection can go on.
                    let id = serde_json::from_slice::<serde_json::Value>(&frame)
                        .ok()
                        .and_then(|v| v.get("id").and_then(|i| i.as_u64()))
                        .unwrap_or(0);
                    let _ = tx
                        .send(error_response(
                            id,
                            ErrorKind::Invalid,
                            format!("malformed request: {e}"),
                        ))
                        .await;
                    continue;
                }
            };
            // Submitted here, in arrival order; awaited concurrently.
            let is_write = matches!(
                request.op,
                Operation::Put(_) | Operation::Cas(_) | Operation::Add(_)
            );
            let submitted = submit(request.op, &handle, &clock, &failpoints);
            let tx = tx.clone();
            let failpoints = failpoints.clone();
            tokio::spawn(async move {
                let result = submitted.answer(timeout).await;
                if is_write && result.is_ok() {
                    // Applied, not yet answered. A delay holds this reply only.
                    match failpoints.eval(Failpoint::AfterApplyBeforeReply) {
                        Some(Effect::Sleep(d)) => tokio::time::sleep(d).await,
                        Some(Effect::Panic) => crash(Failpoint::AfterApplyBeforeReply),
                        None => {}
                    }
                }
                let _ = tx
                    .send(Response {
                        id: request.id,
                        result,
                    })
                    .await;
            });
        }
    };
    let abrupt = tokio::select! {
        biased;
        _ = guard.evicted() => true,
        abrupt = read_requests => abrupt,
    };
    drop(tx);
    if abrupt {
        // Closes the socket now (both halves dropped); pending answers are dropped.
        writer.abort();
    } else {
        let _ = tokio::time::timeout(timeout, writer).await;
    }
}

fn error_response(id: u64, kind: ErrorKind, message: String) -> Response {
    Response {
        id,
        result: Err(ErrorReply {
            kind,
            definite: true,
            message,
        }),
    }
}

/// A request handed to the Raft loop (or already answered), whose answer is still to come.
enum Submitted {
    /// Answered without the Raft loop (or refused because the loop has stopped).
    Done(Result<Reply, ErrorReply>),
    /// A status request queued in the loop.
    Status(oneshot::Receiver<crate::protocol::Status>),
    /// A key-value or membership request queued in the loop.
    Client(oneshot::Receiver<Result<Reply, ErrorReply>>),
}

/// Hands `op` to the Raft loop at once (without waiting), so that successive calls queue
/// their requests in call order.
fn submit(op: Operation, handle: &Handle, clock: &Clock, failpoints: &Failpoints) -> Submitted {
    match op {
        Operation::Failpoint { name, action } => {
            Submitted::Done(match failpoints.configure(&name, &action) {
                Ok(()) => {
                    tracing::info!(failpoint = %name, %action, "failpoint set");
                    Ok(Reply::Failpoints {
                        points: failpoints.states(),
                    })
                }
                Err(e) => Err(ErrorReply {
                    kind: ErrorKind::Invalid,
                    definite: true,
                    message: e.to_string(),
                }),
            })
        }
        Operation::Failpoints => Submitted::Done(Ok(Reply::Failpoints {
            points: failpoints.states(),
        })),
        Operation::Clock { offset_ms, rate } => Submitted::Done(match clock.set(offset_ms, rate) {
            Ok(state) => {
                tracing::info!(
                    offset_ms = state.offset_ms,
                    rate = state.rate,
                    "clock changed"
                );
                Ok(Reply::Clock(state))
            }
            Err(e) => Err(ErrorReply {
                kind: ErrorKind::Invalid,
                definite: true,
                message: e.to_string(),
            }),
        }),
        Operation::Status => {
            let (tx, rx) = oneshot::channel();
            if !handle.send(Input::Status(tx)) {
                return Submitted::Done(Err(unavailable()));
            }
            Submitted::Status(rx)
        }
        op => {
            let (tx, rx) = oneshot::channel();
            if !handle.send(Input::Client { op, reply: tx }) {
                return Submitted::Done(Err(unavailable()));
            }
            Submitted::Client(rx)
        }
    }
}

impl Submitted {
    /// Waits (at most `timeout`) for the answer.
    async fn answer(self, timeout: Duration) -> Result<Reply, ErrorReply> {
        match self {
            Submitted::Done(result) => result,
            Submitted::Status(rx) => match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(status)) => Ok(Reply::Status(status)),
                _ => Err(unavailable()),
            },
            Submitted::Client(rx) => match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(ErrorReply {
                    kind: ErrorKind::Unavailable,
                    definite: false,
                    message: "the node dropped the request".into(),
                }),
                Err(_) => Err(ErrorReply {
                    kind: ErrorKind::Timeout,
                    definite: false,
                    message: format!("no answer within {} ms", timeout.as_millis()),
                }),
            },
        }
    }
}

fn unavailable() -> ErrorReply {
    ErrorReply {
        kind: ErrorKind::Unavailable,
        definite: true,
        message: "the node is shutting down".into(),
    }
}

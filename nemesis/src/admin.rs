//! A small client for a node's admin requests on its client port.
//!
//! One connection per call: connect, send one JSON [`Request`] frame, read frames until the
//! [`Response`] with the same id, all within one timeout. Used by the nemesis to find the
//! leader ([`status`]) and to skew clocks ([`set_clock`]); never panics on what a node sends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use node::protocol::{
    frame_codec, ClockState, ErrorReply, Operation, Reply, Request, Response, Status,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// How long [`status`] and [`set_clock`] wait for the whole exchange.
pub const DEFAULT_ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// At most this many unrelated frames are skipped while waiting for our response.
const MAX_SKIPPED_FRAMES: usize = 64;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("{addr} closed the connection before answering")]
    Closed { addr: SocketAddr },
    #[error("{addr} sent a frame that is not a response: {source}")]
    BadResponse {
        addr: SocketAddr,
        #[source]
        source: serde_json::Error,
    },
    #[error("{addr} sent only responses to other requests")]
    NoMatchingResponse { addr: SocketAddr },
    #[error("{addr} refused: {reply:?}")]
    Refused { addr: SocketAddr, reply: ErrorReply },
    #[error("{addr} answered with an unexpected reply: {reply:?}")]
    UnexpectedReply { addr: SocketAddr, reply: Reply },
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Sends `op` to the node at `addr` and returns its reply, all within `timeout`.
pub async fn request(
    addr: SocketAddr,
    op: Operation,
    timeout: Duration,
) -> Result<Reply, AdminError> {
    match tokio::time::timeout(timeout, exchange(addr, op)).await {
        Ok(r) => r,
        Err(_) => Err(AdminError::Timeout { addr, timeout }),
    }
}

async fn exchange(addr: SocketAddr, op: Operation) -> Result<Reply, AdminError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| AdminError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, frame_codec());
    // Ids are unique within this process so a stray answer is never mistaken for ours.
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let body = serde_json::to_vec(&Request { id, op }).expect("requests always serialize");
    framed
        .send(Bytes::from(body))
        .await
        .map_err(|source| AdminError::Io { addr, source })?;
    for _ in 0..MAX_SKIPPED_FRAMES {
        let frame = match framed.next().await {
            None => return Err(AdminError::Closed { addr }),
            Some(Err(source)) => return Err(AdminError::Io { addr, source }),
            Some(Ok(f)) => f,
        };
        let resp: Response = serde_json::from_slice(&frame)
            .map_err(|source| AdminError::BadResponse { addr, source })?;
        if resp.id != id {
            continue;
        }
        return resp
            .result
            .map_err(|reply| AdminError::Refused { addr, reply });
    }
    Err(AdminError::NoMatchingResponse { addr })
}

/// The node's status (role, term, leader, indexes, clock), within [`DEFAULT_ADMIN_TIMEOUT`].
pub async fn status(addr: SocketAddr) -> Result<Status, AdminError> {
    status_within(addr, DEFAULT_ADMIN_TIMEOUT).await
}

/// The node's status, within `timeout` (for polls that must not wait on a silent node).
pub async fn status_within(addr: SocketAddr, timeout: Duration) -> Result<Status, AdminError> {
    match request(addr, Operation::Status, timeout).await? {
        Reply::Status(s) => Ok(s),
        reply => Err(AdminError::UnexpectedReply { addr, reply }),
    }
}

/// Sets the node's clock offset and/or rate (a `None` field is left unchanged) and returns
/// the clock as the node reports it afterwards, within [`DEFAULT_ADMIN_TIMEOUT`].
pub async fn set_clock(
    addr: SocketAddr,
    offset_ms: Option<f64>,
    rate: Option<f64>,
) -> Result<ClockState, AdminError> {
    match request(
        addr,
        Operation::Clock { offset_ms, rate },
        DEFAULT_ADMIN_TIMEOUT,
    )
    .await?
    {
        Reply::Clock(c) => Ok(c),
        reply => Err(AdminError::UnexpectedReply { addr, reply }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use node::protocol::ErrorKind;
    use node::raft::Role;
    use tokio::net::TcpListener;

    /// A fake node that answers each request with `answer(request)` (raw frames), once per
    /// connection. Stops when the test's runtime ends.
    async fn fake_node(answer: fn(Request) -> Vec<Vec<u8>>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut f = Framed::new(s, frame_codec());
                    if let Some(Ok(frame)) = f.next().await {
                        let req: Request = serde_json::from_slice(&frame).unwrap();
                        for out in answer(req) {
                            let _ = f.send(Bytes::from(out)).await;
                        }
                    }
                });
            }
        });
        addr
    }

    fn clock() -> ClockState {
        ClockState {
            offset_ms: 0.0,
            rate: 1.0,
            now_ms: 5.0,
        }
    }

    fn ok(id: u64, reply: Reply) -> Vec<u8> {
        serde_json::to_vec(&Response {
            id,
            result: Ok(reply),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn status_round_trip() {
        let addr = fake_node(|req| {
            assert_eq!(req.op, Operation::Status);
            let s = Status {
                id: 2,
                role: Role::Leader,
                term: 4,
                leader: Some(2),
                commit_index: 9,
                applied_index: 9,
                last_log_index: 10,
                clock: clock(),
            };
            // A stray answer first: must be skipped.
            vec![
                ok(req.id + 1000, Reply::Written),
                ok(req.id, Reply::Status(s)),
            ]
        })
        .await;
        let s = status(addr).await.unwrap();
        assert_eq!((s.id, s.leader, s.term), (2, Some(2), 4));
    }

    #[tokio::test]
    async fn set_clock_sends_fields_and_returns_clock() {
        let addr = fake_node(|req| {
            let Operation::Clock { offset_ms, rate } = req.op else {
                panic!("{:?}", req.op)
            };
            let c = ClockState {
                offset_ms: offset_ms.unwrap_or(0.0),
                rate: rate.unwrap_or(1.0),
                now_ms: 1.0,
            };
            vec![ok(req.id, Reply::Clock(c))]
        })
        .await;
        let c = set_clock(addr, Some(250.0), Some(1.5)).await.unwrap();
        assert_eq!((c.offset_ms, c.rate), (250.0, 1.5));
    }

    #[tokio::test]
    async fn errors_are_reported_not_panicked() {
        let garbage = fake_node(|_| vec![b"not json".to_vec()]).await;
        assert!(matches!(
            status(garbage).await,
            Err(AdminError::BadResponse { .. })
        ));
        let closes = fake_node(|_| vec![]).await;
        assert!(matches!(
            status(closes).await,
            Err(AdminError::Closed { .. })
        ));
        let refuses = fake_node(|req| {
            let r = Response {
                id: req.id,
                result: Err(ErrorReply {
                    kind: ErrorKind::Unavailable,
                    definite: true,
                    message: "shutting down".into(),
                }),
            };
            vec![serde_json::to_vec(&r).unwrap()]
        })
        .await;
        assert!(matches!(
            status(refuses).await,
            Err(AdminError::Refused { .. })
        ));
        let wrong = fake_node(|req| vec![ok(req.id, Reply::Written)]).await;
        assert!(matches!(
            set_clock(wrong, None, None).await,
            Err(AdminError::UnexpectedReply { .. })
        ));
        // A listener that never answers: the timeout fires.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = l.local_addr().unwrap();
        let r = request(silent, Operation::Status, Duration::from_millis(100)).await;
        assert!(matches!(r, Err(AdminError::Timeout { .. })), "{r:?}");
        drop(l);
        // Nobody listening: a connect error. A port that never had a connection queued (the
        // silent one's backlog can answer a late connect with a reset on a loaded machine).
        let gone = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let r = request(gone, Operation::Status, Duration::from_secs(2)).await;
        assert!(matches!(r, Err(AdminError::Connect { .. })), "{r:?}");
    }
}

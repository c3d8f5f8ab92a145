//! Admin requests to a node's client port: a thin layer over [`node::client::request`]
//! (one connection per call, the whole exchange within one timeout, answers matched by id,
//! never a panic on what a node sends).
//!
//! Used by the nemesis and the harness to find the leader ([`status`]), skew clocks
//! ([`set_clock`]) and send any other admin operation ([`request`]).

use std::net::SocketAddr;
use std::time::Duration;

use node::client::ClientError;
use node::protocol::{ClockState, ErrorReply, Operation, Reply, Status};

/// How long [`status`] and [`set_clock`] wait for the whole exchange.
pub const DEFAULT_ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No answer: connecting, sending or reading failed, timed out, or the node's frames
    /// made no sense (see [`ClientError`]).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The node answered with an error.
    #[error("{addr} refused: {reply:?}")]
    Refused { addr: SocketAddr, reply: ErrorReply },
    /// The node answered with a reply of another kind than the request calls for.
    #[error("{addr} answered with an unexpected reply: {reply:?}")]
    UnexpectedReply { addr: SocketAddr, reply: Reply },
}

/// Sends `op` to the node at `addr` on a fresh connection and returns its reply, all
/// within `timeout`; the node's error answer is [`AdminError::Refused`].
pub async fn request(
    addr: SocketAddr,
    op: Operation,
    timeout: Duration,
) -> Result<Reply, AdminError> {
    node::client::request(addr, op, timeout)
        .await?
        .map_err(|reply| AdminError::Refused { addr, reply })
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
    use node::protocol::{ErrorKind, Request, Response};
    use node::raft::Role;

    /// A fake node that answers each request with `answer(request)` (raw frames).
    async fn fake_node(answer: fn(Request) -> Vec<Vec<u8>>) -> SocketAddr {
        node::client::testing::scripted_node(answer, true)
            .await
            .unwrap()
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

    /// The transport's failures come through as [`AdminError::Client`] (the client's own
    /// tests cover each of them); the node's refusals and odd replies get their own variants.
    #[tokio::test]
    async fn errors_are_reported_not_panicked() {
        let garbage = fake_node(|_| vec![b"not json".to_vec()]).await;
        assert!(matches!(
            status(garbage).await,
            Err(AdminError::Client(ClientError::BadResponse { .. }))
        ));
        let closes = fake_node(|_| vec![]).await;
        assert!(matches!(
            status(closes).await,
            Err(AdminError::Client(ClientError::Closed { .. }))
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
    }
}

//! The one client of the node's client protocol (see [`crate::protocol`]): a TCP connection
//! carrying length-prefixed JSON frames, [`Request`]s out and [`Response`]s in, answers
//! matched to requests by id.
//!
//! Every user of the client port goes through here: the workload clients (a cached
//! [`Connection`] per node, [`Connection::send`] and [`Connection::receive`] under the
//! operation's deadline), the harness's admin requests ([`request`], one connection per
//! call), the end-to-end tests and the cluster benchmark ([`Connection::call`]).
//!
//! Guarantees, whatever the node sends:
//! - nothing here panics; every failure is a [`ClientError`];
//! - every wait is bounded by the timeout or deadline given;
//! - request ids are unique within a connection (1, 2, ...), so an answer to another request
//!   (a late one to a request that timed out) is never taken for the answer to this one; at most
//!   [`MAX_SKIPPED_RESPONSES`] frames are read while waiting for it;
//! - [`ClientError::not_sent`] tells the errors after which the request certainly did not
//!   leave this process from those after which the node may have acted on it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::protocol::{
    frame_codec, ErrorReply, Operation, Reply, Request, Response, MAX_FRAME_BYTES,
};

/// At most this many frames are read while waiting for one answer (the answer included);
/// then the wait ends with [`ClientError::NoMatchingResponse`]. A node sends one response
/// per request, so more can only come from a peer that is not a well-behaved node.
pub const MAX_SKIPPED_RESPONSES: usize = 64;

/// Why a connection or an exchange failed. The `Display` text names the node's address.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made (refused, unreachable, or not within the timeout: then
    /// `source` has kind [`std::io::ErrorKind::TimedOut`]). Nothing was sent.
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The request could not be encoded. Nothing was sent.
    #[error("cannot encode request for {addr}: {source}")]
    Encode {
        addr: SocketAddr,
        #[source]
        source: serde_json::Error,
    },
    /// The encoded request exceeds [`MAX_FRAME_BYTES`]. Nothing was sent.
    #[error("request of {bytes} bytes exceeds the {MAX_FRAME_BYTES}-byte frame limit; not sent")]
    TooLarge { addr: SocketAddr, bytes: usize },
    /// Writing to or reading from the connection failed (reset, or a frame whose length
    /// prefix exceeds [`MAX_FRAME_BYTES`]). The request may have been sent.
    #[error("talking to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The deadline passed (`waited` after the call began). The request may have been sent.
    #[error("{addr} did not answer within {waited:?}")]
    Timeout { addr: SocketAddr, waited: Duration },
    /// The node closed the connection before answering. The request may have been sent.
    #[error("{addr} closed the connection before answering")]
    Closed { addr: SocketAddr },
    /// The node sent a frame that is not a JSON [`Response`]. The request may have been sent.
    #[error("{addr} sent a frame that is not a response: {source}")]
    BadResponse {
        addr: SocketAddr,
        #[source]
        source: serde_json::Error,
    },
    /// [`MAX_SKIPPED_RESPONSES`] frames came, none answering the request.
    #[error("{addr} sent only responses to other requests")]
    NoMatchingResponse { addr: SocketAddr },
}

impl ClientError {
    /// True when the request certainly never left this process (connect, encode and size
    /// failures): the node cannot have acted on it. False when it may have.
    pub fn not_sent(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. } | ClientError::Encode { .. } | ClientError::TooLarge { .. }
        )
    }
}

/// For blocking callers that speak `std::io`: the error with the closest
/// [`std::io::ErrorKind`] (`TimedOut`, `UnexpectedEof` for [`ClientError::Closed`],
/// `InvalidData` for undecodable or unmatched answers, the source's kind for I/O errors).
impl From<ClientError> for std::io::Error {
    fn from(e: ClientError) -> std::io::Error {
        use std::io::ErrorKind as K;
        let kind = match &e {
            ClientError::Connect { source, .. } | ClientError::Io { source, .. } => source.kind(),
            ClientError::Timeout { .. } => K::TimedOut,
            ClientError::Closed { .. } => K::UnexpectedEof,
            ClientError::BadResponse { .. } | ClientError::NoMatchingResponse { .. } => {
                K::InvalidData
            }
            ClientError::Encode { .. } | ClientError::TooLarge { .. } => K::InvalidInput,
        };
        std::io::Error::new(kind, e)
    }
}

/// One TCP connection to a node's client port (TCP_NODELAY on). Requests may be pipelined:
/// [`Connection::send`] several, then [`Connection::receive`] each by its id, in the order
/// sent (frames for other ids met on the way are dropped). After any error other than those
/// for which [`ClientError::not_sent`] holds, the connection's state is unknown: drop it.
#[derive(Debug)]
pub struct Connection {
    addr: SocketAddr,
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    /// The id of the next request: 1 on a new connection, never reused on it.
    next_id: u64,
}

impl Connection {
    /// Connects to `addr` within `timeout`; a failure (including the timeout) is
    /// [`ClientError::Connect`].
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Connection, ClientError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                let source = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
                return Err(ClientError::Connect { addr, source });
            }
            Ok(r) => r.map_err(|source| ClientError::Connect { addr, source })?,
        };
        // Only latency depends on it; a socket that refuses the option still works.
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            addr,
            framed: Framed::new(stream, frame_codec()),
            next_id: 1,
        })
    }

    /// The node's address this connection goes to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `op` and waits for its answer, both within `timeout`. The outer error is the
    /// transport's (see [`ClientError`]); the inner result is the node's answer.
    pub async fn call(
        &mut self,
        op: Operation,
        timeout: Duration,
    ) -> Result<Result<Reply, ErrorReply>, ClientError> {
        let deadline = Instant::now() + timeout;
        let id = self.send(op, deadline).await?;
        self.receive(id, deadline).await
    }

    /// Sends `op` as a new request, by `deadline`, and returns its id (for
    /// [`Connection::receive`]). Encode and size failures are reported before anything is
    /// written ([`ClientError::not_sent`]).
    pub async fn send(&mut self, op: Operation, deadline: Instant) -> Result<u64, ClientError> {
        let addr = self.addr;
        let id = self.next_id;
        self.next_id += 1;
        let body = serde_json::to_vec(&Request { id, op })
            .map_err(|source| ClientError::Encode { addr, source })?;
        if body.len() > MAX_FRAME_BYTES {
            return Err(ClientError::TooLarge {
                addr,
                bytes: body.len(),
            });
        }
        let framed = &mut self.framed;
        within(addr, deadline, async move {
            framed
                .send(Bytes::from(body))
                .await
                .map_err(|source| ClientError::Io { addr, source })
        })
        .await?;
        Ok(id)
    }

    /// Waits, until `deadline`, for the answer to request `id`, dropping up to
    /// [`MAX_SKIPPED_RESPONSES`] - 1 frames answering other ids.
    pub async fn receive(
        &mut self,
        id: u64,
        deadline: Instant,
    ) -> Result<Result<Reply, ErrorReply>, ClientError> {
        let addr = self.addr;
        let framed = &mut self.framed;
        within(addr, deadline, async move {
            for _ in 0..MAX_SKIPPED_RESPONSES {
                let frame = next_frame(addr, framed).await?;
                let resp: Response = serde_json::from_slice(&frame)
                    .map_err(|source| ClientError::BadResponse { addr, source })?;
                if resp.id == id {
                    return Ok(resp.result);
                }
            }
            Err(ClientError::NoMatchingResponse { addr })
        })
        .await
    }

    /// True unless the node closed the connection (or it failed). Frames already received
    /// (late answers to requests given up on) are read and dropped without waiting, so they
    /// never meet a later request; a connection with more than [`MAX_SKIPPED_RESPONSES`]
    /// of them queued counts as dead.
    pub fn is_alive(&mut self) -> bool {
        for _ in 0..MAX_SKIPPED_RESPONSES {
            match self.framed.next().now_or_never() {
                None => return true,
                Some(Some(Ok(_stale))) => continue,
                Some(Some(Err(_))) | Some(None) => return false,
            }
        }
        false
    }

    /// Writes `bytes` as they are, outside the framing, by `deadline`: for tests that break
    /// the protocol on purpose (after it, the node may answer with an error or hang up).
    pub async fn send_raw(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), ClientError> {
        let addr = self.addr;
        let framed = &mut self.framed;
        within(addr, deadline, async move {
            // Anything the codec buffered goes first, so the bytes stay in order.
            SinkExt::<Bytes>::flush(framed)
                .await
                .map_err(|source| ClientError::Io { addr, source })?;
            framed
                .get_mut()
                .write_all(bytes)
                .await
                .map_err(|source| ClientError::Io { addr, source })
        })
        .await
    }

    /// Reads the next frame, whatever it holds, by `deadline` (for tests that read answers
    /// to raw requests; [`Connection::receive`] is the way to wait for an answer).
    pub async fn receive_frame(&mut self, deadline: Instant) -> Result<Bytes, ClientError> {
        let addr = self.addr;
        let framed = &mut self.framed;
        within(addr, deadline, async move {
            Ok(next_frame(addr, framed).await?.freeze())
        })
        .await
    }
}

/// The next frame on `framed`: [`ClientError::Closed`] at end of stream, [`ClientError::Io`]
/// on a read or framing error.
async fn next_frame(
    addr: SocketAddr,
    framed: &mut Framed<TcpStream, LengthDelimitedCodec>,
) -> Result<bytes::BytesMut, ClientError> {
    match framed.next().await {
        None => Err(ClientError::Closed { addr }),
        Some(Err(source)) => Err(ClientError::Io { addr, source }),
        Some(Ok(frame)) => Ok(frame),
    }
}

/// `fut`, unless `deadline` passes first: then [`ClientError::Timeout`].
async fn within<T>(
    addr: SocketAddr,
    deadline: Instant,
    fut: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    let started = Instant::now();
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout {
            addr,
            waited: started.elapsed(),
        }),
    }
}

/// One request on a fresh connection (for admin requests): connect, send `op`, wait for its
/// answer, all within `timeout`; the connection is closed afterwards. The outer error is the
/// transport's, the inner result the node's answer.
pub async fn request(
    addr: SocketAddr,
    op: Operation,
    timeout: Duration,
) -> Result<Result<Reply, ErrorReply>, ClientError> {
    let deadline = Instant::now() + timeout;
    let mut conn = Connection::connect(addr, timeout).await?;
    conn.call(op, deadline.saturating_duration_since(Instant::now()))
        .await
}

/// A scripted stand-in for a node, for testing clients of the protocol (here and in the
/// crates above): it answers with whatever frames a test dictates, well-formed or not.
pub mod testing {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use futures::{SinkExt, StreamExt};
    use tokio::net::TcpListener;
    use tokio_util::codec::Framed;

    use crate::protocol::{frame_codec, Request};

    /// Listens on an ephemeral loopback port and, on each connection, answers every request
    /// with the frames `answer(request)` returns (sent as they are; none: the request goes
    /// unanswered, as by a paused node); with `hang_up` it closes the connection after
    /// answering the first request. A frame that is not a request ends that connection.
    /// Serves until the calling tokio runtime ends.
    pub async fn scripted_node(
        answer: impl Fn(Request) -> Vec<Vec<u8>> + Clone + Send + Sync + 'static,
        hang_up: bool,
    ) -> std::io::Result<SocketAddr> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut f = Framed::new(s, frame_codec());
                    while let Some(Ok(frame)) = f.next().await {
                        let Ok(req) = serde_json::from_slice::<Request>(&frame) else {
                            return;
                        };
                        for out in answer(req) {
                            if f.send(Bytes::from(out)).await.is_err() {
                                return;
                            }
                        }
                        if hang_up {
                            return;
                        }
                    }
                });
            }
        });
        Ok(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorKind;

    /// [`testing::scripted_node`], started.
    async fn server(answer: fn(Request) -> Vec<Vec<u8>>, hang_up: bool) -> SocketAddr {
        testing::scripted_node(answer, hang_up).await.unwrap()
    }

    fn response(id: u64, result: Result<Reply, ErrorReply>) -> Vec<u8> {
        serde_json::to_vec(&Response { id, result }).unwrap()
    }

    /// Answers `Written` to every request.
    fn written(Request { id, .. }: Request) -> Vec<Vec<u8>> {
        vec![response(id, Ok(Reply::Written))]
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn answer_is_matched_by_id_after_an_unrelated_response() {
        let addr = server(
            |Request { id, .. }| {
                vec![
                    // An answer to another request, of another kind: must be skipped.
                    response(id + 1000, Ok(Reply::Written)),
                    response(
                        id,
                        Err(ErrorReply {
                            kind: ErrorKind::Invalid,
                            definite: true,
                            message: "ours".into(),
                        }),
                    ),
                ]
            },
            false,
        )
        .await;
        let mut c = Connection::connect(addr, T).await.unwrap();
        assert_eq!(c.addr(), addr);
        let r = c.call(Operation::Status, T).await.unwrap();
        assert!(matches!(&r, Err(e) if e.message == "ours"), "{r:?}");
        // The one-shot helper matches the same way.
        let r = request(addr, Operation::Members, T).await.unwrap();
        assert!(matches!(&r, Err(e) if e.message == "ours"), "{r:?}");
    }

    #[tokio::test]
    async fn too_many_unrelated_responses_end_the_wait() {
        let addr = server(
            |Request { id, .. }| {
                (1..=MAX_SKIPPED_RESPONSES as u64 + 1)
                    .map(|k| response(id + k, Ok(Reply::Written)))
                    .collect()
            },
            false,
        )
        .await;
        let r = request(addr, Operation::Status, T).await;
        assert!(
            matches!(r, Err(ClientError::NoMatchingResponse { .. })),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let addr = server(|_| vec![], false).await;
        let mut c = Connection::connect(addr, T).await.unwrap();
        let start = Instant::now();
        // Bounded from outside too, so a client that ignored its timeout fails, not hangs.
        let r = tokio::time::timeout(T, c.call(Operation::Status, Duration::from_millis(200)))
            .await
            .expect("the call's own timeout fires");
        let took = start.elapsed();
        assert!(
            matches!(&r, Err(e @ ClientError::Timeout { .. }) if !e.not_sent()),
            "{r:?}"
        );
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[tokio::test]
    async fn hang_up_is_closed() {
        let addr = server(|_| vec![], true).await;
        let r = request(addr, Operation::Status, T).await;
        assert!(
            matches!(&r, Err(e @ ClientError::Closed { .. }) if !e.not_sent()),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn garbage_frame_is_bad_response() {
        let addr = server(|_| vec![b"not json".to_vec()], false).await;
        let r = request(addr, Operation::Status, T).await;
        assert!(matches!(r, Err(ClientError::BadResponse { .. })), "{r:?}");
        // A response-shaped object without the fields is no better.
        let addr = server(|_| vec![br#"{"id":1}"#.to_vec()], false).await;
        let r = request(addr, Operation::Status, T).await;
        assert!(matches!(r, Err(ClientError::BadResponse { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn no_listener_is_a_connect_error_and_not_sent() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let r = Connection::connect(addr, T).await;
        assert!(
            matches!(&r, Err(e @ ClientError::Connect { .. }) if e.not_sent()),
            "{r:?}"
        );
        let r = request(addr, Operation::Status, T).await;
        assert!(matches!(r, Err(ClientError::Connect { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn oversized_request_is_refused_before_sending() {
        let addr = server(written, false).await;
        let mut c = Connection::connect(addr, T).await.unwrap();
        let op = Operation::Get {
            key: "x".repeat(MAX_FRAME_BYTES + 1),
            mode: None,
        };
        let r = c.call(op, T).await;
        assert!(
            matches!(&r, Err(e @ ClientError::TooLarge { .. }) if e.not_sent()),
            "{r:?}"
        );
        // Nothing went out, so the connection still serves a request.
        assert!(c.is_alive());
        let r = c.call(Operation::Status, T).await.unwrap();
        assert_eq!(r, Ok(Reply::Written));
    }

    #[tokio::test]
    async fn pipelined_requests_get_their_own_answers() {
        let addr = server(
            |Request { id, .. }| {
                let key = format!("{id}");
                vec![response(
                    id,
                    Err(ErrorReply {
                        kind: ErrorKind::Invalid,
                        definite: true,
                        message: key,
                    }),
                )]
            },
            false,
        )
        .await;
        let mut c = Connection::connect(addr, T).await.unwrap();
        let deadline = Instant::now() + T;
        let a = c.send(Operation::Status, deadline).await.unwrap();
        let b = c.send(Operation::Status, deadline).await.unwrap();
        assert_ne!(a, b);
        for id in [a, b] {
            let r = c.receive(id, deadline).await.unwrap();
            assert!(matches!(&r, Err(e) if e.message == id.to_string()), "{r:?}");
        }
        assert!(c.is_alive(), "an open, quiet connection is alive");
    }

    #[tokio::test]
    async fn a_connection_closed_by_the_node_is_not_alive() {
        let addr = server(written, true).await;
        let mut c = Connection::connect(addr, T).await.unwrap();
        assert_eq!(
            c.call(Operation::Status, T).await.unwrap(),
            Ok(Reply::Written)
        );
        // The server hung up after answering: seen without sending anything.
        let gone = async {
            while c.is_alive() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(T, gone)
            .await
            .expect("a closed connection is seen as dead");
    }
}

//! A frame-aware TCP proxy for one directed link.
//!
//! The proxy listens on a loopback address and forwards every accepted connection to one
//! target. It reads whole frames (4-byte big-endian length + payload, as
//! [`node::protocol::frame_codec`] defines) and forwards, delays or drops whole frames, so a
//! receiver never sees half a message. What happens to each direction's frames is set at run
//! time through the proxy's [`LinkControl`] (see [`LinkState`]).
//!
//! Guarantees:
//! - a frame is never split: it is written whole or not at all; a length prefix larger than
//!   [`node::protocol::MAX_FRAME_BYTES`] closes that connection (both sides);
//! - frames of one connection and direction are written in the order they were read, under
//!   every state;
//! - a state change applies to the next frame read, on existing and new connections alike;
//!   healing wakes connections held by a cut at once;
//! - dropping the [`Proxy`] (or [`Proxy::shutdown`]) stops the listener and every connection
//!   task; nothing keeps running afterwards, and the memory a connection may queue is bounded.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::link::{Direction, DirectionControl, LinkControl, LinkState, LinkStats};
use node::protocol::frame_codec;

/// At most this many connections are served at once per proxy; further ones are closed at
/// once (a node opens one or two per peer, so this only guards against runaway clients).
pub const MAX_CONNECTIONS: usize = 1024;

/// Frames one direction of one connection may hold in its queue (delayed or not yet written).
const QUEUE_FRAMES: usize = 4096;

/// Payload bytes one direction of one connection may hold in its queue: bounds memory under a
/// long delay. Must be at least `MAX_FRAME_BYTES` so any single legal frame fits.
const QUEUE_BYTES: usize = 2 * node::protocol::MAX_FRAME_BYTES;

/// How long the proxy waits for the target to accept a connection before giving up on it
/// (the client's connection is then closed, as a refused connection would be).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Only loopback addresses are allowed: the harness never touches a real network.
    #[error("a proxy may listen only on a loopback address, not {0}")]
    NotLoopback(SocketAddr),
    /// Binding the listening socket failed (port in use, ...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// A running proxy for one directed link: connections to [`Proxy::local_addr`] are forwarded
/// to the target, subject to the link's state.
#[derive(Debug)]
pub struct Proxy {
    local_addr: SocketAddr,
    target: SocketAddr,
    control: LinkControl,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy listening on `listen` (a loopback address; port 0 picks a free port)
    /// and forwarding to `target`, with both directions passing. `seed` drives every random
    /// choice (loss and jitter) of this proxy. Must be called within a tokio runtime.
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        seed: u64,
    ) -> Result<Proxy, ProxyError> {
        Self::start_with_control(listen, target, seed, LinkControl::new()).await
    }

    /// As [`Proxy::start`], but driven by an existing (possibly shared) control handle.
    pub async fn start_with_control(
        listen: SocketAddr,
        target: SocketAddr,
        seed: u64,
        control: LinkControl,
    ) -> Result<Proxy, ProxyError> {
        if !listen.ip().is_loopback() {
            return Err(ProxyError::NotLoopback(listen));
        }
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: listen,
            source,
        })?;
        let cancel = CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            listener,
            target,
            control.clone(),
            seed,
            cancel.clone(),
        ));
        Ok(Proxy {
            local_addr,
            target,
            control,
            cancel,
            task: Some(task),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address connections are forwarded to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// A handle on this proxy's link state (clones share the state).
    pub fn control(&self) -> &LinkControl {
        &self.control
    }

    /// Sets one direction's state (see [`LinkControl::set`]).
    pub fn set(&self, d: Direction, state: LinkState) {
        self.control.set(d, state);
    }

    /// Both directions back to passing.
    pub fn heal(&self) {
        self.control.heal();
    }

    /// What one direction has done with its frames so far.
    pub fn stats(&self, d: Direction) -> LinkStats {
        self.control.stats(d)
    }

    /// Stops the listener and every connection, and waits until all their tasks have ended.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            // The accept loop aborts and awaits its connection tasks before it returns.
            let _ = task.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            // Aborting drops the accept loop's JoinSet, which aborts every connection task.
            task.abort();
        }
    }
}

/// SplitMix64: derives independent per-connection seeds from the proxy's seed.
fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    control: LinkControl,
    seed: u64,
    cancel: CancellationToken,
) {
    let mut conns = JoinSet::new();
    let mut next_id: u64 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    if conns.len() >= MAX_CONNECTIONS {
                        warn!(%peer, "proxy at {MAX_CONNECTIONS} connections; closing a new one");
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    let id = next_id;
                    next_id += 1;
                    conns.spawn(connection(
                        sock,
                        target,
                        control.clone(),
                        mix(seed, id),
                        cancel.clone(),
                    ));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off briefly rather than spin.
                    warn!("proxy accept failed: {e}");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    }
                }
            }
        }
    }
    conns.shutdown().await;
}

async fn connection(
    client: TcpStream,
    target: SocketAddr,
    control: LinkControl,
    seed: u64,
    cancel: CancellationToken,
) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        r = serve(client, target, &control, seed) => {
            if let Err(e) = r {
                debug!(%target, "proxied connection closed: {e}");
            }
        }
    }
}

/// Serves one accepted connection until both directions have ended or either fails.
async fn serve(
    client: TcpStream,
    target: SocketAddr,
    control: &LinkControl,
    seed: u64,
) -> io::Result<()> {
    let (client_read, client_write) = client.into_split();
    let mut from_client = FramedRead::new(client_read, frame_codec());
    let to_target = control.dir(Direction::ToTarget);

    // Held while the client-to-target direction is cut: as under an iptables DROP, the
    // connection to the target is not made and what the client sends is lost.
    let mut state = to_target.state.subscribe();
    while state.borrow_and_update().is_cut() {
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            frame = from_client.next() => match frame {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(_)) => to_target.counters.add_dropped(),
            }
        }
    }

    let server = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting to the target"))??;
    let _ = server.set_nodelay(true);
    let (server_read, server_write) = server.into_split();
    let from_server = FramedRead::new(server_read, frame_codec());

    let up = pump(
        from_client,
        server_write,
        to_target,
        ChaCha8Rng::seed_from_u64(mix(seed, 1)),
    );
    let down = pump(
        from_server,
        client_write,
        control.dir(Direction::ToClient),
        ChaCha8Rng::seed_from_u64(mix(seed, 2)),
    );
    // An error in either direction (reset, oversized frame) drops both sockets.
    tokio::try_join!(up, down)?;
    Ok(())
}

/// One frame on its way: when to write it, and the queue space it holds until written.
struct Queued {
    at: Instant,
    frame: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// Decides when (if ever) a frame read now is to be written, under the direction's state.
fn schedule(
    state: LinkState,
    now: Instant,
    rng: &mut ChaCha8Rng,
    dir: &DirectionControl,
) -> Option<Instant> {
    match state {
        LinkState::Pass => Some(now),
        LinkState::Cut => None,
        LinkState::Loss { p } => {
            // Written without gen_bool so that a NaN or out-of-range p cannot panic.
            let drop = p >= 1.0 || (p > 0.0 && rng.gen::<f64>() < p);
            (!drop).then_some(now)
        }
        LinkState::Delay { fixed, jitter } => {
            dir.counters.add_delayed();
            let extra = match u64::try_from(jitter.as_nanos()) {
                Ok(0) => 0,
                Ok(j) => rng.gen_range(0..=j),
                Err(_) => rng.gen::<u64>(),
            };
            Some(now + fixed + Duration::from_nanos(extra))
        }
    }
}

/// Moves frames of one direction: a reader that decides each frame's fate as it arrives and a
/// writer that writes them in order at their time, so a delay never slows down reading.
async fn pump(
    mut src: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    dst: OwnedWriteHalf,
    dir: &DirectionControl,
    mut rng: ChaCha8Rng,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Queued>(QUEUE_FRAMES);
    let space = Arc::new(Semaphore::new(QUEUE_BYTES));

    let reader = async move {
        let mut last = Instant::now();
        while let Some(frame) = src.next().await {
            let frame = frame?;
            let state = *dir.state.borrow();
            let Some(at) = schedule(state, Instant::now(), &mut rng, dir) else {
                dir.counters.add_dropped();
                continue;
            };
            // Never before an earlier frame: keeps order and each delay within its bound.
            let at = at.max(last);
            last = at;
            // Frames are at most MAX_FRAME_BYTES <= QUEUE_BYTES, so this always fits.
            let want = u32::try_from(frame.len().max(1)).unwrap_or(u32::MAX);
            let Ok(permit) = space.clone().acquire_many_owned(want).await else {
                break;
            };
            let item = Queued {
                at,
                frame: frame.freeze(),
                _permit: permit,
            };
            if tx.send(item).await.is_err() {
                break; // the writer failed; its error ends the connection
            }
        }
        Ok::<(), io::Error>(())
    };

    let writer = async move {
        let mut sink = FramedWrite::new(dst, frame_codec());
        let mut unflushed = false;
        loop {
            let item = if unflushed {
                match rx.try_recv() {
                    Ok(item) => item,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        SinkExt::<Bytes>::flush(&mut sink).await?;
                        unflushed = false;
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.recv().await {
                    Some(item) => item,
                    None => break,
                }
            };
            if item.at > Instant::now() {
                if unflushed {
                    SinkExt::<Bytes>::flush(&mut sink).await?;
                }
                tokio::time::sleep_until(item.at).await;
            }
            // A frame still on its way when the link is cut is lost, as packets in flight
            // are: a delayed message must not slip through a partition set after it was sent.
            if *dir.state.borrow() == LinkState::Cut {
                dir.counters.add_dropped();
                continue;
            }
            sink.feed(item.frame).await?;
            dir.counters.add_forwarded();
            unflushed = true;
        }
        // The source ended: flush what is left and pass the end of stream on.
        SinkExt::<Bytes>::close(&mut sink).await
    };

    tokio::try_join!(reader, writer)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_per_connection() {
        let a: Vec<u64> = (0..100).map(|i| mix(7, i)).collect();
        let mut b = a.clone();
        b.sort();
        b.dedup();
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn schedule_respects_state() {
        let dir = LinkControl::new();
        let d = dir.dir(Direction::ToTarget);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let now = Instant::now();
        assert_eq!(schedule(LinkState::Pass, now, &mut rng, d), Some(now));
        assert_eq!(schedule(LinkState::Cut, now, &mut rng, d), None);
        assert_eq!(schedule(LinkState::Loss { p: 1.0 }, now, &mut rng, d), None);
        assert_eq!(
            schedule(LinkState::Loss { p: f64::NAN }, now, &mut rng, d),
            Some(now)
        );
        assert_eq!(
            schedule(LinkState::Loss { p: -3.0 }, now, &mut rng, d),
            Some(now)
        );
        let fixed = Duration::from_millis(5);
        let jitter = Duration::from_millis(3);
        for _ in 0..1000 {
            let at = schedule(LinkState::Delay { fixed, jitter }, now, &mut rng, d).unwrap();
            assert!(at >= now + fixed && at <= now + fixed + jitter);
        }
    }

    #[tokio::test]
    async fn refuses_non_loopback_listen_address() {
        let err = Proxy::start(
            "0.0.0.0:0".parse().unwrap(),
            "127.0.0.1:1".parse().unwrap(),
            0,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ProxyError::NotLoopback(_)), "{err}");
    }
}

//! The proxy over real loopback sockets does exactly the fault it is told: healthy links
//! pass bytes unchanged, cuts are per direction, healing is quick, loss is about p, delays
//! are bounded and ordered.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use nemesis::{Direction, LinkState, Proxy};
use node::protocol::frame_codec;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// How soon after a heal a frame must pass: far above scheduling noise on a loaded 2-core
/// machine, far below a nemesis interval.
const HEAL_BOUND: Duration = Duration::from_millis(500);

type Conn = Framed<TcpStream, tokio_util::codec::LengthDelimitedCodec>;

/// A frame echo server: answers every frame with the same frame. Stops when dropped.
struct Echo {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo_server() -> Echo {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((s, _)) = l.accept().await {
            conns.spawn(async move {
                let mut f = Framed::new(s, frame_codec());
                while let Some(Ok(frame)) = f.next().await {
                    if f.send(frame.freeze()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Echo { addr, task }
}

/// A server that records every frame it receives, with the time it arrived, and lets the
/// test push frames to the client through a channel.
struct Sink {
    addr: SocketAddr,
    got: tokio::sync::mpsc::UnboundedReceiver<(Instant, Bytes)>,
    push: tokio::sync::mpsc::UnboundedSender<Bytes>,
    task: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts one connection; frames received go to `got`, frames pushed go to the client.
async fn sink_server() -> Sink {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (got_tx, got) = tokio::sync::mpsc::unbounded_channel();
    let (push, mut push_rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let task = tokio::spawn(async move {
        let Ok((s, _)) = l.accept().await else { return };
        let (mut w, mut r) = Framed::new(s, frame_codec()).split();
        let reader = async {
            while let Some(Ok(f)) = r.next().await {
                let _ = got_tx.send((Instant::now(), f.freeze()));
            }
        };
        let writer = async {
            while let Some(b) = push_rx.recv().await {
                if w.send(b).await.is_err() {
                    break;
                }
            }
        };
        tokio::join!(reader, writer);
    });
    Sink {
        addr,
        got,
        push,
        task,
    }
}

async fn proxy_to(target: SocketAddr, seed: u64) -> Proxy {
    Proxy::start("127.0.0.1:0".parse().unwrap(), target, seed)
        .await
        .unwrap()
}

async fn connect(addr: SocketAddr) -> Conn {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    Framed::new(s, frame_codec())
}

async fn recv_within(c: &mut Conn, d: Duration) -> Option<Bytes> {
    match tokio::time::timeout(d, c.next()).await {
        Ok(Some(Ok(f))) => Some(f.freeze()),
        _ => None,
    }
}

fn pattern(len: usize, salt: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test]
async fn healthy_link_passes_frames_unchanged() {
    let echo = echo_server().await;
    let p = proxy_to(echo.addr, 1).await;
    let mut c = connect(p.local_addr()).await;
    let sizes = [1usize, 2, 3, 100, 4095, 4096, 65_536, 200_001, 1 << 20];
    for (i, &n) in sizes.iter().enumerate() {
        let f = pattern(n, i as u8);
        c.send(f.clone()).await.unwrap();
        let back = recv_within(&mut c, Duration::from_secs(10)).await;
        assert_eq!(back.as_ref().map(|b| b.len()), Some(n), "size {n}");
        assert!(back.unwrap() == f, "size {n}: bytes changed");
    }
    // Pipelined small frames keep their order and content.
    for i in 0..500u32 {
        c.feed(Bytes::from(i.to_be_bytes().to_vec())).await.unwrap();
    }
    SinkExt::<Bytes>::flush(&mut c).await.unwrap();
    for i in 0..500u32 {
        let b = recv_within(&mut c, Duration::from_secs(10)).await.unwrap();
        assert_eq!(&b[..], &i.to_be_bytes());
    }
    assert_eq!(
        p.stats(Direction::ToTarget).forwarded,
        sizes.len() as u64 + 500
    );
    assert_eq!(
        p.stats(Direction::ToClient).forwarded,
        sizes.len() as u64 + 500
    );
    p.shutdown().await;
}

#[tokio::test]
async fn cut_direction_delivers_nothing_while_the_other_works_and_heal_is_fast() {
    let mut sink = sink_server().await;
    let p = proxy_to(sink.addr, 2).await;
    let mut c = connect(p.local_addr()).await;
    c.send(Bytes::from_static(b"hello")).await.unwrap();
    let (_, f) = tokio::time::timeout(Duration::from_secs(5), sink.got.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&f[..], b"hello");

    // Cut client -> target only.
    p.set(Direction::ToTarget, LinkState::Cut);
    for i in 0..20u8 {
        c.send(Bytes::from(vec![i; 10])).await.unwrap();
    }
    sink.push.send(Bytes::from_static(b"reply")).unwrap();
    assert_eq!(
        recv_within(&mut c, Duration::from_secs(5)).await.as_deref(),
        Some(&b"reply"[..]),
        "the other direction must still work"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sink.got.recv())
            .await
            .is_err(),
        "a cut direction delivered a frame"
    );
    assert_eq!(p.stats(Direction::ToTarget).dropped, 20);

    // Heal: a new frame arrives within HEAL_BOUND.
    p.heal();
    let sent = Instant::now();
    c.send(Bytes::from_static(b"after")).await.unwrap();
    let (at, f) = tokio::time::timeout(Duration::from_secs(5), sink.got.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        &f[..],
        b"after",
        "frames sent while cut must be lost, not late"
    );
    let took = at - sent;
    assert!(took < HEAL_BOUND, "heal took {took:?}");

    // Now cut target -> client only.
    p.set(Direction::ToClient, LinkState::Cut);
    sink.push.send(Bytes::from_static(b"lost")).unwrap();
    c.send(Bytes::from_static(b"up")).await.unwrap();
    let (_, f) = tokio::time::timeout(Duration::from_secs(5), sink.got.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&f[..], b"up");
    assert!(recv_within(&mut c, Duration::from_millis(300))
        .await
        .is_none());
    p.heal();
    let sent = Instant::now();
    sink.push.send(Bytes::from_static(b"back")).unwrap();
    let f = recv_within(&mut c, Duration::from_secs(5)).await.unwrap();
    assert_eq!(&f[..], b"back");
    assert!(
        sent.elapsed() < HEAL_BOUND,
        "heal took {:?}",
        sent.elapsed()
    );
    p.shutdown().await;
}

#[tokio::test]
async fn frames_delayed_in_flight_are_lost_when_the_link_is_cut() {
    let mut sink = sink_server().await;
    let p = proxy_to(sink.addr, 4).await;
    let mut c = connect(p.local_addr()).await;
    p.set(
        Direction::ToTarget,
        LinkState::Delay {
            fixed: Duration::from_millis(400),
            jitter: Duration::ZERO,
        },
    );
    for i in 0..5u8 {
        c.send(Bytes::from(vec![i; 8])).await.unwrap();
    }
    // Give the proxy time to read (and queue) them, then cut before they are due.
    tokio::time::sleep(Duration::from_millis(100)).await;
    p.set(Direction::ToTarget, LinkState::Cut);
    assert!(
        tokio::time::timeout(Duration::from_millis(700), sink.got.recv())
            .await
            .is_err(),
        "a frame in flight crossed a cut"
    );
    assert_eq!(p.stats(Direction::ToTarget).dropped, 5);
    // After healing, new frames pass again.
    p.heal();
    c.send(Bytes::from_static(b"after")).await.unwrap();
    let (_, f) = tokio::time::timeout(Duration::from_secs(5), sink.got.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&f[..], b"after");
    p.shutdown().await;
}

#[tokio::test]
async fn new_connections_are_held_while_cut_and_proceed_on_heal() {
    let mut sink = sink_server().await;
    let p = proxy_to(sink.addr, 3).await;
    p.set(Direction::ToTarget, LinkState::Cut);
    // The client's connect succeeds (the proxy accepts), but nothing reaches the target.
    let mut c = connect(p.local_addr()).await;
    c.send(Bytes::from_static(b"early")).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sink.got.recv())
            .await
            .is_err()
    );
    p.heal();
    let sent = Instant::now();
    c.send(Bytes::from_static(b"late")).await.unwrap();
    let (at, f) = tokio::time::timeout(Duration::from_secs(5), sink.got.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&f[..], b"late");
    assert!(at - sent < HEAL_BOUND, "took {:?}", at - sent);
    p.shutdown().await;
}

#[tokio::test]
async fn loss_drops_about_half() {
    const N: u64 = 10_000;
    let seed = 0x5eed_u64;
    let mut sink = sink_server().await;
    let p = proxy_to(sink.addr, seed).await;
    p.set(Direction::ToTarget, LinkState::Loss { p: 0.5 });
    let mut c = connect(p.local_addr()).await;
    for i in 0..N {
        c.feed(Bytes::from(i.to_be_bytes().to_vec())).await.unwrap();
    }
    SinkExt::<Bytes>::flush(&mut c).await.unwrap();
    // Wait until the proxy has decided on every frame (bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = p.stats(Direction::ToTarget);
        if s.forwarded + s.dropped == N || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut got = Vec::new();
    while let Ok(Some((_, f))) =
        tokio::time::timeout(Duration::from_millis(300), sink.got.recv()).await
    {
        got.push(u64::from_be_bytes(f[..].try_into().unwrap()));
    }
    // Binomial(10000, 0.5): sd = 50; +-5 sd.
    let n = got.len() as u64;
    assert!(
        (4750..=5250).contains(&n),
        "seed {seed}: {n} of {N} delivered"
    );
    assert!(got.windows(2).all(|w| w[0] < w[1]), "seed {seed}: order");
    let s = p.stats(Direction::ToTarget);
    assert_eq!((s.forwarded, s.dropped), (n, N - n), "seed {seed}");
    p.shutdown().await;
}

#[tokio::test]
async fn delays_are_within_bounds_and_keep_order() {
    let fixed = Duration::from_millis(30);
    let jitter = Duration::from_millis(20);
    let seed = 77;
    let mut sink = sink_server().await;
    let p = proxy_to(sink.addr, seed).await;
    p.set(Direction::ToTarget, LinkState::Delay { fixed, jitter });
    let mut c = connect(p.local_addr()).await;
    const N: u32 = 200;
    let mut sent = Vec::new();
    for i in 0..N {
        sent.push(Instant::now());
        c.send(Bytes::from(i.to_be_bytes().to_vec())).await.unwrap();
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut delays = Vec::new();
    for i in 0..N {
        let (at, f) = tokio::time::timeout(Duration::from_secs(10), sink.got.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&f[..], &i.to_be_bytes(), "seed {seed}: order broken");
        delays.push(at - sent[i as usize]);
    }
    // Lower bound is strict; the upper bound allows timer granularity and scheduling.
    let slack = Duration::from_millis(25);
    for (i, d) in delays.iter().enumerate() {
        assert!(*d >= fixed, "seed {seed}: frame {i} early: {d:?}");
        assert!(
            *d <= fixed + jitter + slack,
            "seed {seed}: frame {i} late: {d:?}"
        );
    }
    // Jitter really varies the delay: frames spaced further apart than the largest delay
    // are independent of each other (in a burst, keeping order evens delays out).
    let mut spaced = Vec::new();
    for i in 0..20u32 {
        let t = Instant::now();
        c.send(Bytes::from(i.to_be_bytes().to_vec())).await.unwrap();
        let (at, _) = tokio::time::timeout(Duration::from_secs(10), sink.got.recv())
            .await
            .unwrap()
            .unwrap();
        let d = at - t;
        assert!(
            d >= fixed && d <= fixed + jitter + slack,
            "seed {seed}: {d:?}"
        );
        spaced.push(d);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let min = spaced.iter().min().unwrap();
    let max = spaced.iter().max().unwrap();
    assert!(*max - *min >= jitter / 2, "seed {seed}: {min:?}..{max:?}");
    p.shutdown().await;
}

#[tokio::test]
async fn oversized_frame_closes_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let echo = echo_server().await;
    let p = proxy_to(echo.addr, 4).await;
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    let too_big = (node::protocol::MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
    s.write_all(&too_big).await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the proxy must close the connection");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    // The proxy itself keeps serving.
    let mut c = connect(p.local_addr()).await;
    c.send(Bytes::from_static(b"ok")).await.unwrap();
    assert_eq!(
        recv_within(&mut c, Duration::from_secs(5)).await.as_deref(),
        Some(&b"ok"[..])
    );
}

#[tokio::test]
async fn dropping_the_proxy_closes_everything() {
    use tokio::io::AsyncReadExt;
    let echo = echo_server().await;
    let p = proxy_to(echo.addr, 5).await;
    let addr = p.local_addr();
    let mut c = connect(addr).await;
    c.send(Bytes::from_static(b"x")).await.unwrap();
    assert!(recv_within(&mut c, Duration::from_secs(5)).await.is_some());
    // A held connection too.
    p.set(Direction::ToTarget, LinkState::Cut);
    let mut held = TcpStream::connect(addr).await.unwrap();
    drop(p);
    let mut buf = [0u8; 4];
    let r = tokio::time::timeout(Duration::from_secs(5), held.read(&mut buf))
        .await
        .expect("held connection must be closed");
    assert!(matches!(r, Ok(0) | Err(_)));
    assert!(tokio::time::timeout(Duration::from_secs(5), c.next())
        .await
        .expect("proxied connection must be closed")
        .is_none_or(|r| r.is_err()));
    // Nobody listens any more (bounded retries: the listener closes asynchronously).
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "listener still open after drop");
}

#[tokio::test]
async fn target_down_closes_the_client_and_a_restarted_target_is_reached() {
    use tokio::io::AsyncReadExt;
    // A port with nobody listening, as when the node behind the proxy was killed.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = l.local_addr().unwrap();
    drop(l);
    let p = proxy_to(target, 6).await;
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    let mut buf = [0u8; 4];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the proxy must close a connection it cannot forward");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    // The "node" comes back on the same port: new connections reach it, no proxy restart.
    let Ok(l) = TcpListener::bind(target).await else {
        eprintln!("port {target} was taken meanwhile; skipping the restart half");
        return;
    };
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut f = Framed::new(s, frame_codec());
        while let Some(Ok(frame)) = f.next().await {
            if f.send(frame.freeze()).await.is_err() {
                break;
            }
        }
    });
    let mut c = connect(p.local_addr()).await;
    c.send(Bytes::from_static(b"back")).await.unwrap();
    assert_eq!(
        recv_within(&mut c, Duration::from_secs(5)).await.as_deref(),
        Some(&b"back"[..])
    );
    server.abort();
}

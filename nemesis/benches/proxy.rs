//! What a healthy proxy costs: every node-to-node byte goes through one, so it must add
//! little to what the faults are measured against.
//!
//! `cargo bench -p nemesis --bench proxy` prints, from one run:
//! - round-trip latency of small frames to an echo server, direct and through a proxy
//!   (p50, p99, the ratio and the added p50; target: at most 50 us added at p50), measured in
//!   alternating blocks so both see the same machine load;
//! - the throughput one proxy link carries, in MB/s (64 KiB frames) and frames/s (128 B
//!   frames), next to the same figures direct.
//!
//! Every loop is bounded in count and in time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use nemesis::Proxy;
use node::protocol::frame_codec;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, FramedRead};

const RTT_FRAME: usize = 64;
const RTT_BLOCKS: usize = 20;
const RTT_PER_BLOCK: usize = 1_000;
const RTT_WARMUP: usize = 2_000;
const THROUGHPUT_TIME: Duration = Duration::from_secs(2);

async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut f = Framed::new(s, frame_codec());
                while let Some(Ok(frame)) = f.next().await {
                    if f.send(frame.freeze()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A server that counts the frames and bytes it receives.
async fn count_server(frames: Arc<AtomicU64>, bytes: Arc<AtomicU64>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (frames, bytes) = (frames.clone(), bytes.clone());
            tokio::spawn(async move {
                let mut r = FramedRead::new(s, frame_codec());
                while let Some(Ok(f)) = r.next().await {
                    frames.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(f.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    addr
}

async fn connect(addr: SocketAddr) -> Framed<TcpStream, tokio_util::codec::LengthDelimitedCodec> {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    Framed::new(s, frame_codec())
}

async fn round_trips(
    c: &mut Framed<TcpStream, tokio_util::codec::LengthDelimitedCodec>,
    n: usize,
    hist: Option<&mut Histogram<u64>>,
) {
    let frame = Bytes::from(vec![7u8; RTT_FRAME]);
    let mut hist = hist;
    for _ in 0..n {
        let t = Instant::now();
        c.send(frame.clone()).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), c.next())
            .await
            .expect("echo timed out")
            .unwrap()
            .unwrap();
        assert_eq!(back.len(), RTT_FRAME);
        if let Some(h) = hist.as_deref_mut() {
            h.saturating_record(t.elapsed().as_nanos() as u64);
        }
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

async fn latency() {
    let echo = echo_server().await;
    let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), echo, 1)
        .await
        .unwrap();
    let mut direct = connect(echo).await;
    let mut proxied = connect(proxy.local_addr()).await;
    round_trips(&mut direct, RTT_WARMUP, None).await;
    round_trips(&mut proxied, RTT_WARMUP, None).await;
    let mut hd = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let mut hp = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    for _ in 0..RTT_BLOCKS {
        round_trips(&mut direct, RTT_PER_BLOCK, Some(&mut hd)).await;
        round_trips(&mut proxied, RTT_PER_BLOCK, Some(&mut hp)).await;
    }
    let (d50, d99) = (hd.value_at_quantile(0.5), hd.value_at_quantile(0.99));
    let (p50, p99) = (hp.value_at_quantile(0.5), hp.value_at_quantile(0.99));
    println!(
        "round trip, {RTT_FRAME} B frames, {} each:",
        RTT_BLOCKS * RTT_PER_BLOCK
    );
    println!("  direct   p50 {:8.1} us   p99 {:8.1} us", us(d50), us(d99));
    println!("  proxied  p50 {:8.1} us   p99 {:8.1} us", us(p50), us(p99));
    println!(
        "  ratio    p50 {:8.2}x     p99 {:8.2}x",
        p50 as f64 / d50 as f64,
        p99 as f64 / d99 as f64
    );
    let added = us(p50.saturating_sub(d50));
    println!(
        "  added at p50: {added:.1} us (target <= 50 us: {})",
        if added <= 50.0 { "met" } else { "NOT met" }
    );
    proxy.shutdown().await;
}

/// Sends `size`-byte frames to a counting server (through a proxy or not) for THROUGHPUT_TIME and returns (MB/s, frames/s) as
/// received by the server.
async fn throughput(via_proxy: bool, size: usize) -> (f64, f64) {
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let server = count_server(frames.clone(), bytes.clone()).await;
    let proxy = if via_proxy {
        Some(
            Proxy::start("127.0.0.1:0".parse().unwrap(), server, 2)
                .await
                .unwrap(),
        )
    } else {
        None
    };
    let addr = proxy.as_ref().map(Proxy::local_addr).unwrap_or(server);
    let mut c = connect(addr).await;
    let frame = Bytes::from(vec![1u8; size]);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < THROUGHPUT_TIME {
        for _ in 0..64 {
            c.feed(frame.clone()).await.unwrap();
            sent += 1;
        }
        SinkExt::<Bytes>::flush(&mut c).await.unwrap();
    }
    // Wait (bounded) for everything sent to arrive.
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let got = frames.load(Ordering::Relaxed);
    assert_eq!(got, sent, "frames lost on a healthy link");
    if let Some(p) = proxy {
        p.shutdown().await;
    }
    (
        bytes.load(Ordering::Relaxed) as f64 / secs / 1e6,
        got as f64 / secs,
    )
}

async fn throughputs() {
    println!("throughput, one connection, {THROUGHPUT_TIME:?} each:");
    for (size, label) in [(64 * 1024, "64 KiB"), (128, "128 B")] {
        let (dm, df) = throughput(false, size).await;
        let (pm, pf) = throughput(true, size).await;
        println!("  {label:>6} frames  direct  {dm:9.1} MB/s {df:11.0} frames/s");
        println!("  {label:>6} frames  proxied {pm:9.1} MB/s {pf:11.0} frames/s");
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        latency().await;
        throughputs().await;
    });
}

//! End-to-end: the limits a node puts on the connections to its two ports.
//!
//! - a port at its connection cap (`--max-client-connections`, `--max-peer-connections`)
//!   closes its longest-idle connection for each new one, so a flood of idle connections
//!   neither grows without bound nor locks out a client or a restarted peer;
//! - a frame whose first byte arrived must be complete within `--frame-timeout-ms`, or its
//!   connection is closed (bytes trickling in do not extend it); a connection with no frame
//!   started may idle;
//! - partial frames do not pin memory: what a node buffers for unfinished frames is bounded
//!   (`--frame-buffer-mib` per node, plus 64 KiB per connection), whatever the frames claim.

mod common;

use node::command;
use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{memory_kib, status, Cluster, Conn};
use node::protocol::{Operation, Reply, WriteId, MAX_FRAME_BYTES};

/// Whether the node closed `s`: EOF or a reset (bytes the node sent are skipped). Waits at
/// most `wait` for the close.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => return false,
            Err(e) if e.kind() == IoKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A status request through a fresh connection, retried for a few seconds.
fn status_ok(addr: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if status(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn client_connections_over_the_cap_close_the_longest_idle_ones() {
    let mut cluster = Cluster::start(1, &["--max-client-connections", "8"]);
    cluster.wait_for_leader(Duration::from_secs(15));
    let addr = cluster.nodes[0].client_addr.clone();
    // Eight idle connections fill the port; four more push out the four oldest.
    let mut conns: Vec<TcpStream> = (0..12).map(|_| connect(&addr)).collect();
    for (i, c) in conns.iter_mut().enumerate().take(4) {
        assert!(
            closed_within(c, Duration::from_secs(5)),
            "connection {i} (of 12, cap 8) is still open{}",
            cluster.log_hint()
        );
    }
    for (i, c) in conns.iter_mut().enumerate().skip(4) {
        assert!(
            !closed_within(c, Duration::from_millis(200)),
            "connection {i} (of 12, cap 8) was closed"
        );
    }
    // A client still gets in (pushing out the longest-idle one) and is served.
    let mut client = Conn::connect(&addr).unwrap();
    let r = client.call(Operation::Put(command::Put {
        key: "k".into(),
        value: 1,
        write_id: WriteId { client: 1, seq: 1 },
    }));
    assert!(matches!(r, Ok(Ok(Reply::Written))), "{r:?}");
    drop(conns);
    drop(client);
    assert!(
        status_ok(&addr),
        "no status after the flood{}",
        cluster.log_hint()
    );
    let log = std::fs::read_to_string(cluster.dir.path().join("n1.log")).unwrap();
    assert!(log.contains("connection cap"), "no log line about the cap");
    cluster.assert_all_running();
}

#[test]
fn a_restarted_peer_gets_in_past_idle_connections_at_the_cap() {
    let mut cluster = Cluster::start(3, &["--max-peer-connections", "4"]);
    let l = cluster.wait_for_leader(Duration::from_secs(15));
    let (a, b) = ((l + 1) % 3, (l + 2) % 3);
    let peer_addr = cluster.nodes[l].peer_addr.clone();
    let mut idle: Vec<TcpStream> = (0..12).map(|_| connect(&peer_addr)).collect();
    let closed = idle
        .iter_mut()
        .filter_map(|c| closed_within(c, Duration::from_millis(500)).then_some(()))
        .count();
    assert!(
        closed >= 8,
        "only {closed} of 12 idle connections were closed at a cap of 4"
    );
    // The idle connections that are left must not keep a restarted peer out: with `a`
    // restarted and `b` down, nothing commits unless `a`'s messages reach the leader.
    cluster.kill(a);
    cluster.spawn(a);
    cluster.kill(b);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut done = false;
    while !done && Instant::now() < deadline {
        for i in [l, a] {
            if let Ok(mut c) = Conn::connect(&cluster.nodes[i].client_addr) {
                if let Ok(Ok(Reply::Written)) = c.call(Operation::Put(command::Put {
                    key: "k".into(),
                    value: 2,
                    write_id: WriteId { client: 2, seq: 1 },
                })) {
                    done = true;
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        done,
        "no put committed with the restarted peer{}",
        cluster.log_hint()
    );
    drop(idle);
}

#[test]
fn a_started_frame_must_be_complete_within_the_frame_timeout() {
    let mut cluster = Cluster::start(1, &["--frame-timeout-ms", "1000"]);
    cluster.wait_for_leader(Duration::from_secs(15));
    let client_addr = cluster.nodes[0].client_addr.clone();
    let peer_addr = cluster.nodes[0].peer_addr.clone();
    let mut idle = connect(&client_addr);
    let mut started = Vec::new();
    for addr in [&client_addr, &peer_addr] {
        let mut s = connect(addr);
        let mut bytes = 100u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[b'{'; 10]);
        s.write_all(&bytes).unwrap();
        started.push(s);
    }
    // One more that trickles a byte every 200 ms: the whole frame has the deadline.
    let mut trickle = connect(&client_addr);
    trickle.write_all(&100u32.to_be_bytes()).unwrap();
    let start = Instant::now();
    let mut closed_at: Vec<Option<Duration>> = vec![None; 3];
    while start.elapsed() < Duration::from_secs(6) && closed_at.iter().any(Option::is_none) {
        let _ = trickle.write_all(b" ");
        for (i, s) in started.iter_mut().chain([&mut trickle]).enumerate() {
            if closed_at[i].is_none() && closed_within(s, Duration::from_millis(50)) {
                closed_at[i] = Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (i, name) in ["client", "peer", "trickling client"].iter().enumerate() {
        let t = closed_at[i]
            .unwrap_or_else(|| panic!("the {name} connection with a started frame is still open"));
        assert!(
            t >= Duration::from_millis(800),
            "the {name} connection was closed after only {t:?}"
        );
        println!("{name} connection closed after {t:?}");
    }
    // No frame started: clients may idle.
    assert!(
        !closed_within(&mut idle, Duration::from_millis(100)),
        "an idle client connection was closed"
    );
    assert!(status_ok(&client_addr));
    cluster.assert_all_running();
}

#[test]
fn partial_frames_do_not_pin_memory() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(15));
    let pid = cluster.nodes[0].child.as_ref().unwrap().id();
    let (base, _) = memory_kib(pid);
    // 200 frames, each claiming the largest length and sending all of it but the last byte:
    // 60 on the peer port (under its cap of 64), 140 on the client port.
    let claimed = MAX_FRAME_BYTES;
    let mut conns: Vec<(TcpStream, usize)> = Vec::new();
    for (addr, n) in [
        (cluster.nodes[0].peer_addr.clone(), 60),
        (cluster.nodes[0].client_addr.clone(), 140),
    ] {
        for _ in 0..n {
            let s = connect(&addr);
            s.set_nonblocking(true).unwrap();
            conns.push((s, 0));
        }
    }
    let mut frame = (claimed as u32).to_be_bytes().to_vec();
    frame.resize(4 + claimed - 1, b'x');
    // Push what the node takes; stop once nothing moved for a second (or after 30 s).
    let start = Instant::now();
    let mut last_progress = Instant::now();
    let mut sent = 0usize;
    while last_progress.elapsed() < Duration::from_secs(1)
        && start.elapsed() < Duration::from_secs(30)
    {
        let mut moved = false;
        for (s, off) in conns.iter_mut() {
            if *off == frame.len() {
                continue;
            }
            match s.write(&frame[*off..(*off + 256 * 1024).min(frame.len())]) {
                Ok(n) if n > 0 => {
                    *off += n;
                    sent += n;
                    moved = true;
                }
                _ => {}
            }
        }
        if moved {
            last_progress = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let (rss, peak) = memory_kib(pid);
    println!(
        "sent {} MiB in partial frames; node RSS {} MiB (before {} MiB), peak {} MiB",
        sent >> 20,
        rss >> 10,
        base >> 10,
        peak >> 10
    );
    assert!(
        peak < 150 * 1024,
        "peak RSS {} MiB with 200 partial frames",
        peak >> 10
    );
    cluster.assert_all_running();
    drop(conns);
    assert!(status_ok(&cluster.nodes[0].client_addr));
}

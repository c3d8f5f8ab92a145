//! End to end for the namespace partition backend ([`nemesis::netns`]): real namespaces,
//! veth links, a bridge and nftables rules. Each test prints `SKIPPED: <reason>` to stderr
//! and returns when the host cannot build namespaces (not root, no `ip`/`nft`, a container
//! without the capability).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Child;
use std::time::{Duration, Instant};

use nemesis::netns::{self, NetnsCluster, NetnsError};
use nemesis::partition;

const ECHO_PORT: u16 = 7000;

fn skipped() -> bool {
    match netns::available() {
        Ok(()) => false,
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            true
        }
    }
}

/// Kills (SIGKILL, by PID) and reaps the child when dropped, however the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.0.wait();
    }
}

const ECHO_PY: &str = "
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 7000))
s.listen()
def serve(c):
    while True:
        d = c.recv(4096)
        if not d:
            break
        c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
";

/// A python3 echo server in member `id`'s namespace (started through the exec prefix and the
/// process-wide spawner), once it accepts connections from the controller (bounded: 10 s).
fn echo_server(net: &NetnsCluster, id: u64) -> Reaped {
    let mut cmd = net.command(id, "python3").unwrap();
    cmd.args(["-c", ECHO_PY]);
    let child = Reaped(nemesis::process::spawner::spawn(cmd).unwrap());
    let addr = SocketAddr::from((net.addr(id).unwrap(), ECHO_PORT));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = net
            .run_in_controller(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)))
            .unwrap();
        if ok.is_ok() {
            // `ip netns exec` execs the program: the PID we hold (and kill) is python's own.
            let comm = std::fs::read_to_string(format!("/proc/{}/comm", child.0.id())).unwrap();
            assert_eq!(comm.trim(), "python3");
            return child;
        }
        assert!(Instant::now() < deadline, "echo server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP connection from member `from` to the echo server on `to`, if one opens within 1 s.
fn connect(net: &NetnsCluster, from: u64, to: u64) -> Option<TcpStream> {
    let addr = SocketAddr::from((net.addr(to).unwrap(), ECHO_PORT));
    let s = net
        .run_in(from, || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        })
        .unwrap()
        .ok()?;
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    Some(s)
}

/// Sends `msg` and waits up to `wait` for all of it to come back.
fn echoes(s: &mut TcpStream, msg: &[u8], wait: Duration) -> bool {
    if s.write_all(msg).is_err() {
        return false;
    }
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while Instant::now() < deadline && got.len() < msg.len() {
        match s.read(&mut buf) {
            Ok(0) => return false,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(_) => {} // read timeout: keep waiting until the deadline
        }
    }
    got == msg
}

/// True when a fresh connection from `from` to `to` opens and echoes.
fn reaches(net: &NetnsCluster, from: u64, to: u64) -> bool {
    connect(net, from, to).is_some_and(|mut s| echoes(&mut s, b"ping", Duration::from_secs(1)))
}

fn no_namespace_left(run_id: &str) {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        !list.lines().any(|l| l.starts_with(&format!("{run_id}-"))),
        "namespaces of {run_id} left behind:\n{list}"
    );
}

#[test]
fn cut_stops_new_and_established_connections_until_healed() {
    if skipped() {
        return;
    }
    let t0 = Instant::now();
    let net = NetnsCluster::create_n(3).unwrap();
    let run_id = net.run_id().to_string();
    eprintln!("{run_id}: created in {:?}", t0.elapsed());
    let server = echo_server(&net, 1);

    assert!(reaches(&net, 2, 1), "2 -> 1 before any fault");
    let mut held = connect(&net, 2, 1).expect("connection 2 -> 1");
    assert!(echoes(&mut held, b"before", Duration::from_secs(1)));

    net.cut(2, 1).unwrap();
    assert!(net.is_cut(2, 1) && !net.is_cut(1, 2));
    assert!(!reaches(&net, 2, 1), "2 -> 1 must be cut");
    assert!(reaches(&net, 3, 1), "3 -> 1 must still pass");
    assert!(
        !echoes(&mut held, b"during", Duration::from_millis(800)),
        "an established connection must stop passing data while cut"
    );

    net.heal(2, 1).unwrap();
    assert!(reaches(&net, 2, 1), "2 -> 1 after heal");
    // TCP retransmits what the cut dropped; the held connection resumes (bounded wait).
    let mut rest = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 64];
    while Instant::now() < deadline && rest != b"during" {
        if let Ok(k) = held.read(&mut buf) {
            assert!(k > 0, "connection closed");
            rest.extend_from_slice(&buf[..k]);
        }
    }
    assert_eq!(rest, b"during", "held connection did not resume after heal");
    assert!(echoes(&mut held, b"after", Duration::from_secs(2)));

    drop(held);
    drop(server);
    net.teardown().unwrap();
    no_namespace_left(&run_id);
    assert!(matches!(net.cut(2, 1), Err(NetnsError::TornDown)));
    eprintln!("{run_id}: done in {:?}", t0.elapsed());
}

/// A UDP socket bound to member `id`'s address, with a short receive timeout.
fn udp(net: &NetnsCluster, id: u64) -> UdpSocket {
    let addr = SocketAddr::from((net.addr(id).unwrap(), 0));
    let s = net.run_in(id, || UdpSocket::bind(addr)).unwrap().unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

/// True when a datagram from `a` reaches `b` (up to 3 tries, so that passing is not flaky;
/// a cut drops every try).
fn datagram_passes(a: &UdpSocket, b: &UdpSocket) -> bool {
    let to = b.local_addr().unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        a.send_to(b"x", to).unwrap();
        if let Ok((_, src)) = b.recv_from(&mut buf) {
            if src == a.local_addr().unwrap() {
                return true;
            }
        }
    }
    false
}

#[test]
fn one_way_cuts_grudges_loss_and_heal_all() {
    if skipped() {
        return;
    }
    let t0 = Instant::now();
    let net = NetnsCluster::create_n(3).unwrap();
    let run_id = net.run_id().to_string();
    let s: Vec<UdpSocket> = (1..=3).map(|i| udp(&net, i)).collect();
    let passes = |a: u64, b: u64| datagram_passes(&s[a as usize - 1], &s[b as usize - 1]);
    for (a, b) in [(1, 2), (2, 1), (1, 3), (3, 2)] {
        assert!(passes(a, b), "{a} -> {b} before faults");
    }

    // One way: exactly 2 -> 1 is dropped.
    net.cut(2, 1).unwrap();
    assert!(!passes(2, 1), "2 -> 1 cut");
    assert!(passes(1, 2), "1 -> 2 must pass under a one-way cut");
    assert!(passes(3, 1) && passes(2, 3));
    net.heal(2, 1).unwrap();
    assert!(passes(2, 1), "2 -> 1 healed");

    // A whole grudge: 1 isolated both ways; 2 and 3 still talk.
    net.apply_grudge(&partition::isolate(&[1, 2, 3], 1).unwrap())
        .unwrap();
    for (a, b) in [(1, 2), (2, 1), (1, 3), (3, 1)] {
        assert!(!passes(a, b), "{a} -> {b} isolated");
    }
    assert!(passes(2, 3) && passes(3, 2));
    // One-way deaf: 1 hears nobody but everyone hears 1.
    net.heal_all().unwrap();
    net.apply_grudge(&partition::one_way_deaf(&[1, 2, 3], 1).unwrap())
        .unwrap();
    assert!(!passes(2, 1) && !passes(3, 1));
    assert!(passes(1, 2) && passes(1, 3));
    // A grudge naming a stranger changes nothing.
    let mut bad = partition::Grudge::new();
    bad.drop_traffic(2, 9);
    assert!(matches!(
        net.apply_grudge(&bad),
        Err(NetnsError::UnknownNode(9))
    ));
    net.heal_all().unwrap();
    for (a, b) in [(1, 2), (2, 1), (1, 3), (3, 1)] {
        assert!(passes(a, b), "{a} -> {b} after heal_all");
    }

    // Loss per directed pair (nftables numgen): 1.0 drops all, 0 removes it.
    net.set_loss(3, 2, 1.0).unwrap();
    assert!(!passes(3, 2) && passes(2, 3));
    net.set_loss(3, 2, 0.5).unwrap();
    // A burst, then count what arrives (the receive timeout ends the count).
    for _ in 0..200 {
        s[2].send_to(b"y", s[1].local_addr().unwrap()).unwrap();
    }
    let through = std::iter::from_fn(|| s[1].recv_from(&mut [0u8; 8]).ok()).count();
    // However many times the table was rewritten, it holds our two input rules, once.
    let o = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.namespace(2).unwrap(),
            "nft",
            "list",
            "chain",
        ])
        .args(["inet", netns::NFT_TABLE, "input"])
        .output()
        .unwrap();
    let chain = String::from_utf8_lossy(&o.stdout);
    assert_eq!(chain.matches("jump loss").count(), 1, "{chain}");
    eprintln!("{run_id}: loss 0.5 let {through}/200 datagrams through");
    assert!(
        (40..=160).contains(&through),
        "{through}/200 under loss 0.5"
    );
    net.set_loss(3, 2, 0.0).unwrap();
    assert!(passes(3, 2));

    // Delay needs netem: either it works, or it is refused as unsupported, never ignored.
    match net.set_delay(1, 2, 200, 0) {
        Ok(()) => {
            let t = Instant::now();
            assert!(passes(1, 2));
            assert!(
                t.elapsed() >= Duration::from_millis(190),
                "{:?}",
                t.elapsed()
            );
            assert!(passes(2, 1));
            eprintln!("{run_id}: delay 1 -> 2 supported ({:?})", t.elapsed());
        }
        Err(e @ NetnsError::Unsupported { .. }) => eprintln!("{run_id}: {e}"),
        Err(e) => panic!("set_delay: {e}"),
    }
    net.heal_all().unwrap();
    assert!(passes(1, 2));

    drop(net);
    no_namespace_left(&run_id);
    eprintln!("{run_id}: done in {:?}", t0.elapsed());
}

#[test]
fn stale_names_do_not_break_a_new_run() {
    if skipped() {
        return;
    }
    // A namespace named like this process's next run id (as a crashed run with a reused PID
    // would leave): create moves on to another id.
    let probe = NetnsCluster::create_n(1).unwrap();
    let id = probe.run_id().to_string();
    drop(probe);
    let k: u64 = id.rsplit('-').next().unwrap().parse().unwrap();
    let stale: Vec<String> = (1..=4)
        .map(|d| format!("jh-{}-{}-br", std::process::id(), k + d))
        .collect();
    for name in &stale {
        let _ = std::process::Command::new("ip")
            .args(["netns", "add", name])
            .status();
    }
    let net = NetnsCluster::create_n(2);
    for name in &stale {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", name])
            .status();
    }
    let net = net.unwrap();
    assert!(!stale
        .iter()
        .any(|s| s.starts_with(&format!("{}-", net.run_id()))));

    // The leftover of a dead process is removed by remove_stale; ours and live ones stay.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let leftover = format!("jh-{dead_pid}-0-br");
    assert!(std::process::Command::new("ip")
        .args(["netns", "add", &leftover])
        .status()
        .unwrap()
        .success());
    let removed = netns::remove_stale();
    assert!(removed.contains(&leftover), "{removed:?}");
    assert!(!removed.iter().any(|r| r.starts_with(net.run_id())));
    assert!(net.cut(1, 2).is_ok(), "our own namespaces must survive");
}

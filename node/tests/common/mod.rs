//! Helpers for end-to-end tests that start real `node` processes on loopback ports.
//! Every process started here is killed by its PID when the [`Cluster`] is dropped.

#![allow(dead_code)]

use node::raft::Role;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use node::client::Connection;
use node::protocol::{ErrorReply, Operation, Reply, Status};

/// A free loopback port outside the ephemeral range ([`node::loopback::free_port`]).
pub fn free_port() -> u16 {
    node::loopback::free_port().expect("finding a free loopback port")
}

/// The node binary to start: `$NODE_BIN` if set (a release build, for measurements),
/// else this build's.
pub fn node_bin() -> PathBuf {
    std::env::var_os("NODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_node")))
}

/// One node process and its addresses.
pub struct NodeProc {
    pub id: u64,
    pub peer_addr: String,
    pub client_addr: String,
    pub data_dir: PathBuf,
    pub args: Vec<String>,
    pub child: Option<Child>,
}

/// A node process not started yet: its id, peer and client ports, the `--peers` (and
/// optionally `--client-addrs`) lists, a data directory `n<id>` under `dir`, then `extra`.
pub fn node_proc(
    dir: &Path,
    id: u64,
    (peer_port, client_port): (u16, u16),
    peers: &str,
    client_addrs: Option<&str>,
    extra: &[&str],
) -> NodeProc {
    let data_dir = dir.join(format!("n{id}"));
    let mut args = vec![
        "--id".to_string(),
        format!("n{id}"),
        "--peer-listen".into(),
        format!("127.0.0.1:{peer_port}"),
        "--client-listen".into(),
        format!("127.0.0.1:{client_port}"),
        "--peers".into(),
        peers.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ];
    if let Some(c) = client_addrs {
        args.extend(["--client-addrs".to_string(), c.to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    NodeProc {
        id,
        peer_addr: format!("127.0.0.1:{peer_port}"),
        client_addr: format!("127.0.0.1:{client_port}"),
        data_dir,
        args,
        child: None,
    }
}

/// A cluster of real node processes, killed on drop.
pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) with `extra` arguments for every node.
    pub fn start(n: u64, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let all = node::loopback::free_ports(2 * n as usize).expect("free loopback ports");
        let ports: Vec<(u16, u16)> = all.chunks(2).map(|c| (c[0], c[1])).collect();
        let client_addrs: Vec<String> = (1..=n)
            .map(|i| format!("n{i}=127.0.0.1:{}", ports[(i - 1) as usize].1))
            .collect();
        let mut nodes = Vec::new();
        for i in 1..=n {
            let (pp, cp) = ports[(i - 1) as usize];
            let peers: Vec<String> = (1..=n)
                .filter(|&j| j != i)
                .map(|j| format!("n{j}=127.0.0.1:{}", ports[(j - 1) as usize].0))
                .collect();
            nodes.push(node_proc(
                dir.path(),
                i,
                (pp, cp),
                &peers.join(","),
                Some(&client_addrs.join(",")),
                extra,
            ));
        }
        let mut c = Cluster { nodes, dir };
        for i in 0..c.nodes.len() {
            c.spawn(i);
        }
        for i in 0..c.nodes.len() {
            c.wait_listening(i, Duration::from_secs(20));
        }
        c
    }

    /// Waits (bounded) until node `i` accepts connections on its client port, which it opens
    /// after binding its peer port; panics with the logs if its process exits first (a port
    /// taken, a bad flag), so a test fails where the cause is, not later as "no leader".
    pub fn wait_listening(&mut self, i: usize, deadline: Duration) {
        let start = Instant::now();
        let addr: std::net::SocketAddr = self.nodes[i].client_addr.parse().unwrap();
        while start.elapsed() < deadline {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                self.is_running(i),
                "n{} exited before listening{}",
                self.nodes[i].id,
                self.log_hint()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "n{} not listening on {} within {deadline:?}{}",
            self.nodes[i].id,
            addr,
            self.log_hint()
        );
    }

    /// Starts (or restarts) node at position `i` with its original arguments.
    pub fn spawn(&mut self, i: usize) {
        let log_path = self.dir.path().join(format!("n{}.log", self.nodes[i].id));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let child = Command::new(node_bin())
            .args(&self.nodes[i].args)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn node");
        self.nodes[i].child = Some(child);
    }

    /// SIGKILLs node at position `i` (by PID) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether node `i`'s process is still running.
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.nodes[i].child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// Panics, naming the node and pointing at the logs, if any node's process has exited.
    pub fn assert_all_running(&mut self) {
        for i in 0..self.nodes.len() {
            assert!(self.is_running(i), "n{} exited{}", i + 1, self.log_hint());
        }
    }

    /// Waits (bounded) until some running node reports itself leader; returns its position.
    pub fn wait_for_leader(&mut self, deadline: Duration) -> usize {
        let start = Instant::now();
        while start.elapsed() < deadline {
            for i in 0..self.nodes.len() {
                if self.nodes[i].child.is_none() {
                    continue;
                }
                if let Ok(s) = status(&self.nodes[i].client_addr) {
                    if s.role == Role::Leader {
                        return i;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no leader within {deadline:?}; logs in {}", self.log_hint());
    }

    /// Where the node logs are (for failure messages).
    pub fn log_hint(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let p = self.dir.path().join(format!("n{}.log", n.id));
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            s.push_str(&format!("\n--- n{} ---\n", n.id));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// How long [`Conn::connect`] may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one [`Conn`] call, read or write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(6);

/// A blocking connection to a node's port: a [`node::client::Connection`] driven by its own
/// current-thread runtime. [`Conn::call`] speaks the protocol; the raw helpers
/// ([`Conn::write_raw`], [`Conn::write_frame`], [`Conn::read_frame`]) break it on purpose
/// (and talk to peer ports), on the same socket.
pub struct Conn {
    rt: tokio::runtime::Runtime,
    conn: Connection,
}

impl Conn {
    /// Connects with a bounded timeout.
    pub fn connect(addr: &str) -> std::io::Result<Conn> {
        let addr = addr.parse().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let conn = rt.block_on(Connection::connect(addr, CONNECT_TIMEOUT))?;
        Ok(Conn { rt, conn })
    }

    /// Writes raw bytes (for malformed-input tests).
    pub fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
        Ok(self.rt.block_on(self.conn.send_raw(bytes, deadline))?)
    }

    /// Writes one frame (any payload, any size).
    pub fn write_frame(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let mut buf = (payload.len() as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(payload);
        self.write_raw(&buf)
    }

    /// Reads one frame.
    pub fn read_frame(&mut self) -> std::io::Result<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
        Ok(self
            .rt
            .block_on(self.conn.receive_frame(deadline))?
            .to_vec())
    }

    /// Sends one request and waits for its response.
    pub fn call(&mut self, op: Operation) -> std::io::Result<Result<Reply, ErrorReply>> {
        self.call_within(op, IO_TIMEOUT)
    }

    /// Sends one request and waits at most `timeout` for its response.
    pub fn call_within(
        &mut self,
        op: Operation,
        timeout: Duration,
    ) -> std::io::Result<Result<Reply, ErrorReply>> {
        Ok(self.rt.block_on(self.conn.call(op, timeout))?)
    }
}

/// A node's status, or an I/O error if it does not answer.
pub fn status(addr: &str) -> std::io::Result<Status> {
    let mut c = Conn::connect(addr)?;
    // Generous: a loaded CI machine can take a while to answer; callers poll anyway.
    match c.call_within(Operation::Status, Duration::from_secs(3))? {
        Ok(Reply::Status(s)) => Ok(s),
        other => Err(std::io::Error::other(format!("unexpected {other:?}"))),
    }
}

/// A process's resident set (`VmRSS`) and peak resident set (`VmHWM`), in KiB, from
/// `/proc/<pid>/status` (0 for a field that cannot be read).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

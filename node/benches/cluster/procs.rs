//! A cluster of real `node` processes on loopback for the benchmark. Every process started
//! here is SIGKILLed by its PID and reaped when the [`NodeProcs`] guard is dropped, including
//! when the benchmark fails or panics.

use node::raft::Role;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use node::protocol::{Operation, Reply, Status};

use node::client::Connection;

/// How long a node has to answer a status request during setup.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to the node at `addr` (`host:port`, as the nodes' hints name leaders).
pub async fn connect(addr: &str) -> anyhow::Result<Connection> {
    let addr = addr
        .parse()
        .with_context(|| format!("bad node address {addr:?}"))?;
    Ok(Connection::connect(addr, CONNECT_TIMEOUT).await?)
}

/// Running node processes; killed on drop.
pub struct NodeProcs {
    /// Client address of node `i + 1` at position `i`.
    pub client_addrs: Vec<String>,
    /// Where the nodes' data directories and logs are.
    pub dir: PathBuf,
    children: Vec<Child>,
}

impl NodeProcs {
    /// Starts nodes `n1..=n{n}` with data directories and logs under `dir/label`, with
    /// `extra` arguments for every node (e.g. `--fsync per-entry`).
    pub fn start(n: usize, dir: &Path, label: &str, extra: &[&str]) -> anyhow::Result<NodeProcs> {
        let dir = dir.join(label);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let ports: Vec<(u16, u16)> = node::loopback::free_ports(2 * n)?
            .chunks(2)
            .map(|c| (c[0], c[1]))
            .collect();
        let client_addrs: Vec<String> = ports
            .iter()
            .map(|(_, c)| format!("127.0.0.1:{c}"))
            .collect();
        let client_map: Vec<String> = client_addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("n{}={a}", i + 1))
            .collect();
        let mut procs = NodeProcs {
            client_addrs,
            dir: dir.clone(),
            children: Vec::new(),
        };
        for i in 0..n {
            let peers: Vec<String> = (0..n)
                .filter(|&j| j != i)
                .map(|j| format!("n{}=127.0.0.1:{}", j + 1, ports[j].0))
                .collect();
            let log_path = dir.join(format!("n{}.log", i + 1));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let child = Command::new(env!("CARGO_BIN_EXE_node"))
                .arg("--id")
                .arg(format!("n{}", i + 1))
                .arg("--peer-listen")
                .arg(format!("127.0.0.1:{}", ports[i].0))
                .arg("--client-listen")
                .arg(&procs.client_addrs[i])
                .arg("--peers")
                .arg(peers.join(","))
                .arg("--client-addrs")
                .arg(client_map.join(","))
                .arg("--data-dir")
                .arg(dir.join(format!("n{}", i + 1)))
                .args(extra)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log))
                .spawn()
                .context("spawning a node process")?;
            // Pushed at once so that the guard kills it even if a later spawn fails.
            procs.children.push(child);
        }
        Ok(procs)
    }

    /// Status of node at position `i`.
    pub async fn status(&self, i: usize) -> anyhow::Result<Status> {
        let mut c = connect(&self.client_addrs[i]).await?;
        match c.call(Operation::Status, STATUS_TIMEOUT).await? {
            Ok(Reply::Status(s)) => Ok(s),
            other => bail!("unexpected status reply {other:?}"),
        }
    }

    /// Waits (bounded by `deadline`) until one node calls itself leader and the others
    /// name it as their leader; returns its position.
    pub async fn wait_for_leader(&mut self, deadline: Duration) -> anyhow::Result<usize> {
        let start = Instant::now();
        while start.elapsed() < deadline {
            self.check_alive()?;
            let mut leader = None;
            let mut agree = 0;
            for i in 0..self.client_addrs.len() {
                if let Ok(s) = self.status(i).await {
                    if s.role == Role::Leader {
                        leader = Some(i);
                    }
                    if s.leader.is_some() {
                        agree += 1;
                    }
                }
            }
            if let Some(l) = leader {
                if agree == self.client_addrs.len() {
                    return Ok(l);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "no leader within {deadline:?}; node logs in {}",
            self.dir.display()
        )
    }

    /// CPU seconds (user + system) all node processes have used so far.
    pub fn cpu_seconds(&self) -> f64 {
        self.children
            .iter()
            .filter_map(|c| crate::machine::process_cpu_seconds(c.id()))
            .sum()
    }

    /// Fails if any node process has exited (its log says why).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Ok(Some(code)) = c.try_wait() {
                bail!(
                    "node n{} exited with {code}; log in {}",
                    i + 1,
                    self.dir.display()
                );
            }
        }
        Ok(())
    }
}

impl Drop for NodeProcs {
    fn drop(&mut self) {
        for c in &mut self.children {
            // Child::kill sends SIGKILL to this child's PID only.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

//! Starts `n` etcd members (on 127.0.0.1, or one address each, e.g. one network namespace
//! each) and controls each one's process: kill (SIGKILL),
//! pause and resume (SIGSTOP/SIGCONT), stop, restart on the same data directory, and rejoin
//! with a fresh data directory (after the member was removed and added back as a learner).
//!
//! Every process started here is killed (SIGKILL, by PID) and reaped when the
//! [`EtcdCluster`] is dropped, and is started with `PR_SET_PDEATHSIG = SIGKILL` (through
//! `nemesis`'s spawner thread), so it also dies when this process dies.

use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::time::Instant;

use crate::client::{EtcdClient, Member};

/// How to start a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    /// The `etcd` binary (default `etcd`, found on PATH).
    pub binary: PathBuf,
    /// Data directories (`<dir>/<name>.etcd`) and logs (`<dir>/<name>.log`) go here.
    pub dir: PathBuf,
    /// Member `i`'s client port (on its host, see `hosts`); one per member.
    pub client_ports: Vec<u16>,
    /// Member `i`'s peer port (on its host); as many as `client_ports`.
    pub peer_ports: Vec<u16>,
    /// `--heartbeat-interval` in milliseconds.
    pub heartbeat_ms: u64,
    /// `--election-timeout` in milliseconds (etcd wants at least 5 heartbeats).
    pub election_ms: u64,
    /// More flags for every member, after ours (e.g. `--snapshot-count=1000`); etcd takes
    /// the last occurrence of a repeated flag.
    pub extra_args: Vec<String>,
    /// Member `i`'s address (listen and advertise, client and peer); empty means every
    /// member on 127.0.0.1. When set, one per member (e.g. one network namespace each,
    /// `nemesis::netns::NetnsCluster::addr`), and the ports may then repeat.
    pub hosts: Vec<IpAddr>,
    /// Words put before the etcd command line of member `i` (e.g. `ip netns exec <ns>`,
    /// `nemesis::netns::NetnsCluster::exec_prefix`); empty means none. When set, one per
    /// member. The prefix must exec etcd (not fork it), so that the PID kept is etcd's.
    pub command_prefix: Vec<Vec<String>>,
}

impl EtcdConfig {
    /// A config with the default binary and fast timings (heartbeat 25 ms, election
    /// 250 ms) for members on the given ports.
    pub fn new(dir: PathBuf, client_ports: Vec<u16>, peer_ports: Vec<u16>) -> EtcdConfig {
        EtcdConfig {
            binary: PathBuf::from("etcd"),
            dir,
            client_ports,
            peer_ports,
            heartbeat_ms: 25,
            election_ms: 250,
            extra_args: Vec::new(),
            hosts: Vec::new(),
            command_prefix: Vec::new(),
        }
    }

    /// Member `i`'s name: `n1`, `n2`, ...
    pub fn name(i: usize) -> String {
        format!("n{}", i + 1)
    }

    /// Member `i`'s address: `hosts[i]`, or 127.0.0.1 when `hosts` is empty.
    pub fn host(&self, i: usize) -> IpAddr {
        self.hosts
            .get(i)
            .copied()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Member `i`'s peer URL.
    pub fn peer_url(&self, i: usize) -> String {
        format!(
            "http://{}",
            SocketAddr::new(self.host(i), self.peer_ports[i])
        )
    }

    /// Member `i`'s client URL.
    pub fn client_url(&self, i: usize) -> String {
        format!(
            "http://{}",
            SocketAddr::new(self.host(i), self.client_ports[i])
        )
    }

    /// Member `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.etcd", Self::name(i)))
    }

    /// Member `i`'s log file (appended to across restarts).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.log", Self::name(i)))
    }

    /// Every member as clients see it.
    pub fn members(&self) -> Vec<Member> {
        (0..self.client_ports.len())
            .map(|i| Member {
                name: Self::name(i),
                client_addr: SocketAddr::new(self.host(i), self.client_ports[i]),
            })
            .collect()
    }
}

/// Why the launcher could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The configuration is unusable (no members, port lists of different lengths).
    #[error("bad etcd configuration: {0}")]
    Config(String),
    /// The binary could not be run.
    #[error("cannot run {binary}: {error}")]
    Spawn {
        binary: String,
        error: std::io::Error,
    },
    /// A file or directory could not be prepared.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// `etcd --version` did not say its version.
    #[error("cannot read the etcd version: {0}")]
    Version(String),
    /// No leader within the time allowed.
    #[error("no etcd leader within {0:?}")]
    NoLeader(Duration),
    /// A signal could not be delivered.
    #[error("signal to member {member}: {error}")]
    Signal { member: usize, error: nix::Error },
    /// The member index is out of range.
    #[error("no member {0}")]
    NoMember(usize),
}

/// The version `etcd --version` reports (e.g. `3.4.23`).
pub fn version(binary: &std::path::Path) -> Result<String, LaunchError> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|error| LaunchError::Spawn {
            binary: binary.display().to_string(),
            error,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| LaunchError::Version(text.into_owned()))
}

/// True when `binary` can be run (a path that exists, or a name found on PATH).
pub fn available(binary: &std::path::Path) -> bool {
    if binary.components().count() > 1 {
        return binary.is_file();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(binary).is_file()))
        .unwrap_or(false)
}

/// A running cluster. Member `i` is `n{i+1}`; its process may be running, paused or gone.
#[derive(Debug)]
pub struct EtcdCluster {
    config: EtcdConfig,
    procs: Vec<Option<Child>>,
}

impl EtcdCluster {
    /// Starts every member as a new cluster (`--initial-cluster-state new`). Returns once
    /// every process is spawned; use [`EtcdCluster::wait_for_leader`] to wait for service.
    pub fn start(config: EtcdConfig) -> Result<EtcdCluster, LaunchError> {
        let n = config.client_ports.len();
        if n == 0 || config.peer_ports.len() != n {
            return Err(LaunchError::Config(format!(
                "{n} client ports and {} peer ports",
                config.peer_ports.len()
            )));
        }
        for (what, len) in [
            ("hosts", config.hosts.len()),
            ("command prefixes", config.command_prefix.len()),
        ] {
            if len != 0 && len != n {
                return Err(LaunchError::Config(format!("{n} members and {len} {what}")));
            }
        }
        if config.command_prefix.iter().any(Vec::is_empty) {
            return Err(LaunchError::Config("an empty command prefix".into()));
        }
        std::fs::create_dir_all(&config.dir).map_err(|error| LaunchError::Io {
            path: config.dir.display().to_string(),
            error,
        })?;
        let mut cluster = EtcdCluster {
            procs: (0..n).map(|_| None).collect(),
            config,
        };
        for i in 0..n {
            cluster.spawn(i, "new")?;
        }
        Ok(cluster)
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &EtcdConfig {
        &self.config
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Always false: a cluster has at least one member.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Member `i`'s PID while its process runs (or is paused).
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs.get(i)?.as_ref().map(Child::id)
    }

    /// A client of every member.
    pub fn client(&self) -> EtcdClient {
        EtcdClient::new(self.config.members())
    }

    /// `--initial-cluster` listing every member.
    fn initial_cluster(&self) -> String {
        (0..self.len())
            .map(|i| format!("{}={}", EtcdConfig::name(i), self.config.peer_url(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize, state: &str) -> Result<(), LaunchError> {
        let c = &self.config;
        let log_path = c.log_path(i);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|error| LaunchError::Io {
                path: log_path.display().to_string(),
                error,
            })?;
        let log2 = log.try_clone().map_err(|error| LaunchError::Io {
            path: log_path.display().to_string(),
            error,
        })?;
        let mut cmd = match c.command_prefix.get(i) {
            Some(prefix) => {
                let mut cmd = Command::new(&prefix[0]);
                cmd.args(&prefix[1..]).arg(&c.binary);
                cmd
            }
            None => Command::new(&c.binary),
        };
        cmd.arg("--name")
            .arg(EtcdConfig::name(i))
            .arg("--data-dir")
            .arg(c.data_dir(i))
            .arg("--listen-client-urls")
            .arg(c.client_url(i))
            .arg("--advertise-client-urls")
            .arg(c.client_url(i))
            .arg("--listen-peer-urls")
            .arg(c.peer_url(i))
            .arg("--initial-advertise-peer-urls")
            .arg(c.peer_url(i))
            .arg("--initial-cluster")
            .arg(self.initial_cluster())
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--initial-cluster-token")
            .arg("jepsen-etcd")
            .arg("--heartbeat-interval")
            .arg(c.heartbeat_ms.to_string())
            .arg("--election-timeout")
            .arg(c.election_ms.to_string())
            .arg("--logger")
            .arg("zap")
            .args(&c.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        // Forked from the process-wide spawner thread with PR_SET_PDEATHSIG: the member dies
        // with this process however it ends (even SIGKILL), not only when dropped.
        let child = nemesis::process::spawner::spawn(cmd).map_err(|error| LaunchError::Spawn {
            binary: c.binary.display().to_string(),
            error,
        })?;
        self.procs[i] = Some(child);
        Ok(())
    }

    fn signal(&self, i: usize, sig: Signal) -> Result<(), LaunchError> {
        let pid = self
            .procs
            .get(i)
            .ok_or(LaunchError::NoMember(i))?
            .as_ref()
            .map(Child::id);
        match pid {
            Some(pid) => kill(Pid::from_raw(pid as i32), sig)
                .map_err(|error| LaunchError::Signal { member: i, error }),
            None => Ok(()),
        }
    }

    /// SIGKILLs member `i` (by PID) and reaps it. A member already gone is left alone.
    pub fn kill(&mut self, i: usize) -> Result<(), LaunchError> {
        self.signal(i, Signal::SIGKILL)?;
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.wait();
        }
        Ok(())
    }

    /// SIGSTOPs member `i`: it stays a member and holds its connections, but does nothing.
    pub fn pause(&mut self, i: usize) -> Result<(), LaunchError> {
        self.signal(i, Signal::SIGSTOP)
    }

    /// SIGCONTs member `i`.
    pub fn resume(&mut self, i: usize) -> Result<(), LaunchError> {
        self.signal(i, Signal::SIGCONT)
    }

    /// Stops member `i` cleanly: SIGCONT (in case it is paused), SIGTERM, then SIGKILL if it
    /// has not exited within `grace`. Returns once it is reaped.
    pub async fn stop(&mut self, i: usize, grace: Duration) -> Result<(), LaunchError> {
        self.signal(i, Signal::SIGCONT)?;
        self.signal(i, Signal::SIGTERM)?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match self.procs[i].as_mut().map(Child::try_wait) {
                None | Some(Ok(Some(_))) | Some(Err(_)) => {
                    self.procs[i] = None;
                    return Ok(());
                }
                Some(Ok(None)) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        self.kill(i)
    }

    /// Starts member `i` again on its data directory (the cluster flags are then ignored by
    /// etcd: it rejoins as the member its data says it is). Kills it first if it runs.
    pub fn restart(&mut self, i: usize) -> Result<(), LaunchError> {
        if i >= self.len() {
            return Err(LaunchError::NoMember(i));
        }
        self.kill(i)?;
        self.spawn(i, "existing")
    }

    /// Starts member `i` with an empty data directory into an existing cluster, as the
    /// member added for its peer URL (call [`EtcdClient::member_add_learner`] first). Kills it
    /// first if it runs. Assumes the other members are the original ones (the
    /// `--initial-cluster` lists every member under its original name).
    pub fn rejoin_fresh(&mut self, i: usize) -> Result<(), LaunchError> {
        if i >= self.len() {
            return Err(LaunchError::NoMember(i));
        }
        self.kill(i)?;
        // Empties the directory rather than removing it: it may be a mount point (the
        // harness's lazy filesystem), and etcd accepts an empty data directory.
        let dir = self.config.data_dir(i);
        if dir.exists() {
            let io = |error| LaunchError::Io {
                path: dir.display().to_string(),
                error,
            };
            for entry in std::fs::read_dir(&dir).map_err(io)? {
                let path = entry.map_err(io)?.path();
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(|error| LaunchError::Io {
                    path: path.display().to_string(),
                    error,
                })?;
            }
        }
        self.spawn(i, "existing")
    }

    /// Polls the running members' status until one reports a leader that is one of the
    /// running members and reports itself leader; returns the leader's index and term.
    /// Gives up after `timeout`.
    pub async fn wait_for_leader(
        &self,
        client: &mut EtcdClient,
        timeout: Duration,
    ) -> Result<(usize, u64), LaunchError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let poll = (Instant::now() + Duration::from_millis(300)).min(deadline);
            for i in 0..self.len() {
                if self.procs[i].is_none() {
                    continue;
                }
                if let Ok(s) = client.status(i, poll).await {
                    if s.leader_id != 0 && s.leader_id == s.member_id {
                        return Ok((i, s.raft_term));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(LaunchError::NoLeader(timeout))
    }
}

impl Drop for EtcdCluster {
    /// Kills every member still running, by PID, and reaps it.
    fn drop(&mut self) {
        for c in self.procs.iter_mut().flatten() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
        }
    }
}

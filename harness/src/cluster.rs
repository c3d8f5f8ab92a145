//! A cluster of real `node` processes behind a nemesis proxy mesh: start, find the leader,
//! apply and heal faults, stop. Every process is started through a [`Supervisor`], so none
//! outlives the harness (panic, error or Ctrl-C).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nemesis::mesh::ProxyMesh;
use nemesis::process::{ProcState, ProcessSpec, Supervisor};
use nemesis::schedule::Fault;
use nemesis::LinkState;
use node::protocol::{MemberAddrs, Operation, Reply};
use node::raft::{node_name, NodeId};

/// How to start a node: a program and the arguments that come before the node's own.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeCommand {
    pub program: PathBuf,
    pub prefix_args: Vec<String>,
}

impl NodeCommand {
    /// `--node-bin` if given; else the `node` binary beside this `harness`; else this
    /// `harness` itself run as `harness node` (same code, so `cargo run -p harness` works
    /// without building `node` separately).
    pub fn resolve(node_bin: Option<&Path>) -> anyhow::Result<NodeCommand> {
        if let Some(p) = node_bin {
            if !p.is_file() {
                bail!("--node-bin {}: no such file", p.display());
            }
            return Ok(NodeCommand {
                program: p.to_path_buf(),
                prefix_args: vec![],
            });
        }
        let me = std::env::current_exe().context("finding the harness executable")?;
        let dir = me.parent().map(Path::to_path_buf).unwrap_or_default();
        // Beside harness, or one level up (test binaries live in target/*/deps/).
        for cand in [dir.join("node"), dir.join("../node")] {
            if cand.is_file() {
                return Ok(NodeCommand {
                    program: cand.canonicalize().unwrap_or(cand),
                    prefix_args: vec![],
                });
            }
        }
        Ok(NodeCommand {
            program: me,
            prefix_args: vec!["node".into()],
        })
    }
}

/// One node as the harness sees it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeInfo {
    pub id: NodeId,
    pub name: String,
    pub peer_addr: SocketAddr,
    pub client_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// The full command line (program first).
    pub command: Vec<String>,
}

/// A running cluster.
pub struct Cluster {
    pub nodes: Vec<NodeInfo>,
    mesh: ProxyMesh,
    supervisor: Arc<Supervisor>,
    /// Nodes set to crash at a failpoint: their exit is the fault, not a failure of the run.
    crash_expected: Mutex<BTreeSet<NodeId>>,
    /// Each node's lazy filesystem (with `lazy_fs`), by id. Declared after the supervisor
    /// so that, dropped on an error path, the nodes die before their mounts go.
    lazy: LazyMounts,
}

/// The lazy filesystems under the nodes' data directories and the generator of torn
/// writes; empty without `ClusterOptions::lazy_fs`.
struct LazyMounts {
    mounts: BTreeMap<NodeId, lazyfs::Mount>,
    /// Draws the torn prefixes (`--power-tear`); `None` drops unsynced writes whole.
    tear: Option<Mutex<rand_chacha::ChaCha8Rng>>,
}

/// Options for starting a cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub nodes: usize,
    pub command: NodeCommand,
    /// Extra arguments for every node (read mode, bug, timing).
    pub extra_args: Vec<String>,
    pub seed: u64,
    /// Extra environment variables of some nodes (test-only faults).
    pub node_env: BTreeMap<NodeId, Vec<(String, String)>>,
    /// Put every node's data directory on a lazy filesystem (`nodes/<id>/data` mounted over
    /// the backing directory `nodes/<id>/durable`), for the power and slow-disk faults.
    pub lazy_fs: bool,
    /// A power loss keeps a torn prefix of each file's last unsynced write.
    pub power_tear: bool,
}

impl Cluster {
    /// Every member's name and client address, in id order, as the workload's clients take
    /// them.
    pub fn workload_targets(&self) -> Vec<workloads::client::NodeAddr> {
        self.nodes
            .iter()
            .map(|n| workloads::client::NodeAddr {
                name: n.name.clone(),
                client_addr: n.client_addr,
            })
            .collect()
    }

    /// Starts the proxy mesh and then the nodes, each with its data directory and log in
    /// `run_dir/nodes/<id>/`.
    pub async fn start(run_dir: &Path, opts: &ClusterOptions) -> anyhow::Result<Cluster> {
        let n = opts.nodes;
        let ids: Vec<NodeId> = (1..=n as NodeId).collect();
        let mut peer_addrs = BTreeMap::new();
        let mut client_addrs = BTreeMap::new();
        let ports = node::loopback::free_ports(2 * n).context("finding free loopback ports")?;
        for (&id, pair) in ids.iter().zip(ports.chunks(2)) {
            peer_addrs.insert(id, SocketAddr::from(([127, 0, 0, 1], pair[0])));
            client_addrs.insert(id, SocketAddr::from(([127, 0, 0, 1], pair[1])));
        }
        let mesh = ProxyMesh::start(&peer_addrs, opts.seed)
            .await
            .context("starting the proxy mesh")?;
        let clients_arg = client_addrs
            .iter()
            .map(|(id, a)| format!("{}={a}", node_name(*id)))
            .collect::<Vec<_>>()
            .join(",");
        let supervisor = Arc::new(Supervisor::new());
        let mut lazy = LazyMounts {
            mounts: BTreeMap::new(),
            tear: opts.power_tear.then(|| {
                use rand::SeedableRng;
                Mutex::new(rand_chacha::ChaCha8Rng::seed_from_u64(
                    opts.seed ^ 0x7465_6172, // "tear"
                ))
            }),
        };
        let mut nodes = Vec::new();
        for &id in &ids {
            let name = node_name(id);
            let dir = run_dir.join("nodes").join(&name);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let data_dir = dir.join("data");
            let log_path = dir.join("node.log");
            if opts.lazy_fs {
                let mount = lazyfs::Mount::new(
                    &dir.join("durable"),
                    &data_dir,
                    &dir.join("lazyfs-trash"),
                    opts.seed.wrapping_add(id),
                )
                .with_context(|| format!("mounting the lazy filesystem of {name}"))?;
                lazy.mounts.insert(id, mount);
            }
            let peers = mesh
                .peers_of(id)
                .iter()
                .map(|(j, a)| format!("{}={a}", node_name(*j)))
                .collect::<Vec<_>>()
                .join(",");
            let mut args = opts.command.prefix_args.clone();
            args.extend([
                "--id".to_string(),
                name.clone(),
                "--peer-listen".into(),
                peer_addrs[&id].to_string(),
                "--client-listen".into(),
                client_addrs[&id].to_string(),
                "--peers".into(),
                peers,
                "--client-addrs".into(),
                clients_arg.clone(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                // The run's seed as is: the node mixes in its id (node::raft::node_seed).
                "--seed".into(),
                opts.seed.to_string(),
                // Backs up the supervisor's PR_SET_PDEATHSIG: no node outlives the harness.
                "--exit-with-parent".into(),
            ]);
            args.extend(opts.extra_args.iter().cloned());
            let mut command = vec![opts.command.program.display().to_string()];
            command.extend(args.iter().cloned());
            let mut spec = ProcessSpec::new(opts.command.program.clone(), args, log_path.clone());
            for (k, v) in opts.node_env.get(&id).into_iter().flatten() {
                spec.env.push((k.into(), v.into()));
            }
            supervisor
                .spawn(&name, spec)
                .with_context(|| format!("starting {name} ({})", opts.command.program.display()))?;
            nodes.push(NodeInfo {
                id,
                name,
                peer_addr: peer_addrs[&id],
                client_addr: client_addrs[&id],
                data_dir,
                log_path,
                command,
            });
        }
        Ok(Cluster {
            nodes,
            mesh,
            supervisor,
            crash_expected: Mutex::new(BTreeSet::new()),
            lazy,
        })
    }

    /// Every node's client address by id.
    pub fn client_addrs(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.nodes.iter().map(|n| (n.id, n.client_addr)).collect()
    }

    /// The ids of all nodes.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// The client address of node `id`.
    pub fn client_addr(&self, id: NodeId) -> anyhow::Result<SocketAddr> {
        Ok(self.node(id)?.client_addr)
    }

    /// What node `id` reports of itself, or `None` if it does not answer within `timeout`.
    pub async fn status(&self, id: NodeId, timeout: Duration) -> Option<node::protocol::Status> {
        let addr = self.node(id).ok()?.client_addr;
        nemesis::admin::status_within(addr, timeout).await.ok()
    }

    /// What every node reports, asked all at once, in id order; `None` for a node that does
    /// not answer within `timeout`.
    pub async fn poll(&self, timeout: Duration) -> Vec<(NodeId, Option<node::protocol::Status>)> {
        let asks = self.nodes.iter().map(|n| async move {
            let s = nemesis::admin::status_within(n.client_addr, timeout).await;
            (n.id, s.ok())
        });
        futures::future::join_all(asks).await
    }

    /// What every node that answers within `timeout` reports, asked all at once.
    pub async fn statuses(&self, timeout: Duration) -> Vec<node::protocol::Status> {
        self.poll(timeout)
            .await
            .into_iter()
            .filter_map(|(_, s)| s)
            .collect()
    }

    /// The leader the nodes report now ([`crate::leader::leader_of`] their statuses), if any.
    pub async fn leader(&self) -> Option<NodeId> {
        crate::leader::leader_of(&self.statuses(nemesis::admin::DEFAULT_ADMIN_TIMEOUT).await)
    }

    /// Waits until a leader is reported and a majority of nodes agree on it (bounded).
    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<NodeId> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let statuses = self.statuses(nemesis::admin::DEFAULT_ADMIN_TIMEOUT).await;
            if let Some(l) = crate::leader::followed_leader(&statuses, self.nodes.len()) {
                return Ok(l);
            }
            self.check_alive()?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "no leader within {:.1} s; see the node logs under {}",
            timeout.as_secs_f64(),
            self.nodes[0]
                .log_path
                .parent()
                .and_then(Path::parent)
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    }

    /// An error if a node that should be running has exited (e.g. bad flags, port taken).
    fn check_alive(&self) -> anyhow::Result<()> {
        let expected = self
            .crash_expected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for n in self.nodes.iter().filter(|n| !expected.contains(&n.id)) {
            if let Ok(ProcState::Exited { status }) = self.supervisor.state(&n.name) {
                let tail = std::fs::read_to_string(&n.log_path).unwrap_or_default();
                let last = tail
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                let how = status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "exited".into());
                bail!("{} exited ({how}): {last}", n.name);
            }
        }
        Ok(())
    }

    fn name(&self, id: NodeId) -> String {
        node_name(id)
    }

    /// Applies a fault (the parts of a combined one in order). Returns what the fault did
    /// that its description cannot say in advance (a power loss: what it discarded), to be
    /// merged into its history event.
    pub async fn apply(&self, fault: &Fault) -> anyhow::Result<Option<serde_json::Value>> {
        if let Fault::Power { nodes, .. } = fault {
            return self.power_loss(nodes).await.map(Some);
        }
        self.apply_simple(fault).await?;
        Ok(None)
    }

    /// Cuts the power of `nodes`: SIGKILL each (reaped, so nothing it does lands later),
    /// then drop what its lazy filesystem holds that is not durable. Returns, per node, the
    /// files and bytes discarded and the directory changes undone.
    async fn power_loss(&self, nodes: &[NodeId]) -> anyhow::Result<serde_json::Value> {
        let mut out = serde_json::Map::new();
        for &id in nodes {
            let name = self.name(id);
            let ctl = self
                .lazy
                .mounts
                .get(&id)
                .with_context(|| format!("{name} has no lazy filesystem (power needs one)"))?
                .controller();
            let sup = self.supervisor.clone();
            let n = name.clone();
            tokio::task::spawn_blocking(move || sup.kill(&n)).await??;
            let d = match &self.lazy.tear {
                Some(rng) => {
                    let mut rng = rng.lock().unwrap_or_else(|e| e.into_inner());
                    ctl.power_loss(Some(&mut *rng))
                }
                None => ctl.power_loss(None),
            }
            .with_context(|| format!("dropping the unsynced writes of {name}"))?;
            let mut v = serde_json::json!({
                "files": d.files,
                "bytes": d.bytes,
                "entries": d.entries,
            });
            if self.lazy.tear.is_some() {
                v["torn_bytes_kept"] = serde_json::json!(d.torn_bytes_kept);
            }
            out.insert(name, v);
        }
        Ok(serde_json::json!({ "discarded": out }))
    }

    fn set_slow(&self, nodes: &[NodeId], slow: Option<lazyfs::SlowDisk>) -> anyhow::Result<()> {
        for id in nodes {
            self.lazy
                .mounts
                .get(id)
                .with_context(|| format!("{} has no lazy filesystem", self.name(*id)))?
                .controller()
                .set_slow(slow);
        }
        Ok(())
    }

    async fn apply_simple(&self, fault: &Fault) -> anyhow::Result<()> {
        match fault {
            Fault::Sequence { .. } | Fault::Scripted { .. } => {
                bail!("a sequence of faults is applied step by step by the schedule")
            }
            Fault::Combined { parts } => {
                for p in parts {
                    Box::pin(self.apply(p)).await?;
                }
            }
            Fault::Power { .. } => {
                bail!("a power loss is applied by Cluster::apply")
            }
            Fault::SlowDisk {
                nodes,
                min_ms,
                max_ms,
                ..
            } => self.set_slow(
                nodes,
                Some(lazyfs::SlowDisk {
                    min_ms: *min_ms,
                    max_ms: *max_ms,
                }),
            )?,
            Fault::Partition { grudge, .. } => self.mesh.apply_grudge(grudge)?,
            Fault::Delay {
                fixed_ms,
                jitter_ms,
            } => self.set_all_links(LinkState::Delay {
                fixed: Duration::from_millis(*fixed_ms),
                jitter: Duration::from_millis(*jitter_ms),
            })?,
            Fault::SlowLinks { links, fixed_ms } => {
                let state = LinkState::Delay {
                    fixed: Duration::from_millis(*fixed_ms),
                    jitter: Duration::ZERO,
                };
                for &(from, to) in links {
                    self.mesh.set_link(from, to, state)?;
                }
            }
            Fault::Loss { p } => self.set_all_links(LinkState::Loss { p: *p })?,
            Fault::Kill { nodes, .. } => {
                for &id in nodes {
                    let sup = self.supervisor.clone();
                    let name = self.name(id);
                    tokio::task::spawn_blocking(move || sup.kill(&name)).await??;
                }
            }
            Fault::Pause { nodes, .. } => {
                // Pausing waits (briefly) until the node is really stopped: off the runtime.
                for &id in nodes {
                    let sup = self.supervisor.clone();
                    let name = self.name(id);
                    tokio::task::spawn_blocking(move || sup.pause(&name)).await??;
                }
            }
            Fault::Membership { removed, .. } => {
                let voters: Vec<NodeId> = self.ids().into_iter().filter(|n| n != removed).collect();
                self.change_membership(&voters).await?;
            }
            Fault::Failpoint {
                point,
                action,
                nodes,
                ..
            } => {
                let crash = nemesis::failpoint_faults::is_crash(action);
                if crash {
                    self.crash_expected
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(nodes);
                }
                for &id in nodes {
                    if let Err(e) = self.set_failpoint(id, point.name(), action).await {
                        // A crash point that fires at once can take the node down before
                        // its answer is written: then the fault took hold.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let exited = matches!(
                            self.supervisor.state(&self.name(id)),
                            Ok(ProcState::Exited { .. })
                        );
                        if !(crash && exited) {
                            return Err(e).with_context(|| {
                                format!("setting failpoint {point} on {}", self.name(id))
                            });
                        }
                    }
                }
            }
            Fault::Clock { skews } => {
                for (id, s) in skews {
                    let addr = self.node(*id)?.client_addr;
                    nemesis::admin::set_clock(addr, Some(s.offset_ms), Some(s.rate))
                        .await
                        .with_context(|| format!("setting the clock of {}", self.name(*id)))?;
                }
            }
        }
        Ok(())
    }

    /// Heals one fault (links, killed or paused processes, clocks, membership, failpoints);
    /// the parts of a combined one in reverse order. Returns what only the heal can tell of
    /// what the fault did (a failpoint's fires and crashes, see [`Cluster::heal_failpoint`]).
    pub async fn heal(&self, fault: &Fault) -> anyhow::Result<Option<serde_json::Value>> {
        match fault {
            Fault::Sequence { steps } => {
                for step in steps.iter().rev() {
                    Box::pin(self.heal(step)).await?;
                }
            }
            Fault::Combined { parts } => {
                for p in parts.iter().rev() {
                    Box::pin(self.heal(p)).await?;
                }
            }
            Fault::Failpoint { point, nodes, .. } => {
                return self.heal_failpoint(*point, nodes).await.map(Some);
            }
            Fault::Partition { .. }
            | Fault::Delay { .. }
            | Fault::SlowLinks { .. }
            | Fault::Loss { .. }
            | Fault::Scripted { .. } => self.mesh.heal_all(),
            Fault::Kill { nodes, .. } | Fault::Power { nodes, .. } => {
                for &id in nodes {
                    self.restart(id).await?;
                }
            }
            Fault::SlowDisk { nodes, .. } => self.set_slow(nodes, None)?,
            Fault::Pause { nodes, .. } => {
                for &id in nodes {
                    self.supervisor.resume(&self.name(id))?;
                }
            }
            Fault::Clock { skews } => {
                for id in skews.keys() {
                    self.reset_clock(*id).await?;
                }
            }
            Fault::Membership { .. } => self.change_membership(&self.ids()).await?,
        }
        Ok(None)
    }

    /// Sets failpoint `name` of node `id` to `action`; the node's answer lists every point.
    async fn set_failpoint(
        &self,
        id: NodeId,
        name: &str,
        action: &str,
    ) -> anyhow::Result<Vec<node::failpoints::FailpointState>> {
        let addr = self.node(id)?.client_addr;
        let op = Operation::Failpoint {
            name: name.to_string(),
            action: action.to_string(),
        };
        match nemesis::admin::request(addr, op, nemesis::admin::DEFAULT_ADMIN_TIMEOUT).await? {
            Reply::Failpoints { points } => Ok(points),
            other => bail!("unexpected answer to a failpoint request: {other:?}"),
        }
    }

    /// Turns failpoint `point` off on `nodes` and restarts those that crashed there (on
    /// their data directories). Returns what the window did, for the fault's stop event:
    /// `{"fired": {"n1": 3}, "crashed": ["n2"]}` (`fired` counts since each node started, so
    /// a node that crashed and restarted reports the fires of its new process).
    async fn heal_failpoint(
        &self,
        point: node::failpoints::Failpoint,
        nodes: &[NodeId],
    ) -> anyhow::Result<serde_json::Value> {
        let mut fired = serde_json::Map::new();
        let mut crashed = Vec::new();
        for &id in nodes {
            if let Ok(points) = self.set_failpoint(id, point.name(), "off").await {
                if let Some(p) = points.iter().find(|p| p.name == point.name()) {
                    fired.insert(self.name(id), serde_json::json!(p.fired));
                }
            }
        }
        // A crash that fired just before `off` arrived lands within moments.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for &id in nodes {
            if matches!(
                self.supervisor.state(&self.name(id)),
                Ok(ProcState::Exited { .. })
            ) {
                crashed.push(self.name(id));
                self.restart(id).await?;
            }
        }
        {
            let mut expected = self
                .crash_expected
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for id in nodes {
                expected.remove(id);
            }
        }
        Ok(serde_json::json!({ "fired": fired, "crashed": crashed }))
    }

    /// How every node reaches each of `voters`: its peer port through the proxy of that
    /// directed pair, and its client port.
    fn member_addrs(&self, voters: &[NodeId]) -> Vec<MemberAddrs> {
        self.nodes
            .iter()
            .filter(|n| voters.contains(&n.id))
            .map(|n| MemberAddrs {
                id: n.id,
                peer: n.peer_addr.to_string(),
                client: n.client_addr.to_string(),
                peer_via: self
                    .ids()
                    .into_iter()
                    .filter(|&i| i != n.id)
                    .filter_map(|i| self.mesh.addr_for(i, n.id).map(|a| (i, a.to_string())))
                    .collect(),
            })
            .collect()
    }

    /// The voters the leader has in effect, if a leader answers.
    async fn current_voters(&self) -> Option<(Vec<NodeId>, bool)> {
        let leader = self.leader().await?;
        let addr = self.node(leader).ok()?.client_addr;
        match nemesis::admin::request(addr, Operation::Members, Duration::from_secs(2)).await {
            Ok(Reply::Members(m)) => {
                let mut v = m.voters;
                v.sort_unstable();
                Some((v, m.outgoing.is_empty() && m.committed))
            }
            _ => None,
        }
    }

    /// Moves the cluster to `voters` through joint consensus, asking whichever node leads
    /// (bounded: retries "not leader" and "change in progress" for up to 30 s).
    pub async fn change_membership(&self, voters: &[NodeId]) -> anyhow::Result<()> {
        let mut want = voters.to_vec();
        want.sort_unstable();
        let start = Instant::now();
        let mut last_error = String::from("no leader answered");
        while start.elapsed() < Duration::from_secs(30) {
            if let Some((have, settled)) = self.current_voters().await {
                if have == want && settled {
                    return Ok(());
                }
            }
            let Some(leader) = self.leader().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let addr = self.node(leader)?.client_addr;
            let op = Operation::ChangeMembership {
                voters: want.clone(),
                addrs: self.member_addrs(&want),
            };
            match nemesis::admin::request(addr, op, Duration::from_secs(10)).await {
                Ok(Reply::Members(m)) => {
                    let mut v = m.voters;
                    v.sort_unstable();
                    if v == want {
                        return Ok(());
                    }
                    last_error = format!("the leader answered with voters {v:?}");
                }
                Ok(other) => last_error = format!("unexpected reply {other:?}"),
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("membership change to {want:?} did not complete within 30 s: {last_error}")
    }

    async fn restart(&self, id: NodeId) -> anyhow::Result<()> {
        let name = self.name(id);
        if matches!(
            self.supervisor.state(&name),
            Ok(ProcState::Running { .. }) | Ok(ProcState::Paused { .. })
        ) {
            return Ok(());
        }
        let sup = self.supervisor.clone();
        tokio::task::spawn_blocking(move || sup.restart(&name)).await??;
        Ok(())
    }

    async fn reset_clock(&self, id: NodeId) -> anyhow::Result<()> {
        let addr = self.node(id)?.client_addr;
        // A node that is down has a fresh clock when it comes back; ignore it.
        let _ = nemesis::admin::set_clock(addr, Some(0.0), Some(1.0)).await;
        Ok(())
    }

    fn node(&self, id: NodeId) -> anyhow::Result<&NodeInfo> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .with_context(|| format!("no node n{id}"))
    }

    fn set_all_links(&self, state: LinkState) -> anyhow::Result<()> {
        for a in self.ids() {
            for b in self.ids() {
                if a != b {
                    self.mesh.set_link(a, b, state)?;
                }
            }
        }
        Ok(())
    }

    /// Heals everything: links, slow disks, paused and killed (or powered-off) processes,
    /// clocks.
    pub async fn heal_all(&self) -> anyhow::Result<()> {
        self.mesh.heal_all();
        for m in self.lazy.mounts.values() {
            m.controller().set_slow(None);
        }
        for n in &self.nodes {
            match self.supervisor.state(&n.name) {
                Ok(ProcState::Paused { .. }) => self.supervisor.resume(&n.name)?,
                Ok(ProcState::Running { .. }) => {}
                _ => self.restart(n.id).await?,
            }
        }
        for n in &self.nodes {
            self.reset_clock(n.id).await?;
        }
        // Membership last: it needs a leader. Restore every node as a voter if some fault
        // left the configuration smaller.
        if let Some((have, settled)) = self.current_voters().await {
            if have != self.ids() || !settled {
                self.wait_for_leader(Duration::from_secs(30)).await?;
                self.change_membership(&self.ids()).await?;
            }
        }
        Ok(())
    }

    /// Stops every node (SIGKILL; the log is durable by design) and the proxies, then
    /// unmounts the lazy filesystems (their backing directories keep what was written).
    pub async fn shutdown(self) {
        let sup = self.supervisor.clone();
        let _ = tokio::task::spawn_blocking(move || sup.shutdown_all()).await;
        self.mesh.shutdown().await;
        let mounts = self.lazy.mounts;
        let _ = tokio::task::spawn_blocking(move || {
            for (_, m) in mounts {
                if let Err(e) = m.unmount() {
                    tracing::warn!("{e}");
                }
            }
        })
        .await;
    }
}

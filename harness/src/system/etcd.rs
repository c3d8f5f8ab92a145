//! etcd as a system under test (`--system etcd`): members started by `etcd_system`'s
//! launcher on loopback, with data directories and logs under `run_dir/nodes/`; clients over
//! etcd's v3 JSON gateway; kill, pause and membership faults (remove a member, add it back as
//! a learner with a fresh data directory, promote it).
//!
//! What etcd cannot do here is refused before anything starts ([`supports`]), with the
//! reason: a lease read path (etcd's leases are TTL key leases, not leader leases), clock
//! skew (a Go binary reads the kernel's clock), failpoints (Debian's etcd is built without
//! gofail), the lazy filesystem faults and the proxy-mesh network faults (etcd members all
//! dial a peer's single advertised URL, so a proxy per directed pair cannot sit between
//! them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use etcd_system::client::{EtcdClient, Member};
use etcd_system::kv::EtcdSystem;
use etcd_system::launcher::{self, EtcdCluster, EtcdConfig};
use futures::future::BoxFuture;
use futures::FutureExt;
use nemesis::schedule::{Fault, FaultFamily};
use node::protocol::{ClockState, ReadMode, Status, Value};
use node::raft::{NodeId, Role};
use workloads::client::KvClients;

use super::System;

/// Why etcd cannot take each family or read mode it refuses; `None`: supported.
fn refusal(f: FaultFamily) -> Option<&'static str> {
    match f {
        FaultFamily::Kill | FaultFamily::Pause | FaultFamily::Membership => None,
        FaultFamily::Partition | FaultFamily::Delay | FaultFamily::Loss => Some(
            "etcd members all dial a peer's single advertised URL, so the per-pair proxy mesh \
             cannot sit between them; packet-level partitions (network namespaces) are not \
             wired in yet",
        ),
        FaultFamily::Clock => {
            Some("etcd is a Go binary that reads the kernel's clock: its clock cannot be skewed")
        }
        FaultFamily::Failpoint => {
            Some("Debian's etcd is built without gofail: it has no failpoints to set")
        }
        FaultFamily::Power | FaultFamily::SlowDisk => {
            Some("the lazy filesystem is not mounted under etcd's data directories yet")
        }
    }
}

/// Whether etcd supports every family and read mode; `Err`: the first refusal, one line.
pub fn supports(families: &[FaultFamily], modes: &[ReadMode]) -> Result<(), String> {
    for &f in families {
        if let Some(why) = refusal(f) {
            return Err(format!(
                "--system etcd cannot do --nemesis {}: {why}",
                f.as_str()
            ));
        }
    }
    for &m in modes {
        if let Err(e) = etcd_system::kv::supports(m) {
            return Err(format!("--system etcd cannot do --read-mode {m}: {e}"));
        }
    }
    Ok(())
}

/// How long one status or admin call to a member may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a membership change (remove, or add back, catch up and promote) may take.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running etcd cluster.
pub struct EtcdSut {
    cluster: Mutex<EtcdCluster>,
    members: Vec<Member>,
    binary: PathBuf,
    version: String,
    /// etcd's member ids by member index; a member added back gets a new id.
    ids: Mutex<HashMap<u64, usize>>,
    /// The member removed by a membership fault and not yet added back.
    removed: Mutex<Option<usize>>,
}

fn deadline(d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + d
}

impl EtcdSut {
    /// Starts `n` members (`binary`, loopback ports drawn free), data and logs under
    /// `run_dir/nodes/`, and waits (30 s at most) for a leader.
    pub async fn start(run_dir: &Path, n: usize, binary: &Path) -> anyhow::Result<EtcdSut> {
        let version = launcher::version(binary)
            .with_context(|| format!("asking {} for its version", binary.display()))?;
        let dir = super::nodes_dir(run_dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut ports = Vec::new();
        while ports.len() < 2 * n {
            let p = crate::cluster::free_port()?;
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let mut config = EtcdConfig::new(dir, ports[..n].to_vec(), ports[n..].to_vec());
        config.binary = binary.to_path_buf();
        let cluster = EtcdCluster::start(config).context("starting the etcd members")?;
        let members = cluster.config().members();
        let mut client = EtcdClient::new(members.clone());
        cluster
            .wait_for_leader(&mut client, Duration::from_secs(30))
            .await
            .context("waiting for an etcd leader")?;
        let ids = client
            .member_ids(0, deadline(CALL_TIMEOUT))
            .await
            .context("listing the etcd members")?;
        Ok(EtcdSut {
            cluster: Mutex::new(cluster),
            members,
            binary: binary.to_path_buf(),
            version,
            ids: Mutex::new(ids),
            removed: Mutex::new(None),
        })
    }

    fn index(&self, id: NodeId) -> anyhow::Result<usize> {
        let i = (id as usize)
            .checked_sub(1)
            .context("member ids start at 1")?;
        if i >= self.members.len() {
            bail!("no member n{id}");
        }
        Ok(i)
    }

    fn with_cluster<T>(&self, f: impl FnOnce(&mut EtcdCluster) -> T) -> T {
        f(&mut self.cluster.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn client(&self) -> EtcdClient {
        EtcdClient::new(self.members.clone())
    }

    /// The index of a member that reports itself leader, if one answers.
    async fn leader_index(&self) -> Option<usize> {
        super::leader(self).await.map(|id| id as usize - 1)
    }

    /// Removes member `i` through the leader, then stops its process (a removed member
    /// shuts itself down; this makes sure).
    async fn remove(&self, i: usize) -> anyhow::Result<()> {
        let id = self
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(_, &m)| m == i)
            .map(|(&id, _)| id)
            .with_context(|| format!("no etcd member id known for n{}", i + 1))?;
        let until = tokio::time::Instant::now() + MEMBERSHIP_TIMEOUT;
        let mut last = String::new();
        while tokio::time::Instant::now() < until {
            let via = self
                .leader_index()
                .await
                .filter(|&l| l != i)
                .unwrap_or((i + 1) % self.members.len());
            match self
                .client()
                .member_remove(via, id, deadline(CALL_TIMEOUT))
                .await
            {
                Ok(()) => {
                    *self.removed.lock().unwrap_or_else(|e| e.into_inner()) = Some(i);
                    self.with_cluster(|c| c.kill(i))?;
                    return Ok(());
                }
                // etcd refuses a removal until the cluster has been healthy for a while.
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("removing n{} did not succeed within 30 s: {last}", i + 1)
    }

    /// Adds member `i` back: as a learner, started on a fresh data directory, promoted once
    /// it caught up (etcd refuses the promotion until then).
    async fn add_back(&self, i: usize) -> anyhow::Result<()> {
        let peer_url = self.with_cluster(|c| c.config().peer_url(i));
        let until = tokio::time::Instant::now() + MEMBERSHIP_TIMEOUT;
        let mut last = String::new();
        let mut added = None;
        while added.is_none() && tokio::time::Instant::now() < until {
            let via = self
                .leader_index()
                .await
                .unwrap_or((i + 1) % self.members.len());
            match self
                .client()
                .member_add_learner(via, &peer_url, deadline(CALL_TIMEOUT))
                .await
            {
                Ok(info) => added = Some(info.id),
                Err(e) => last = e.to_string(),
            }
            if added.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let Some(new_id) = added else {
            bail!("adding n{} back as a learner failed: {last}", i + 1);
        };
        self.with_cluster(|c| c.rejoin_fresh(i))?;
        while tokio::time::Instant::now() < until {
            let via = self
                .leader_index()
                .await
                .unwrap_or((i + 1) % self.members.len());
            match self
                .client()
                .member_promote(via, new_id, deadline(CALL_TIMEOUT))
                .await
            {
                Ok(()) => {
                    if let Ok(ids) = self.client().member_ids(via, deadline(CALL_TIMEOUT)).await {
                        *self.ids.lock().unwrap_or_else(|e| e.into_inner()) = ids;
                    }
                    *self.removed.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("promoting n{} did not succeed within 30 s: {last}", i + 1)
    }

    fn nodes_of(&self, nodes: &[NodeId]) -> anyhow::Result<Vec<usize>> {
        nodes.iter().map(|&id| self.index(id)).collect()
    }
}

impl System for EtcdSut {
    fn name(&self) -> &'static str {
        super::SystemKind::Etcd.as_str()
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    fn ids(&self) -> Vec<NodeId> {
        (1..=self.members.len() as NodeId).collect()
    }

    fn clients(&self) -> Box<dyn KvClients> {
        Box::new(EtcdSystem::new(self.members.clone()))
    }

    fn command_lines(&self) -> Vec<String> {
        (0..self.members.len())
            .map(|i| {
                format!(
                    "{} --name {} (see nodes/{}.log)",
                    self.binary.display(),
                    EtcdConfig::name(i),
                    EtcdConfig::name(i)
                )
            })
            .collect()
    }

    fn status(&self, id: NodeId, timeout: Duration) -> BoxFuture<'_, Option<Status>> {
        async move {
            let i = self.index(id).ok()?;
            let s = self.client().status(i, deadline(timeout)).await.ok()?;
            let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let leader = ids.get(&s.leader_id).map(|&m| m as NodeId + 1);
            let role = if s.leader_id != 0 && s.leader_id == s.member_id {
                Role::Leader
            } else {
                Role::Follower
            };
            Some(Status {
                id,
                role: role.as_str().to_string(),
                term: s.raft_term,
                leader,
                commit_index: s.raft_index,
                applied_index: s.raft_applied_index,
                last_log_index: s.raft_index,
                clock: ClockState {
                    offset_ms: 0.0,
                    rate: 1.0,
                    now_ms: 0.0,
                },
            })
        }
        .boxed()
    }

    fn apply<'a>(
        &'a self,
        fault: &'a Fault,
    ) -> BoxFuture<'a, anyhow::Result<Option<serde_json::Value>>> {
        async move {
            match fault {
                Fault::Kill { nodes, .. } => {
                    for i in self.nodes_of(nodes)? {
                        self.with_cluster(|c| c.kill(i))?;
                    }
                }
                Fault::Pause { nodes, .. } => {
                    for i in self.nodes_of(nodes)? {
                        self.with_cluster(|c| c.pause(i))?;
                    }
                }
                Fault::Membership { removed, .. } => self.remove(self.index(*removed)?).await?,
                Fault::Combined { parts } => {
                    for p in parts {
                        self.apply(p).await?;
                    }
                }
                other => bail!(
                    "etcd cannot take {}: {}",
                    other.family().as_str(),
                    refusal(other.family()).unwrap_or("not supported")
                ),
            }
            Ok(None)
        }
        .boxed()
    }

    fn heal<'a>(
        &'a self,
        fault: &'a Fault,
    ) -> BoxFuture<'a, anyhow::Result<Option<serde_json::Value>>> {
        async move {
            match fault {
                Fault::Kill { nodes, .. } => {
                    for i in self.nodes_of(nodes)? {
                        self.with_cluster(|c| c.restart(i))?;
                    }
                }
                Fault::Pause { nodes, .. } => {
                    for i in self.nodes_of(nodes)? {
                        self.with_cluster(|c| c.resume(i))?;
                    }
                }
                Fault::Membership { removed, .. } => self.add_back(self.index(*removed)?).await?,
                Fault::Combined { parts } => {
                    for p in parts.iter().rev() {
                        self.heal(p).await?;
                    }
                }
                _ => {}
            }
            Ok(None)
        }
        .boxed()
    }

    fn heal_all(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        async move {
            for i in 0..self.members.len() {
                // Resuming a running member is harmless; a dead one is restarted below.
                let _ = self.with_cluster(|c| c.resume(i));
            }
            let removed = *self.removed.lock().unwrap_or_else(|e| e.into_inner());
            for i in 0..self.members.len() {
                let up = self.with_cluster(|c| c.pid(i)).is_some_and(|pid| {
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
                });
                if !up && removed != Some(i) {
                    self.with_cluster(|c| c.restart(i))?;
                }
            }
            if let Some(i) = removed {
                self.add_back(i).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn read_local<'a>(
        &'a self,
        id: NodeId,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, String>> {
        async move {
            let i = self.index(id).map_err(|e| e.to_string())?;
            let mut c = self.client();
            let d = deadline(CALL_TIMEOUT);
            if key == workloads::set::SET_KEY {
                let prefix = format!("{key}/");
                let pairs = c
                    .range_prefix(i, &prefix, true, d)
                    .await
                    .map_err(|e| format!("n{id}: {e}"))?;
                let mut elements: Vec<i64> =
                    pairs.iter().filter_map(|(_, v)| v.parse().ok()).collect();
                elements.sort_unstable();
                return Ok((!elements.is_empty()).then_some(Value::Set(elements)));
            }
            let v = c
                .get(i, key, true, d)
                .await
                .map_err(|e| format!("n{id}: {e}"))?;
            match v {
                None => Ok(None),
                Some(s) => s
                    .parse()
                    .map(|x| Some(Value::Int(x)))
                    .map_err(|_| format!("n{id}: {key} holds {s:?}, not an integer")),
            }
        }
        .boxed()
    }

    fn send_write(&self, id: NodeId, key: &str) {
        let Ok(i) = self.index(id) else {
            return;
        };
        let mut c = self.client();
        let key = key.to_string();
        tokio::spawn(async move {
            let _ = c
                .put(i, &key, "0", deadline(Duration::from_millis(500)))
                .await;
        });
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        async move {
            // Dropping the launcher kills every member by PID and reaps it.
            let cluster = self.cluster.into_inner().unwrap_or_else(|e| e.into_inner());
            let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
        }
        .boxed()
    }
}

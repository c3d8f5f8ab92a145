//! etcd as a system under test (`--system etcd`): members started by `etcd_system`'s
//! launcher on loopback, with data directories and logs under `run_dir/nodes/`; clients over
//! etcd's v3 JSON gateway; kill, pause and membership faults (remove a member, add it back as
//! a learner with a fresh data directory, promote it). With a network fault (partition,
//! loss) each member runs in a network namespace of its own (`nemesis::netns`), since etcd
//! members all dial a peer's single advertised URL and a proxy per directed pair cannot sit
//! between them; the cuts are nftables rules per directed pair, and the harness's sockets are
//! opened from the namespaces' controller. Without network faults members use loopback.
//!
//! What etcd cannot do here is refused before anything starts ([`supports`]), with the
//! reason: a lease read path (etcd's leases are TTL key leases, not leader leases), clock
//! skew (a Go binary reads the kernel's clock), failpoints (Debian's etcd is built without
//! gofail), the lazy filesystem faults and the proxy-mesh network faults (etcd members all
//! dial a peer's single advertised URL, so a proxy per directed pair cannot sit between
//! them).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use etcd_system::client::{Connector, EtcdClient, Member};
use etcd_system::kv::EtcdSystem;
use etcd_system::launcher::{self, EtcdCluster, EtcdConfig};
use futures::future::BoxFuture;
use futures::FutureExt;
use nemesis::netns::NetnsCluster;
use nemesis::schedule::{Fault, FaultFamily};
use node::protocol::{ClockState, ReadMode, Status, Value};
use node::raft::{NodeId, Role};
use workloads::client::KvClients;

use super::{FaultFuture, LocalRead, System};

/// Why etcd cannot take each family or read mode it refuses; `None`: supported.
fn refusal(f: FaultFamily) -> Option<&'static str> {
    match f {
        FaultFamily::Kill
        | FaultFamily::Pause
        | FaultFamily::Membership
        | FaultFamily::Partition
        | FaultFamily::Loss => None,
        FaultFamily::Delay => Some(
            "per-link delay between etcd members needs tc netem in their namespaces, not \
             wired in yet",
        ),
        FaultFamily::Clock => {
            Some("etcd is a Go binary that reads the kernel's clock: its clock cannot be skewed")
        }
        FaultFamily::Failpoint => {
            Some("Debian's etcd is built without gofail: it has no failpoints to set")
        }
        FaultFamily::Power | FaultFamily::SlowDisk => Some(
            "etcd's bbolt backend mmaps its database, and the lazy filesystem serves no \
                 mmap (it bypasses the page cache so that nothing unsynced outlives a power \
                 loss): etcd fails to open its database on it",
        ),
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
        if needs_namespaces(f) {
            nemesis::netns::available().map_err(|why| {
                format!(
                    "--system etcd --nemesis {}: its members need network namespaces, which \
                     cannot be made here: {why}",
                    f.as_str()
                )
            })?;
        }
    }
    for &m in modes {
        if let Err(e) = etcd_system::kv::supports(m) {
            return Err(format!("--system etcd cannot do --read-mode {m}: {e}"));
        }
    }
    Ok(())
}

/// Whether faults of family `f` need the members in network namespaces.
pub fn needs_namespaces(f: FaultFamily) -> bool {
    matches!(f, FaultFamily::Partition | FaultFamily::Loss)
}

/// How long one status or admin call to a member may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a membership change (remove, or add back, catch up and promote) may take.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running etcd cluster.
pub struct EtcdSut {
    cluster: Mutex<EtcdCluster>,
    /// The members' namespaces, with network faults; dropped after the members.
    net: Option<Arc<NetnsCluster>>,
    /// How the harness's sockets reach the members (from the namespaces' controller).
    connector: Option<Connector>,
    /// One status client per member, keeping its connection between polls.
    status_clients: Vec<tokio::sync::Mutex<EtcdClient>>,
    members: Vec<Member>,
    binary: PathBuf,
    version: String,
    /// etcd's member ids by member index; a member added back gets a new id.
    ids: Mutex<HashMap<u64, usize>>,
    /// The member removed by a membership fault and not yet added back.
    removed: Mutex<Option<usize>>,
    /// Which member led in which terms, to tell a new leader whose reported term still lags.
    leaders: Mutex<LeaderTerms>,
}

/// etcd 3.4's status reports the term of the last *applied* entry, not the member's current
/// term: a new leader reports its predecessor's term until its own first entry applies. Read
/// as is, that moment looks like a second leader in one term and counts one election twice.
/// This remembers the leader seen for each term, so such a claim is recognised.
#[derive(Debug, Default)]
struct LeaderTerms {
    by_term: BTreeMap<u64, u64>,
}

impl LeaderTerms {
    /// Whether `member`'s claim to lead, at reported `term`, can be taken as is: false when
    /// another member was already seen leading in that term (etcd elects one leader per
    /// term, so the claimant's real term is higher and its reported one still lags).
    fn confirm(&mut self, member: u64, term: u64) -> bool {
        match self.by_term.get(&term) {
            Some(&other) if other != member => false,
            _ => {
                self.by_term.insert(term, member);
                true
            }
        }
    }
}

fn deadline(d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + d
}

impl EtcdSut {
    /// Starts `n` members (`binary`, loopback ports drawn free), data and logs under
    /// `run_dir/nodes/`, and waits (30 s at most) for a leader.
    pub async fn start(
        run_dir: &Path,
        n: usize,
        binary: &Path,
        namespaces: bool,
    ) -> anyhow::Result<EtcdSut> {
        let version = launcher::version(binary)
            .with_context(|| format!("asking {} for its version", binary.display()))?;
        let dir = super::nodes_dir(run_dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (mut config, net) = if namespaces {
            let net = tokio::task::spawn_blocking(move || NetnsCluster::create_n(n))
                .await?
                .context("creating a network namespace per etcd member")?;
            // Every member has an address of its own: the standard ports for all.
            let mut config = EtcdConfig::new(dir, vec![2379; n], vec![2380; n]);
            for id in 1..=n as NodeId {
                config.hosts.push(std::net::IpAddr::V4(net.addr(id)?));
                config.command_prefix.push(net.exec_prefix(id)?);
            }
            (config, Some(Arc::new(net)))
        } else {
            let ports = node::loopback::free_ports(2 * n).context("finding free loopback ports")?;
            let config = EtcdConfig::new(dir, ports[..n].to_vec(), ports[n..].to_vec());
            (config, None)
        };
        config.binary = binary.to_path_buf();
        let connector: Option<Connector> = net.as_ref().map(|net| {
            let net = net.clone();
            Arc::new(move |addr: std::net::SocketAddr, timeout: Duration| {
                net.run_in_controller(|| std::net::TcpStream::connect_timeout(&addr, timeout))
                    .map_err(std::io::Error::other)?
            }) as Connector
        });
        let cluster = EtcdCluster::start(config).context("starting the etcd members")?;
        let members = cluster.config().members();
        let mut client = EtcdClient::with_connector(members.clone(), connector.clone());
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
            status_clients: (0..n)
                .map(|_| {
                    tokio::sync::Mutex::new(EtcdClient::with_connector(
                        members.clone(),
                        connector.clone(),
                    ))
                })
                .collect(),
            net,
            connector,
            members,
            binary: binary.to_path_buf(),
            version,
            ids: Mutex::new(ids),
            removed: Mutex::new(None),
            leaders: Mutex::new(LeaderTerms::default()),
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
        EtcdClient::with_connector(self.members.clone(), self.connector.clone())
    }

    fn net(&self) -> anyhow::Result<&NetnsCluster> {
        self.net
            .as_deref()
            .context("the etcd members were started without network namespaces")
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

    /// The id of the member whose peer URLs include `peer_url`, if `via` lists one.
    async fn member_with_peer_url(&self, via: usize, peer_url: &str) -> Option<u64> {
        let list = self
            .client()
            .member_list(via, deadline(CALL_TIMEOUT))
            .await
            .ok()?;
        list.into_iter()
            .find(|m| m.peer_urls.iter().any(|u| u == peer_url))
            .map(|m| m.id)
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
                Err(e) => {
                    last = e.to_string();
                    // An add whose answer was lost may have been applied, and etcd then
                    // refuses every retry (the peer URL exists): the member removed before
                    // is gone from the list, so a member with its peer URL is the one added.
                    added = self.member_with_peer_url(via, &peer_url).await;
                }
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

    /// Does `act` to the process of each member of `nodes` (kill, pause, restart, resume).
    fn on_processes(
        &self,
        nodes: &[NodeId],
        act: impl Fn(&mut EtcdCluster, usize) -> Result<(), launcher::LaunchError>,
    ) -> anyhow::Result<()> {
        for i in self.nodes_of(nodes)? {
            self.with_cluster(|c| act(c, i))?;
        }
        Ok(())
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
        Box::new(EtcdSystem::with_connector(
            self.members.clone(),
            self.connector.clone(),
        ))
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
            let s = {
                let mut c = self.status_clients[i].lock().await;
                let r = c.status(i, deadline(timeout)).await;
                if r.is_err() {
                    c.reset();
                }
                r.ok()?
            };
            let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let leader = ids.get(&s.leader_id).map(|&m| m as NodeId + 1);
            let claims = s.leader_id != 0 && s.leader_id == s.member_id;
            let confirmed = claims
                && self
                    .leaders
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .confirm(s.member_id, s.raft_term);
            let role = if confirmed {
                Role::Leader
            } else {
                Role::Follower
            };
            // A claim whose reported term still lags is shown as not leading yet (for the
            // moment until its first entry applies), not as a second leader in one term.
            let leader = if claims && !confirmed { None } else { leader };
            Some(Status {
                id,
                role,
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

    fn apply<'a>(&'a self, fault: &'a Fault) -> FaultFuture<'a> {
        async move {
            match fault {
                Fault::Kill { nodes, .. } => self.on_processes(nodes, EtcdCluster::kill)?,
                Fault::Pause { nodes, .. } => self.on_processes(nodes, EtcdCluster::pause)?,
                Fault::Membership { removed, .. } => self.remove(self.index(*removed)?).await?,
                Fault::Partition { grudge, .. } => {
                    // A partition replaces whatever cut the links before, as on the mesh.
                    let net = self.net()?;
                    net.heal_all()?;
                    net.apply_grudge(grudge)?;
                }
                Fault::Loss { p } => {
                    let net = self.net()?;
                    for &a in net.nodes() {
                        for &b in net.nodes() {
                            if a != b {
                                net.set_loss(a, b, *p)?;
                            }
                        }
                    }
                }
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

    fn heal<'a>(&'a self, fault: &'a Fault) -> FaultFuture<'a> {
        async move {
            match fault {
                Fault::Kill { nodes, .. } => self.on_processes(nodes, EtcdCluster::restart)?,
                Fault::Pause { nodes, .. } => self.on_processes(nodes, EtcdCluster::resume)?,
                Fault::Membership { removed, .. } => self.add_back(self.index(*removed)?).await?,
                Fault::Partition { .. } | Fault::Loss { .. } => self.net()?.heal_all()?,
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
            if let Some(net) = &self.net {
                net.heal_all()?;
            }
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

    fn read_local<'a>(&'a self, id: NodeId, key: &'a str) -> LocalRead<'a> {
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
            // Dropping the launcher kills every member by PID and reaps it; only then are
            // their namespaces deleted (a namespace lives on while a process is in it).
            let EtcdSut { cluster, net, .. } = *self;
            let cluster = cluster.into_inner().unwrap_or_else(|e| e.into_inner());
            let _ = tokio::task::spawn_blocking(move || {
                drop(cluster);
                if let Some(net) = net {
                    if let Err(e) = net.teardown() {
                        tracing::warn!("removing the etcd members' namespaces: {e}");
                    }
                }
            })
            .await;
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::LeaderTerms;

    #[test]
    fn a_new_leader_reporting_its_predecessors_term_is_not_taken_as_leading_yet() {
        let mut t = LeaderTerms::default();
        // Member 1 leads term 2 (seen on every poll).
        assert!(t.confirm(1, 2));
        assert!(t.confirm(1, 2));
        // Member 1 is killed; member 3 wins term 3 but still reports the applied term 2.
        assert!(!t.confirm(3, 2), "two leaders in term 2");
        // Its first entry applies: term 3, taken as is from now on.
        assert!(t.confirm(3, 3));
        assert!(t.confirm(3, 3));
        // A deposed leader that has not heard of term 3 still reports term 2: its own.
        assert!(t.confirm(1, 2));
        // Member 1 wins again later, in a term nobody was seen leading.
        assert!(t.confirm(1, 9));
    }
}

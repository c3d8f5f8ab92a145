//! The system under test as the harness drives it, in the spirit of Jepsen's `db` and
//! `client` protocols: one trait, [`System`], for "start, fault and heal the members, say
//! what each reports of itself, make clients, say what you support". Everything above it
//! (the run, the fault schedule, the observer, the checkers, the reports) names no system.
//!
//! Two implementations: our node (`raft-kv`, [`crate::cluster::Cluster`]) and etcd
//! ([`etcd::EtcdSut`]). A third is one module implementing [`System`] plus one arm in
//! [`start`].

pub mod etcd;
pub mod raft_kv;

use std::path::Path;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use nemesis::schedule::{Fault, FaultFamily};
use node::protocol::{ReadMode, Status};
use node::raft::NodeId;
use workloads::client::KvClients;

/// The systems `--system` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SystemKind {
    /// Our Raft key-value store (`node`).
    RaftKv,
    /// etcd (`--etcd-bin`, default `etcd` on PATH).
    Etcd,
}

impl SystemKind {
    /// The name on the command line and in results.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemKind::RaftKv => "raft-kv",
            SystemKind::Etcd => "etcd",
        }
    }
}

/// What [`System::apply`] and [`System::heal`] return: once the fault is applied (healed),
/// what it did that only then can be said (`None`: nothing), or why it could not be.
pub type FaultFuture<'a> = BoxFuture<'a, anyhow::Result<Option<serde_json::Value>>>;

/// What [`System::read_local`] returns: the value a member holds for a key (`None`: absent),
/// or why it could not be read.
pub type LocalRead<'a> = BoxFuture<'a, Result<Option<node::protocol::Value>, String>>;

/// A system under test, started: its members, their faults, their status, its clients.
/// Every method is bounded in time; none panics on a member that is down.
pub trait System: Send + Sync {
    /// `raft-kv`, `etcd`: as `--system` names it.
    fn name(&self) -> &'static str;
    /// The system's version as its binary reports it (e.g. `etcd Version: 3.4.23`).
    fn version(&self) -> String;
    /// Every member's id, in order (members are named `n<id>`).
    fn ids(&self) -> Vec<NodeId>;
    /// Makes the workload's clients (one per client process, bound to a member).
    fn clients(&self) -> Box<dyn KvClients>;
    /// The command line of each member, for `test.json`.
    fn command_lines(&self) -> Vec<String>;
    /// What member `id` reports of itself (role, term, leader, commit and applied index),
    /// or `None` if it does not answer within `timeout`.
    fn status(&self, id: NodeId, timeout: Duration) -> BoxFuture<'_, Option<Status>>;
    /// Applies a single fault; returns what it did that its description cannot say in
    /// advance (merged into its start event).
    fn apply<'a>(&'a self, fault: &'a Fault) -> FaultFuture<'a>;
    /// Heals a fault; returns what the fault did, when only the heal can tell (merged into
    /// its stop event as `outcome`).
    fn heal<'a>(&'a self, fault: &'a Fault) -> FaultFuture<'a>;
    /// Heals everything (links, processes, clocks, membership), whatever is active.
    fn heal_all(&self) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Reads `key` from member `id`'s own state, without asking a leader (for the
    /// convergence check once the cluster is quiet). `Err` says why it could not.
    fn read_local<'a>(&'a self, id: NodeId, key: &'a str) -> LocalRead<'a>;
    /// Sends one write of `key` to member `id` without waiting for its answer (the
    /// scripted nemeses need entries in one leader's log).
    fn send_write(&self, id: NodeId, key: &str);
    /// Stops every member (SIGKILL; the data stays) and releases what the system holds.
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// What a system cannot do; `Err` holds the one-line reason (the harness exits 254).
pub fn supports(
    kind: SystemKind,
    families: &[FaultFamily],
    modes: &[ReadMode],
) -> Result<(), String> {
    match kind {
        SystemKind::RaftKv => Ok(()),
        SystemKind::Etcd => etcd::supports(families, modes),
    }
}

/// Every member's status, asked all at once, in id order; `None` for a member that does not
/// answer within `timeout`.
pub async fn poll(system: &dyn System, timeout: Duration) -> Vec<(NodeId, Option<Status>)> {
    let asks = system
        .ids()
        .into_iter()
        .map(|id| async move { (id, system.status(id, timeout).await) });
    futures::future::join_all(asks).await
}

/// What every member that answers within `timeout` reports.
pub async fn statuses(system: &dyn System, timeout: Duration) -> Vec<Status> {
    poll(system, timeout)
        .await
        .into_iter()
        .filter_map(|(_, s)| s)
        .collect()
}

pub use crate::leader::{followed_leader, leader_of};

/// The leader the members report now ([`leader_of`] their statuses), if any.
pub async fn leader(system: &dyn System) -> Option<NodeId> {
    leader_of(&statuses(system, nemesis::admin::DEFAULT_ADMIN_TIMEOUT).await)
}

/// Waits (bounded by `timeout`) until a member reports itself leader and a majority of the
/// members follow it in its term.
pub async fn wait_for_leader(system: &dyn System, timeout: Duration) -> anyhow::Result<NodeId> {
    let start = Instant::now();
    let members = system.ids().len();
    while start.elapsed() < timeout {
        let all = statuses(system, nemesis::admin::DEFAULT_ADMIN_TIMEOUT).await;
        if let Some(l) = followed_leader(&all, members) {
            return Ok(l);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!(
        "no leader followed by a majority within {:.1} s",
        timeout.as_secs_f64()
    )
}

/// Where a system keeps its members' data and logs: `run_dir/nodes/`.
pub fn nodes_dir(run_dir: &Path) -> std::path::PathBuf {
    run_dir.join("nodes")
}

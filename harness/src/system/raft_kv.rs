//! Our Raft key-value store (`--system raft-kv`) as a system under test: the
//! [`Cluster`] of node processes behind the proxy mesh, driven through [`System`].

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use nemesis::schedule::Fault;
use node::protocol::{Operation, ReadMode, Reply, Status, WriteId};
use node::raft::NodeId;
use workloads::client::KvClients;

use super::{FaultFuture, LocalRead, System};
use crate::cluster::Cluster;

/// How long a convergence read of one member may take.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

impl System for Cluster {
    fn name(&self) -> &'static str {
        super::SystemKind::RaftKv.as_str()
    }

    fn version(&self) -> String {
        format!("node {}", env!("CARGO_PKG_VERSION"))
    }

    fn ids(&self) -> Vec<NodeId> {
        Cluster::ids(self)
    }

    fn clients(&self) -> Box<dyn KvClients> {
        Box::new(self.workload_targets())
    }

    fn command_lines(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.command.join(" ")).collect()
    }

    fn status(&self, id: NodeId, timeout: Duration) -> BoxFuture<'_, Option<Status>> {
        Cluster::status(self, id, timeout).boxed()
    }

    fn apply<'a>(&'a self, fault: &'a Fault) -> FaultFuture<'a> {
        Cluster::apply(self, fault).boxed()
    }

    fn heal<'a>(&'a self, fault: &'a Fault) -> FaultFuture<'a> {
        Cluster::heal(self, fault).boxed()
    }

    fn heal_all(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Cluster::heal_all(self).boxed()
    }

    fn read_local<'a>(&'a self, id: NodeId, key: &'a str) -> LocalRead<'a> {
        async move {
            let addr = self.client_addr(id).map_err(|e| e.to_string())?;
            let op = Operation::Get {
                key: key.to_string(),
                mode: Some(ReadMode::Stale),
            };
            match nemesis::admin::request(addr, op, READ_TIMEOUT).await {
                Ok(Reply::Value { value }) => Ok(value),
                Ok(other) => Err(format!(
                    "n{id} answered a local read of {key} with {other:?}"
                )),
                Err(e) => Err(format!("n{id} refused a local read of {key}: {e}")),
            }
        }
        .boxed()
    }

    fn send_write(&self, id: NodeId, key: &str) {
        let Ok(addr) = self.client_addr(id) else {
            return;
        };
        let op = Operation::Put(node::command::Put {
            key: key.to_string(),
            value: 0,
            write_id: WriteId {
                client: u64::MAX,
                seq: rand::random(),
            },
        });
        tokio::spawn(async move {
            let _ = nemesis::admin::request(addr, op, Duration::from_millis(500)).await;
        });
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Cluster::shutdown(*self).boxed()
    }
}

//! A proxy mesh: one [`Proxy`] per ordered pair of nodes.
//!
//! Node `i` is configured to reach node `j` at [`ProxyMesh::addr_for`]`(i, j)`, the proxy
//! `i -> j`. Connections that `i` opens to `j` pass through that proxy: what `i` sends on them
//! travels its `ToTarget` direction, `j`'s answers its `ToClient` direction. So "frames from
//! `a` to `b`" travel two places: proxy `a -> b` (to target) and proxy `b -> a` (to client).
//! [`ProxyMesh::set_link`] sets both, so a cut link drops everything `a` sends to `b` whoever
//! opened the connection, and nothing `b` sends to `a`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use node::raft::NodeId;

use crate::link::{Direction, LinkState};
use crate::partition::Grudge;
use crate::proxy::{Proxy, ProxyError};

/// Why a mesh operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// A proxy could not start.
    #[error("starting proxy n{from} -> n{to}: {source}")]
    Proxy {
        from: NodeId,
        to: NodeId,
        #[source]
        source: ProxyError,
    },
    /// The pair is not in the mesh (unknown node, or `from == to`).
    #[error("no link n{from} -> n{to} in the mesh")]
    NoSuchLink { from: NodeId, to: NodeId },
    /// A grudge named a node outside the mesh.
    #[error("the grudge names node {0}, which is not in the mesh")]
    UnknownNode(NodeId),
}

/// One proxy per ordered pair of distinct nodes. Dropping the mesh stops every proxy.
#[derive(Debug)]
pub struct ProxyMesh {
    nodes: Vec<NodeId>,
    proxies: BTreeMap<(NodeId, NodeId), Proxy>,
}

impl ProxyMesh {
    /// Starts a proxy `i -> j` for every ordered pair of distinct nodes of `targets` (node id
    /// to the address its peers must reach, i.e. its peer port), each listening on a free
    /// loopback port. Proxy seeds derive from `seed`.
    pub async fn start(
        targets: &BTreeMap<NodeId, SocketAddr>,
        seed: u64,
    ) -> Result<ProxyMesh, MeshError> {
        let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_with(targets, |_, _| any, seed).await
    }

    /// As [`ProxyMesh::start`], with the listening address of proxy `i -> j` given by
    /// `listen(i, j)` (a loopback address; port 0 picks a free port).
    pub async fn start_with(
        targets: &BTreeMap<NodeId, SocketAddr>,
        listen: impl Fn(NodeId, NodeId) -> SocketAddr,
        seed: u64,
    ) -> Result<ProxyMesh, MeshError> {
        let mut proxies = BTreeMap::new();
        for (&from, _) in targets.iter() {
            for (&to, &target) in targets.iter() {
                if from == to {
                    continue;
                }
                let s = seed ^ (from.wrapping_mul(1_000_003) ^ to.wrapping_mul(7919));
                let p = Proxy::start(listen(from, to), target, s)
                    .await
                    .map_err(|source| MeshError::Proxy { from, to, source })?;
                proxies.insert((from, to), p);
            }
        }
        Ok(ProxyMesh {
            nodes: targets.keys().copied().collect(),
            proxies,
        })
    }

    /// The nodes of the mesh, in order.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// Where node `from` must connect to reach node `to`.
    pub fn addr_for(&self, from: NodeId, to: NodeId) -> Option<SocketAddr> {
        self.proxies.get(&(from, to)).map(Proxy::local_addr)
    }

    /// The peer addresses node `from` is to be configured with: each other node's proxy.
    pub fn peers_of(&self, from: NodeId) -> BTreeMap<NodeId, SocketAddr> {
        self.proxies
            .iter()
            .filter(|((f, _), _)| *f == from)
            .map(|(&(_, to), p)| (to, p.local_addr()))
            .collect()
    }

    /// The proxy `from -> to` itself, for per-direction control.
    pub fn proxy(&self, from: NodeId, to: NodeId) -> Option<&Proxy> {
        self.proxies.get(&(from, to))
    }

    /// Sets what happens to frames sent by `from` to `to`, on connections either opened.
    pub fn set_link(&self, from: NodeId, to: NodeId, state: LinkState) -> Result<(), MeshError> {
        let (Some(out), Some(back)) = (self.proxy(from, to), self.proxy(to, from)) else {
            return Err(MeshError::NoSuchLink { from, to });
        };
        out.set(Direction::ToTarget, state);
        back.set(Direction::ToClient, state);
        Ok(())
    }

    /// The state of frames sent by `from` to `to` (as seen by proxy `from -> to`).
    pub fn link(&self, from: NodeId, to: NodeId) -> Option<LinkState> {
        self.proxy(from, to)
            .map(|p| p.control().get(Direction::ToTarget))
    }

    /// Cuts every link the grudge names (`from -> to` when `to` holds a grudge against
    /// `from`). Other links are left as they are; [`ProxyMesh::heal_all`] undoes it. The grudge
    /// is checked first, so on error nothing has changed.
    pub fn apply_grudge(&self, grudge: &Grudge) -> Result<(), MeshError> {
        for (from, to) in grudge.cut_links() {
            for n in [from, to] {
                if !self.nodes.contains(&n) {
                    return Err(MeshError::UnknownNode(n));
                }
            }
        }
        for (from, to) in grudge.cut_links() {
            self.set_link(from, to, LinkState::Cut)?;
        }
        Ok(())
    }

    /// Every link, both directions, back to passing. Held connections proceed at once.
    pub fn heal_all(&self) {
        for p in self.proxies.values() {
            p.heal();
        }
    }

    /// Stops every proxy and waits for their tasks to end.
    pub async fn shutdown(self) {
        for (_, p) in self.proxies {
            p.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition;

    async fn mesh(n: u64) -> ProxyMesh {
        // Targets need not exist for these tests: nothing connects.
        let targets = (1..=n)
            .map(|i| (i, SocketAddr::from(([127, 0, 0, 1], 9 + i as u16))))
            .collect();
        ProxyMesh::start(&targets, 1).await.unwrap()
    }

    #[tokio::test]
    async fn one_proxy_per_ordered_pair() {
        let m = mesh(3).await;
        assert_eq!(m.proxies.len(), 6);
        assert!(m.addr_for(1, 1).is_none());
        assert_ne!(m.addr_for(1, 2), m.addr_for(2, 1));
        assert_eq!(
            m.peers_of(2).keys().copied().collect::<Vec<_>>(),
            vec![1, 3]
        );
        m.shutdown().await;
    }

    #[tokio::test]
    async fn grudge_cuts_both_proxies_carrying_the_traffic() {
        let m = mesh(3).await;
        let g = partition::one_way_deaf(&[1, 2, 3], 1).unwrap();
        m.apply_grudge(&g).unwrap();
        // 2 -> 1 and 3 -> 1 are cut: proxy 2->1 to-target, proxy 1->2 to-client.
        for other in [2, 3] {
            assert!(m.link(other, 1).unwrap().is_cut());
            assert!(m
                .proxy(1, other)
                .unwrap()
                .control()
                .get(Direction::ToClient)
                .is_cut());
            assert!(!m.link(1, other).unwrap().is_cut());
        }
        assert!(!m.link(2, 3).unwrap().is_cut());
        m.heal_all();
        assert!(!m.link(2, 1).unwrap().is_cut());
        let mut bad = Grudge::new();
        bad.drop_traffic(1, 9);
        assert!(matches!(
            m.apply_grudge(&bad),
            Err(MeshError::UnknownNode(9))
        ));
        assert!(m.set_link(1, 1, LinkState::Cut).is_err());
    }
}

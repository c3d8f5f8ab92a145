//! Partition shapes as grudges, chosen by seeded, pure functions.
//!
//! A [`Grudge`] says, for each node, whose traffic it drops: `to` holding a grudge against
//! `from` means every frame sent by `from` to `to` is lost (the link `from -> to` is cut).
//! Every function here is deterministic given its arguments and the state of the random
//! generator passed in, so a test's seed reproduces its partitions.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use node::raft::NodeId;

/// Why a partition could not be made from the given nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// Partitions need at least two distinct nodes.
    #[error("a partition needs at least 2 distinct nodes, got {0}")]
    TooFewNodes(usize),
    /// The same node was named twice.
    #[error("node {0} is listed more than once")]
    Duplicate(NodeId),
    /// A target (the node to isolate, the leader, ...) is not one of the nodes.
    #[error("node {0} is not one of the cluster's nodes")]
    UnknownNode(NodeId),
    /// The shape needs more nodes than given (e.g. a bridge needs 3).
    #[error("the {shape} partition needs at least {min} nodes, got {got}")]
    ShapeTooSmall {
        shape: &'static str,
        min: usize,
        got: usize,
    },
}

/// For each node, the set of nodes whose traffic it drops. Nodes with empty sets are omitted,
/// so two grudges with the same cuts compare equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Grudge(BTreeMap<NodeId, BTreeSet<NodeId>>);

impl Grudge {
    /// No cuts.
    pub fn new() -> Self {
        Grudge::default()
    }

    /// Makes `to` drop what `from` sends (cuts the link `from -> to`). A node never drops
    /// its own traffic, so `from == to` is ignored.
    pub fn drop_traffic(&mut self, to: NodeId, from: NodeId) {
        if from != to {
            self.0.entry(to).or_default().insert(from);
        }
    }

    /// Cuts both `a -> b` and `b -> a`.
    pub fn cut_both_ways(&mut self, a: NodeId, b: NodeId) {
        self.drop_traffic(a, b);
        self.drop_traffic(b, a);
    }

    /// True when frames sent by `from` to `to` are lost.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.0.get(&to).is_some_and(|s| s.contains(&from))
    }

    /// Every cut link as `(from, to)`, in order.
    pub fn cut_links(&self) -> impl Iterator<Item = (NodeId, NodeId)> + '_ {
        self.0
            .iter()
            .flat_map(|(&to, froms)| froms.iter().map(move |&from| (from, to)))
    }

    /// Each node that holds a grudge, with the nodes whose traffic it drops, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &BTreeSet<NodeId>)> + '_ {
        self.0.iter()
    }

    /// True when nothing is cut.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The nodes whose traffic `node` receives (itself included), among `nodes`.
    pub fn heard_by(&self, node: NodeId, nodes: &[NodeId]) -> BTreeSet<NodeId> {
        nodes
            .iter()
            .copied()
            .filter(|&from| !self.is_cut(from, node))
            .collect()
    }

    /// The grudge of a complete partition into `components`: every node drops traffic from
    /// every node outside its own component (nodes in no component are untouched).
    pub fn from_components(components: &[Vec<NodeId>]) -> Self {
        let mut g = Grudge::new();
        for (i, a) in components.iter().enumerate() {
            for b in components.iter().skip(i + 1) {
                for &x in a {
                    for &y in b {
                        g.cut_both_ways(x, y);
                    }
                }
            }
        }
        g
    }
}

/// The smallest majority of `n` nodes.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

fn check_nodes(nodes: &[NodeId]) -> Result<(), PartitionError> {
    let mut seen = BTreeSet::new();
    for &n in nodes {
        if !seen.insert(n) {
            return Err(PartitionError::Duplicate(n));
        }
    }
    if nodes.len() < 2 {
        return Err(PartitionError::TooFewNodes(nodes.len()));
    }
    Ok(())
}

fn check_member(nodes: &[NodeId], n: NodeId) -> Result<(), PartitionError> {
    if nodes.contains(&n) {
        Ok(())
    } else {
        Err(PartitionError::UnknownNode(n))
    }
}

fn shuffled<R: Rng + ?Sized>(nodes: &[NodeId], rng: &mut R) -> Vec<NodeId> {
    // Sorted first so the result depends only on the set of nodes and the rng.
    let mut v = nodes.to_vec();
    v.sort_unstable();
    v.shuffle(rng);
    v
}

/// `target` alone on one side, every other node on the other (both directions cut).
pub fn isolate(nodes: &[NodeId], target: NodeId) -> Result<Grudge, PartitionError> {
    check_nodes(nodes)?;
    check_member(nodes, target)?;
    let rest: Vec<NodeId> = nodes.iter().copied().filter(|&n| n != target).collect();
    Ok(Grudge::from_components(&[vec![target], rest]))
}

/// Isolates one node chosen at random.
pub fn isolate_random<R: Rng + ?Sized>(
    nodes: &[NodeId],
    rng: &mut R,
) -> Result<Grudge, PartitionError> {
    check_nodes(nodes)?;
    let target = *nodes.choose(rng).expect("checked non-empty");
    isolate(nodes, target)
}

/// Random halves: a random majority and the minority of the rest, cut both ways.
pub fn random_halves<R: Rng + ?Sized>(
    nodes: &[NodeId],
    rng: &mut R,
) -> Result<Grudge, PartitionError> {
    check_nodes(nodes)?;
    let v = shuffled(nodes, rng);
    let (major, minor) = v.split_at(majority(v.len()));
    Ok(Grudge::from_components(&[major.to_vec(), minor.to_vec()]))
}

/// Majorities ring: the nodes are placed on a random ring and each hears only the majority
/// window of the ring centred on itself. Every node hears a majority (itself included), and
/// no two nodes hear the same majority, so no majority agrees on anything for long. The cuts
/// are asymmetric for even window sizes (e.g. n = 3): `a` may hear `b` while `b` does not
/// hear `a`.
pub fn majorities_ring<R: Rng + ?Sized>(
    nodes: &[NodeId],
    rng: &mut R,
) -> Result<Grudge, PartitionError> {
    check_nodes(nodes)?;
    if nodes.len() < 3 {
        return Err(PartitionError::ShapeTooSmall {
            shape: "majorities-ring",
            min: 3,
            got: nodes.len(),
        });
    }
    let ring = shuffled(nodes, rng);
    let n = ring.len();
    let m = majority(n);
    let mut g = Grudge::new();
    for start in 0..n {
        let window: BTreeSet<NodeId> = (0..m).map(|k| ring[(start + k) % n]).collect();
        let centre = ring[(start + m / 2) % n];
        for &other in &ring {
            if !window.contains(&other) {
                g.drop_traffic(centre, other);
            }
        }
    }
    Ok(g)
}

/// Bridge: two halves cut from each other, and one node (the bridge) that hears and is heard
/// by everyone. With an odd number of nodes each half plus the bridge is a majority.
pub fn bridge<R: Rng + ?Sized>(nodes: &[NodeId], rng: &mut R) -> Result<Grudge, PartitionError> {
    check_nodes(nodes)?;
    if nodes.len() < 3 {
        return Err(PartitionError::ShapeTooSmall {
            shape: "bridge",
            min: 3,
            got: nodes.len(),
        });
    }
    let v = shuffled(nodes, rng);
    let mid = v.len() / 2;
    let (left, right) = (v[..mid].to_vec(), v[mid + 1..].to_vec());
    Ok(Grudge::from_components(&[left, right]))
}

/// One-way, deaf: `target` can send to everyone but receives from no one (it drops all
/// traffic to it). A deaf leader keeps sending heartbeats but never hears acknowledgements.
pub fn one_way_deaf(nodes: &[NodeId], target: NodeId) -> Result<Grudge, PartitionError> {
    check_nodes(nodes)?;
    check_member(nodes, target)?;
    let mut g = Grudge::new();
    for &n in nodes {
        g.drop_traffic(target, n);
    }
    Ok(g)
}

/// One-way, mute: `target` receives from everyone but nothing it sends arrives.
pub fn one_way_mute(nodes: &[NodeId], target: NodeId) -> Result<Grudge, PartitionError> {
    check_nodes(nodes)?;
    check_member(nodes, target)?;
    let mut g = Grudge::new();
    for &n in nodes {
        g.drop_traffic(n, target);
    }
    Ok(g)
}

/// The leader and random others form the largest minority; the rest, a majority; cut both
/// ways. For n = 3 the leader is alone.
pub fn leader_in_minority<R: Rng + ?Sized>(
    nodes: &[NodeId],
    leader: NodeId,
    rng: &mut R,
) -> Result<Grudge, PartitionError> {
    check_nodes(nodes)?;
    check_member(nodes, leader)?;
    let others: Vec<NodeId> = nodes.iter().copied().filter(|&n| n != leader).collect();
    let others = shuffled(&others, rng);
    // At least the leader itself, even for n = 2 where no proper minority exists.
    let minority_size = (nodes.len() - majority(nodes.len())).max(1);
    let mut minor = vec![leader];
    minor.extend_from_slice(&others[..minority_size - 1]);
    let major = others[minority_size - 1..].to_vec();
    Ok(Grudge::from_components(&[minor, major]))
}

/// The leader and random others form a bare majority; the rest, the minority; cut both ways.
pub fn leader_in_majority<R: Rng + ?Sized>(
    nodes: &[NodeId],
    leader: NodeId,
    rng: &mut R,
) -> Result<Grudge, PartitionError> {
    check_nodes(nodes)?;
    check_member(nodes, leader)?;
    let others: Vec<NodeId> = nodes.iter().copied().filter(|&n| n != leader).collect();
    let others = shuffled(&others, rng);
    let m = majority(nodes.len());
    let mut major = vec![leader];
    major.extend_from_slice(&others[..m - 1]);
    let minor = others[m - 1..].to_vec();
    Ok(Grudge::from_components(&[major, minor]))
}

/// A partition shape, as a schedule names it and a history event records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "kebab-case")]
pub enum Shape {
    /// [`isolate`] the given node, or a random one when `None`.
    Isolate { target: Option<NodeId> },
    /// [`random_halves`].
    Halves,
    /// [`majorities_ring`].
    MajoritiesRing,
    /// [`bridge`].
    Bridge,
    /// [`one_way_deaf`]: the target sends but does not receive.
    OneWayDeaf { target: NodeId },
    /// [`one_way_mute`]: the target receives but what it sends is lost.
    OneWayMute { target: NodeId },
    /// [`leader_in_minority`].
    LeaderInMinority { leader: NodeId },
    /// [`leader_in_majority`].
    LeaderInMajority { leader: NodeId },
}

impl Shape {
    /// The grudge of this shape over `nodes`, drawing any random choice from `rng`.
    pub fn grudge<R: Rng + ?Sized>(
        &self,
        nodes: &[NodeId],
        rng: &mut R,
    ) -> Result<Grudge, PartitionError> {
        match *self {
            Shape::Isolate { target: Some(t) } => isolate(nodes, t),
            Shape::Isolate { target: None } => isolate_random(nodes, rng),
            Shape::Halves => random_halves(nodes, rng),
            Shape::MajoritiesRing => majorities_ring(nodes, rng),
            Shape::Bridge => bridge(nodes, rng),
            Shape::OneWayDeaf { target } => one_way_deaf(nodes, target),
            Shape::OneWayMute { target } => one_way_mute(nodes, target),
            Shape::LeaderInMinority { leader } => leader_in_minority(nodes, leader, rng),
            Shape::LeaderInMajority { leader } => leader_in_majority(nodes, leader, rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SIZES: [usize; 3] = [3, 5, 7];
    const SEEDS: u64 = 50;

    fn nodes(n: usize) -> Vec<NodeId> {
        (1..=n as u64).collect()
    }

    /// Runs `check` for every size and many seeds, naming the seed when it fails.
    fn for_each(check: impl Fn(&[NodeId], &mut ChaCha8Rng)) {
        for n in SIZES {
            for seed in 0..SEEDS {
                let ns = nodes(n);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let r =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&ns, &mut rng)));
                if let Err(e) = r {
                    eprintln!("failed with n = {n}, seed = {seed}");
                    std::panic::resume_unwind(e);
                }
            }
        }
    }

    /// True when every cut goes both ways.
    fn is_symmetric(g: &Grudge, ns: &[NodeId]) -> bool {
        ns.iter()
            .all(|&a| ns.iter().all(|&b| g.is_cut(a, b) == g.is_cut(b, a)))
    }

    #[test]
    fn isolate_cuts_one_node_from_all_others() {
        for_each(|ns, rng| {
            let g = isolate_random(ns, rng).unwrap();
            assert!(is_symmetric(&g, ns));
            let alone: Vec<_> = ns
                .iter()
                .copied()
                .filter(|&x| g.heard_by(x, ns).len() == 1)
                .collect();
            assert_eq!(alone.len(), 1);
            let t = alone[0];
            for &x in ns.iter().filter(|&&x| x != t) {
                assert_eq!(g.heard_by(x, ns).len(), ns.len() - 1);
            }
            assert_eq!(isolate(ns, t).unwrap(), g);
        });
    }

    #[test]
    fn halves_are_a_majority_and_a_minority() {
        for_each(|ns, rng| {
            let g = random_halves(ns, rng).unwrap();
            assert!(is_symmetric(&g, ns));
            let mut sizes: Vec<usize> = ns.iter().map(|&x| g.heard_by(x, ns).len()).collect();
            sizes.sort();
            let maj = majority(ns.len());
            let min = ns.len() - maj;
            assert_eq!(sizes.iter().filter(|&&s| s == maj).count(), maj);
            assert_eq!(sizes.iter().filter(|&&s| s == min).count(), min);
            // Heard-sets are equivalence classes: a hears b iff their sets are equal.
            for &a in ns {
                for &b in ns {
                    assert_eq!(
                        !g.is_cut(a, b),
                        g.heard_by(a, ns) == g.heard_by(b, ns),
                        "{a} {b}"
                    );
                }
            }
        });
    }

    #[test]
    fn majorities_ring_gives_everyone_a_distinct_majority() {
        for_each(|ns, rng| {
            let g = majorities_ring(ns, rng).unwrap();
            let views: BTreeSet<BTreeSet<NodeId>> = ns.iter().map(|&x| g.heard_by(x, ns)).collect();
            assert_eq!(views.len(), ns.len(), "two nodes see the same majority");
            for &x in ns {
                let v = g.heard_by(x, ns);
                assert_eq!(v.len(), majority(ns.len()));
                assert!(v.contains(&x));
            }
        });
    }

    #[test]
    fn bridge_node_hears_and_is_heard_by_all() {
        for_each(|ns, rng| {
            let g = bridge(ns, rng).unwrap();
            assert!(is_symmetric(&g, ns));
            let bridges: Vec<_> = ns
                .iter()
                .copied()
                .filter(|&x| g.heard_by(x, ns).len() == ns.len())
                .collect();
            assert_eq!(bridges.len(), 1);
            let b = bridges[0];
            // The others split into two equal halves that each hear exactly half + bridge.
            let half = (ns.len() - 1) / 2;
            for &x in ns.iter().filter(|&&x| x != b) {
                let v = g.heard_by(x, ns);
                assert_eq!(v.len(), half + 1);
                assert!(v.contains(&b));
                assert_eq!(
                    v.len(),
                    majority(ns.len()),
                    "odd n: each side is a majority"
                );
            }
        });
    }

    #[test]
    fn one_way_cuts_only_one_direction() {
        for_each(|ns, rng| {
            let t = *ns.choose(rng).unwrap();
            let deaf = one_way_deaf(ns, t).unwrap();
            let mute = one_way_mute(ns, t).unwrap();
            for &x in ns.iter().filter(|&&x| x != t) {
                assert!(deaf.is_cut(x, t) && !deaf.is_cut(t, x));
                assert!(mute.is_cut(t, x) && !mute.is_cut(x, t));
                for &y in ns.iter().filter(|&&y| y != t) {
                    assert!(!deaf.is_cut(x, y) && !mute.is_cut(x, y));
                }
            }
            assert_eq!(deaf.cut_links().count(), ns.len() - 1);
        });
    }

    #[test]
    fn leader_lands_on_the_requested_side() {
        for_each(|ns, rng| {
            let leader = *ns.choose(rng).unwrap();
            let g = leader_in_minority(ns, leader, rng).unwrap();
            assert!(is_symmetric(&g, ns));
            assert_eq!(g.heard_by(leader, ns).len(), ns.len() - majority(ns.len()));
            let g = leader_in_majority(ns, leader, rng).unwrap();
            assert!(is_symmetric(&g, ns));
            assert_eq!(g.heard_by(leader, ns).len(), majority(ns.len()));
        });
    }

    #[test]
    fn same_seed_same_partition() {
        for n in SIZES {
            let ns = nodes(n);
            let shapes = [Shape::Halves, Shape::MajoritiesRing, Shape::Bridge];
            for s in shapes {
                let a = s.grudge(&ns, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
                let mut rev = ns.clone();
                rev.reverse();
                let b = s.grudge(&rev, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
                assert_eq!(a, b, "{s:?} n = {n}: depends on node order");
            }
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(
            isolate(&[1], 1).unwrap_err(),
            PartitionError::TooFewNodes(1)
        );
        assert_eq!(
            isolate(&[1, 2, 2], 1).unwrap_err(),
            PartitionError::Duplicate(2)
        );
        assert_eq!(
            isolate(&[1, 2, 3], 4).unwrap_err(),
            PartitionError::UnknownNode(4)
        );
        assert!(bridge(&[1, 2], &mut rng).is_err());
        assert!(majorities_ring(&[], &mut rng).is_err());
        assert!(leader_in_minority(&[1, 2, 3], 9, &mut rng).is_err());
        // Two nodes: the leader's minority is empty of others, which must not panic.
        let g = leader_in_minority(&[1, 2], 1, &mut rng).unwrap();
        assert!(g.is_cut(1, 2) && g.is_cut(2, 1));
    }

    #[test]
    fn grudges_serialize_as_maps() {
        let g = one_way_deaf(&[1, 2, 3], 1).unwrap();
        let j = serde_json::to_string(&g).unwrap();
        assert_eq!(j, r#"{"1":[2,3]}"#);
        assert_eq!(serde_json::from_str::<Grudge>(&j).unwrap(), g);
        let s = serde_json::to_string(&Shape::LeaderInMinority { leader: 2 }).unwrap();
        assert_eq!(s, r#"{"shape":"leader-in-minority","leader":2}"#);
    }
}

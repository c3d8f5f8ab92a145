//! Which nodes a process or clock fault hits: one, a minority, a majority, the leader, all.
//!
//! Pure and seeded like [`crate::partition`]: the result depends only on the arguments and
//! the state of the random generator.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use node::raft::NodeId;

use crate::partition::majority;

/// A targeting spec, as named on the command line (`one`, `minority`, `majority`, `leader`,
/// `followers`, `all`) and in history events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// One random node.
    One,
    /// A random largest minority (at least one node).
    Minority,
    /// A random smallest majority.
    Majority,
    /// The current leader (as found by asking the nodes).
    Leader,
    /// Every node.
    All,
    /// Every node but the current leader.
    Followers,
}

impl Target {
    /// Every spec, in the order documentation lists them.
    pub const ALL: [Target; 6] = [
        Target::One,
        Target::Minority,
        Target::Majority,
        Target::Leader,
        Target::All,
        Target::Followers,
    ];

    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::One => "one",
            Target::Minority => "minority",
            Target::Majority => "majority",
            Target::Leader => "leader",
            Target::All => "all",
            Target::Followers => "followers",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown target {s:?} (expected one, minority, majority, leader, followers \
                     or all)"
                )
            })
    }
}

/// Why no nodes could be selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("no nodes to choose from")]
    NoNodes,
    #[error("the target is the leader, but no leader is known")]
    NoLeader,
    #[error("the leader n{0} is not one of the nodes")]
    LeaderNotANode(NodeId),
}

/// The nodes `target` selects among `nodes` (sorted, distinct), given the current leader.
pub fn select<R: Rng + ?Sized>(
    target: Target,
    nodes: &[NodeId],
    leader: Option<NodeId>,
    rng: &mut R,
) -> Result<Vec<NodeId>, TargetError> {
    // Sorted and deduplicated first, so the result does not depend on the input order.
    let set: BTreeSet<NodeId> = nodes.iter().copied().collect();
    let mut v: Vec<NodeId> = set.into_iter().collect();
    if v.is_empty() {
        return Err(TargetError::NoNodes);
    }
    let n = v.len();
    let count = match target {
        Target::Leader => {
            let l = leader.ok_or(TargetError::NoLeader)?;
            if !v.contains(&l) {
                return Err(TargetError::LeaderNotANode(l));
            }
            return Ok(vec![l]);
        }
        Target::All => return Ok(v),
        Target::Followers => {
            let l = leader.ok_or(TargetError::NoLeader)?;
            v.retain(|&n| n != l);
            return Ok(v);
        }
        Target::One => 1,
        Target::Minority => (n - majority(n)).max(1),
        Target::Majority => majority(n),
    };
    v.shuffle(rng);
    v.truncate(count);
    v.sort_unstable();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn sizes_for_3_5_7() {
        for n in [3usize, 5, 7] {
            let nodes: Vec<NodeId> = (1..=n as u64).collect();
            for seed in 0..20 {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut pick = |t| select(t, &nodes, Some(2), &mut rng).unwrap();
                let ctx = format!("n = {n}, seed = {seed}");
                assert_eq!(pick(Target::One).len(), 1, "{ctx}");
                assert_eq!(pick(Target::Minority).len(), n / 2, "{ctx}");
                assert_eq!(pick(Target::Majority).len(), n / 2 + 1, "{ctx}");
                assert_eq!(pick(Target::Leader), vec![2], "{ctx}");
                assert_eq!(pick(Target::All), nodes, "{ctx}");
                let followers: Vec<NodeId> = nodes.iter().copied().filter(|&x| x != 2).collect();
                assert_eq!(pick(Target::Followers), followers, "{ctx}");
                let m = pick(Target::Majority);
                assert!(m.windows(2).all(|w| w[0] < w[1]), "{ctx}: {m:?}");
            }
        }
    }

    #[test]
    fn errors_and_names() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(
            select(Target::Leader, &[1, 2], None, &mut rng),
            Err(TargetError::NoLeader)
        );
        assert_eq!(
            select(Target::Leader, &[1, 2], Some(5), &mut rng),
            Err(TargetError::LeaderNotANode(5))
        );
        assert_eq!(
            select(Target::One, &[], None, &mut rng),
            Err(TargetError::NoNodes)
        );
        for t in Target::ALL {
            assert_eq!(t.as_str().parse::<Target>().unwrap(), t);
        }
        assert!("some".parse::<Target>().is_err());
    }
}

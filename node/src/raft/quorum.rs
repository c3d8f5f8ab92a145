//! Majority arithmetic over a set of voters. Kept apart from the core so that joint
//! configurations (two majorities that must both agree) can be added later by combining two
//! of these, as etcd-raft's `quorum.JointConfig` does.

use super::types::{LogIndex, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// The outcome of an election so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// Neither a majority of grants nor of rejections yet.
    Pending,
    /// A majority granted.
    Won,
    /// A majority rejected: the election cannot be won.
    Lost,
}

/// A set of voters decided by simple majority. An empty set never reaches a quorum.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MajorityConfig {
    voters: BTreeSet<NodeId>,
}

impl MajorityConfig {
    /// A majority configuration over `voters` (duplicates collapse).
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> MajorityConfig {
        MajorityConfig {
            voters: voters.into_iter().collect(),
        }
    }

    /// The voters in ascending order.
    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().copied()
    }

    /// Whether `id` votes.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// Number of voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// True when there are no voters.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// The smallest number of voters that forms a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The largest index that a majority of voters has acknowledged, given each voter's
    /// acknowledged index (voters missing from `acked` count as 0). Returns 0 for no voters.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> LogIndex) -> LogIndex {
        if self.voters.is_empty() {
            return 0;
        }
        let mut idx: Vec<LogIndex> = self.voters.iter().map(|&v| acked(v)).collect();
        // Sorted descending, the quorum-th largest value is held by at least a majority.
        idx.sort_unstable_by(|a, b| b.cmp(a));
        idx[self.quorum() - 1]
    }

    /// Tallies `votes` (voter -> granted); votes from non-voters are ignored.
    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Lost;
        }
        let (mut yes, mut missing) = (0, 0);
        for v in &self.voters {
            match votes.get(v) {
                Some(true) => yes += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        if yes >= self.quorum() {
            VoteResult::Won
        } else if yes + missing >= self.quorum() {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }

    /// Whether the voters for which `active` holds form a majority.
    pub fn has_quorum(&self, active: impl Fn(NodeId) -> bool) -> bool {
        !self.voters.is_empty()
            && self.voters.iter().filter(|&&v| active(v)).count() >= self.quorum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_index_is_the_majority_minimum() {
        let c = MajorityConfig::new([1, 2, 3, 4, 5]);
        let acked = BTreeMap::from([(1, 9), (2, 7), (3, 5), (4, 3), (5, 1)]);
        assert_eq!(c.committed_index(|v| acked[&v]), 5);
        let c3 = MajorityConfig::new([1, 2, 3]);
        assert_eq!(c3.committed_index(|v| if v == 1 { 4 } else { 0 }), 0);
        assert_eq!(MajorityConfig::new([7]).committed_index(|_| 3), 3);
        assert_eq!(MajorityConfig::default().committed_index(|_| 3), 0);
    }

    #[test]
    fn vote_results() {
        let c = MajorityConfig::new([1, 2, 3, 4, 5]);
        let mut votes = BTreeMap::from([(1, true), (2, true)]);
        assert_eq!(c.vote_result(&votes), VoteResult::Pending);
        votes.insert(3, true);
        assert_eq!(c.vote_result(&votes), VoteResult::Won);
        let no = BTreeMap::from([(1, true), (2, false), (3, false), (4, false), (9, true)]);
        assert_eq!(c.vote_result(&no), VoteResult::Lost);
        assert!(c.has_quorum(|v| v <= 3));
        assert!(!c.has_quorum(|v| v <= 2));
    }
}

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

/// A possibly joint configuration: `incoming` (C_new) and, during a change, `outgoing`
/// (C_old). Every decision needs a majority of each non-empty half (Raft §6), as in
/// etcd-raft's `quorum.JointConfig`. With an empty `outgoing` it is a plain majority.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JointConfig {
    incoming: MajorityConfig,
    outgoing: MajorityConfig,
}

impl JointConfig {
    /// A joint configuration; `outgoing` empty means not joint.
    pub fn new(
        incoming: impl IntoIterator<Item = NodeId>,
        outgoing: impl IntoIterator<Item = NodeId>,
    ) -> JointConfig {
        JointConfig {
            incoming: MajorityConfig::new(incoming),
            outgoing: MajorityConfig::new(outgoing),
        }
    }

    /// Whether `id` votes in either half.
    pub fn contains(&self, id: NodeId) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// Whether this is the configuration with these halves (without allocating).
    pub fn is(&self, incoming: &BTreeSet<NodeId>, outgoing: &BTreeSet<NodeId>) -> bool {
        self.incoming.voters == *incoming && self.outgoing.voters == *outgoing
    }

    /// Every voter of either half, ascending, without duplicates.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.incoming
            .voters()
            .chain(self.outgoing.voters())
            .collect()
    }

    /// True when `id` is the only voter (it decides alone).
    pub fn is_only(&self, id: NodeId) -> bool {
        let v = self.voters();
        v.len() == 1 && v.contains(&id)
    }

    /// The largest index acknowledged by a majority of both halves (0 without voters).
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> LogIndex) -> LogIndex {
        let a = self.incoming.committed_index(&acked);
        if self.outgoing.is_empty() {
            a
        } else {
            a.min(self.outgoing.committed_index(&acked))
        }
    }

    /// Won when both halves won, Lost when either lost.
    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        let a = self.incoming.vote_result(votes);
        if self.outgoing.is_empty() {
            return a;
        }
        match (a, self.outgoing.vote_result(votes)) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    /// Whether the active voters form a majority of both halves.
    pub fn has_quorum(&self, active: impl Fn(NodeId) -> bool) -> bool {
        self.incoming.has_quorum(&active)
            && (self.outgoing.is_empty() || self.outgoing.has_quorum(&active))
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

    #[test]
    fn joint_needs_both_majorities() {
        let j = JointConfig::new([1, 2, 3], [3, 4, 5]);
        let acked = BTreeMap::from([(1, 9), (2, 9), (3, 5), (4, 1), (5, 1)]);
        assert_eq!(j.committed_index(|v| acked[&v]), 1);
        let votes = BTreeMap::from([(1, true), (2, true)]);
        assert_eq!(j.vote_result(&votes), VoteResult::Pending);
        let votes = BTreeMap::from([(1, true), (2, true), (4, false), (5, false)]);
        assert_eq!(j.vote_result(&votes), VoteResult::Lost);
        let votes = BTreeMap::from([(1, true), (3, true), (4, true)]);
        assert_eq!(j.vote_result(&votes), VoteResult::Won);
        assert!(!j.has_quorum(|v| v <= 2));
        assert!(j.has_quorum(|v| v <= 4));
        assert!(JointConfig::new([7], []).is_only(7));
        assert!(!JointConfig::new([7], [7, 8]).is_only(7));
    }
}

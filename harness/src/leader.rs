//! Who leads, judged from the members' status replies: the one rule by which the harness
//! names "the leader" and waits for one, for every system under test (pure functions, so the
//! system plug-ins and the node cluster share them without depending on each other).

use node::protocol::Status;
use node::raft::{NodeId, Role};

/// The leader among `statuses`: the self-declared leader with the highest term (the lowest id
/// if two claim one term); `None` when none claims to lead. The one rule by which the harness
/// names "the leader", for every system and for `Cluster::leader`.
pub fn leader_of(statuses: &[Status]) -> Option<NodeId> {
    statuses
        .iter()
        .filter(|s| s.role == Role::Leader)
        .max_by_key(|s| (s.term, std::cmp::Reverse(s.id)))
        .map(|s| s.id)
}

/// The first self-declared leader in `statuses` that a majority of `members` members follow
/// in its term (counting itself); `None` otherwise. The rule of every "wait for a leader".
pub fn followed_leader(statuses: &[Status], members: usize) -> Option<NodeId> {
    let majority = members / 2 + 1;
    statuses
        .iter()
        .filter(|l| l.role == Role::Leader)
        .find(|l| {
            statuses
                .iter()
                .filter(|s| s.leader == Some(l.id) && s.term == l.term)
                .count()
                >= majority
        })
        .map(|l| l.id)
}

/// A status reply for tests: member `id` in `role` at `term`, following `leader`, with its
/// commit, applied and last log index at 10 and an unskewed clock (offset 0, rate 1, now 0).
#[cfg(test)]
pub(crate) fn test_status(id: NodeId, role: Role, term: u64, leader: Option<NodeId>) -> Status {
    Status {
        id,
        role,
        term,
        leader,
        commit_index: 10,
        applied_index: 10,
        last_log_index: 10,
        clock: node::protocol::ClockState {
            offset_ms: 0.0,
            rate: 1.0,
            now_ms: 0.0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::test_status as status;
    use super::*;

    #[test]
    fn the_leader_is_the_highest_term_claimant() {
        let all = [
            status(1, Role::Leader, 3, Some(1)),
            status(2, Role::Leader, 5, Some(2)),
            status(3, Role::Follower, 5, Some(2)),
        ];
        assert_eq!(leader_of(&all), Some(2));
        assert_eq!(leader_of(&all[2..]), None);
        let tie = [
            status(3, Role::Leader, 4, Some(3)),
            status(2, Role::Leader, 4, Some(2)),
        ];
        assert_eq!(leader_of(&tie), Some(2));
    }

    #[test]
    fn a_followed_leader_needs_a_majority_in_its_term() {
        let all = [
            status(1, Role::Leader, 3, Some(1)),
            status(2, Role::Leader, 5, Some(2)),
            status(3, Role::Follower, 5, Some(2)),
        ];
        assert_eq!(followed_leader(&all, 3), Some(2));
        assert_eq!(followed_leader(&all, 5), None);
        assert_eq!(followed_leader(&all[..1], 1), Some(1));
    }
}

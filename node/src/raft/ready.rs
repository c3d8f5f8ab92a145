//! What the core hands to the runtime, and the errors of its request methods.

use super::message::Message;
use super::types::{Entry, HardState, LogIndex, NodeId, Snapshot, Term};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The role of a node in its current term.
///
/// Serialized (status replies, `cluster.jsonl`) as the lower-case names of
/// [`Role::as_str`]: `follower`, `pre-candidate`, `candidate`, `leader`; those names are part
/// of the wire and file formats and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes; has not bumped its term.
    PreCandidate,
    /// Asking for votes in a new term.
    Candidate,
    /// Leads the current term.
    Leader,
}

impl Role {
    /// Every role, from follower to leader.
    pub const ALL: [Role; 4] = [
        Role::Follower,
        Role::PreCandidate,
        Role::Candidate,
        Role::Leader,
    ];

    /// The lower-case name used in status output and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    /// Parses a name of [`Role::as_str`]; anything else is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}"))
    }
}

/// A confirmed read index: once the state machine has applied `index`, a read for request
/// `ctx` may be served locally and is linearizable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The id the caller gave to [`Raft::read_index`](super::Raft::read_index).
    pub ctx: u64,
    /// The read index.
    pub index: LogIndex,
}

/// Everything the runtime must do now, in this order:
/// 0. if `snapshot` is Some (received from the leader): persist it, replacing the whole log,
///    and replace the state machine by it;
/// 1. persist `hard_state` (if Some) and `entries` (an entry whose index is <= the last
///    persisted index replaces that index and everything after it), and fsync once;
/// 2. send `messages` (they may depend on step 1);
/// 3. apply `committed` in order (all of them are already persisted locally), and serve
///    `read_states` once applied reaches their index; report `failed_reads` as failed;
///
/// then call [`Raft::advance`](super::Raft::advance) with this Ready.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ready {
    /// A snapshot from the leader that replaces the log and the state machine.
    pub snapshot: Option<Snapshot>,
    /// New hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// Entries to persist.
    pub entries: Vec<Entry>,
    /// Messages to send after persisting.
    pub messages: Vec<Message>,
    /// Committed entries to apply, contiguous, starting just after the last applied one.
    pub committed: Vec<Entry>,
    /// Confirmed read indexes.
    pub read_states: Vec<ReadState>,
    /// Read requests (by ctx) that cannot be confirmed: leadership was lost or the leader
    /// refused. The caller may retry.
    pub failed_reads: Vec<u64>,
}

impl Ready {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.read_states.is_empty()
            && self.failed_reads.is_empty()
    }
}

/// A snapshot of a node's state for status requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftStatus {
    /// This node.
    pub id: NodeId,
    /// Current role.
    pub role: Role,
    /// Current term.
    pub term: Term,
    /// The leader this node knows of in `term`.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: LogIndex,
    /// Highest index handed out for applying.
    pub applied: LogIndex,
    /// Last log index.
    pub last_index: LogIndex,
    /// Vote cast in `term`.
    pub voted_for: Option<NodeId>,
    /// The last index covered by the local snapshot (0 without one).
    pub snapshot_index: LogIndex,
}

/// Why a proposal was refused. A refused proposal certainly did not enter the log.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals.
    #[error("not leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader: Option<NodeId>,
    },
    /// A membership change is already in progress (learners catching up, a joint
    /// configuration, or an uncommitted configuration entry): one change at a time.
    #[error("a membership change is already in progress")]
    ChangeInProgress,
    /// The leader has not committed an entry of its term yet, so it may not know the latest
    /// configuration. Retry shortly. Rule: no membership change before the leader's term has
    /// committed (`docs/raft-pitfalls.md` #13).
    #[error("leader has not committed an entry of its term yet")]
    LeaderNotReady,
    /// The requested configuration has no voters.
    #[error("a configuration needs at least one voter")]
    NoVoters,
}

/// Why [`Raft::compact`](super::Raft::compact) refused a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CompactError {
    /// The snapshot's index is not applied and persisted, or not after the current snapshot.
    #[error("cannot compact to index {index}: applied {applied}, snapshot at {snapshot_index}")]
    BadIndex {
        /// The snapshot's index.
        index: LogIndex,
        /// The applied index.
        applied: LogIndex,
        /// The current snapshot index.
        snapshot_index: LogIndex,
    },
    /// The snapshot's term or configuration does not match the log at its index.
    #[error("snapshot metadata does not match the log at index {0}")]
    Mismatch(LogIndex),
}

/// Why a read index request was refused at once.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ReadError {
    /// No leader is known to forward the request to.
    #[error("no leader known")]
    NoLeader,
    /// The leader has not yet committed an entry of its own term, so its commit index may
    /// lag. Retry shortly. Rule: no read index before an entry of the leader's term commits
    /// (`docs/raft-pitfalls.md` #1).
    #[error("leader has not committed an entry of its term yet")]
    LeaderNotReady,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON of a role is exactly its `as_str` name (status replies and `cluster.jsonl`
    /// written before `Role` was serialized directly used these strings).
    #[test]
    fn role_serializes_as_its_name() {
        let names = ["follower", "pre-candidate", "candidate", "leader"];
        for (r, name) in Role::ALL.into_iter().zip(names) {
            assert_eq!(r.as_str(), name);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<Role>(&format!("\"{name}\"")).unwrap(),
                r
            );
            assert_eq!(name.parse::<Role>().unwrap(), r);
        }
        assert!(serde_json::from_str::<Role>("\"boss\"").is_err());
        assert!("Leader".parse::<Role>().is_err());
    }
}

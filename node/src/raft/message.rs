//! Messages exchanged between Raft nodes. The runtime serializes them with bincode; the core
//! accepts any content without panicking (a message that makes no sense is dropped).

use super::types::{Entry, LogIndex, NodeId, SnapshotMeta, Term};
use serde::{Deserialize, Serialize};

/// One message between two nodes. `term` is the sender's term when it built the message
/// (for a pre-vote request: the term the sender would campaign in; for a granted pre-vote: the
/// requested term).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// See the type's documentation.
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of messages, after the Raft paper and etcd-raft's `MsgApp`, `MsgVote`, ...
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Leader to follower: append `entries` after the entry `(prev_index, prev_term)`, and
    /// learn that everything up to `commit` is committed.
    AppendEntries {
        /// Index of the entry just before `entries`.
        prev_index: LogIndex,
        /// Term of the entry at `prev_index` (0 for index 0).
        prev_term: Term,
        /// Entries to append, contiguous, at most `max_entries_per_msg` and (but for a single
        /// entry) at most `max_bytes_per_msg` bytes of them.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: LogIndex,
    },
    /// Follower to leader: the answer to `AppendEntries`. Also sent, with the responder's
    /// higher term, to a stale leader so that it steps down (`docs/raft-pitfalls.md` #12:
    /// a lower-term append gets an answer carrying the higher term).
    AppendResponse {
        /// True when the consistency check passed.
        success: bool,
        /// On success: the last index now known to match the leader. On rejection: the
        /// `prev_index` that was rejected.
        index: LogIndex,
        /// On rejection: the follower's term at `prev_index`, or 0 when the follower's log is
        /// shorter than `prev_index`.
        hint_term: Term,
        /// On rejection: the first index of `hint_term` in the follower's log, or the
        /// follower's last index + 1 when its log is short.
        hint_index: LogIndex,
    },
    /// A (pre-)candidate asks for a vote.
    RequestVote {
        /// True for a pre-vote: the receiver answers as it would vote but changes no state.
        pre_vote: bool,
        /// The candidate's last log index.
        last_index: LogIndex,
        /// The candidate's last log term.
        last_term: Term,
    },
    /// The answer to `RequestVote`.
    VoteResponse {
        /// Echoes the request's `pre_vote`.
        pre_vote: bool,
        /// Whether the vote is granted.
        granted: bool,
    },
    /// Leader to follower: "I am still leader". `commit` never exceeds what the follower is
    /// known to hold. `round` identifies the heartbeat round (unique and increasing per node).
    Heartbeat {
        /// min(leader commit, follower match index).
        commit: LogIndex,
        /// The heartbeat round this message belongs to.
        round: u64,
    },
    /// Follower to leader: acknowledges the heartbeat of `round`.
    HeartbeatResponse {
        /// Echoes the heartbeat's round.
        round: u64,
    },
    /// Follower to leader: please confirm a read index for my request `ctx`.
    ReadIndexRequest {
        /// The follower's own request id, echoed back.
        ctx: u64,
    },
    /// Leader to follower: the confirmed read index for `ctx`, or `None` when the leader
    /// refused (it has not committed an entry of its term yet).
    ReadIndexResponse {
        /// Echoes the request's ctx.
        ctx: u64,
        /// The confirmed read index.
        index: Option<LogIndex>,
    },
    /// Leader to follower: one chunk of the leader's snapshot, for a follower that needs
    /// entries the leader compacted. Chunks go in order, one at a time; the follower
    /// replaces its state only once the last one (`done`) arrived.
    InstallSnapshot {
        /// What the snapshot covers.
        meta: SnapshotMeta,
        /// Byte offset of `data` in the snapshot.
        offset: u64,
        /// At most `max_snapshot_chunk` bytes.
        data: Vec<u8>,
        /// True for the last chunk.
        done: bool,
    },
    /// Follower to leader: the chunks of snapshot `index` received so far end at
    /// `next_offset` (send from there). Installation is acknowledged by an `AppendResponse`.
    SnapshotResponse {
        /// The snapshot's index.
        index: LogIndex,
        /// The offset of the next chunk the follower expects.
        next_offset: u64,
    },
}

impl MessageBody {
    /// A short name for logs and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::AppendEntries { .. } => "append",
            MessageBody::AppendResponse { .. } => "append-response",
            MessageBody::RequestVote { pre_vote: true, .. } => "pre-vote",
            MessageBody::RequestVote { .. } => "vote",
            MessageBody::VoteResponse { pre_vote: true, .. } => "pre-vote-response",
            MessageBody::VoteResponse { .. } => "vote-response",
            MessageBody::Heartbeat { .. } => "heartbeat",
            MessageBody::HeartbeatResponse { .. } => "heartbeat-response",
            MessageBody::ReadIndexRequest { .. } => "read-index",
            MessageBody::ReadIndexResponse { .. } => "read-index-response",
            MessageBody::InstallSnapshot { .. } => "snapshot",
            MessageBody::SnapshotResponse { .. } => "snapshot-response",
        }
    }

    /// True for messages only a leader sends, whose sender therefore is the leader of the
    /// message's term.
    pub fn is_from_leader(&self) -> bool {
        matches!(
            self,
            MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::ReadIndexResponse { .. }
                | MessageBody::InstallSnapshot { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::EntryPayload;

    #[test]
    fn bincode_round_trip() {
        let m = Message {
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::AppendEntries {
                prev_index: 4,
                prev_term: 2,
                entries: vec![Entry {
                    term: 3,
                    index: 5,
                    payload: EntryPayload::Command(vec![1, 2]),
                }],
                commit: 4,
            },
        };
        let bytes = bincode::serialize(&m).unwrap();
        assert_eq!(bincode::deserialize::<Message>(&bytes).unwrap(), m);
    }
}

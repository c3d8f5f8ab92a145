//! Basic Raft vocabulary shared by the core, storage and runtime.

use serde::{Deserialize, Serialize};

/// A node's identity inside the cluster (`n1` on the command line is id 1).
pub type NodeId = u64;
/// A Raft term: a logical clock that only grows.
pub type Term = u64;
/// A position in the replicated log; the first entry has index 1, index 0 means "none".
pub type LogIndex = u64;

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// Appended by a new leader when it takes office, so that an entry of its own term
    /// can commit (and with it every earlier entry).
    Noop,
    /// An opaque command for the state machine (the key-value store decodes it).
    Command(Vec<u8>),
}

/// One log entry. Two entries with the same index and term are identical (log matching).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: LogIndex,
    pub payload: EntryPayload,
}

/// The state that must be on disk before any message that depends on it leaves the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub voted_for: Option<NodeId>,
    /// The highest index known committed (persisted lazily; used to avoid serving an older
    /// state machine after a restart).
    pub commit: LogIndex,
}

/// Renders a node id the way people and the harness name nodes: `n3`.
pub fn node_name(id: NodeId) -> String {
    format!("n{id}")
}

/// Parses `n3` or `3` into a node id.
pub fn parse_node_name(s: &str) -> Option<NodeId> {
    s.strip_prefix('n').unwrap_or(s).parse().ok()
}

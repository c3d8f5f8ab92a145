//! Basic Raft vocabulary shared by the core, storage and runtime.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

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
    /// A cluster configuration. It takes effect on a node as soon as it is in that node's
    /// log (committed or not), and is reverted if the entry is truncated away.
    Config(ClusterConfig),
}

/// A cluster configuration: who votes, and during a joint-consensus change also who voted
/// before. Elections and commitment need a majority of `voters` and, while `outgoing` is not
/// empty, separately a majority of `outgoing` too.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// The voters (C_new during a joint change).
    pub voters: BTreeSet<NodeId>,
    /// The previous voters while the configuration is joint (C_old,new); empty otherwise.
    pub outgoing: BTreeSet<NodeId>,
    /// Opaque data the runtime attaches (the members' addresses); the core never reads it.
    pub context: Vec<u8>,
}

impl ClusterConfig {
    /// A simple (non-joint) configuration of `voters` with no context.
    pub fn simple(voters: impl IntoIterator<Item = NodeId>) -> ClusterConfig {
        ClusterConfig {
            voters: voters.into_iter().collect(),
            outgoing: BTreeSet::new(),
            context: Vec::new(),
        }
    }

    /// True while a joint-consensus change is in progress.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` votes in either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    /// Every voter of either half, ascending.
    pub fn all_voters(&self) -> BTreeSet<NodeId> {
        self.voters.union(&self.outgoing).copied().collect()
    }
}

/// What a snapshot covers: the state machine after applying every entry up to `index`
/// (whose term is `term`), and the configuration in effect at that index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last index the snapshot includes.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
    /// The configuration in effect at `index` (the last config entry at or before it).
    pub config: ClusterConfig,
}

/// A snapshot: its metadata and the serialized state machine (opaque to the core). The data
/// is shared, not copied, between the core, Readies and storage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The state machine's bytes.
    pub data: Arc<Vec<u8>>,
}

/// One log entry. Two entries with the same index and term are identical (log matching).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: LogIndex,
    pub payload: EntryPayload,
}

impl Entry {
    /// Bytes the entry adds to an encoded AppendEntries message: its payload plus a fixed
    /// allowance for term, index and framing. Never less than the encoded size (bincode
    /// encodes integers and lengths in at most 8 bytes each), so a batch whose sizes sum to
    /// at most N encodes to at most N plus the message's own few header bytes.
    pub fn size_bytes(&self) -> usize {
        const FIXED: usize = 32;
        let payload = match &self.payload {
            EntryPayload::Noop => 0,
            EntryPayload::Command(c) => 8 + c.len(),
            EntryPayload::Config(c) => {
                24 + 8 * (c.voters.len() + c.outgoing.len()) + c.context.len()
            }
        };
        FIXED + payload
    }
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

//! The Raft core: a pure, deterministic state machine. Messages and ticks go in; messages to
//! send, entries and hard state to persist, and committed entries to apply come out. No
//! sockets, clocks or threads live here, so every hard case can be replayed in a test.
//!
//! - [`types`]: log entries, hard state, ids.
//! - [`config`]: [`Config`] and the deliberate [`Bugs`].
//! - [`message`]: the wire messages between nodes.
//! - [`log`]: the in-memory log with persistence and apply cursors, compaction behind a
//!   snapshot, and the configuration entries it holds (a configuration is in effect as soon
//!   as it is in the log, and reverts if truncated away).
//! - [`progress`]: the leader's per-follower replication state (probe / replicate).
//! - [`quorum`]: majority arithmetic, joint (two-majority) configurations.
//! - [`ready`]: what the core hands out ([`Ready`]) and its errors.
//! - `core`: the [`Raft`] state machine itself: state, ticks, elections, replication and
//!   commit, `ready` / `advance`.
//! - `reads`: read index, leases, and the follower's half of the lease (more `impl Raft`).
//! - `membership`: joint-consensus membership changes ([`Raft::propose_membership`]:
//!   learners catch up, then C_old,new, then C_new).
//! - `snapshot`: compaction and InstallSnapshot (chunked, one chunk in flight, no appends
//!   meanwhile).

pub mod config;
mod core;
pub mod log;
mod membership;
pub mod message;
pub mod progress;
pub mod quorum;
mod reads;
pub mod ready;
mod snapshot;
pub mod types;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use self::core::{node_seed, Raft};
pub use self::snapshot::SnapshotCheck;
pub use config::{Bugs, Config, ConfigError};
pub use message::{Message, MessageBody};
pub use ready::{CompactError, ProposeError, RaftStatus, ReadError, ReadState, Ready, Role};
pub use types::*;

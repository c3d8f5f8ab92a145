//! The node's configuration, as given on its command line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::bugs::Bug;
use crate::protocol::ReadMode;
use crate::raft::NodeId;
use crate::storage::FsyncPolicy;

/// `NODE_TEST_DIVERGE_PUTS=1` in a node's environment sets [`NodeConfig::test_diverge_puts`].
pub const TEST_DIVERGE_PUTS_ENV: &str = "NODE_TEST_DIVERGE_PUTS";

/// Everything the runtime needs to start a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Where this node accepts connections from its peers.
    pub peer_listen: String,
    /// Where this node accepts client and admin requests.
    pub client_listen: String,
    /// How this node reaches each other node's peer port (possibly through a nemesis
    /// proxy). Without `join` these nodes and this one are the initial voters; addresses in
    /// configuration entries (membership changes) override these.
    pub peers: BTreeMap<NodeId, String>,
    /// Start with no configuration and wait for a leader to add this node (`--join`);
    /// `peers` then only says how to reach the existing nodes.
    pub join: bool,
    /// Take a snapshot and compact the log once this many entries were applied since the
    /// last one (0: never).
    pub snapshot_entries: u64,
    /// Each node's client address, so "not leader" replies can name where the leader is.
    pub client_addrs: BTreeMap<NodeId, String>,
    pub data_dir: PathBuf,
    /// Length of one Raft tick on the node's clock.
    pub tick_ms: u64,
    pub heartbeat_ticks: u32,
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    /// The read path used when a request names none.
    pub default_read_mode: ReadMode,
    pub max_clock_drift: f64,
    pub fsync: FsyncPolicy,
    /// The deliberate bugs this node runs with (`--bug`, repeatable); empty for a correct
    /// node. The core's switches are derived by [`crate::bugs::raft_bugs`]; `skip-fsync` is
    /// applied to [`NodeConfig::fsync`] by the command line; the runtime asks [`NodeConfig::has`].
    pub bugs: BTreeSet<Bug>,
    /// Test-only fault, never a protocol bug: this replica's state machine applies every put
    /// as `value + 1`, so its data silently diverges from the other members' while the
    /// protocol itself runs correctly. Set only through the environment variable
    /// [`TEST_DIVERGE_PUTS_ENV`]; it exists so the harness's convergence check can be shown to
    /// catch a diverged member.
    pub test_diverge_puts: bool,
    /// How long a client request may wait inside the node before it is answered `Timeout`.
    pub request_timeout_ms: u64,
    /// The run's seed (the same for every node); the core derives this node's own seed from
    /// it and the id with [`crate::raft::node_seed`].
    pub seed: u64,
    /// Limits on the connections to both ports (see [`ConnLimits`]).
    pub limits: ConnLimits,
}

impl NodeConfig {
    /// Whether the deliberate bug `bug` is on.
    pub fn has(&self, bug: Bug) -> bool {
        self.bugs.contains(&bug)
    }
}

/// Limits on the connections to the node's ports, which anyone who reaches them can open.
/// Together they bound the memory connections can pin: about `frame_buffer_bytes` plus
/// [`READ_AHEAD`](super::frames::READ_AHEAD) per open connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections on the client port at most; at the cap each new connection closes
    /// the longest-idle one (see [`conn_limit`](super::conn_limit)).
    pub max_client_connections: usize,
    /// Open connections on the peer port at most, with the same policy.
    pub max_peer_connections: usize,
    /// Once a frame's first byte arrived, the whole frame must arrive within this time, or the
    /// connection is closed. Connections with no frame started may idle.
    pub frame_timeout: std::time::Duration,
    /// Bytes that unfinished frames of all connections together may buffer beyond each
    /// connection's first 64 KiB; a connection waits for its share (and may time out).
    pub frame_buffer_bytes: usize,
}

impl Default for ConnLimits {
    /// The node's defaults: 256 client and 64 peer connections, 10 s per frame, 64 MiB.
    fn default() -> Self {
        ConnLimits {
            max_client_connections: 256,
            max_peer_connections: 64,
            frame_timeout: std::time::Duration::from_secs(10),
            frame_buffer_bytes: 64 << 20,
        }
    }
}

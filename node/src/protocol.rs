//! The wire protocol of the node's client port (clients and the harness's admin requests).
//!
//! Every TCP connection of the system (client port and peer port alike) carries frames: a
//! 4-byte big-endian length followed by that many bytes of payload, at most
//! [`MAX_FRAME_BYTES`]. The nemesis proxies rely on this framing to drop or delay whole
//! messages. On the client port the payload is one JSON object: a [`Request`] from the
//! client, a [`Response`] from the node. Responses name the request they answer by `id`, so a
//! client may pipeline.

use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

use crate::command;
use crate::raft::{NodeId, Role};

/// The largest frame either side accepts; a larger length prefix closes the connection.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// The frame codec: u32 big-endian length prefix, bounded size. Everything writes frames
/// with it; the node reads its ports with [`crate::runtime::frames::FrameReader`] instead,
/// which does not reserve a frame's claimed length and bounds how long a frame may take
/// (README, "Node limits"). Readers of trusted peers (clients reading a node's answers,
/// the nemesis proxies) use this codec.
pub fn frame_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// How a read is served. See DESIGN.md, "The four read paths".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadMode {
    /// Proposed through the log like a write; answered when applied.
    Log,
    /// Leader records its commit index, confirms leadership with a quorum round, waits for apply.
    ReadIndex,
    /// Leader answers locally while its clock-bounded lease holds.
    Lease,
    /// A follower obtains a read index from the leader and waits for its own apply.
    Follower,
    /// Any node answers from its local state at once (not linearizable: the negative control).
    Stale,
}

impl ReadMode {
    /// Every mode, in the order reports list them.
    pub const ALL: [ReadMode; 5] = [
        ReadMode::Log,
        ReadMode::ReadIndex,
        ReadMode::Lease,
        ReadMode::Follower,
        ReadMode::Stale,
    ];

    /// The name used on the command line and in histories (`read-index`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMode::Log => "log",
            ReadMode::ReadIndex => "read-index",
            ReadMode::Lease => "lease",
            ReadMode::Follower => "follower",
            ReadMode::Stale => "stale",
        }
    }
}

impl std::fmt::Display for ReadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ReadMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReadMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown read mode {s:?} (expected log, read-index, lease, follower or stale)"
                )
            })
    }
}

/// A request on the client port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client; echoed in the response.
    pub id: u64,
    pub op: Operation,
}

/// Re-exported from [`crate::command`], where the write commands live.
pub use crate::command::WriteId;

/// What a client or the harness asks of a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Operation {
    /// Read a key through the given path (the node's `--read-mode` when `None`).
    Get { key: String, mode: Option<ReadMode> },
    /// Set a key to an integer (JSON: `{"type":"put","key":..,"value":..,"write_id":..}`).
    Put(command::Put),
    /// Set a key to `new` if its value is `expected` (`None`: the key has no value).
    Cas(command::Cas),
    /// Add an element to the set stored at a key (the set workload).
    Add(command::Add),
    /// Admin: the node's role, term, leader and indexes.
    Status,
    /// Admin: set (any field given) and report the node's clock offset and rate.
    Clock {
        offset_ms: Option<f64>,
        rate: Option<f64>,
    },
    /// Admin, to the leader: move the cluster to `voters` by joint consensus. New voters
    /// first catch up as learners. `addrs` names how to reach every member of the new
    /// configuration (and new ones before they are voters); it travels in the config entries
    /// so every node learns it. Answered with [`Reply::Members`] once the new configuration
    /// is committed; refused (definite) while another change is in progress.
    ChangeMembership {
        voters: Vec<NodeId>,
        addrs: Vec<MemberAddrs>,
    },
    /// Admin: the configuration this node has in effect.
    Members,
    /// Admin: set the failpoint `name` to `action` (`off`, or `[P%][N*]sleep(MS)` /
    /// `[P%][N*]panic`; see [`crate::failpoints`]). Answered with [`Reply::Failpoints`];
    /// refused `invalid` for an unknown name or a malformed action, changing nothing.
    Failpoint { name: String, action: String },
    /// Admin: every failpoint of this node, with what its window is for and its action.
    Failpoints,
}

/// How the nodes of the cluster reach one member. (Lists rather than maps keyed by node
/// id: JSON object keys are strings, which the tagged request enum cannot turn into ids.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddrs {
    /// The member.
    pub id: NodeId,
    /// The member's peer address, used by nodes not listed in `peer_via`.
    pub peer: String,
    /// The member's client address (for "not leader" hints).
    pub client: String,
    /// Per node: the address that node must use to reach this member (for instance the
    /// nemesis proxy for that directed pair).
    #[serde(default)]
    pub peer_via: Vec<(NodeId, String)>,
}

/// A node's configuration, as answered to [`Operation::Members`] and
/// [`Operation::ChangeMembership`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// The voters (C_new while joint).
    pub voters: Vec<NodeId>,
    /// The previous voters while a joint configuration is in effect; empty otherwise.
    pub outgoing: Vec<NodeId>,
    /// The log index of the configuration entry (0: the initial configuration).
    pub config_index: u64,
    /// Whether this node knows that entry committed.
    pub committed: bool,
    /// The snapshot index of this node's log (0 without one).
    pub snapshot_index: u64,
}

/// The value stored at a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Set(Vec<i64>),
}

/// A response on the client port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The `id` of the request this answers.
    pub id: u64,
    pub result: Result<Reply, ErrorReply>,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// A read's value (`None`: no value).
    Value {
        value: Option<Value>,
    },
    /// A write (put, add) took effect.
    Written,
    /// A cas: `swapped` false means the current value was not the expected one (a definite
    /// no-op); `current` is the value it saw.
    Cas {
        swapped: bool,
        current: Option<i64>,
    },
    Status(Status),
    Clock(ClockState),
    Members(Members),
    /// Every failpoint of the node with its action now (after the request's change).
    Failpoints {
        points: Vec<crate::failpoints::FailpointState>,
    },
}

/// A node's view of itself, for the harness and for people.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub id: NodeId,
    /// The node's role; on the wire `follower`, `candidate`, `pre-candidate` or `leader`.
    pub role: Role,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub clock: ClockState,
}

/// The node's clock: `offset_ms + rate × (monotonic time since start)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockState {
    pub offset_ms: f64,
    pub rate: f64,
    /// The clock's current reading in milliseconds.
    pub now_ms: f64,
}

/// Why a request failed, and whether it certainly did not take effect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    /// True when the operation certainly did not take effect (the harness records `fail`);
    /// false when it may have (the harness records `info`).
    pub definite: bool,
    pub message: String,
}

/// The kinds of failure a node reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ErrorKind {
    /// This node is not the leader; `leader` is the one it knows of, with its client address.
    NotLeader {
        leader: Option<NodeId>,
        leader_addr: Option<String>,
    },
    /// The node lost leadership or its entry was overwritten after proposing: outcome unknown.
    LeadershipLost,
    /// The node gave up waiting (the operation may still take effect).
    Timeout,
    /// The request cannot be served (wrong value type, bad argument): certainly not applied.
    Invalid,
    /// The node is shutting down or overloaded.
    Unavailable,
}

impl ErrorReply {
    /// A "not leader" refusal: the request was never proposed, so it is definite.
    pub fn not_leader(leader: Option<NodeId>, leader_addr: Option<String>) -> Self {
        ErrorReply {
            message: match leader {
                Some(l) => format!("not leader; leader is n{l}"),
                None => "not leader; no leader known".into(),
            },
            kind: ErrorKind::NotLeader {
                leader,
                leader_addr,
            },
            definite: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_mode_names_round_trip() {
        for m in ReadMode::ALL {
            assert_eq!(m.as_str().parse::<ReadMode>().unwrap(), m);
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.as_str())
            );
        }
        assert!("fast".parse::<ReadMode>().is_err());
    }

    #[test]
    fn requests_are_json_objects() {
        let r = Request {
            id: 7,
            op: Operation::Cas(command::Cas {
                key: "k1".into(),
                expected: None,
                new: 3,
                write_id: WriteId { client: 1, seq: 2 },
            }),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        let r = Request {
            id: 8,
            op: Operation::ChangeMembership {
                voters: vec![1, 4],
                addrs: vec![MemberAddrs {
                    id: 4,
                    peer: "127.0.0.1:1".into(),
                    client: "127.0.0.1:2".into(),
                    peer_via: vec![(1, "127.0.0.1:3".into())],
                }],
            },
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
    }

    /// A status reply is byte-identical to the one written when `role` was a string.
    #[test]
    fn status_json_names_the_role() {
        let st = |role| Status {
            id: 2,
            role,
            term: 7,
            leader: Some(1),
            commit_index: 10,
            applied_index: 9,
            last_log_index: 11,
            clock: ClockState {
                offset_ms: 0.0,
                rate: 1.0,
                now_ms: 5.5,
            },
        };
        for (role, name) in [
            (Role::Follower, "follower"),
            (Role::PreCandidate, "pre-candidate"),
            (Role::Candidate, "candidate"),
            (Role::Leader, "leader"),
        ] {
            let json = format!(
                r#"{{"id":2,"role":"{name}","term":7,"leader":1,"commit_index":10,"applied_index":9,"last_log_index":11,"clock":{{"offset_ms":0.0,"rate":1.0,"now_ms":5.5}}}}"#
            );
            assert_eq!(serde_json::to_string(&st(role)).unwrap(), json);
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), st(role));
        }
    }

    /// Every request shape serializes to exactly the JSON clients have always sent (golden
    /// strings captured before the write commands got their own structs), and parses back.
    #[test]
    fn request_json_is_stable() {
        let wid = WriteId { client: 3, seq: 8 };
        let cases: Vec<(Operation, &str)> = vec![
            (
                Operation::Get {
                    key: "k".into(),
                    mode: Some(ReadMode::ReadIndex),
                },
                r#"{"id":12,"op":{"type":"get","key":"k","mode":"read-index"}}"#,
            ),
            (
                Operation::Get {
                    key: "k".into(),
                    mode: None,
                },
                r#"{"id":12,"op":{"type":"get","key":"k","mode":null}}"#,
            ),
            (
                Operation::Put(command::Put {
                    key: "k".into(),
                    value: -1,
                    write_id: wid,
                }),
                r#"{"id":12,"op":{"type":"put","key":"k","value":-1,"write_id":{"client":3,"seq":8}}}"#,
            ),
            (
                Operation::Cas(command::Cas {
                    key: "k".into(),
                    expected: Some(1),
                    new: 2,
                    write_id: wid,
                }),
                r#"{"id":12,"op":{"type":"cas","key":"k","expected":1,"new":2,"write_id":{"client":3,"seq":8}}}"#,
            ),
            (
                Operation::Cas(command::Cas {
                    key: "k".into(),
                    expected: None,
                    new: 2,
                    write_id: wid,
                }),
                r#"{"id":12,"op":{"type":"cas","key":"k","expected":null,"new":2,"write_id":{"client":3,"seq":8}}}"#,
            ),
            (
                Operation::Add(command::Add {
                    key: "s".into(),
                    element: 9,
                    write_id: wid,
                }),
                r#"{"id":12,"op":{"type":"add","key":"s","element":9,"write_id":{"client":3,"seq":8}}}"#,
            ),
            (Operation::Status, r#"{"id":12,"op":{"type":"status"}}"#),
            (
                Operation::Clock {
                    offset_ms: Some(-5.0),
                    rate: None,
                },
                r#"{"id":12,"op":{"type":"clock","offset_ms":-5.0,"rate":null}}"#,
            ),
            (
                Operation::ChangeMembership {
                    voters: vec![1, 2],
                    addrs: vec![MemberAddrs {
                        id: 2,
                        peer: "p".into(),
                        client: "c".into(),
                        peer_via: vec![(1, "v".into())],
                    }],
                },
                r#"{"id":12,"op":{"type":"change_membership","voters":[1,2],"addrs":[{"id":2,"peer":"p","client":"c","peer_via":[[1,"v"]]}]}}"#,
            ),
            (Operation::Members, r#"{"id":12,"op":{"type":"members"}}"#),
            (
                Operation::Failpoint {
                    name: "n".into(),
                    action: "off".into(),
                },
                r#"{"id":12,"op":{"type":"failpoint","name":"n","action":"off"}}"#,
            ),
            (
                Operation::Failpoints,
                r#"{"id":12,"op":{"type":"failpoints"}}"#,
            ),
        ];
        for (op, golden) in cases {
            let r = Request { id: 12, op };
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, golden);
            assert_eq!(serde_json::from_str::<Request>(golden).unwrap(), r);
        }
    }
}

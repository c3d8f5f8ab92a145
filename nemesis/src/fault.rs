//! The fault vocabulary: the families `--nemesis` names ([`FaultFamily`], [`parse_families`]),
//! the faults the planner draws and the harness applies, heals and records ([`Fault`],
//! [`ClockSkew`], [`Script`]), and the overlap rules that say which faults may be active
//! together ([`can_overlap`]). Pure data and pure functions: no randomness, no I/O; the seeded
//! choice of which fault comes next is [`crate::schedule::Planner`]'s.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::partition::Grudge;
use crate::targets::Target;
use node::failpoints::Failpoint;
use node::raft::{node_name, NodeId};

/// A family of faults, as named by `--nemesis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultFamily {
    /// Network partitions of several shapes (proxy cuts).
    Partition,
    /// Every link delayed (fixed plus jitter).
    Delay,
    /// Every link drops frames with some probability.
    Loss,
    /// kill -9 and, at heal, restart on the same data directory.
    Kill,
    /// SIGSTOP and, at heal, SIGCONT.
    Pause,
    /// Clock rate skew and offset bumps through the node's admin request.
    Clock,
    /// Remove a node and add it back through joint consensus.
    Membership,
    /// Power loss: SIGKILL, drop every write not yet durable on the node's lazy filesystem,
    /// and at heal restart on what is durable. Needs FUSE; not part of `all`.
    Power,
    /// Writes and fsyncs on the node's lazy filesystem delayed (with jitter). Needs FUSE;
    /// not part of `all`.
    SlowDisk,
    /// A named failpoint in the node's code set to a delay or a crash (off at heal; a node
    /// that crashed there is restarted). Needs a system with failpoints; not part of `all`.
    Failpoint,
}

impl FaultFamily {
    /// Every family, in the order `--nemesis all` lists them.
    pub const ALL: [FaultFamily; 7] = [
        FaultFamily::Partition,
        FaultFamily::Delay,
        FaultFamily::Loss,
        FaultFamily::Kill,
        FaultFamily::Pause,
        FaultFamily::Clock,
        FaultFamily::Membership,
    ];

    /// The families that need the lazy filesystem (FUSE) under every data directory; named
    /// explicitly, never enabled by `all`.
    pub const LAZY_FS: [FaultFamily; 2] = [FaultFamily::Power, FaultFamily::SlowDisk];

    /// The family of this name (`all` and `none` are not families).
    pub fn from_name(name: &str) -> Option<FaultFamily> {
        FaultFamily::ALL
            .into_iter()
            .chain(FaultFamily::LAZY_FS)
            .chain([FaultFamily::Failpoint])
            .find(|f| f.as_str() == name)
    }

    /// Whether this family needs the lazy filesystem under the data directories.
    pub fn needs_lazy_fs(self) -> bool {
        FaultFamily::LAZY_FS.contains(&self)
    }

    /// The name on the command line and in history events.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultFamily::Partition => "partition",
            FaultFamily::Delay => "delay",
            FaultFamily::Loss => "loss",
            FaultFamily::Kill => "kill",
            FaultFamily::Pause => "pause",
            FaultFamily::Clock => "clock",
            FaultFamily::Membership => "membership",
            FaultFamily::Power => "power",
            FaultFamily::SlowDisk => "slow-disk",
            FaultFamily::Failpoint => "failpoint",
        }
    }
}

/// Why `--nemesis` could not be parsed ([`parse_families`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseFamiliesError {
    /// A name in the list is no family, `all` nor `none`.
    #[error(
        "unknown nemesis {name:?} (expected none, partition, delay, loss, kill, pause, clock, \
         membership, power, slow-disk, failpoint or all)"
    )]
    UnknownFamily {
        /// The name as given (trimmed).
        name: String,
    },
}

/// Parses `--nemesis`: `none`, `all`, or a comma-separated list of families (order kept,
/// duplicates removed). Fails on the first name that is no family.
pub fn parse_families(s: &str) -> Result<Vec<FaultFamily>, ParseFamiliesError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        match part {
            "none" | "" => {}
            "all" => {
                for f in FaultFamily::ALL {
                    if !out.contains(&f) {
                        out.push(f);
                    }
                }
            }
            name => {
                let f = FaultFamily::from_name(name).ok_or_else(|| {
                    ParseFamiliesError::UnknownFamily {
                        name: name.to_string(),
                    }
                })?;
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
    }
    Ok(out)
}

/// The scripts of [`Fault::Scripted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// The Raft paper's Figure 8: entries of an earlier term reach a majority in a later
    /// term, and a node holding an entry of a term in between then wins.
    Figure8,
    /// A follower holds uncommitted entries of the old leader; a new leader overwrites only
    /// the first of them, then the old leader wins again and appends after the rest.
    StaleTail,
    /// A deposed leader holding a long tail of uncommitted entries of its old term stands
    /// for election just as the leader of a newer term is cut off: its log is longer but its
    /// last term older, so the election restriction must keep it from winning.
    DeposedTail,
    /// A leader cut off from everyone right after winning, before the entry of its term
    /// commits, while clients read from it.
    NewLeaderIsolated,
}

impl Script {
    /// Every script, in the order of [`crate::schedule::PARTITION_SHAPES`].
    pub const ALL: [Script; 4] = [
        Script::Figure8,
        Script::StaleTail,
        Script::DeposedTail,
        Script::NewLeaderIsolated,
    ];

    /// The partition shape name that draws it.
    pub fn as_str(self) -> &'static str {
        match self {
            Script::Figure8 => "figure-8",
            Script::StaleTail => "stale-tail",
            Script::DeposedTail => "deposed-tail",
            Script::NewLeaderIsolated => "new-leader-isolated",
        }
    }

    /// The script a partition shape name draws, if it names one.
    pub fn from_name(name: &str) -> Option<Script> {
        Script::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The smallest cluster the script can be played on: the Figure 8 scripts need a cast of
    /// four roles with a majority between them; the election-window scripts need a leader,
    /// the node it is cut off from, and one more to make a majority without it.
    pub fn min_nodes(self) -> usize {
        match self {
            Script::Figure8 | Script::StaleTail => 5,
            Script::DeposedTail | Script::NewLeaderIsolated => 3,
        }
    }
}

/// One clock change on one node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockSkew {
    /// Offset to set (ms), jumping the node's clock by that much.
    pub offset_ms: f64,
    /// Rate to set (1.0 = real time).
    pub rate: f64,
}

/// A fault, fully described: the harness applies it, heals it, and records it.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Cut the links the grudge names.
    Partition { shape: &'static str, grudge: Grudge },
    /// Delay every frame on every link.
    Delay { fixed_ms: u64, jitter_ms: u64 },
    /// Delay every frame on these directed links `(from, to)` only.
    SlowLinks {
        links: Vec<(NodeId, NodeId)>,
        fixed_ms: u64,
    },
    /// Drop each frame on every link with probability `p`.
    Loss { p: f64 },
    /// SIGKILL these nodes (restarted at heal).
    Kill { target: Target, nodes: Vec<NodeId> },
    /// SIGSTOP these nodes (resumed at heal).
    Pause { target: Target, nodes: Vec<NodeId> },
    /// Change these nodes' clocks (reset at heal).
    Clock { skews: BTreeMap<NodeId, ClockSkew> },
    /// Remove this node from the voters through joint consensus (added back at heal).
    Membership { removed: NodeId, was_leader: bool },
    /// Cut these nodes' power: SIGKILL, then drop what their lazy filesystems hold that is
    /// not durable (restarted on what is, at heal).
    Power { target: Target, nodes: Vec<NodeId> },
    /// Delay every write and fsync on these nodes' lazy filesystems by `min_ms..=max_ms`
    /// (full speed again at heal).
    SlowDisk {
        target: Target,
        nodes: Vec<NodeId>,
        min_ms: u64,
        max_ms: u64,
    },
    /// Set the node failpoint `point` to `action` (the node's syntax, e.g. `50%sleep(200)`,
    /// `1*panic`) on these nodes; off at heal, and a node that crashed there restarted.
    Failpoint {
        point: Failpoint,
        action: String,
        target: Target,
        nodes: Vec<NodeId>,
        /// Set this long after the fault's earlier parts (0: with them): an election
        /// window deposes the leader once the followers' backlog has built up.
        after_ms: u64,
    },
    /// Several faults at once, applied in order and healed in reverse: for instance the
    /// leader's clock slowed while it is isolated, so that it believes it still leads for
    /// longer than the others wait before electing a new leader.
    Combined { parts: Vec<Fault> },
    /// A script the harness plays on the live cluster (at least [`Script::min_nodes`]
    /// nodes), moving from one partition to the next as the nodes report each step done (see
    /// `harness::scripted`).
    /// `old` leads at the start and `peer` receives its uncommitted entries (`deposed-tail`
    /// keeps it on `old`'s side from five nodes only; `new-leader-isolated` casts no peer and
    /// ignores it); the harness casts the other parts from what the nodes report.
    Scripted {
        script: Script,
        old: NodeId,
        peer: NodeId,
    },
    /// Faults one after another: each step is healed the moment the next is applied. For
    /// instance a follower isolated until it lags, then let back in at the moment the leader
    /// is isolated, so that the lagging node stands in the election that follows.
    Sequence { steps: Vec<Fault> },
}

impl Fault {
    /// The family that draws this fault: a combined fault or a sequence with a partition
    /// part is drawn by the partition family (its shape combines the parts).
    pub fn family(&self) -> FaultFamily {
        match self {
            Fault::Partition { .. } | Fault::Scripted { .. } => FaultFamily::Partition,
            Fault::Delay { .. } | Fault::SlowLinks { .. } => FaultFamily::Delay,
            Fault::Loss { .. } => FaultFamily::Loss,
            Fault::Kill { .. } => FaultFamily::Kill,
            Fault::Pause { .. } => FaultFamily::Pause,
            Fault::Clock { .. } => FaultFamily::Clock,
            Fault::Membership { .. } => FaultFamily::Membership,
            Fault::Power { .. } => FaultFamily::Power,
            Fault::SlowDisk { .. } => FaultFamily::SlowDisk,
            Fault::Failpoint { .. } => FaultFamily::Failpoint,
            Fault::Combined { parts: faults } | Fault::Sequence { steps: faults } => {
                let families: Vec<FaultFamily> = faults.iter().map(Fault::family).collect();
                if families.contains(&FaultFamily::Partition) {
                    FaultFamily::Partition
                } else {
                    families.first().copied().unwrap_or(FaultFamily::Partition)
                }
            }
        }
    }

    /// The single faults this (combined) fault applies at once, in applying order.
    pub fn parts(&self) -> Vec<&Fault> {
        match self {
            Fault::Combined { parts } => parts.iter().flat_map(Fault::parts).collect(),
            single => vec![single],
        }
    }

    /// The steps of a sequence, one after another (a single step for any other fault).
    pub fn steps(&self) -> Vec<&Fault> {
        match self {
            Fault::Sequence { steps } => steps.iter().collect(),
            single => vec![single],
        }
    }

    /// The history event value: `{"fault": kind, ...}` with node names like `n3`.
    pub fn describe(&self) -> serde_json::Value {
        let names = |v: &[NodeId]| v.iter().map(|&n| node_name(n)).collect::<Vec<_>>();
        match self {
            Fault::Partition { shape, grudge } => {
                let mut g = serde_json::Map::new();
                for (to, froms) in grudge.iter() {
                    let froms: Vec<NodeId> = froms.iter().copied().collect();
                    g.insert(node_name(*to), json!(names(&froms)));
                }
                json!({"fault": "partition", "shape": shape, "grudge": g})
            }
            Fault::Delay {
                fixed_ms,
                jitter_ms,
            } => json!({"fault": "delay", "fixed_ms": fixed_ms, "jitter_ms": jitter_ms}),
            Fault::SlowLinks { links, fixed_ms } => {
                let links: Vec<[String; 2]> = links
                    .iter()
                    .map(|&(f, t)| [node_name(f), node_name(t)])
                    .collect();
                json!({"fault": "delay", "links": links, "fixed_ms": fixed_ms, "jitter_ms": 0})
            }
            Fault::Scripted { script, old, peer } => json!({
                "fault": "script",
                "script": script.as_str(),
                "old": node_name(*old),
                "peer": node_name(*peer)
            }),
            Fault::Loss { p } => json!({"fault": "loss", "p": p}),
            Fault::Kill { target, nodes } => {
                json!({"fault": "kill", "target": target.as_str(), "nodes": names(nodes)})
            }
            Fault::Pause { target, nodes } => {
                json!({"fault": "pause", "target": target.as_str(), "nodes": names(nodes)})
            }
            Fault::Power { target, nodes } => {
                json!({"fault": "power", "target": target.as_str(), "nodes": names(nodes)})
            }
            Fault::SlowDisk {
                target,
                nodes,
                min_ms,
                max_ms,
            } => json!({
                "fault": "slow-disk",
                "target": target.as_str(),
                "nodes": names(nodes),
                "min_ms": min_ms,
                "max_ms": max_ms
            }),
            Fault::Failpoint {
                point,
                action,
                target,
                nodes,
                after_ms,
            } => {
                let mut v = json!({
                    "fault": "failpoint",
                    "point": point.name(),
                    "action": action,
                    "target": target.as_str(),
                    "nodes": names(nodes)
                });
                if *after_ms > 0 {
                    v["after_ms"] = json!(after_ms);
                }
                v
            }
            Fault::Clock { skews } => {
                let mut m = serde_json::Map::new();
                for (n, s) in skews {
                    m.insert(
                        node_name(*n),
                        json!({"offset_ms": s.offset_ms, "rate": s.rate}),
                    );
                }
                json!({"fault": "clock", "nodes": m})
            }
            Fault::Combined { parts } => json!({
                "fault": "combined",
                "parts": parts.iter().map(Fault::describe).collect::<Vec<_>>()
            }),
            Fault::Sequence { steps } => json!({
                "fault": "sequence",
                "steps": steps.iter().map(Fault::describe).collect::<Vec<_>>()
            }),
            Fault::Membership {
                removed,
                was_leader,
            } => json!({
                "fault": "membership",
                "removed": node_name(*removed),
                "was_leader": was_leader
            }),
        }
    }
}
/// What a fault changes, for the overlap rules.
#[derive(Default)]
struct Footprint {
    /// The families of its parts (a combined fault may span two).
    families: BTreeSet<FaultFamily>,
    /// Whether it sets proxy link states.
    network: bool,
    /// Whether it must run with no other fault active (scripts and sequences).
    exclusive: bool,
    /// Nodes whose process, clock or membership it changes.
    nodes: BTreeSet<NodeId>,
    /// Nodes it stops (killed or paused).
    down: BTreeSet<NodeId>,
    /// Whether it changes the membership.
    membership: bool,
}

impl Footprint {
    fn of(fault: &Fault) -> Footprint {
        let mut fp = Footprint::default();
        fp.add(fault);
        fp
    }

    fn add(&mut self, fault: &Fault) {
        match fault {
            Fault::Partition { .. } => {
                self.families.insert(FaultFamily::Partition);
                self.network = true;
            }
            Fault::Delay { .. } | Fault::SlowLinks { .. } => {
                self.families.insert(FaultFamily::Delay);
                self.network = true;
            }
            Fault::Loss { .. } => {
                self.families.insert(FaultFamily::Loss);
                self.network = true;
            }
            Fault::Kill { nodes, .. } => {
                self.families.insert(FaultFamily::Kill);
                self.nodes.extend(nodes);
                self.down.extend(nodes);
            }
            Fault::Pause { nodes, .. } => {
                self.families.insert(FaultFamily::Pause);
                self.nodes.extend(nodes);
                self.down.extend(nodes);
            }
            Fault::Power { nodes, .. } => {
                self.families.insert(FaultFamily::Power);
                self.nodes.extend(nodes);
                self.down.extend(nodes);
            }
            Fault::SlowDisk { .. } => {
                // Only the filesystem's speed: it touches no process, clock or membership,
                // and a power loss or kill of a slowed node keeps it slow.
                self.families.insert(FaultFamily::SlowDisk);
            }
            Fault::Clock { skews } => {
                self.families.insert(FaultFamily::Clock);
                self.nodes.extend(skews.keys());
            }
            Fault::Failpoint { action, nodes, .. } => {
                // A failpoint needs its nodes up to take the admin request; a crash at one
                // takes them down until the heal restarts them.
                self.families.insert(FaultFamily::Failpoint);
                self.nodes.extend(nodes);
                if crate::failpoint_faults::is_crash(action) {
                    self.down.extend(nodes);
                }
            }
            Fault::Membership { removed, .. } => {
                self.families.insert(FaultFamily::Membership);
                self.nodes.insert(*removed);
                self.membership = true;
            }
            Fault::Combined { parts } => parts.iter().for_each(|p| self.add(p)),
            Fault::Sequence { steps } => {
                steps.iter().for_each(|p| self.add(p));
                self.exclusive = true;
            }
            Fault::Scripted { .. } => {
                // Scripts cut links and slow them.
                self.families
                    .extend([FaultFamily::Partition, FaultFamily::Delay]);
                self.network = true;
                self.exclusive = true;
            }
        }
    }
}

/// Whether `candidate` may start while the `active` faults are applied, in a cluster of
/// `cluster_size` nodes, by the overlap rules of [`crate::schedule::Planner`]: always when
/// nothing is active; never beside a script or sequence; otherwise only with no family in common, at most one
/// network fault, disjoint nodes touched, and a quorum of voters left running while a
/// membership change is active.
pub fn can_overlap(candidate: &Fault, active: &[Fault], cluster_size: usize) -> bool {
    if active.is_empty() {
        return true;
    }
    let c = Footprint::of(candidate);
    if c.exclusive {
        return false;
    }
    let mut down = c.down.clone();
    let mut membership = c.membership;
    for a in active.iter().map(Footprint::of) {
        if a.exclusive
            || !c.families.is_disjoint(&a.families)
            || (c.network && a.network)
            || !c.nodes.is_disjoint(&a.nodes)
        {
            return false;
        }
        down.extend(a.down);
        membership |= a.membership;
    }
    if membership {
        // One node is out of the voters; the others must keep a majority of them running.
        let voters = cluster_size.saturating_sub(1);
        if down.len() + (voters / 2 + 1) > voters {
            return false;
        }
    }
    true
}

impl Fault {
    /// Whether this fault must run with no other fault active (a script or a sequence).
    pub fn needs_quiet(&self) -> bool {
        Footprint::of(self).exclusive
    }
}

//! The fault schedule's planner: which fault comes next, and when, and which faults may be
//! active together, drawn from the test's seed. It is pure (no I/O); the harness applies and
//! heals what it plans and records each start and stop in the history. See [`Planner`] for the
//! order of families and the overlap rules.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::failpoint_faults::{FailpointPlanner, FailpointSet};
use crate::partition;
use crate::targets::{self, Target};
use node::raft::NodeId;

pub use crate::fault::{
    can_overlap, parse_families, ClockSkew, Fault, FaultFamily, ParseFamiliesError, Script,
};
pub use crate::partition_shape::{PartitionShape, LEADER_ISOLATING_SHAPES, PARTITION_SHAPES};

/// Why a planner could not be built ([`Planner::new`], [`Planner::with_partition_shapes`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The membership family is enabled on fewer than three nodes.
    #[error("the membership nemesis removes a voter and needs at least 3 nodes, got {nodes}")]
    MembershipNeedsThreeNodes {
        /// The cluster's size.
        nodes: usize,
    },
    /// The clock rate range is reversed or outside what the node accepts (`lo..=hi`).
    #[error("need {lo} <= --clock-rate-min <= --clock-rate-max <= {hi}, got {min} and {max}")]
    ClockRates {
        /// The node's smallest rate.
        lo: f64,
        /// The node's largest rate.
        hi: f64,
        /// The configured `--clock-rate-min`.
        min: f64,
        /// The configured `--clock-rate-max`.
        max: f64,
    },
    /// The configuration names no node.
    #[error("no nodes")]
    NoNodes,
    /// A name given to [`Planner::with_partition_shapes`] is no partition shape.
    #[error(
        "unknown partition shape {name:?} (expected some of {})",
        PARTITION_SHAPES.join(", ")
    )]
    UnknownPartitionShape {
        /// The name as given (trimmed).
        name: String,
    },
}

/// Options of the planner.
#[derive(Clone, Debug)]
pub struct PlannerConfig {
    /// Enabled families (membership is refused: see [`Planner::new`]).
    pub families: Vec<FaultFamily>,
    /// The cluster's nodes.
    pub nodes: Vec<NodeId>,
    /// Range of clock rates the clock nemesis draws from.
    pub clock_rate_min: f64,
    pub clock_rate_max: f64,
    /// Largest clock offset bump, in ms either way.
    pub clock_bump_ms: f64,
    /// The failpoints the failpoint family may set (see [`crate::failpoint_faults`]).
    pub failpoints: FailpointSet,
}

/// Draws faults and intervals from one seeded generator: the same seed, the same answers to
/// "who is the leader" and the same active faults give the same sequence of faults.
///
/// # Which family comes next
/// The enabled families are visited round-robin: at the start of each round they are shuffled
/// once (seeded), and each is drawn once before the next round begins; the shape and the
/// target within a family are drawn at random. So with F families and a fault started about
/// every interval, every family is applied within the first F draws, whatever the seed (a
/// uniform pick each time can leave a family out of a whole run).
///
/// # A leader-isolating partition in every run
/// Until one has been drawn, a partition is one of [`PartitionShape::LEADER_ISOLATING`]
/// (among those enabled; `lagging-rejoin` only when no other of them is, as it runs alone): the
/// leader cut off from every majority is the fault that exercises elections, stale leaders and
/// lease expiry, and a short run drawing only `halves` or `bridge` might never isolate the
/// leader. Those shapes aim at the leader, so while none is known the partition family lets
/// the later families of the round go first (a few times at most).
/// `--partition-shapes` wins: when it allows none of those shapes, nothing is forced.
///
/// # Overlap
/// With overlap on (the default), a fault may start while others are active, as Jepsen's
/// combined nemesis does, provided [`can_overlap`] allows it; the family at the head of the
/// round that cannot start now waits there while a later family of the round starts. The
/// rules make sure healing one fault never undoes or blocks another:
/// - **At most one fault per family** at a time: windows are paired by fault kind in the
///   history, and two clock faults (or two kills) would heal each other's nodes.
/// - **One network fault at a time** (partition, delay, loss, slow links): the proxies hold one
///   state per link and healing any of them restores every link.
/// - **Process, clock and membership faults touch disjoint nodes**: a node is killed, paused,
///   clock-skewed or removed by at most one active fault. A paused or killed node cannot take
///   an admin request (its clock could not be set or reset), a restart after a kill resets the
///   clock a skew set, and killing or pausing the node being removed would race the
///   membership change about it.
/// - **A membership change keeps a quorum**: while a node is removed (or being removed or
///   added back), the killed and paused nodes together leave a majority of the remaining
///   voters running, so the change and its undo can commit.
/// - **Scripts and sequences run alone** (`figure-8`, `stale-tail`, `deposed-tail`,
///   `new-leader-isolated`, `lagging-rejoin`): they
///   move between precise states of the cluster. When one is drawn while other faults are
///   active, nothing new starts until they are healed, and then that shape is drawn (with
///   the leader of that moment).
///
/// With overlap off ([`Planner::with_overlap`]), a fault is planned only when none is active.
pub struct Planner {
    rng: ChaCha8Rng,
    config: PlannerConfig,
    /// Partition shapes allowed (empty: all); see [`Planner::with_partition_shapes`].
    only_shapes: Vec<PartitionShape>,
    /// Whether faults of different families may be active at once.
    overlap: bool,
    /// The families of the current round not yet drawn, in visiting order.
    round: Vec<FaultFamily>,
    /// Whether a partition isolating the leader from a majority has been planned.
    leader_isolated: bool,
    /// A shape that needs the cluster to itself, drawn while other faults were active.
    waiting_for_quiet: Option<PartitionShape>,
    /// How often the partition family has let others go first while no leader was known.
    leader_waits: u32,
    /// Whether a power loss of every node has been planned (the first power fault of a run
    /// is one: it is the case that loses acknowledged writes of a node that acknowledges
    /// before its fsync, and a short run drawing targets at random might never cut them all).
    power_all_done: bool,
    /// The failpoint family's own draws.
    failpoints: FailpointPlanner,
}

/// How many tries the leader-isolating partition waits for a known leader before it is drawn
/// without one (then as a shape that needs no leader; the promise carries to the next
/// partition).
const LEADER_WAITS: u32 = 3;

/// How often a family is redrawn for a fault that fits beside the active ones (targets are
/// random, so a second draw often avoids a busy node) before the next family is tried.
const DRAWS_PER_FAMILY: usize = 8;

/// One of `choices`; the leader target falls back to one node while no leader is known.
fn draw_target(choices: &[Target], leader: Option<NodeId>, rng: &mut ChaCha8Rng) -> Target {
    match *choices.choose(rng).expect("non-empty") {
        Target::Leader if leader.is_none() => Target::One,
        t => t,
    }
}

/// A clock rate in the configured range, rounded to three decimals.
fn draw_rate(rng: &mut ChaCha8Rng, c: &PlannerConfig) -> f64 {
    let rate = if c.clock_rate_min < c.clock_rate_max {
        rng.gen_range(c.clock_rate_min..=c.clock_rate_max)
    } else {
        c.clock_rate_min
    };
    (rate * 1000.0).round() / 1000.0
}

/// The order in which [`available_shapes`] lists the shapes (the seeded draw picks by
/// position, so this order is part of what a seed means). It is not
/// [`PartitionShape::ALL`]'s order (there the clock shapes come before the scripts), and
/// must not become it: that would change what every recorded seed draws.
const DRAW_ORDER: [PartitionShape; 15] = [
    PartitionShape::IsolateOne,
    PartitionShape::Halves,
    PartitionShape::MajoritiesRing,
    PartitionShape::Bridge,
    PartitionShape::IsolateLeader,
    PartitionShape::LeaderInMinority,
    PartitionShape::OneWayLeaderDeaf,
    PartitionShape::LaggingRejoin,
    PartitionShape::Figure8,
    PartitionShape::StaleTail,
    PartitionShape::DeposedTail,
    PartitionShape::NewLeaderIsolated,
    PartitionShape::SlowIsolatedLeader,
    PartitionShape::IsolatedLeaderClockBack,
    PartitionShape::DeafLeaderFastFollower,
];

/// Every partition shape that can be drawn for a cluster of `nodes` nodes, given whether a
/// leader is known (the leader shapes aim at it) and whether the clock family is enabled (the
/// shapes that combine a partition with a clock change need it); see
/// [`PartitionShape::available`].
fn available_shapes(nodes: usize, leader_known: bool, clock_enabled: bool) -> Vec<PartitionShape> {
    DRAW_ORDER
        .into_iter()
        .filter(|s| s.available(nodes, leader_known, clock_enabled))
        .collect()
}

/// A partition of one of `names` (isolate-one when it is empty), drawn from `rng`, with the
/// name of the shape drawn.
fn partition_fault(
    nodes: &[NodeId],
    leader: Option<NodeId>,
    skew_rate: f64,
    bump_ms: f64,
    names: &[PartitionShape],
    rng: &mut ChaCha8Rng,
) -> (Fault, PartitionShape) {
    let fallback = || {
        let fault = Fault::Partition {
            shape: PartitionShape::IsolateOne.as_str(),
            grudge: partition::isolate(nodes, nodes[0]).unwrap_or_default(),
        };
        (fault, PartitionShape::IsolateOne)
    };
    // Shapes that need more nodes than we have are redrawn (bounded).
    for _ in 0..8 {
        let Some(&name) = names.choose(rng) else {
            return fallback();
        };
        let l = leader.unwrap_or(nodes[0]);
        if let Some(script) = name.script() {
            let others: Vec<NodeId> = nodes.iter().copied().filter(|&n| n != l).collect();
            let Some(&peer) = others.choose(rng) else {
                continue;
            };
            return (
                Fault::Scripted {
                    script,
                    old: l,
                    peer,
                },
                name,
            );
        }
        let shape = match name {
            PartitionShape::IsolateOne => partition::Shape::Isolate { target: None },
            PartitionShape::Halves => partition::Shape::Halves,
            PartitionShape::MajoritiesRing => partition::Shape::MajoritiesRing,
            PartitionShape::Bridge => partition::Shape::Bridge,
            PartitionShape::IsolateLeader => partition::Shape::Isolate { target: Some(l) },
            PartitionShape::LeaderInMinority => partition::Shape::LeaderInMinority { leader: l },
            PartitionShape::OneWayLeaderDeaf => partition::Shape::OneWayDeaf { target: l },
            PartitionShape::LaggingRejoin => {
                let others: Vec<NodeId> = nodes.iter().copied().filter(|&n| n != l).collect();
                let Some(&lagging) = others.choose(rng) else {
                    continue;
                };
                let (Ok(g1), Ok(g2)) = (
                    partition::isolate(nodes, lagging),
                    partition::isolate(nodes, l),
                ) else {
                    continue;
                };
                return (
                    Fault::Sequence {
                        steps: vec![
                            Fault::Partition {
                                shape: PartitionShape::LaggingRejoin.as_str(),
                                grudge: g1,
                            },
                            Fault::Partition {
                                shape: PartitionShape::IsolateLeader.as_str(),
                                grudge: g2,
                            },
                        ],
                    },
                    name,
                );
            }
            PartitionShape::DeafLeaderFastFollower => {
                // The leader hears nobody (its messages still arrive, so the others keep
                // following it) while one follower's clock runs fast enough that it times
                // out between heartbeats. A correct follower that hears a live leader refuses
                // to vote (stickiness), so the leader keeps its lease until it expires
                // unrenewed; without that rule the fast follower is elected and commits while
                // the deaf leader still trusts its lease, and the deaf leader never hears of it.
                let others: Vec<NodeId> = nodes.iter().copied().filter(|&n| n != l).collect();
                let Some(&fast) = others.choose(rng) else {
                    continue;
                };
                let Ok(grudge) = partition::one_way_deaf(nodes, l) else {
                    continue;
                };
                let mut skews = BTreeMap::new();
                skews.insert(
                    fast,
                    ClockSkew {
                        offset_ms: 0.0,
                        rate: skew_rate,
                    },
                );
                return (
                    Fault::Combined {
                        parts: vec![
                            Fault::Clock { skews },
                            Fault::Partition {
                                shape: PartitionShape::OneWayLeaderDeaf.as_str(),
                                grudge,
                            },
                        ],
                    },
                    name,
                );
            }
            PartitionShape::IsolatedLeaderClockBack | PartitionShape::SlowIsolatedLeader => {
                // isolated-leader-clock-back: the leader's wall clock steps back (an NTP
                // step) by the largest offset bump, rate untouched. Timers and leases on the
                // monotonic clock do not notice; a lease measured on the wall clock stays
                // "valid" for the bump after the others elected a new leader
                // (`lease-wall-clock`). slow-isolated-leader: its clock runs slow instead.
                let skew = if name == PartitionShape::IsolatedLeaderClockBack {
                    ClockSkew {
                        offset_ms: -bump_ms.abs(),
                        rate: 1.0,
                    }
                } else {
                    ClockSkew {
                        offset_ms: 0.0,
                        rate: skew_rate,
                    }
                };
                let Ok(grudge) = partition::isolate(nodes, l) else {
                    continue;
                };
                let fault = Fault::Combined {
                    parts: vec![
                        Fault::Clock {
                            skews: BTreeMap::from([(l, skew)]),
                        },
                        Fault::Partition {
                            shape: PartitionShape::IsolateLeader.as_str(),
                            grudge,
                        },
                    ],
                };
                return (fault, name);
            }
            PartitionShape::Figure8
            | PartitionShape::StaleTail
            | PartitionShape::DeposedTail
            | PartitionShape::NewLeaderIsolated => continue,
        };
        if let Ok(grudge) = shape.grudge(nodes, rng) {
            return (
                Fault::Partition {
                    shape: name.as_str(),
                    grudge,
                },
                name,
            );
        }
    }
    fallback()
}

impl Planner {
    /// A planner for `config`, seeded. Fails if a family cannot be planned here.
    pub fn new(seed: u64, config: PlannerConfig) -> Result<Planner, PlanError> {
        if config.families.contains(&FaultFamily::Membership) && config.nodes.len() < 3 {
            return Err(PlanError::MembershipNeedsThreeNodes {
                nodes: config.nodes.len(),
            });
        }
        // The node refuses rates outside its own bounds; a schedule that drew one would
        // only record failed faults.
        let (lo, hi) = (node::clock::MIN_RATE, node::clock::MAX_RATE);
        if !(config.clock_rate_min >= lo
            && config.clock_rate_min <= config.clock_rate_max
            && config.clock_rate_max <= hi)
        {
            return Err(PlanError::ClockRates {
                lo,
                hi,
                min: config.clock_rate_min,
                max: config.clock_rate_max,
            });
        }
        if config.nodes.is_empty() {
            return Err(PlanError::NoNodes);
        }
        Ok(Planner {
            rng: ChaCha8Rng::seed_from_u64(seed),
            only_shapes: Vec::new(),
            overlap: true,
            round: Vec::new(),
            leader_isolated: false,
            waiting_for_quiet: None,
            leader_waits: 0,
            power_all_done: false,
            failpoints: FailpointPlanner::new(config.failpoints.clone()),
            config,
        })
    }

    /// With `false`, plans a fault only when none is active (one fault at a time); with
    /// `true` (the default), faults of different families overlap by the rules of [`Planner`].
    pub fn with_overlap(mut self, overlap: bool) -> Planner {
        self.overlap = overlap;
        self
    }

    /// Draws partitions only of these shapes (names from [`PARTITION_SHAPES`]; empty: all),
    /// to aim a run at one bug.
    pub fn with_partition_shapes(mut self, names: &[String]) -> Result<Planner, PlanError> {
        let mut only = Vec::new();
        for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            let known =
                PartitionShape::from_name(n).ok_or_else(|| PlanError::UnknownPartitionShape {
                    name: n.to_string(),
                })?;
            if !only.contains(&known) {
                only.push(known);
            }
        }
        self.only_shapes = only;
        Ok(self)
    }

    /// Whether any fault is enabled.
    pub fn is_active(&self) -> bool {
        !self.config.families.is_empty()
    }

    /// A duration around `mean`: uniform in [0.5, 1.5] × mean.
    pub fn next_interval(&mut self, mean: Duration) -> Duration {
        mean.mul_f64(self.rng.gen_range(0.5..1.5))
    }

    /// Whether [`Planner::next_fault`] could plan anything beside the `active` faults: false
    /// while a script or sequence is active, while a shape that needs the cluster to itself
    /// waits for the others to be healed, and, with overlap off, while any fault is active.
    /// Lets the caller skip asking the nodes for the leader when nothing can start.
    pub fn may_start(&self, active: &[Fault]) -> bool {
        if self.config.families.is_empty() {
            return false;
        }
        if active.is_empty() {
            return true;
        }
        self.overlap && self.waiting_for_quiet.is_none() && !active.iter().any(Fault::needs_quiet)
    }

    /// The next fault to apply beside the `active` ones (those applied and not yet healed),
    /// given the current leader (as reported by the nodes); `None` when nothing may start now
    /// (see [`Planner`] for the order of families and the overlap rules). The fault returned
    /// always satisfies [`can_overlap`] with `active`.
    pub fn next_fault(&mut self, leader: Option<NodeId>, active: &[Fault]) -> Option<Fault> {
        if !self.may_start(active) {
            return None;
        }
        if let Some(shape) = self.waiting_for_quiet.take() {
            // `may_start` holds, so nothing is active: the waiting shape runs now, cast
            // with the leader of this moment. It was the partition family's draw this round.
            let (fault, name) = self.draw_partition(leader, Some(shape));
            self.accepted(FaultFamily::Partition, Some(name), leader);
            return Some(fault);
        }
        if self.round.is_empty() {
            self.round = self.config.families.clone();
            self.round.shuffle(&mut self.rng);
        }
        let size = self.config.nodes.len();
        for i in 0..self.round.len() {
            let family = self.round[i];
            if family == FaultFamily::Partition && self.should_wait_for_leader(leader) {
                continue;
            }
            for _ in 0..DRAWS_PER_FAMILY {
                let (fault, shape) = self.draw(family, leader);
                if fault.needs_quiet() && !active.is_empty() {
                    self.waiting_for_quiet = shape;
                    return None;
                }
                if can_overlap(&fault, active, size) {
                    if matches!(
                        fault,
                        Fault::Power {
                            target: Target::All,
                            ..
                        }
                    ) {
                        self.power_all_done = true;
                    }
                    if family == FaultFamily::Failpoint {
                        self.failpoints.accepted();
                    }
                    self.accepted(family, shape, leader);
                    return Some(fault);
                }
            }
        }
        None
    }

    /// Whether the partition family should let later families of the round go first because
    /// the leader-isolating partition is still due and no leader is known (a paused or killed
    /// leader, an election under way). Bounded: after [`LEADER_WAITS`] such skips the
    /// partition is drawn anyway, so a cluster without a leader cannot starve the round.
    fn should_wait_for_leader(&mut self, leader: Option<NodeId>) -> bool {
        if leader.is_some() || self.leader_isolated || self.leader_waits >= LEADER_WAITS {
            return false;
        }
        let clock = self.config.families.contains(&FaultFamily::Clock);
        let due = available_shapes(self.config.nodes.len(), true, clock)
            .into_iter()
            .filter(|n| self.only_shapes.is_empty() || self.only_shapes.contains(n))
            .any(PartitionShape::isolates_leader);
        if due {
            self.leader_waits += 1;
        }
        due
    }

    /// Books a planned fault: its family leaves the round; a leader-isolating partition
    /// fulfils the run's promise of one.
    fn accepted(
        &mut self,
        family: FaultFamily,
        shape: Option<PartitionShape>,
        leader: Option<NodeId>,
    ) {
        if let Some(i) = self.round.iter().position(|&f| f == family) {
            self.round.remove(i);
        }
        if leader.is_some() && shape.is_some_and(PartitionShape::isolates_leader) {
            self.leader_isolated = true;
        }
    }

    /// A partition: of shape `only` if given, else of the enabled shapes, the leader-isolating
    /// ones until one has been planned. Returns the shape drawn too.
    fn draw_partition(
        &mut self,
        leader: Option<NodeId>,
        only: Option<PartitionShape>,
    ) -> (Fault, PartitionShape) {
        let clock = self.config.families.contains(&FaultFamily::Clock);
        let rate = draw_rate(&mut self.rng, &self.config);
        let mut names = available_shapes(self.config.nodes.len(), leader.is_some(), clock);
        if !self.only_shapes.is_empty() {
            names.retain(|n| self.only_shapes.contains(n));
        }
        if let Some(only) = only {
            names.retain(|n| *n == only);
        } else if !self.leader_isolated {
            let mut isolating: Vec<PartitionShape> = names
                .iter()
                .copied()
                .filter(|n| n.isolates_leader())
                .collect();
            // A sequence runs alone; when a shape that can overlap other faults isolates the
            // leader as well, the promise is kept without stopping the other families.
            if isolating
                .iter()
                .any(|n| *n != PartitionShape::LaggingRejoin)
            {
                isolating.retain(|n| *n != PartitionShape::LaggingRejoin);
            }
            if !isolating.is_empty() {
                names = isolating;
            }
        }
        partition_fault(
            &self.config.nodes,
            leader,
            rate,
            self.config.clock_bump_ms,
            &names,
            &mut self.rng,
        )
    }

    /// One fault of `family`, with the partition shape drawn when it is a partition.
    fn draw(
        &mut self,
        family: FaultFamily,
        leader: Option<NodeId>,
    ) -> (Fault, Option<PartitionShape>) {
        let nodes = self.config.nodes.clone();
        let rng = &mut self.rng;
        let fault = match family {
            FaultFamily::Partition => {
                let (fault, name) = self.draw_partition(leader, None);
                return (fault, Some(name));
            }
            FaultFamily::Delay => Fault::Delay {
                fixed_ms: rng.gen_range(20..=150),
                jitter_ms: rng.gen_range(0..=100),
            },
            FaultFamily::Loss => Fault::Loss {
                p: (rng.gen_range(0.1..0.5f64) * 100.0).round() / 100.0,
            },
            FaultFamily::Kill => {
                let target = draw_target(
                    &[Target::One, Target::Minority, Target::Leader, Target::All],
                    leader,
                    rng,
                );
                let nodes = targets::select(target, &nodes, leader, rng).unwrap_or_default();
                Fault::Kill { target, nodes }
            }
            FaultFamily::Pause => {
                let target = draw_target(
                    &[Target::One, Target::Leader, Target::Minority],
                    leader,
                    rng,
                );
                let nodes = targets::select(target, &nodes, leader, rng).unwrap_or_default();
                Fault::Pause { target, nodes }
            }
            FaultFamily::Clock => {
                let target = if leader.is_some() && rng.gen_bool(0.5) {
                    Target::Leader
                } else {
                    Target::Minority
                };
                let chosen = targets::select(target, &nodes, leader, rng).unwrap_or_default();
                let mut skews = BTreeMap::new();
                for n in chosen {
                    let rate = draw_rate(rng, &self.config);
                    let bump = self.config.clock_bump_ms;
                    let offset_ms = if bump > 0.0 && rng.gen_bool(0.5) {
                        rng.gen_range(-bump..=bump).round()
                    } else {
                        0.0
                    };
                    skews.insert(n, ClockSkew { offset_ms, rate });
                }
                Fault::Clock { skews }
            }
            FaultFamily::Power => {
                let target = if self.power_all_done {
                    *[Target::One, Target::Minority, Target::Majority, Target::All]
                        .choose(rng)
                        .expect("non-empty")
                } else {
                    Target::All
                };
                let nodes = targets::select(target, &nodes, leader, rng).unwrap_or_default();
                Fault::Power { target, nodes }
            }
            FaultFamily::SlowDisk => {
                let target = draw_target(
                    &[Target::One, Target::Minority, Target::Leader, Target::All],
                    leader,
                    rng,
                );
                let nodes = targets::select(target, &nodes, leader, rng).unwrap_or_default();
                Fault::SlowDisk {
                    target,
                    nodes,
                    min_ms: rng.gen_range(5..=20),
                    max_ms: rng.gen_range(50..=200),
                }
            }
            FaultFamily::Failpoint => {
                let mut parts: Vec<Fault> = self
                    .failpoints
                    .draw(&nodes, leader, rng)
                    .into_iter()
                    .map(|d| Fault::Failpoint {
                        point: d.point,
                        action: d.action,
                        target: d.target,
                        nodes: d.nodes,
                        after_ms: d.after_ms,
                    })
                    .collect();
                if parts.len() == 1 {
                    parts.pop().expect("one part")
                } else {
                    Fault::Combined { parts }
                }
            }
            FaultFamily::Membership => {
                let was_leader = leader.is_some() && rng.gen_bool(0.5);
                let removed = match leader {
                    Some(l) if was_leader => l,
                    _ => *nodes.choose(rng).expect("non-empty"),
                };
                Fault::Membership {
                    removed,
                    was_leader,
                }
            }
        };
        (fault, None)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;
    use crate::partition::Grudge;

    /// A planner for `config` that draws partitions only of the shape `name`.
    fn shape_planner(seed: u64, config: PlannerConfig, name: &str) -> Planner {
        Planner::new(seed, config)
            .unwrap()
            .with_partition_shapes(&[name.into()])
            .unwrap()
    }

    /// Draws `draws` faults with `leader` leading; each must be `script` cast with `leader` as
    /// its old leader and another node as its peer. Returns the peers cast.
    fn scripted_peers(
        p: &mut Planner,
        script: Script,
        leader: NodeId,
        draws: usize,
    ) -> BTreeSet<NodeId> {
        let mut peers = BTreeSet::new();
        for _ in 0..draws {
            match p.next_fault(Some(leader), &[]).unwrap() {
                Fault::Scripted {
                    script: s,
                    old,
                    peer,
                } => {
                    assert_eq!((s, old), (script, leader));
                    assert_ne!(peer, leader);
                    peers.insert(peer);
                }
                f => panic!("{}: {f:?}", script.as_str()),
            }
        }
        peers
    }

    /// Asserts that none of `draws` draws with `leader` leading is a scripted fault.
    fn assert_never_scripted(p: &mut Planner, leader: Option<NodeId>, draws: usize) {
        for _ in 0..draws {
            assert!(!matches!(
                p.next_fault(leader, &[]),
                Some(Fault::Scripted { .. })
            ));
        }
    }

    fn config(families: Vec<FaultFamily>) -> PlannerConfig {
        PlannerConfig {
            families,
            nodes: vec![1, 2, 3, 4, 5],
            clock_rate_min: 0.5,
            clock_rate_max: 2.0,
            clock_bump_ms: 200.0,
            failpoints: FailpointSet::default(),
        }
    }

    #[test]
    fn parses_lists_none_and_all() {
        assert_eq!(parse_families("none").unwrap(), vec![]);
        assert_eq!(
            parse_families("partition,kill,partition").unwrap(),
            vec![FaultFamily::Partition, FaultFamily::Kill]
        );
        assert_eq!(parse_families("all").unwrap().len(), 7);
        assert!(parse_families("partition,flood")
            .unwrap_err()
            .to_string()
            .contains("flood"));
    }

    #[test]
    fn same_seed_same_faults() {
        let fams = vec![
            FaultFamily::Partition,
            FaultFamily::Kill,
            FaultFamily::Clock,
            FaultFamily::Pause,
            FaultFamily::Delay,
            FaultFamily::Loss,
        ];
        for seed in 0..20u64 {
            let mut a = Planner::new(seed, config(fams.clone())).unwrap();
            let mut b = Planner::new(seed, config(fams.clone())).unwrap();
            for i in 0..50 {
                let leader = Some(1 + i % 5);
                let fa = a.next_fault(leader, &[]).map(|f| f.describe());
                let fb = b.next_fault(leader, &[]).map(|f| f.describe());
                assert_eq!(fa, fb, "seed {seed}");
                assert_eq!(
                    a.next_interval(Duration::from_secs(5)),
                    b.next_interval(Duration::from_secs(5))
                );
            }
        }
    }

    #[test]
    fn clock_rates_outside_what_the_node_accepts_are_refused() {
        for (lo, hi) in [(0.005, 1.0), (1.0, 200.0), (2.0, 1.0), (0.0, 1.0)] {
            let c = PlannerConfig {
                clock_rate_min: lo,
                clock_rate_max: hi,
                ..config(vec![FaultFamily::Clock])
            };
            assert!(Planner::new(1, c).is_err(), "{lo}..{hi} accepted");
        }
        let ok = PlannerConfig {
            clock_rate_min: 0.01,
            clock_rate_max: 100.0,
            ..config(vec![FaultFamily::Clock])
        };
        assert!(Planner::new(1, ok).is_ok());
    }

    #[test]
    fn faults_respect_their_bounds() {
        let mut p = Planner::new(7, config(vec![FaultFamily::Clock, FaultFamily::Kill])).unwrap();
        for _ in 0..200 {
            match p.next_fault(Some(3), &[]).unwrap() {
                Fault::Clock { skews } => {
                    assert!(!skews.is_empty());
                    for s in skews.values() {
                        assert!((0.5..=2.0).contains(&s.rate));
                        assert!(s.offset_ms.abs() <= 200.0);
                    }
                }
                Fault::Kill { target, nodes } => {
                    assert!(!nodes.is_empty());
                    if target == Target::Leader {
                        assert_eq!(nodes, vec![3]);
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let d = p.next_interval(Duration::from_secs(4));
        assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(6));
    }

    #[test]
    fn membership_removes_one_node_and_needs_three() {
        let mut p = Planner::new(1, config(vec![FaultFamily::Membership])).unwrap();
        let mut removed_leader = false;
        for _ in 0..50 {
            match p.next_fault(Some(2), &[]).unwrap() {
                Fault::Membership {
                    removed,
                    was_leader,
                } => {
                    assert!((1..=5).contains(&removed));
                    if was_leader {
                        assert_eq!(removed, 2);
                    }
                    removed_leader |= was_leader;
                }
                f => panic!("{f:?}"),
            }
        }
        assert!(removed_leader, "the leader is sometimes the one removed");
        let mut small = config(vec![FaultFamily::Membership]);
        small.nodes = vec![1, 2];
        assert!(Planner::new(1, small)
            .err()
            .unwrap()
            .to_string()
            .contains("at least 3"));
    }

    #[test]
    fn slow_isolated_leader_combines_a_clock_and_a_partition() {
        let mut p = shape_planner(
            9,
            config(vec![FaultFamily::Partition, FaultFamily::Clock]),
            "slow-isolated-leader",
        );
        let mut combined = 0;
        for _ in 0..200 {
            if let Fault::Combined { parts } = p.next_fault(Some(4), &[]).unwrap() {
                combined += 1;
                match (&parts[0], &parts[1]) {
                    (Fault::Clock { skews }, Fault::Partition { shape, grudge }) => {
                        assert_eq!(skews.keys().copied().collect::<Vec<_>>(), vec![4]);
                        assert!((0.5..=2.0).contains(&skews[&4].rate));
                        assert_eq!(*shape, "isolate-leader");
                        assert!(grudge.is_cut(4, 1) && grudge.is_cut(1, 4));
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        // About half the draws are of the clock family, the rest all combined.
        assert!(combined > 60, "combined faults drawn {combined} times");
        // Without the clock family it is never drawn (the fallback is isolate-one).
        let mut q = shape_planner(
            9,
            config(vec![FaultFamily::Partition]),
            "slow-isolated-leader",
        );
        for _ in 0..50 {
            assert!(!matches!(
                q.next_fault(Some(4), &[]),
                Some(Fault::Combined { .. })
            ));
        }
    }

    #[test]
    fn isolated_leader_clock_back_steps_the_leaders_wall_clock_back_and_cuts_it_off() {
        let mut c = config(vec![FaultFamily::Partition, FaultFamily::Clock]);
        c.clock_bump_ms = 3000.0;
        let mut p = shape_planner(5, c, "isolated-leader-clock-back");
        let mut combined = 0;
        for _ in 0..200 {
            if let Fault::Combined { parts } = p.next_fault(Some(2), &[]).unwrap() {
                combined += 1;
                match (&parts[0], &parts[1]) {
                    (Fault::Clock { skews }, Fault::Partition { shape, grudge }) => {
                        assert_eq!(skews.keys().copied().collect::<Vec<_>>(), vec![2]);
                        assert_eq!((skews[&2].offset_ms, skews[&2].rate), (-3000.0, 1.0));
                        assert_eq!(*shape, "isolate-leader");
                        assert!(grudge.is_cut(2, 1) && grudge.is_cut(1, 2));
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        assert!(combined > 60, "combined faults drawn {combined} times");
        assert!(LEADER_ISOLATING_SHAPES.contains(&"isolated-leader-clock-back"));
    }

    #[test]
    fn deaf_leader_fast_follower_skews_one_follower_and_deafens_the_leader() {
        let mut p = shape_planner(
            11,
            config(vec![FaultFamily::Partition, FaultFamily::Clock]),
            "deaf-leader-fast-follower",
        );
        let mut combined = 0;
        for _ in 0..200 {
            if let Fault::Combined { parts } = p.next_fault(Some(3), &[]).unwrap() {
                combined += 1;
                match (&parts[0], &parts[1]) {
                    (Fault::Clock { skews }, Fault::Partition { grudge, .. }) => {
                        let fast: Vec<NodeId> = skews.keys().copied().collect();
                        assert_eq!(fast.len(), 1);
                        assert_ne!(fast[0], 3, "the fast clock is a follower's");
                        for n in [1, 2, 4, 5] {
                            assert!(grudge.is_cut(n, 3), "the leader hears nobody");
                            assert!(!grudge.is_cut(3, n), "everyone hears the leader");
                        }
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        assert!(combined > 60, "combined faults drawn {combined} times");
    }

    #[test]
    fn lagging_rejoin_isolates_a_follower_then_the_leader() {
        let mut p = shape_planner(5, config(vec![FaultFamily::Partition]), "lagging-rejoin");
        for _ in 0..50 {
            let f = p.next_fault(Some(2), &[]).unwrap();
            let steps = f.steps();
            assert_eq!(steps.len(), 2, "{f:?}");
            match (steps[0], steps[1]) {
                (Fault::Partition { grudge: g1, .. }, Fault::Partition { grudge: g2, .. }) => {
                    let isolated = |g: &Grudge, x: NodeId| {
                        (1..=5)
                            .filter(|&n| n != x)
                            .all(|n| g.is_cut(x, n) && g.is_cut(n, x))
                    };
                    let lagging = (1..=5).find(|&n| isolated(g1, n)).unwrap();
                    assert_ne!(lagging, 2, "the lagging node is not the leader");
                    assert!(isolated(g2, 2), "then the leader is isolated");
                    let other = (1..=5).find(|&n| n != 2 && n != lagging).unwrap();
                    assert!(!g2.is_cut(lagging, other), "the lagging node is back in");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(Planner::new(5, config(vec![FaultFamily::Partition]))
            .unwrap()
            .with_partition_shapes(&["sideways".into()])
            .err()
            .unwrap()
            .to_string()
            .contains("sideways"));
    }

    #[test]
    fn scripts_cast_the_leader_as_old_and_a_follower_as_peer() {
        for (name, script) in [
            ("figure-8", Script::Figure8),
            ("stale-tail", Script::StaleTail),
        ] {
            let mut p = shape_planner(12, config(vec![FaultFamily::Partition]), name);
            let peers = scripted_peers(&mut p, script, 4, 50);
            assert_eq!(peers.len(), 4, "every follower is sometimes the peer");
            // Fewer than five nodes: never drawn.
            let mut small = config(vec![FaultFamily::Partition]);
            small.nodes = vec![1, 2, 3];
            let mut q = shape_planner(12, small, name);
            assert_never_scripted(&mut q, Some(1), 20);
        }
    }

    #[test]
    fn election_window_scripts_are_drawn_from_three_nodes() {
        for (name, script) in [
            ("deposed-tail", Script::DeposedTail),
            ("new-leader-isolated", Script::NewLeaderIsolated),
        ] {
            assert_eq!(Script::from_name(name), Some(script));
            assert_eq!(script.as_str(), name);
            assert_eq!(script.min_nodes(), 3);
            assert!(PARTITION_SHAPES.contains(&name));
            let mut three = config(vec![FaultFamily::Partition]);
            three.nodes = vec![1, 2, 3];
            let mut p = shape_planner(7, three, name);
            let peers = scripted_peers(&mut p, script, 2, 40);
            assert_eq!(
                peers.len(),
                2,
                "{name}: every follower is sometimes the peer"
            );
            let f = Fault::Scripted {
                script,
                old: 2,
                peer: 3,
            };
            assert_eq!(f.describe()["script"], name);
            assert!(f.needs_quiet(), "{name} runs alone");
            // Two nodes: never drawn; no leader known: never drawn either.
            let mut two = config(vec![FaultFamily::Partition]);
            two.nodes = vec![1, 2];
            let mut q = shape_planner(7, two, name);
            assert_never_scripted(&mut q, Some(1), 20);
            assert_never_scripted(&mut p, None, 1);
        }
        // The Figure 8 scripts keep their five.
        assert_eq!(Script::Figure8.min_nodes(), 5);
        assert_eq!(Script::StaleTail.min_nodes(), 5);
        assert_eq!(Script::from_name("isolate-one"), None);
    }

    #[test]
    fn partition_descriptions_name_nodes() {
        let mut p = Planner::new(3, config(vec![FaultFamily::Partition])).unwrap();
        let f = (0..20)
            .map(|_| p.next_fault(Some(2), &[]).unwrap())
            .find(|f| matches!(f, Fault::Partition { .. }))
            .expect("a plain partition among 20 draws");
        let d = f.describe();
        assert_eq!(d["fault"], "partition");
        let g = d["grudge"].as_object().unwrap();
        assert!(g.keys().all(|k| k.starts_with('n')));
    }

    /// The families of `--nemesis all` but membership (which [`FaultFamily::ALL`] lists last).
    const SIX: &[FaultFamily] = FaultFamily::ALL.split_at(6).0;
    const _: () = assert!(matches!(FaultFamily::ALL[6], FaultFamily::Membership));

    /// Whether the leader `l` is cut off (both ways) from every node on the other side of a
    /// majority: at most a minority (with itself) still talks to it both ways.
    fn leader_cut_from_majority(g: &Grudge, l: NodeId, nodes: &[NodeId]) -> bool {
        let with = nodes
            .iter()
            .filter(|&&n| n == l || (!g.is_cut(l, n) && !g.is_cut(n, l)))
            .count();
        with <= nodes.len() / 2
    }

    #[test]
    fn every_family_is_drawn_once_per_round_in_a_seeded_order() {
        let mut fams = SIX.to_vec();
        fams.push(FaultFamily::Membership);
        let mut orders = std::collections::BTreeSet::new();
        for seed in 0..50u64 {
            let mut p = Planner::new(seed, config(fams.clone())).unwrap();
            for round in 0..4 {
                let drawn: Vec<FaultFamily> = (0..fams.len())
                    .map(|i| p.next_fault(Some(1 + i as u64 % 5), &[]).unwrap().family())
                    .collect();
                let mut sorted = drawn.clone();
                sorted.sort();
                let mut want = fams.clone();
                want.sort();
                assert_eq!(sorted, want, "seed {seed} round {round}: {drawn:?}");
                orders.insert(drawn);
            }
        }
        assert!(
            orders.len() > 50,
            "rounds are shuffled: {} orders",
            orders.len()
        );
    }

    #[test]
    fn the_first_partition_isolates_the_leader() {
        let nodes = [1, 2, 3, 4, 5];
        for seed in 0..100u64 {
            let mut p = Planner::new(seed, config(SIX.to_vec())).unwrap();
            let first = (0..SIX.len())
                .map(|_| p.next_fault(Some(3), &[]).unwrap())
                .find(|f| f.family() == FaultFamily::Partition)
                .unwrap_or_else(|| panic!("seed {seed}: no partition in a round"));
            // One that can overlap other faults, while such a shape is allowed.
            assert!(!first.needs_quiet(), "seed {seed}: {first:?}");
            // The isolating step is the partition part (or a sequence's last step).
            let step = *first.steps().last().unwrap();
            let grudge = step
                .parts()
                .into_iter()
                .find_map(|f| match f {
                    Fault::Partition { grudge, .. } => Some(grudge.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("seed {seed}: {first:?}"));
            assert!(
                leader_cut_from_majority(&grudge, 3, &nodes),
                "seed {seed}: {first:?}"
            );
        }
    }

    #[test]
    fn the_leader_isolating_partition_waits_for_a_known_leader_and_yields_to_shapes() {
        for seed in 0..30u64 {
            // No leader known: the partition lets the kill go first.
            let mut p = Planner::new(
                seed,
                config(vec![FaultFamily::Partition, FaultFamily::Kill]),
            )
            .unwrap();
            let f = p.next_fault(None, &[]).unwrap();
            assert!(matches!(f, Fault::Kill { .. }), "seed {seed}: {f:?}");
            let f = p.next_fault(Some(4), &[]).unwrap();
            let g = f
                .steps()
                .last()
                .unwrap()
                .parts()
                .into_iter()
                .find_map(|p| match p {
                    Fault::Partition { grudge, .. } => Some(grudge.clone()),
                    _ => None,
                });
            assert!(
                leader_cut_from_majority(&g.unwrap(), 4, &[1, 2, 3, 4, 5]),
                "seed {seed}: {f:?}"
            );
            // Alone, it waits a few tries at most, then draws a shape that needs no leader;
            // the promise stands for the next partition.
            let mut p = Planner::new(seed, config(vec![FaultFamily::Partition])).unwrap();
            let waited = (0..10)
                .take_while(|_| p.next_fault(None, &[]).is_none())
                .count();
            assert_eq!(waited as u32, LEADER_WAITS, "seed {seed}");
            let f = p.next_fault(Some(2), &[]).unwrap();
            let last = *f.steps().last().unwrap();
            match last {
                Fault::Partition { grudge, .. } => {
                    assert!(leader_cut_from_majority(grudge, 2, &[1, 2, 3, 4, 5]));
                }
                other => panic!("seed {seed}: {other:?}"),
            }
            // Restricted to shapes that don't isolate the leader: nothing is forced.
            let mut q = Planner::new(seed, config(vec![FaultFamily::Partition]))
                .unwrap()
                .with_partition_shapes(&["halves".into(), "bridge".into()])
                .unwrap();
            for _ in 0..10 {
                match q.next_fault(Some(2), &[]).unwrap() {
                    Fault::Partition { shape, .. } => {
                        assert!(["halves", "bridge"].contains(&shape), "seed {seed}")
                    }
                    other => panic!("seed {seed}: {other:?}"),
                }
            }
        }
    }

    fn kill(nodes: Vec<NodeId>) -> Fault {
        Fault::Kill {
            target: Target::One,
            nodes,
        }
    }

    fn pause(nodes: Vec<NodeId>) -> Fault {
        Fault::Pause {
            target: Target::One,
            nodes,
        }
    }

    fn clock(n: NodeId) -> Fault {
        let mut skews = BTreeMap::new();
        skews.insert(
            n,
            ClockSkew {
                offset_ms: 0.0,
                rate: 1.5,
            },
        );
        Fault::Clock { skews }
    }

    fn halves() -> Fault {
        let mut grudge = Grudge::new();
        grudge.drop_traffic(1, 4);
        Fault::Partition {
            shape: "halves",
            grudge,
        }
    }

    #[test]
    fn overlap_rules() {
        let delay = Fault::Delay {
            fixed_ms: 50,
            jitter_ms: 0,
        };
        let loss = Fault::Loss { p: 0.2 };
        let removal = Fault::Membership {
            removed: 3,
            was_leader: false,
        };
        let script = Fault::Scripted {
            script: Script::Figure8,
            old: 1,
            peer: 2,
        };
        let ok = |c: &Fault, a: &[Fault]| can_overlap(c, a, 5);
        // Anything may start on a quiet cluster, scripts included.
        assert!(ok(&script, &[]));
        // Network faults are one layer.
        assert!(!ok(&delay, &[halves()]));
        assert!(!ok(&loss, std::slice::from_ref(&delay)));
        // Process, clock and membership faults overlap a network fault and each other.
        assert!(ok(&kill(vec![2]), &[halves()]));
        assert!(ok(&halves(), &[kill(vec![2]), pause(vec![4]), clock(5)]));
        assert!(ok(&delay, &[clock(1)]));
        assert!(ok(&halves(), std::slice::from_ref(&removal)));
        assert!(ok(&pause(vec![1]), &[kill(vec![2])]));
        // ... on disjoint nodes only.
        assert!(!ok(&pause(vec![2]), &[kill(vec![2])]));
        assert!(!ok(&clock(2), &[pause(vec![1, 2])]));
        assert!(!ok(&kill(vec![3]), std::slice::from_ref(&removal)));
        assert!(!ok(&removal, &[clock(3)]));
        // One fault per family: two kills or two clocks never overlap.
        assert!(!ok(&kill(vec![1]), &[kill(vec![2])]));
        assert!(!ok(&clock(1), &[clock(2)]));
        // A combined clock + partition counts as both families and touches its clock's node.
        let slow_leader = Fault::Combined {
            parts: vec![clock(1), halves()],
        };
        assert!(!ok(&slow_leader, &[clock(4)]));
        assert!(!ok(&kill(vec![1]), std::slice::from_ref(&slow_leader)));
        assert!(ok(&kill(vec![2]), std::slice::from_ref(&slow_leader)));
        // While a node is out of the voters, a quorum of the other four stays up.
        assert!(ok(&kill(vec![1]), std::slice::from_ref(&removal)));
        assert!(!ok(&kill(vec![1, 2]), std::slice::from_ref(&removal)));
        assert!(!ok(&pause(vec![2]), &[removal.clone(), kill(vec![1])]));
        assert!(!ok(&removal, &[kill(vec![1]), pause(vec![2])]));
        assert!(ok(&pause(vec![2]), &[kill(vec![1])]), "without membership");
        // Scripts and sequences run alone.
        assert!(!ok(&script, &[clock(1)]));
        assert!(!ok(&clock(1), std::slice::from_ref(&script)));
        let seq = Fault::Sequence {
            steps: vec![halves()],
        };
        assert!(!ok(&kill(vec![2]), std::slice::from_ref(&seq)));
        assert!(seq.needs_quiet() && script.needs_quiet() && !halves().needs_quiet());
    }

    /// Plays a planner against a simulated run: at each tick a random subset of the active
    /// faults ends, then the planner is asked for the next one.
    fn simulate(
        seed: u64,
        planner: &mut Planner,
        families: &[FaultFamily],
        ticks: usize,
    ) -> (Vec<Fault>, usize) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xfeed);
        let mut active: Vec<Fault> = Vec::new();
        let mut started = Vec::new();
        let mut overlaps = 0;
        for _ in 0..ticks {
            active.retain(|_| rng.gen_bool(0.6));
            let leader = Some(rng.gen_range(1..=5));
            if let Some(f) = planner.next_fault(leader, &active) {
                assert!(
                    can_overlap(&f, &active, 5),
                    "seed {seed}: {f:?} beside {active:?}"
                );
                assert!(families.contains(&f.family()), "seed {seed}: {f:?}");
                if !active.is_empty() {
                    overlaps += 1;
                }
                active.push(f.clone());
                started.push(f);
            }
        }
        (started, overlaps)
    }

    #[test]
    fn planned_faults_always_fit_beside_the_active_ones() {
        let mut fams = SIX.to_vec();
        fams.push(FaultFamily::Membership);
        let mut total_overlaps = 0;
        for seed in 0..100u64 {
            let mut p = Planner::new(seed, config(fams.clone())).unwrap();
            let (started, overlaps) = simulate(seed, &mut p, &fams, 60);
            total_overlaps += overlaps;
            // Every family is started even though some draws must wait.
            let seen: BTreeSet<FaultFamily> = started.iter().map(Fault::family).collect();
            assert_eq!(seen.len(), fams.len(), "seed {seed}: {seen:?}");
        }
        assert!(total_overlaps > 500, "overlaps: {total_overlaps}");
    }

    #[test]
    fn same_seed_same_overlapping_schedule() {
        for seed in 0..20u64 {
            let run = || {
                let mut p = Planner::new(seed, config(SIX.to_vec())).unwrap();
                let (started, overlaps) = simulate(seed, &mut p, SIX, 40);
                let described: Vec<_> = started.iter().map(Fault::describe).collect();
                (described, overlaps)
            };
            assert_eq!(run(), run(), "seed {seed}");
        }
    }

    #[test]
    fn without_overlap_nothing_starts_beside_an_active_fault() {
        for seed in 0..50u64 {
            let mut p = Planner::new(seed, config(SIX.to_vec()))
                .unwrap()
                .with_overlap(false);
            assert!(
                p.next_fault(Some(1), &[kill(vec![2])]).is_none(),
                "seed {seed}"
            );
            assert!(!p.may_start(&[clock(1)]));
            let (_, overlaps) = simulate(seed, &mut p, SIX, 60);
            assert_eq!(overlaps, 0, "seed {seed}");
        }
    }

    #[test]
    fn a_script_waits_for_quiet_then_runs_alone() {
        for seed in 0..30u64 {
            let mut p = shape_planner(
                seed,
                config(vec![FaultFamily::Partition, FaultFamily::Kill]),
                "figure-8",
            );
            let active = vec![kill(vec![5])];
            // The kill family is busy, and the script cannot start beside the kill: wait.
            assert!(p.next_fault(Some(1), &active).is_none(), "seed {seed}");
            assert!(!p.may_start(&active));
            // Once the kill is healed the script runs, cast with the leader of that moment.
            match p.next_fault(Some(2), &[]) {
                Some(Fault::Scripted { old, .. }) => assert_eq!(old, 2, "seed {seed}"),
                other => panic!("seed {seed}: {other:?}"),
            }
            // Nothing starts beside it.
            let script = Fault::Scripted {
                script: Script::Figure8,
                old: 2,
                peer: 3,
            };
            assert!(!p.may_start(std::slice::from_ref(&script)));
            assert!(p.next_fault(Some(2), &[script]).is_none());
        }
    }

    #[test]
    fn power_cuts_every_node_first_then_draws_targets() {
        assert_eq!(
            parse_families("power,slow-disk").unwrap(),
            vec![FaultFamily::Power, FaultFamily::SlowDisk]
        );
        assert!(!parse_families("all").unwrap().contains(&FaultFamily::Power));
        for seed in 0..20u64 {
            let mut p = Planner::new(seed, config(vec![FaultFamily::Power])).unwrap();
            match p.next_fault(Some(1), &[]) {
                Some(Fault::Power {
                    target: Target::All,
                    nodes,
                }) => assert_eq!(nodes, vec![1, 2, 3, 4, 5], "seed {seed}"),
                other => panic!("seed {seed}: {other:?}"),
            }
            let mut targets = BTreeSet::new();
            for _ in 0..40 {
                match p.next_fault(Some(1), &[]) {
                    Some(Fault::Power { target, nodes }) => {
                        assert!(!nodes.is_empty(), "seed {seed}");
                        targets.insert(target.as_str());
                    }
                    other => panic!("seed {seed}: {other:?}"),
                }
            }
            assert_eq!(targets.len(), 4, "seed {seed}: {targets:?}");
        }
    }

    #[test]
    fn power_and_kill_touch_disjoint_nodes_slow_disk_overlaps_them() {
        let power = |nodes: Vec<NodeId>| Fault::Power {
            target: Target::One,
            nodes,
        };
        let slow = Fault::SlowDisk {
            target: Target::All,
            nodes: vec![1, 2, 3, 4, 5],
            min_ms: 5,
            max_ms: 50,
        };
        assert!(!can_overlap(&power(vec![2]), &[kill(vec![2])], 5));
        assert!(can_overlap(&power(vec![3]), &[kill(vec![2])], 5));
        assert!(can_overlap(&slow, &[power(vec![1, 2, 3, 4, 5])], 5));
        assert!(!can_overlap(&power(vec![1]), &[power(vec![2])], 5));
        assert_eq!(
            power(vec![1]).describe(),
            json!({"fault": "power", "target": "one", "nodes": ["n1"]})
        );
        assert_eq!(slow.describe()["fault"], "slow-disk");
    }
}

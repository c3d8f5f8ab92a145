//! The fault schedule's planner: which fault comes next, and when, drawn from the test's
//! seed. It is pure (no I/O); the harness applies and heals what it plans and records each
//! start and stop in the history.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::partition::{self, Grudge};
use crate::targets::{self, Target};
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
        }
    }
}

/// Parses `--nemesis`: `none`, `all`, or a comma-separated list of families (order kept,
/// duplicates removed).
pub fn parse_families(s: &str) -> Result<Vec<FaultFamily>, String> {
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
                let f = FaultFamily::ALL
                    .into_iter()
                    .find(|f| f.as_str() == name)
                    .ok_or_else(|| {
                        format!(
                            "unknown nemesis {name:?} (expected none, partition, delay, loss, kill, \
                             pause, clock, membership or all)"
                        )
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
}

impl Script {
    /// The partition shape name that draws it.
    pub fn as_str(self) -> &'static str {
        match self {
            Script::Figure8 => "figure-8",
            Script::StaleTail => "stale-tail",
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
    /// Several faults at once, applied in order and healed in reverse: for instance the
    /// leader's clock slowed while it is isolated, so that it believes it still leads for
    /// longer than the others wait before electing a new leader.
    Combined { parts: Vec<Fault> },
    /// A script the harness plays on the live cluster (at least five nodes), moving from one
    /// partition to the next as the nodes report each step done (see `harness::scripted`).
    /// `old` leads at the start and `peer` receives its uncommitted entries; the harness
    /// casts the other parts from what the nodes report.
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
    /// The family this fault belongs to.
    pub fn family(&self) -> FaultFamily {
        match self {
            Fault::Partition { .. } | Fault::Scripted { .. } => FaultFamily::Partition,
            Fault::Delay { .. } | Fault::SlowLinks { .. } => FaultFamily::Delay,
            Fault::Loss { .. } => FaultFamily::Loss,
            Fault::Kill { .. } => FaultFamily::Kill,
            Fault::Pause { .. } => FaultFamily::Pause,
            Fault::Clock { .. } => FaultFamily::Clock,
            Fault::Membership { .. } => FaultFamily::Membership,
            Fault::Combined { parts: faults } | Fault::Sequence { steps: faults } => faults
                .first()
                .map(Fault::family)
                .unwrap_or(FaultFamily::Partition),
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
}

/// Draws faults and intervals from one seeded generator: the same seed and the same answers
/// to "who is the leader" give the same sequence of faults.
pub struct Planner {
    rng: ChaCha8Rng,
    config: PlannerConfig,
    /// Partition shapes allowed (empty: all); see [`Planner::with_partition_shapes`].
    only_shapes: Vec<&'static str>,
}

/// Every partition shape the planner draws from, by the name history events give it.
/// `slow-isolated-leader` (the leader isolated while its clock runs slow) and
/// `deaf-leader-fast-follower` need the clock family enabled; the leader shapes need a known
/// leader; `figure-8` and `stale-tail` (scripts the harness plays, see [`Fault::Scripted`])
/// need five nodes.
pub const PARTITION_SHAPES: [&str; 12] = [
    "isolate-one",
    "halves",
    "majorities-ring",
    "bridge",
    "isolate-leader",
    "leader-in-minority",
    "one-way-leader-deaf",
    "lagging-rejoin",
    "slow-isolated-leader",
    "deaf-leader-fast-follower",
    "figure-8",
    "stale-tail",
];

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

/// A partition of one of the allowed shapes (all when `only` is empty), drawn from `rng`.
fn partition_fault(
    nodes: &[NodeId],
    leader: Option<NodeId>,
    clock_enabled: bool,
    skew_rate: f64,
    only: &[&'static str],
    rng: &mut ChaCha8Rng,
) -> Fault {
    let mut names: Vec<&'static str> = vec!["isolate-one", "halves", "majorities-ring", "bridge"];
    if leader.is_some() {
        names.extend([
            "isolate-leader",
            "leader-in-minority",
            "one-way-leader-deaf",
        ]);
        if nodes.len() >= 3 {
            names.push("lagging-rejoin");
        }
        if nodes.len() >= 5 {
            names.extend(["figure-8", "stale-tail"]);
        }
        if clock_enabled {
            names.push("slow-isolated-leader");
            if nodes.len() >= 3 {
                names.push("deaf-leader-fast-follower");
            }
        }
    }
    if !only.is_empty() {
        names.retain(|n| only.contains(n));
    }
    let fallback = || Fault::Partition {
        shape: "isolate-one",
        grudge: partition::isolate(nodes, nodes[0]).unwrap_or_default(),
    };
    // Shapes that need more nodes than we have are redrawn (bounded).
    for _ in 0..8 {
        let Some(&name) = names.choose(rng) else {
            return fallback();
        };
        let l = leader.unwrap_or(nodes[0]);
        let shape = match name {
            "isolate-one" => partition::Shape::Isolate { target: None },
            "halves" => partition::Shape::Halves,
            "majorities-ring" => partition::Shape::MajoritiesRing,
            "bridge" => partition::Shape::Bridge,
            "isolate-leader" => partition::Shape::Isolate { target: Some(l) },
            "leader-in-minority" => partition::Shape::LeaderInMinority { leader: l },
            "one-way-leader-deaf" => partition::Shape::OneWayDeaf { target: l },
            "lagging-rejoin" => {
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
                return Fault::Sequence {
                    steps: vec![
                        Fault::Partition {
                            shape: "lagging-rejoin",
                            grudge: g1,
                        },
                        Fault::Partition {
                            shape: "isolate-leader",
                            grudge: g2,
                        },
                    ],
                };
            }
            "figure-8" | "stale-tail" => {
                let others: Vec<NodeId> = nodes.iter().copied().filter(|&n| n != l).collect();
                let Some(&peer) = others.choose(rng) else {
                    continue;
                };
                let script = if name == "figure-8" {
                    Script::Figure8
                } else {
                    Script::StaleTail
                };
                return Fault::Scripted {
                    script,
                    old: l,
                    peer,
                };
            }
            "deaf-leader-fast-follower" => {
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
                return Fault::Combined {
                    parts: vec![
                        Fault::Clock { skews },
                        Fault::Partition {
                            shape: "one-way-leader-deaf",
                            grudge,
                        },
                    ],
                };
            }
            "slow-isolated-leader" => {
                let mut skews = BTreeMap::new();
                skews.insert(
                    l,
                    ClockSkew {
                        offset_ms: 0.0,
                        rate: skew_rate,
                    },
                );
                let Ok(grudge) = partition::isolate(nodes, l) else {
                    continue;
                };
                return Fault::Combined {
                    parts: vec![
                        Fault::Clock { skews },
                        Fault::Partition {
                            shape: "isolate-leader",
                            grudge,
                        },
                    ],
                };
            }
            _ => continue,
        };
        if let Ok(grudge) = shape.grudge(nodes, rng) {
            return Fault::Partition {
                shape: name,
                grudge,
            };
        }
    }
    fallback()
}

impl Planner {
    /// A planner for `config`, seeded. Fails if a family cannot be planned here.
    pub fn new(seed: u64, config: PlannerConfig) -> Result<Planner, String> {
        if config.families.contains(&FaultFamily::Membership) && config.nodes.len() < 3 {
            return Err(format!(
                "the membership nemesis removes a voter and needs at least 3 nodes, got {}",
                config.nodes.len()
            ));
        }
        if !(config.clock_rate_min > 0.0 && config.clock_rate_min <= config.clock_rate_max) {
            return Err(format!(
                "need 0 < --clock-rate-min <= --clock-rate-max, got {} and {}",
                config.clock_rate_min, config.clock_rate_max
            ));
        }
        if config.nodes.is_empty() {
            return Err("no nodes".into());
        }
        Ok(Planner {
            rng: ChaCha8Rng::seed_from_u64(seed),
            config,
            only_shapes: Vec::new(),
        })
    }

    /// Draws partitions only of these shapes (names from [`PARTITION_SHAPES`]; empty: all),
    /// to aim a run at one bug.
    pub fn with_partition_shapes(mut self, names: &[String]) -> Result<Planner, String> {
        let mut only = Vec::new();
        for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            let known = PARTITION_SHAPES.iter().find(|s| **s == n).ok_or_else(|| {
                format!(
                    "unknown partition shape {n:?} (expected some of {})",
                    PARTITION_SHAPES.join(", ")
                )
            })?;
            if !only.contains(known) {
                only.push(*known);
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

    /// The next fault, given the current leader (as reported by the nodes).
    pub fn next_fault(&mut self, leader: Option<NodeId>) -> Option<Fault> {
        let family = *self.config.families.choose(&mut self.rng)?;
        let nodes = self.config.nodes.clone();
        let rng = &mut self.rng;
        let fault = match family {
            FaultFamily::Partition => {
                let clock = self.config.families.contains(&FaultFamily::Clock);
                let rate = draw_rate(rng, &self.config);
                partition_fault(&nodes, leader, clock, rate, &self.only_shapes, rng)
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
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(families: Vec<FaultFamily>) -> PlannerConfig {
        PlannerConfig {
            families,
            nodes: vec![1, 2, 3, 4, 5],
            clock_rate_min: 0.5,
            clock_rate_max: 2.0,
            clock_bump_ms: 200.0,
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
                let fa = a.next_fault(leader).map(|f| f.describe());
                let fb = b.next_fault(leader).map(|f| f.describe());
                assert_eq!(fa, fb, "seed {seed}");
                assert_eq!(
                    a.next_interval(Duration::from_secs(5)),
                    b.next_interval(Duration::from_secs(5))
                );
            }
        }
    }

    #[test]
    fn faults_respect_their_bounds() {
        let mut p = Planner::new(7, config(vec![FaultFamily::Clock, FaultFamily::Kill])).unwrap();
        for _ in 0..200 {
            match p.next_fault(Some(3)).unwrap() {
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
            match p.next_fault(Some(2)).unwrap() {
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
        assert!(Planner::new(1, small).err().unwrap().contains("at least 3"));
    }

    #[test]
    fn slow_isolated_leader_combines_a_clock_and_a_partition() {
        let mut p = Planner::new(9, config(vec![FaultFamily::Partition, FaultFamily::Clock]))
            .unwrap()
            .with_partition_shapes(&["slow-isolated-leader".into()])
            .unwrap();
        let mut combined = 0;
        for _ in 0..200 {
            if let Fault::Combined { parts } = p.next_fault(Some(4)).unwrap() {
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
        let mut q = Planner::new(9, config(vec![FaultFamily::Partition]))
            .unwrap()
            .with_partition_shapes(&["slow-isolated-leader".into()])
            .unwrap();
        for _ in 0..50 {
            assert!(!matches!(
                q.next_fault(Some(4)),
                Some(Fault::Combined { .. })
            ));
        }
    }

    #[test]
    fn deaf_leader_fast_follower_skews_one_follower_and_deafens_the_leader() {
        let mut p = Planner::new(11, config(vec![FaultFamily::Partition, FaultFamily::Clock]))
            .unwrap()
            .with_partition_shapes(&["deaf-leader-fast-follower".into()])
            .unwrap();
        let mut combined = 0;
        for _ in 0..200 {
            if let Fault::Combined { parts } = p.next_fault(Some(3)).unwrap() {
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
        let mut p = Planner::new(5, config(vec![FaultFamily::Partition]))
            .unwrap()
            .with_partition_shapes(&["lagging-rejoin".into()])
            .unwrap();
        for _ in 0..50 {
            let f = p.next_fault(Some(2)).unwrap();
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
            .contains("sideways"));
    }

    #[test]
    fn scripts_cast_the_leader_as_old_and_a_follower_as_peer() {
        for (name, script) in [
            ("figure-8", Script::Figure8),
            ("stale-tail", Script::StaleTail),
        ] {
            let mut p = Planner::new(12, config(vec![FaultFamily::Partition]))
                .unwrap()
                .with_partition_shapes(&[name.into()])
                .unwrap();
            let mut peers = std::collections::BTreeSet::new();
            for _ in 0..50 {
                match p.next_fault(Some(4)).unwrap() {
                    Fault::Scripted {
                        script: s,
                        old,
                        peer,
                    } => {
                        assert_eq!((s, old), (script, 4));
                        assert_ne!(peer, 4);
                        peers.insert(peer);
                    }
                    f => panic!("{f:?}"),
                }
            }
            assert_eq!(peers.len(), 4, "every follower is sometimes the peer");
            // Fewer than five nodes: never drawn.
            let mut small = config(vec![FaultFamily::Partition]);
            small.nodes = vec![1, 2, 3];
            let mut q = Planner::new(12, small)
                .unwrap()
                .with_partition_shapes(&[name.into()])
                .unwrap();
            for _ in 0..20 {
                assert!(!matches!(
                    q.next_fault(Some(1)),
                    Some(Fault::Scripted { .. })
                ));
            }
        }
    }

    #[test]
    fn partition_descriptions_name_nodes() {
        let mut p = Planner::new(3, config(vec![FaultFamily::Partition])).unwrap();
        let f = (0..20)
            .map(|_| p.next_fault(Some(2)).unwrap())
            .find(|f| matches!(f, Fault::Partition { .. }))
            .expect("a plain partition among 20 draws");
        let d = f.describe();
        assert_eq!(d["fault"], "partition");
        let g = d["grudge"].as_object().unwrap();
        assert!(g.keys().all(|k| k.starts_with('n')));
    }
}

//! The partition shapes the planner draws, by the names `--partition-shapes` and history events
//! give them, and what each needs to be drawn: a cluster of some size, a known leader, the
//! clock family. The grudges they cut are [`crate::partition`]'s; the faults they make are
//! [`crate::schedule::Planner`]'s.

use crate::fault::Script;

/// One partition shape of the partition family. Every variant has exactly one name
/// ([`PartitionShape::as_str`]), and [`PartitionShape::from_name`] inverts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartitionShape {
    /// One node (not aimed at the leader) cut off from the others.
    IsolateOne,
    /// The cluster cut in two halves.
    Halves,
    /// Each node sees a majority, but no two nodes the same one.
    MajoritiesRing,
    /// Two halves joined by a single bridging node.
    Bridge,
    /// The leader cut off from everyone.
    IsolateLeader,
    /// The leader on the minority side of a cut.
    LeaderInMinority,
    /// The leader hears nobody, while its messages still arrive.
    OneWayLeaderDeaf,
    /// A sequence: a follower isolated until it lags, then let back in as the leader is
    /// isolated.
    LaggingRejoin,
    /// The leader isolated while its clock runs slow.
    SlowIsolatedLeader,
    /// The leader deaf while one follower's clock runs fast.
    DeafLeaderFastFollower,
    /// The leader isolated while its wall clock steps back by the largest offset bump.
    IsolatedLeaderClockBack,
    /// The script [`Script::Figure8`].
    Figure8,
    /// The script [`Script::StaleTail`].
    StaleTail,
    /// The script [`Script::DeposedTail`].
    DeposedTail,
    /// The script [`Script::NewLeaderIsolated`].
    NewLeaderIsolated,
}

impl PartitionShape {
    /// Every shape, in the order of [`PARTITION_SHAPES`].
    pub const ALL: [PartitionShape; 15] = [
        PartitionShape::IsolateOne,
        PartitionShape::Halves,
        PartitionShape::MajoritiesRing,
        PartitionShape::Bridge,
        PartitionShape::IsolateLeader,
        PartitionShape::LeaderInMinority,
        PartitionShape::OneWayLeaderDeaf,
        PartitionShape::LaggingRejoin,
        PartitionShape::SlowIsolatedLeader,
        PartitionShape::DeafLeaderFastFollower,
        PartitionShape::IsolatedLeaderClockBack,
        PartitionShape::Figure8,
        PartitionShape::StaleTail,
        PartitionShape::DeposedTail,
        PartitionShape::NewLeaderIsolated,
    ];

    /// The shapes that cut the leader off from every majority (`lagging-rejoin` does in its
    /// second step); the first partition of a run is one of them (see
    /// [`crate::schedule::Planner`]).
    pub const LEADER_ISOLATING: [PartitionShape; 5] = [
        PartitionShape::IsolateLeader,
        PartitionShape::LeaderInMinority,
        PartitionShape::SlowIsolatedLeader,
        PartitionShape::IsolatedLeaderClockBack,
        PartitionShape::LaggingRejoin,
    ];

    /// The name on the command line (`--partition-shapes`) and in history events.
    pub const fn as_str(self) -> &'static str {
        match self {
            PartitionShape::IsolateOne => "isolate-one",
            PartitionShape::Halves => "halves",
            PartitionShape::MajoritiesRing => "majorities-ring",
            PartitionShape::Bridge => "bridge",
            PartitionShape::IsolateLeader => "isolate-leader",
            PartitionShape::LeaderInMinority => "leader-in-minority",
            PartitionShape::OneWayLeaderDeaf => "one-way-leader-deaf",
            PartitionShape::LaggingRejoin => "lagging-rejoin",
            PartitionShape::SlowIsolatedLeader => "slow-isolated-leader",
            PartitionShape::DeafLeaderFastFollower => "deaf-leader-fast-follower",
            PartitionShape::IsolatedLeaderClockBack => "isolated-leader-clock-back",
            PartitionShape::Figure8 => "figure-8",
            PartitionShape::StaleTail => "stale-tail",
            PartitionShape::DeposedTail => "deposed-tail",
            PartitionShape::NewLeaderIsolated => "new-leader-isolated",
        }
    }

    /// The shape of this name, if it names one (exact match).
    pub fn from_name(name: &str) -> Option<PartitionShape> {
        PartitionShape::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The script the harness plays for this shape, if it is one (a [`crate::fault::Fault::Scripted`]).
    pub fn script(self) -> Option<Script> {
        match self {
            PartitionShape::Figure8 => Some(Script::Figure8),
            PartitionShape::StaleTail => Some(Script::StaleTail),
            PartitionShape::DeposedTail => Some(Script::DeposedTail),
            PartitionShape::NewLeaderIsolated => Some(Script::NewLeaderIsolated),
            _ => None,
        }
    }

    /// The smallest cluster the planner draws this shape for: a script's
    /// [`Script::min_nodes`]; three for the shapes that cast the leader and another follower
    /// besides the one they aim at (`lagging-rejoin`, `deaf-leader-fast-follower`); one for
    /// the others (a shape a small cluster cannot cut is redrawn).
    pub fn min_nodes(self) -> usize {
        match self {
            PartitionShape::LaggingRejoin | PartitionShape::DeafLeaderFastFollower => 3,
            s => s.script().map_or(1, Script::min_nodes),
        }
    }

    /// Whether the shape aims at the leader and so is drawn only while one is known: all but
    /// `isolate-one`, `halves`, `majorities-ring` and `bridge`.
    pub fn needs_leader(self) -> bool {
        !matches!(
            self,
            PartitionShape::IsolateOne
                | PartitionShape::Halves
                | PartitionShape::MajoritiesRing
                | PartitionShape::Bridge
        )
    }

    /// Whether the shape combines a partition with a clock change and so is drawn only with
    /// the clock family enabled.
    pub fn needs_clock(self) -> bool {
        matches!(
            self,
            PartitionShape::SlowIsolatedLeader
                | PartitionShape::DeafLeaderFastFollower
                | PartitionShape::IsolatedLeaderClockBack
        )
    }

    /// Whether the shape is one of [`PartitionShape::LEADER_ISOLATING`].
    pub fn isolates_leader(self) -> bool {
        PartitionShape::LEADER_ISOLATING.contains(&self)
    }

    /// Whether the planner may draw this shape on a cluster of `nodes` nodes, given whether a
    /// leader is known and whether the clock family is enabled.
    pub fn available(self, nodes: usize, leader_known: bool, clock_enabled: bool) -> bool {
        nodes >= self.min_nodes()
            && (leader_known || !self.needs_leader())
            && (clock_enabled || !self.needs_clock())
    }
}

/// The names of `shapes`, in their order.
const fn names<const N: usize>(shapes: [PartitionShape; N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = shapes[i].as_str();
        i += 1;
    }
    out
}

/// Every partition shape the planner draws from, by the name history events give it (the
/// names of [`PartitionShape::ALL`]). `slow-isolated-leader` (the leader isolated while its
/// clock runs slow) and `deaf-leader-fast-follower` and `isolated-leader-clock-back` (the
/// leader isolated while its wall clock steps back by the largest offset bump) need the clock
/// family enabled; the leader shapes need a known leader; `figure-8` and `stale-tail` (scripts
/// the harness plays, see [`crate::fault::Fault::Scripted`]) need five nodes, `deposed-tail`
/// and `new-leader-isolated` (scripts too) three ([`PartitionShape::min_nodes`]).
pub const PARTITION_SHAPES: [&str; 15] = names(PartitionShape::ALL);

/// The names of [`PartitionShape::LEADER_ISOLATING`].
pub const LEADER_ISOLATING_SHAPES: [&str; 5] = names(PartitionShape::LEADER_ISOLATING);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_scripts_agree() {
        for s in PartitionShape::ALL {
            assert_eq!(PartitionShape::from_name(s.as_str()), Some(s));
            if let Some(script) = s.script() {
                assert_eq!(script.as_str(), s.as_str());
                assert_eq!(s.min_nodes(), script.min_nodes());
            }
        }
        assert_eq!(PartitionShape::from_name("sideways"), None);
        assert_eq!(PARTITION_SHAPES[0], "isolate-one");
        assert_eq!(PARTITION_SHAPES[14], "new-leader-isolated");
        assert!(LEADER_ISOLATING_SHAPES.contains(&"isolated-leader-clock-back"));
    }
}

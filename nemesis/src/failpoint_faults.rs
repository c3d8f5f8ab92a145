//! The failpoint family's vocabulary and draws: which of the node's failpoints to set, to what
//! action, on which nodes.
//!
//! A single failpoint fault sets one point on its targets. Two windows need a leader change
//! while they are open, which a failpoint on its own does not cause: entries committed but not
//! yet applied on the node that becomes the next leader (`after-commit-before-apply`), and a
//! new leader whose term has nothing committed yet (`after-election-before-first-append`). For
//! those the planner draws an *election window*: the point set on every follower, and the
//! leader deposed at the same moment by a second failpoint (a long stall before it persists,
//! or a crash after it persists and before it sends).

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use node::failpoints::{Action, Failpoint};
use node::raft::NodeId;

use crate::targets::{self, Target};

/// How the harness may set one failpoint: its point, and optionally a fixed action and target
/// (else drawn). Parsed from `--failpoints NAME[=ACTION][@TARGET],...`.
#[derive(Clone, Debug, PartialEq)]
pub struct FailpointChoice {
    pub point: Failpoint,
    /// An action in the node's syntax (`panic`, `1*panic`, `50%sleep(200)`), or `None`: drawn.
    pub action: Option<String>,
    /// The nodes to set it on, or `None`: drawn.
    pub target: Option<Target>,
}

/// Parses `--failpoints`: comma-separated `NAME[=ACTION][@TARGET]` (for instance
/// `after-persist-before-send=1*panic@leader`). Unknown names, malformed actions and unknown
/// targets are refused with the reason.
pub fn parse_choices(s: &str) -> Result<Vec<FailpointChoice>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (rest, target) = match part.rsplit_once('@') {
            Some((r, t)) => (r, Some(t.parse::<Target>()?)),
            None => (part, None),
        };
        let (name, action) = match rest.split_once('=') {
            Some((n, a)) => (n, Some(a.to_string())),
            None => (rest, None),
        };
        let point: Failpoint = name.parse().map_err(|e| format!("{e}"))?;
        if let Some(a) = &action {
            let parsed: Action = a.parse().map_err(|e| format!("{e}"))?;
            if parsed.effect.is_none() {
                return Err(format!("{part}: a failpoint fault cannot be `off`"));
            }
        }
        out.push(FailpointChoice {
            point,
            action,
            target,
        });
    }
    Ok(out)
}

/// Which failpoints the family sets.
#[derive(Clone, Debug, PartialEq)]
pub enum FailpointSet {
    /// These points, actions and targets drawn by the planner, with election windows. The
    /// harness leaves out the read points of paths the run does not use (they never fire).
    Drawn(Vec<Failpoint>),
    /// Only these choices (`--failpoints`). An election-window point given without a target
    /// is still set as a window (on the followers, the leader deposed); with a target, or any
    /// other point, exactly as given.
    Given(Vec<FailpointChoice>),
}

impl Default for FailpointSet {
    /// Every point, drawn.
    fn default() -> Self {
        FailpointSet::Drawn(Failpoint::ALL.to_vec())
    }
}

/// Whether `action` (node syntax) crashes the node when it fires.
pub fn is_crash(action: &str) -> bool {
    action.ends_with("panic")
}

/// The points that widen a window only when a leader change happens while they are set.
const ELECTION_WINDOW_POINTS: [Failpoint; 2] = [
    Failpoint::AfterCommitBeforeApply,
    Failpoint::AfterElectionBeforeFirstAppend,
];

/// A drawn failpoint fault: one point on some nodes (a part of a `Fault::Failpoint`).
#[derive(Clone, Debug, PartialEq)]
pub struct FailpointDraw {
    pub point: Failpoint,
    pub action: String,
    pub target: Target,
    pub nodes: Vec<NodeId>,
    /// Set this long after the earlier parts of the same fault.
    pub after_ms: u64,
}

/// Draws failpoint faults: the allowed points in a seeded shuffled cycle (each allowed point
/// once before any twice), election windows for the points that need one.
#[derive(Clone, Debug)]
pub struct FailpointPlanner {
    choices: Vec<FailpointChoice>,
    cycle: Vec<FailpointChoice>,
}

impl FailpointPlanner {
    /// A planner over `set` (an empty set draws from every point).
    pub fn new(set: FailpointSet) -> FailpointPlanner {
        let drawn = |points: Vec<Failpoint>| {
            points
                .into_iter()
                .map(|point| FailpointChoice {
                    point,
                    action: None,
                    target: None,
                })
                .collect()
        };
        let choices = match set {
            FailpointSet::Given(c) if !c.is_empty() => c,
            FailpointSet::Drawn(points) if !points.is_empty() => drawn(points),
            _ => drawn(Failpoint::ALL.to_vec()),
        };
        FailpointPlanner {
            choices,
            cycle: Vec::new(),
        }
    }

    /// The next fault's parts: one point on its targets, or (for an election window with a
    /// known leader) that point on every follower and a deposing point on the leader.
    pub fn draw(
        &mut self,
        nodes: &[NodeId],
        leader: Option<NodeId>,
        rng: &mut ChaCha8Rng,
    ) -> Vec<FailpointDraw> {
        if self.cycle.is_empty() {
            self.cycle = self.choices.clone();
            self.cycle.shuffle(rng);
        }
        // Taken off the cycle only by `accepted`: a draw that cannot start beside the active
        // faults (busy nodes) is drawn again with the same point.
        let choice = self.cycle.last().cloned().expect("choices are never empty");
        let window = choice.target.is_none()
            && leader.is_some()
            && nodes.len() >= 3
            && ELECTION_WINDOW_POINTS.contains(&choice.point);
        if window {
            let leader = leader.expect("checked");
            let followers =
                targets::select(Target::Followers, nodes, Some(leader), rng).unwrap_or_default();
            // The followers' window first; the leader deposed once a backlog has built up
            // there (writes the leader acknowledged, not yet applied by the followers), and
            // well within the followers' delay, so that the next leader starts with it.
            let after_ms = rng.gen_range(1000..=2000);
            let action = choice
                .action
                .clone()
                .unwrap_or_else(|| format!("sleep({})", after_ms + rng.gen_range(1500..=3000)));
            let (depose, depose_action) = deposing_point(rng);
            return vec![
                FailpointDraw {
                    point: choice.point,
                    action,
                    target: Target::Followers,
                    nodes: followers,
                    after_ms: 0,
                },
                FailpointDraw {
                    point: depose,
                    action: depose_action,
                    target: Target::Leader,
                    nodes: vec![leader],
                    after_ms,
                },
            ];
        }
        let target = choice.target.unwrap_or_else(|| {
            let options: &[Target] = if leader.is_some() {
                &[Target::One, Target::Leader, Target::Minority]
            } else {
                &[Target::One, Target::Minority]
            };
            *options.choose(rng).expect("non-empty")
        });
        let target = match target {
            Target::Leader | Target::Followers if leader.is_none() => Target::One,
            t => t,
        };
        let nodes = targets::select(target, nodes, leader, rng).unwrap_or_default();
        let action = choice
            .action
            .clone()
            .unwrap_or_else(|| draw_action(choice.point, rng));
        vec![FailpointDraw {
            point: choice.point,
            action,
            target,
            nodes,
            after_ms: 0,
        }]
    }
}

impl FailpointPlanner {
    /// The last draw was planned: its point leaves the cycle.
    pub fn accepted(&mut self) {
        self.cycle.pop();
    }
}

/// A second failpoint that makes the leader lose its leadership: a stall before it persists
/// (its heartbeats stop while clients keep writing) or a crash after it persisted a batch and
/// before it sent it.
fn deposing_point(rng: &mut ChaCha8Rng) -> (Failpoint, String) {
    if rng.gen_bool(0.5) {
        (
            Failpoint::BeforePersist,
            format!("sleep({})", rng.gen_range(1500..=3000)),
        )
    } else {
        (Failpoint::AfterPersistBeforeSend, "1*panic".to_string())
    }
}

/// An action for `point`: a crash now and then, else a delay sized to the
/// window (deferring points hold for seconds; blocking points stall the node for less, and
/// only on some passes, so it goes on making progress between stalls).
fn draw_action(point: Failpoint, rng: &mut ChaCha8Rng) -> String {
    if rng.gen_bool(0.25) {
        return "1*panic".to_string();
    }
    match point {
        Failpoint::AfterCommitBeforeApply | Failpoint::AfterElectionBeforeFirstAppend => {
            format!("sleep({})", rng.gen_range(500..=3000))
        }
        Failpoint::AfterApplyBeforeReply => format!("sleep({})", rng.gen_range(200..=2000)),
        _ => {
            let percent = *[10, 50, 100].choose(rng).expect("non-empty");
            let ms = rng.gen_range(50..=1000);
            if percent == 100 {
                format!("sleep({ms})")
            } else {
                format!("{percent}%sleep({ms})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn choices_parse_with_actions_and_targets_and_refuse_mistakes() {
        let c = parse_choices("after-persist-before-send=1*panic@leader, before-persist").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].point, Failpoint::AfterPersistBeforeSend);
        assert_eq!(c[0].action.as_deref(), Some("1*panic"));
        assert_eq!(c[0].target, Some(Target::Leader));
        assert_eq!(c[1].action, None);
        assert_eq!(c[1].target, None);
        for bad in [
            "nope",
            "before-persist=explode",
            "before-persist=off",
            "before-persist@everyone",
        ] {
            assert!(parse_choices(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn every_point_comes_once_per_cycle_and_every_action_parses() {
        let nodes = [1, 2, 3, 4, 5];
        let mut p = FailpointPlanner::new(FailpointSet::default());
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut seen = Vec::new();
        for _ in 0..Failpoint::ALL.len() {
            let parts = p.draw(&nodes, Some(3), &mut rng);
            p.accepted();
            seen.push(parts[0].point);
            for part in &parts {
                assert!(part.action.parse::<Action>().is_ok(), "{}", part.action);
                assert!(!part.nodes.is_empty());
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), Failpoint::ALL.len(), "{seen:?}");
    }

    #[test]
    fn an_election_window_sets_the_followers_and_deposes_the_leader() {
        let nodes = [1, 2, 3, 4, 5];
        let mut p = FailpointPlanner::new(FailpointSet::default());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut windows = 0;
        for _ in 0..3 * Failpoint::ALL.len() {
            let parts = p.draw(&nodes, Some(2), &mut rng);
            p.accepted();
            if ELECTION_WINDOW_POINTS.contains(&parts[0].point) {
                windows += 1;
                assert_eq!(parts.len(), 2);
                assert_eq!(parts[0].nodes, vec![1, 3, 4, 5]);
                assert_eq!(parts[1].nodes, vec![2]);
                assert!(matches!(
                    parts[1].point,
                    Failpoint::BeforePersist | Failpoint::AfterPersistBeforeSend
                ));
            } else {
                assert_eq!(parts.len(), 1);
            }
        }
        assert_eq!(windows, 6, "two points, three cycles");
    }

    #[test]
    fn explicit_choices_are_drawn_as_given() {
        let nodes = [1, 2, 3];
        let mut p = FailpointPlanner::new(FailpointSet::Given(
            parse_choices("after-commit-before-apply=sleep(100)@one").unwrap(),
        ));
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..5 {
            let parts = p.draw(&nodes, Some(1), &mut rng);
            p.accepted();
            assert_eq!(parts.len(), 1);
            assert_eq!(parts[0].action, "sleep(100)");
            assert_eq!(parts[0].target, Target::One);
            assert_eq!(parts[0].nodes.len(), 1);
        }
    }
}

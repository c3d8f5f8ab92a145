//! Which fault, read path and workload exposes each deliberate bug of `node --bug`, found
//! empirically (the measured figures are in the README's table and the selftest page).

use node::bugs::Bug;

/// How to expose one bug: the `harness test` options of its runs (besides seed and bug).
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The bug's name, as `node --bug` takes it.
    pub bug: Bug,
    /// `--nemesis`.
    pub nemesis: &'static str,
    /// `--read-mode`.
    pub read_mode: &'static str,
    /// `--workload`.
    pub workload: &'static str,
    /// The remaining options (`--nodes`, `--time-limit`, intervals, clock rates, ...).
    pub extra: &'static [&'static str],
    /// Seconds the workload runs (`--time-limit`).
    pub time_limit: f64,
    /// Most seeds tried before the bug is declared not caught.
    pub max_runs: usize,
    /// Why this is the exposing fault (shown on the page).
    pub why: &'static str,
    /// Part of the quick subset (`--fast`).
    pub fast: bool,
}

impl Scenario {
    /// The `harness test` option words of this scenario (without seed, bug and directories).
    pub fn words(&self) -> Vec<String> {
        let mut w: Vec<String> = vec![
            "--nemesis".into(),
            self.nemesis.into(),
            "--read-mode".into(),
            self.read_mode.into(),
            "--workload".into(),
            self.workload.into(),
            "--time-limit".into(),
            self.time_limit.to_string(),
        ];
        w.extend(self.extra.iter().map(|s| s.to_string()));
        w
    }
}

/// One scenario per bug, in the order of [`Bug::ALL`].
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        bug: Bug::AckBeforePersist,
        nemesis: "kill",
        read_mode: "log",
        workload: "set",
        extra: &["--nodes", "3", "--nemesis-interval", "2"],
        time_limit: 15.0,
        max_runs: 4,
        why: "kill -9 of all or a majority loses acknowledged adds that were never on disk",
        fast: true,
    },
    Scenario {
        bug: Bug::VoteIgnoresLog,
        nemesis: "partition",
        read_mode: "log",
        workload: "set",
        extra: &[
            "--nodes",
            "5",
            "--nemesis-interval",
            "2",
            "--rate",
            "300",
            "--partition-shapes",
            "lagging-rejoin",
        ],
        time_limit: 15.0,
        max_runs: 6,
        why: "a follower cut off until it lags is let back in as the leader is cut off; granted votes without the up-to-date check, it can win and overwrite committed adds",
        fast: false,
    },
    Scenario {
        bug: Bug::CommitByCount,
        nemesis: "partition",
        read_mode: "log",
        workload: "set",
        extra: &[
            "--nodes",
            "5",
            "--nemesis-interval",
            "1",
            "--rate",
            "200",
            "--op-timeout",
            "8",
            "--partition-shapes",
            "figure-8",
        ],
        time_limit: 15.0,
        max_runs: 4,
        why: "the figure-8 script replays the paper's Figure 8 as the nodes report each step: a leader's uncommitted adds reach a majority in a later term without an entry of that term, are counted as committed and acknowledged, and a node holding an entry of a term in between then wins and erases them",
        fast: false,
    },
    Scenario {
        bug: Bug::LeaseNoMargin,
        nemesis: "partition,clock",
        read_mode: "lease",
        workload: "register",
        extra: &[
            "--nodes",
            "5",
            "--nemesis-interval",
            "1",
            "--keys",
            "2",
            "--rate",
            "400",
            "--concurrency",
            "20",
            "--op-timeout",
            "0.1",
            "--clock-rate-min",
            "20",
            "--clock-rate-max",
            "30",
            "--partition-shapes",
            "deaf-leader-fast-follower",
        ],
        time_limit: 15.0,
        max_runs: 6,
        why: "the leader hears nobody while one follower's clock runs fast enough to time out between heartbeats; without stickiness the others elect it while the deaf leader's lease still looks valid, and the deaf leader keeps serving lease reads (short op timeouts send clients on to the new leader)",
        fast: false,
    },
    Scenario {
        bug: Bug::ReadIndexNoConfirm,
        nemesis: "partition,clock",
        read_mode: "read-index",
        workload: "register",
        extra: &[
            "--nodes",
            "5",
            "--nemesis-interval",
            "1.5",
            "--keys",
            "2",
            "--rate",
            "300",
            "--op-timeout",
            "0.2",
            "--clock-rate-min",
            "0.3",
            "--clock-rate-max",
            "0.5",
            "--partition-shapes",
            "slow-isolated-leader",
        ],
        time_limit: 15.0,
        max_runs: 6,
        why: "an isolated leader whose clock runs slow (a combined clock + partition fault) keeps answering reads from its own state after the others elected a new leader and committed writes; check-quorum alone steps it down before that (short op timeouts send clients on to the new leader)",
        fast: false,
    },
    Scenario {
        bug: Bug::FollowerReadLocal,
        nemesis: "partition",
        read_mode: "follower",
        workload: "register",
        extra: &["--nodes", "5", "--nemesis-interval", "3"],
        time_limit: 15.0,
        max_runs: 4,
        why: "a follower cut off from the leader answers from its stale local state",
        fast: true,
    },
    Scenario {
        bug: Bug::NoConflictTruncate,
        nemesis: "partition",
        read_mode: "follower",
        workload: "set",
        extra: &[
            "--nodes",
            "5",
            "--nemesis-interval",
            "1",
            "--rate",
            "200",
            "--op-timeout",
            "8",
            "--partition-shapes",
            "stale-tail",
        ],
        time_limit: 15.0,
        max_runs: 4,
        why: "the stale-tail script leaves a follower holding the old leader's uncommitted adds behind a newer leader's two entries, then lets the old leader win and append after them: a follower that did not truncate passes the consistency check on its stale entry and commits a log without those adds, which its follower reads then miss",
        fast: true,
    },
    Scenario {
        bug: Bug::LeaseWallClock,
        nemesis: "partition,clock",
        read_mode: "lease",
        workload: "register",
        extra: &[
            "--nodes",
            "5",
            "--nemesis-interval",
            "1",
            "--keys",
            "2",
            "--rate",
            "400",
            "--concurrency",
            "20",
            "--op-timeout",
            "0.1",
            "--clock-rate-min",
            "1",
            "--clock-rate-max",
            "1",
            "--clock-bump-ms",
            "3000",
            "--partition-shapes",
            "isolated-leader-clock-back",
        ],
        time_limit: 15.0,
        max_runs: 6,
        why: "the leader is cut off while its wall clock steps back 3 s, rates untouched: the others elect a new leader and commit once their stickiness runs out, and until check-quorum steps the old leader down its lease, measured on the wall clock, still looks valid and it serves stale lease reads (a correct lease, on the monotonic clock, has expired)",
        fast: false,
    },
    Scenario {
        bug: Bug::SkipFsync,
        nemesis: "power",
        read_mode: "log",
        workload: "set",
        extra: &["--nodes", "3", "--nemesis-interval", "2"],
        time_limit: 15.0,
        max_runs: 4,
        why: "the first power loss cuts every node: the lazy filesystem drops what was written and never fsynced, so acknowledged adds vanish (kill -9 alone leaves them in the page cache and does not catch it)",
        fast: false,
    },
    Scenario {
        bug: Bug::ReadBeforeApply,
        nemesis: "failpoint",
        read_mode: "read-index",
        workload: "register",
        extra: &[
            "--nodes",
            "5",
            "--nemesis-interval",
            "2",
            "--failpoints",
            "after-commit-before-apply",
        ],
        time_limit: 20.0,
        max_runs: 4,
        why: "every follower applies committed entries seconds late (failpoint after-commit-before-apply) and the leader is then deposed (a stall before it persists, or a crash after): the next leader confirms a read index that covers writes the old leader acknowledged, and answers before applying them. Partitions and kills almost never open this window",
        fast: false,
    },
];

/// The scenario of `bug`, if it has one.
pub fn scenario(bug: Bug) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.bug == bug)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bug_has_one_valid_scenario() {
        assert_eq!(SCENARIOS.len(), Bug::ALL.len());
        for b in Bug::ALL {
            let s = scenario(b).unwrap_or_else(|| panic!("no scenario for {b}"));
            let mut w = s.words();
            w.extend(["--bug".to_string(), b.to_string()]);
            let a = crate::test::args::test_args(&w).unwrap_or_else(|e| panic!("{b}: {e}"));
            assert_eq!(a.bug.as_deref(), Some(b.name()));
            assert!(s.max_runs >= 1 && s.time_limit > 0.0);
        }
        assert!(SCENARIOS.iter().filter(|s| s.fast).count() >= 2);
    }
}

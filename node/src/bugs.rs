//! The deliberate bugs: the one list of every rule the node can be told to break
//! (`node --bug NAME`), with each bug's name and what it breaks. The node's command line, its
//! configuration ([`crate::runtime::NodeConfig::bugs`]), the Raft core's switches
//! ([`crate::raft::Bugs`], derived here) and the harness's `--bug` validation and self-test
//! all read this list.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::raft::Bugs;

/// One deliberate protocol bug. A correct node runs with none of them; each breaks exactly one
/// rule so that the harness can prove it detects the resulting anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// `ack-before-persist`: send messages (and acknowledge) before the batch is fsynced.
    AckBeforePersist,
    /// `vote-ignores-log`: grant votes without the election restriction.
    VoteIgnoresLog,
    /// `commit-by-count`: commit an earlier term's entry by counting replicas (Figure 8).
    CommitByCount,
    /// `lease-no-margin`: lease of the full election timeout, no drift margin or stickiness.
    LeaseNoMargin,
    /// `read-index-no-confirm`: answer a read index without confirming leadership.
    ReadIndexNoConfirm,
    /// `follower-read-local`: follower reads answered locally without asking the leader.
    FollowerReadLocal,
    /// `no-conflict-truncate`: never truncate a conflicting log suffix.
    NoConflictTruncate,
    /// `lease-wall-clock`: measure the lease on the (jumpable) wall clock.
    LeaseWallClock,
    /// `skip-fsync`: never fsync the log (as `--fsync never`).
    SkipFsync,
    /// `read-before-apply`: answer reads once committed, before the store applied the entry.
    ReadBeforeApply,
}

impl Bug {
    /// Every bug, in the order of the README's table and of `node --help`.
    pub const ALL: [Bug; 10] = [
        Bug::AckBeforePersist,
        Bug::VoteIgnoresLog,
        Bug::CommitByCount,
        Bug::LeaseNoMargin,
        Bug::ReadIndexNoConfirm,
        Bug::FollowerReadLocal,
        Bug::NoConflictTruncate,
        Bug::LeaseWallClock,
        Bug::SkipFsync,
        Bug::ReadBeforeApply,
    ];

    /// The kebab-case name `--bug` accepts; unique among [`Bug::ALL`].
    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforePersist => "ack-before-persist",
            Bug::VoteIgnoresLog => "vote-ignores-log",
            Bug::CommitByCount => "commit-by-count",
            Bug::LeaseNoMargin => "lease-no-margin",
            Bug::ReadIndexNoConfirm => "read-index-no-confirm",
            Bug::FollowerReadLocal => "follower-read-local",
            Bug::NoConflictTruncate => "no-conflict-truncate",
            Bug::LeaseWallClock => "lease-wall-clock",
            Bug::SkipFsync => "skip-fsync",
            Bug::ReadBeforeApply => "read-before-apply",
        }
    }

    /// One line saying which rule the bug breaks (shown by `node --help`).
    pub fn description(self) -> &'static str {
        match self {
            Bug::AckBeforePersist => "messages and acknowledgements are sent before the batch is fsynced",
            Bug::VoteIgnoresLog => "votes are granted without checking that the candidate's log is up to date",
            Bug::CommitByCount => "an earlier term's entry is committed once a majority stores it (Figure 8)",
            Bug::LeaseNoMargin => "the lease lasts the full election timeout, with no drift margin and no leader stickiness",
            Bug::ReadIndexNoConfirm => "a read index is answered without the heartbeat round that confirms leadership",
            Bug::FollowerReadLocal => "follower reads are answered from the follower's state without asking the leader",
            Bug::NoConflictTruncate => "conflicting entries are overwritten but a longer conflicting suffix is never truncated",
            Bug::LeaseWallClock => "the lease is measured on the wall clock, which clock jumps move, not the monotonic one",
            Bug::SkipFsync => "the log is written but never fsynced (as --fsync never); only a power loss shows it",
            Bug::ReadBeforeApply => "reads are answered once the commit index reaches the read index, before the store applied it",
        }
    }

    /// The names of [`Bug::ALL`] joined by ", " (for error messages listing the choices).
    pub fn names() -> String {
        Bug::ALL.map(Bug::name).join(", ")
    }
}

impl fmt::Display for Bug {
    /// Writes [`Bug::name`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of [`Bug::ALL`]; its message lists the known names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown bug {0:?} (expected one of {names})", names = Bug::names())]
pub struct UnknownBug(pub String);

impl FromStr for Bug {
    type Err = UnknownBug;
    /// Parses exactly a [`Bug::name`] (case-sensitive); the inverse of `Display`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBug(s.to_string()))
    }
}

impl clap::ValueEnum for Bug {
    fn value_variants<'a>() -> &'a [Self] {
        &Bug::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.description()))
    }
}

/// The Raft core's switches for the bugs it implements (the others live in the runtime);
/// the only place a set of [`Bug`] is turned into [`Bugs`].
pub fn raft_bugs(set: &BTreeSet<Bug>) -> Bugs {
    Bugs {
        vote_ignores_log: set.contains(&Bug::VoteIgnoresLog),
        commit_by_count: set.contains(&Bug::CommitByCount),
        no_conflict_truncate: set.contains(&Bug::NoConflictTruncate),
        read_index_no_confirm: set.contains(&Bug::ReadIndexNoConfirm),
        lease_no_margin: set.contains(&Bug::LeaseNoMargin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let names: BTreeSet<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        assert_eq!(names.len(), Bug::ALL.len());
        for b in Bug::ALL {
            assert_eq!(b.to_string().parse::<Bug>(), Ok(b));
            assert!(!b.description().contains('\n'));
        }
        let e = "nope".parse::<Bug>().unwrap_err().to_string();
        assert!(e.contains("\"nope\"") && e.contains("skip-fsync"), "{e}");
    }

    #[test]
    fn clap_accepts_exactly_the_names() {
        use clap::ValueEnum;
        for b in Bug::ALL {
            assert_eq!(<Bug as ValueEnum>::from_str(b.name(), false), Ok(b));
        }
    }
}

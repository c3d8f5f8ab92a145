//! Configuration of one Raft node, and the switches for deliberate protocol bugs.

use super::types::NodeId;
use thiserror::Error;

/// Deliberate protocol bugs, each breaking exactly one rule of Raft so that the harness can
/// prove it detects the resulting anomaly. All are off by default; a correct node never sets
/// any of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Grant votes without the election restriction (the candidate's log need not be at least
    /// as up-to-date as the voter's), so a leader may lack committed entries.
    pub vote_ignores_log: bool,
    /// Commit any entry stored on a majority even if it is from an earlier term (the Figure 8
    /// mistake), so a "committed" entry can later be overwritten. Trusting that, a new leader
    /// appends no no-op entry of its term either (the no-op exists only because of the rule
    /// this bug breaks).
    pub commit_by_count: bool,
    /// On AppendEntries, overwrite conflicting entries in place but never truncate a longer
    /// conflicting suffix, breaking log matching.
    pub no_conflict_truncate: bool,
    /// Answer a read index at once, without the heartbeat round that confirms leadership.
    pub read_index_no_confirm: bool,
    /// Lease of the full minimum election timeout with no clock-drift margin, and no leader
    /// stickiness on the followers.
    pub lease_no_margin: bool,
}

/// Static configuration of a [`Raft`](super::Raft) node.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// This node's id; must be one of the voters for the node to ever campaign.
    pub id: NodeId,
    /// The initial voting members, including `id`; empty for a node that joins an existing
    /// cluster and waits for a leader to add it. Used only until the log (or a snapshot)
    /// holds a configuration entry.
    pub voters: Vec<NodeId>,
    /// The randomized election timeout is drawn from `[election_ticks_min, election_ticks_max)`
    /// ticks. The minimum is also the check-quorum period and the leader-stickiness window.
    pub election_ticks_min: u32,
    /// Exclusive upper bound of the randomized election timeout; must exceed the minimum so
    /// that nodes whose ticks are not synchronized still break ties (`docs/raft-pitfalls.md`
    /// #11: election timeouts are drawn from a non-empty range).
    pub election_ticks_max: u32,
    /// A leader sends heartbeats every `heartbeat_ticks` ticks; must be well below the
    /// minimum election timeout.
    pub heartbeat_ticks: u32,
    /// Bound on pipelined AppendEntries messages in flight to one follower in replicate state.
    pub max_inflight_msgs: usize,
    /// Bound on entries carried by one AppendEntries message.
    pub max_entries_per_msg: usize,
    /// Bound on the bytes of entries (by [`Entry::size_bytes`](super::Entry::size_bytes))
    /// carried by one AppendEntries message, so that a batch of large entries still fits the
    /// transport's frame. A message always carries at least one entry when one is due, so a
    /// single entry may exceed it: the runtime must refuse proposals that could not travel
    /// alone.
    pub max_bytes_per_msg: usize,
    /// Run a pre-vote round before a real election, so that a node that cannot win does not
    /// bump anyone's term.
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a majority within the minimum election
    /// timeout, and followers that heard from a leader within that window ignore (pre-)votes
    /// (leader stickiness). Lease reads are only safe with this on.
    pub check_quorum: bool,
    /// Bound on clock-rate drift between nodes assumed by lease reads: the lease lasts
    /// [`Config::lease_ticks`] = floor((`election_ticks_min` − 1) × (1 − `max_clock_drift`))
    /// ticks from the tick at or before the send of a majority-acknowledged heartbeat, and
    /// is safe while no node's clock runs more than [`Config::lease_rate_bound`] ≥
    /// 1 / (1 − `max_clock_drift`) times as fast as the leader's (≈ 11 % for 0.1).
    pub max_clock_drift: f64,
    /// Bound on the bytes of snapshot data carried by one InstallSnapshot message.
    pub max_snapshot_chunk: usize,
    /// Deliberate protocol bugs, all false by default.
    pub bugs: Bugs,
}

/// A configuration that [`Config::validate`] rejects.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// The node's own id is not among the voters.
    #[error("node id {0} is not among the voters")]
    NotAVoter(NodeId),
    /// The voter list names a node twice.
    #[error("voter {0} is listed twice")]
    DuplicateVoter(NodeId),
    /// The election timeout range is empty or zero.
    #[error("election timeout range [{min}, {max}) ticks is empty or zero")]
    BadElectionRange {
        /// The configured minimum.
        min: u32,
        /// The configured maximum.
        max: u32,
    },
    /// Heartbeats would not arrive before followers time out.
    #[error("heartbeat every {heartbeat} ticks is not below the minimum election timeout {min}")]
    HeartbeatTooSlow {
        /// The configured heartbeat interval.
        heartbeat: u32,
        /// The configured minimum election timeout.
        min: u32,
    },
    /// A batching or pipelining bound is zero.
    #[error("max_inflight_msgs, max_entries_per_msg, max_bytes_per_msg and max_snapshot_chunk must be at least 1")]
    ZeroBound,
    /// The drift margin is not in `[0, 1)`.
    #[error("max_clock_drift {0} is not in [0, 1)")]
    BadDrift(f64),
}

impl Config {
    /// A configuration with sane defaults: election timeout 10..20 ticks, heartbeat every 2
    /// ticks, 64 messages in flight, 256 entries and 1 MiB of entries per message (a quarter
    /// of the runtime's 4 MiB frame), pre-vote and check-quorum on,
    /// 10 % clock-drift margin, no bugs.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Config {
        Config {
            id,
            voters,
            election_ticks_min: 10,
            election_ticks_max: 20,
            heartbeat_ticks: 2,
            max_inflight_msgs: 64,
            max_entries_per_msg: 256,
            max_bytes_per_msg: 1024 * 1024,
            pre_vote: true,
            check_quorum: true,
            max_clock_drift: 0.1,
            max_snapshot_chunk: 256 * 1024,
            bugs: Bugs::default(),
        }
    }

    /// How many of its own ticks a leader's lease lasts after the tick at or before the send
    /// of a heartbeat round a majority acknowledged. The single place where the lease and
    /// leader stickiness are made to agree:
    ///
    /// - Stickiness (`Raft::in_lease`): a follower refuses (pre-)votes while fewer than
    ///   `election_ticks_min` of its own ticks have passed since it last heard the leader
    ///   (or since it started). Its ticks are not aligned with message arrivals: the first
    ///   one may come an instant after the heartbeat, so it refuses for more than
    ///   `min − 1` follower ticks after the heartbeat arrived, and no more is guaranteed. A
    ///   follower whose randomized timeout is exactly `min` campaigns at that `min`-th tick,
    ///   which is the same bound.
    /// - The lease ends `L` leader ticks after the tick at or before the send, so at most
    ///   `L` leader ticks after the send, and the heartbeat arrives after it was sent.
    ///
    /// Every later leader needs a vote (or its own campaign) from a node of the
    /// acknowledging majority, so the lease is safe iff `L × T_leader ≤ (min − 1) ×
    /// T_follower` for tick periods `T`, whatever the message delays. With
    /// `L = floor((min − 1) × (1 − max_clock_drift))` that holds while no follower's clock
    /// runs more than [`Config::lease_rate_bound`] times as fast as the leader's. The bug
    /// `lease_no_margin` takes the full minimum instead (and drops stickiness).
    pub fn lease_ticks(&self) -> u64 {
        let min = u64::from(self.election_ticks_min);
        if self.bugs.lease_no_margin {
            return min;
        }
        let ticks = (min.saturating_sub(1) as f64 * (1.0 - self.max_clock_drift)).floor();
        // Not finite or negative only for a drift outside [0, 1), which `repaired` replaces.
        if ticks.is_finite() && ticks > 0.0 {
            ticks as u64
        } else {
            0
        }
    }

    /// The fastest a follower's clock may run, relative to the leader's, for lease reads to
    /// stay linearizable: `(election_ticks_min − 1) / lease_ticks()`, at least
    /// `1 / (1 − max_clock_drift)` (1.125 at 10 ticks and 1.115 at 30 ticks for drift 0.1).
    /// Infinite when the lease is empty.
    pub fn lease_rate_bound(&self) -> f64 {
        let min = f64::from(self.election_ticks_min);
        (min - 1.0) / self.lease_ticks() as f64
    }

    /// Checks the configuration. [`Raft::new`](super::Raft::new) does not fail: it repairs an
    /// invalid configuration to the nearest valid one (and logs it), so call this first to
    /// turn bad command-line input into a clear error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for &v in &self.voters {
            if !seen.insert(v) {
                return Err(ConfigError::DuplicateVoter(v));
            }
        }
        if !seen.is_empty() && !seen.contains(&self.id) {
            return Err(ConfigError::NotAVoter(self.id));
        }
        if self.election_ticks_min == 0 || self.election_ticks_max <= self.election_ticks_min {
            return Err(ConfigError::BadElectionRange {
                min: self.election_ticks_min,
                max: self.election_ticks_max,
            });
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks_min {
            return Err(ConfigError::HeartbeatTooSlow {
                heartbeat: self.heartbeat_ticks,
                min: self.election_ticks_min,
            });
        }
        if self.max_inflight_msgs == 0
            || self.max_entries_per_msg == 0
            || self.max_bytes_per_msg == 0
            || self.max_snapshot_chunk == 0
        {
            return Err(ConfigError::ZeroBound);
        }
        if !(0.0..1.0).contains(&self.max_clock_drift) {
            return Err(ConfigError::BadDrift(self.max_clock_drift));
        }
        Ok(())
    }

    /// Returns a copy with every invalid field replaced by the nearest valid value, so that
    /// the core never divides by zero or draws from an empty range.
    pub(crate) fn repaired(&self) -> Config {
        let mut c = self.clone();
        c.election_ticks_min = c.election_ticks_min.max(2);
        if c.election_ticks_max <= c.election_ticks_min {
            c.election_ticks_max = c.election_ticks_min * 2;
        }
        c.heartbeat_ticks = c.heartbeat_ticks.clamp(1, c.election_ticks_min - 1);
        c.max_inflight_msgs = c.max_inflight_msgs.max(1);
        c.max_entries_per_msg = c.max_entries_per_msg.max(1);
        c.max_bytes_per_msg = c.max_bytes_per_msg.max(1);
        c.max_snapshot_chunk = c.max_snapshot_chunk.max(1);
        if !(0.0..1.0).contains(&c.max_clock_drift) {
            c.max_clock_drift = 0.1;
        }
        let mut seen = std::collections::BTreeSet::new();
        c.voters.retain(|v| seen.insert(*v));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::new(1, vec![1, 2, 3]).validate(), Ok(()));
    }

    #[test]
    fn lease_fits_inside_stickiness_within_the_drift_bound() {
        for (min, drift, ticks) in [(10, 0.1, 8), (30, 0.1, 26), (2, 0.1, 0), (10, 0.0, 9)] {
            let mut c = Config::new(1, vec![1, 2, 3]);
            c.election_ticks_min = min;
            c.max_clock_drift = drift;
            assert_eq!(c.lease_ticks(), ticks, "min {min}, drift {drift}");
            assert!(
                c.lease_rate_bound() >= 1.0 / (1.0 - drift),
                "min {min}, drift {drift}"
            );
        }
    }

    #[test]
    fn invalid_configs_are_named_and_repaired() {
        let mut c = Config::new(4, vec![1, 2, 3]);
        assert_eq!(c.validate(), Err(ConfigError::NotAVoter(4)));
        c.id = 1;
        c.election_ticks_max = 5;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::BadElectionRange { .. })
        ));
        let r = c.repaired();
        assert!(r.election_ticks_max > r.election_ticks_min);
        assert!(r.heartbeat_ticks < r.election_ticks_min);
        c.voters = vec![1, 1];
        assert_eq!(c.validate(), Err(ConfigError::DuplicateVoter(1)));
    }
}

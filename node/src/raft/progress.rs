//! What a leader knows about one follower's log, and how fast it may send to it.
//!
//! ```text
//!            rejection / unknown follower             success response
//!   Probe  <------------------------------  Replicate  <-------------- Probe
//!   one AppendEntries at a time,            pipelined: `next` moves on optimistically,
//!   paused until an answer or heartbeat     at most `max_inflight_msgs` unacknowledged
//! ```

use super::types::LogIndex;
use std::collections::VecDeque;

/// How the leader currently replicates to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// The match point is unknown: send one message, wait for its answer.
    Probe,
    /// The follower is known to match up to `match_index`: stream entries.
    Replicate,
    /// The follower needs entries the leader compacted: send the snapshot, one chunk at a
    /// time; no appends until it is installed (`docs/raft-pitfalls.md` #20).
    Snapshot,
}

/// A bounded window of unacknowledged AppendEntries, each remembered by the last index it
/// carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inflights {
    last_indexes: VecDeque<LogIndex>,
    cap: usize,
}

impl Inflights {
    /// An empty window of capacity `cap` (at least 1).
    pub fn new(cap: usize) -> Inflights {
        Inflights {
            last_indexes: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Whether no more messages may be sent.
    pub fn full(&self) -> bool {
        self.last_indexes.len() >= self.cap
    }

    /// Number of messages in flight.
    pub fn len(&self) -> usize {
        self.last_indexes.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.last_indexes.is_empty()
    }

    /// Records a sent message whose last entry is `last`.
    pub fn add(&mut self, last: LogIndex) {
        self.last_indexes.push_back(last);
    }

    /// Forgets every message whose entries are all acknowledged by a match at `index`.
    pub fn free_to(&mut self, index: LogIndex) {
        while self.last_indexes.front().is_some_and(|&l| l <= index) {
            self.last_indexes.pop_front();
        }
    }

    /// Forgets the oldest message (used when a heartbeat answer shows the follower is alive
    /// but the window is stuck full, e.g. because answers were lost).
    pub fn free_first(&mut self) {
        self.last_indexes.pop_front();
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.last_indexes.clear();
    }
}

/// The leader's view of one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Highest index known to be replicated (and persisted) on the follower.
    pub match_index: LogIndex,
    /// Next index to send. Invariant: `match_index < next_index`.
    pub next_index: LogIndex,
    /// Probe or replicate.
    pub state: ProgressState,
    /// In probe state: a message was sent and not yet answered.
    pub probe_sent: bool,
    /// Unacknowledged messages in replicate state.
    pub inflights: Inflights,
    /// Heard from the follower since the last check-quorum period.
    pub recent_active: bool,
    /// Highest heartbeat round the follower acknowledged.
    pub acked_round: u64,
    /// In snapshot state: the index of the snapshot being sent.
    pub snapshot_index: LogIndex,
    /// In snapshot state: the byte offset of the next chunk to send.
    pub snapshot_offset: u64,
    /// In snapshot state: a chunk was sent and not yet answered.
    pub snapshot_sent: bool,
}

impl Progress {
    /// A follower about which nothing is known: probe from `next_index`.
    pub fn new(next_index: LogIndex, max_inflight: usize) -> Progress {
        Progress {
            match_index: 0,
            next_index: next_index.max(1),
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_inflight),
            recent_active: false,
            acked_round: 0,
            snapshot_index: 0,
            snapshot_offset: 0,
            snapshot_sent: false,
        }
    }

    /// Enters snapshot state for the snapshot at `index`, from its first byte.
    pub fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ProgressState::Snapshot;
        self.snapshot_index = index;
        self.snapshot_offset = 0;
        self.snapshot_sent = false;
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Whether the leader must hold back AppendEntries with entries.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }

    /// Enters probe state: resend from just after the known match.
    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.snapshot_sent = false;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Enters replicate state: stream from just after the known match.
    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.snapshot_sent = false;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Records that the follower matches up to `index`. Returns true if the match index grew.
    pub fn maybe_update(&mut self, index: LogIndex) -> bool {
        let grew = index > self.match_index;
        if grew {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(index + 1);
        self.inflights.free_to(index);
        grew
    }

    /// Records that a message carrying entries up to `last` (or none, if `last` is None)
    /// was sent.
    pub fn sent(&mut self, last: Option<LogIndex>) {
        match self.state {
            ProgressState::Snapshot => {}
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Replicate => {
                if let Some(last) = last {
                    self.next_index = last + 1;
                    self.inflights.add(last);
                }
            }
        }
    }

    /// Handles a rejection of `prev_index == rejected`, with `hint_next` the leader's best
    /// guess of the follower's first mismatching index. Returns false for a stale rejection
    /// (one that answers an older message and carries no news).
    pub fn maybe_decrease_to(&mut self, rejected: LogIndex, hint_next: LogIndex) -> bool {
        match self.state {
            // Rejections of appends sent before the snapshot carry no news.
            ProgressState::Snapshot => false,
            ProgressState::Replicate => {
                if rejected <= self.match_index {
                    return false;
                }
                // The pipeline broke (a message was lost or the follower restarted): fall
                // back to probing from the last known match.
                self.become_probe();
                true
            }
            ProgressState::Probe => {
                if self.next_index != rejected + 1 {
                    return false;
                }
                // Any next in (match, rejected] is safe; the hint only skips ahead.
                self.next_index = hint_next.min(rejected).max(self.match_index + 1);
                self.probe_sent = false;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_at_a_time() {
        let mut p = Progress::new(5, 4);
        assert!(!p.is_paused());
        p.sent(Some(7));
        assert!(p.is_paused());
        assert_eq!(p.next_index, 5, "probe does not move next optimistically");
        assert!(p.maybe_update(7));
        assert!(!p.is_paused());
    }

    #[test]
    fn replicate_window_is_bounded() {
        let mut p = Progress::new(1, 2);
        p.become_replicate();
        p.sent(Some(3));
        p.sent(Some(6));
        assert!(p.is_paused());
        assert_eq!(p.next_index, 7);
        p.maybe_update(3);
        assert!(!p.is_paused());
        assert_eq!(p.inflights.len(), 1);
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(10, 4);
        assert!(
            !p.maybe_decrease_to(5, 3),
            "probe: rejection of another prev_index"
        );
        assert!(p.maybe_decrease_to(9, 4));
        assert_eq!(p.next_index, 4);
        let mut r = Progress::new(1, 4);
        r.maybe_update(6);
        r.become_replicate();
        assert!(!r.maybe_decrease_to(6, 1));
        assert!(r.maybe_decrease_to(8, 1));
        assert_eq!((r.state, r.next_index), (ProgressState::Probe, 7));
    }
}

//! The in-memory Raft log with its persistence and apply cursors.
//!
//! ```text
//!  1 ..... applied ..... committed ........ stabled ........ last
//!  |-- handed to the ---|-- committed, ---|                 |
//!  |   state machine    |   not applied   |                 |
//!  |----------- persisted (acknowledged by advance) --------|-- unstable: next Ready --|
//! ```
//! Entries are delivered for applying only up to `min(committed, stabled)` (pitfall 17).

use super::types::{Entry, LogIndex, Term};

/// Why an append was refused even though its consistency check passed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The append would replace an entry this node already knows to be committed: some node
    /// broke a Raft rule (possible only with a deliberate bug, or a lost fsync).
    #[error("conflict at committed index {index} (committed up to {committed})")]
    ConflictWithCommitted {
        /// The first conflicting index.
        index: LogIndex,
        /// This node's commit index.
        committed: LogIndex,
    },
    /// The entries are not contiguous after `prev_index`.
    #[error("entries do not follow index {prev_index} contiguously")]
    NotContiguous {
        /// The message's prev_index.
        prev_index: LogIndex,
    },
}

/// The log of one node. `entries[i]` holds index `i + 1`.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    entries: Vec<Entry>,
    /// Highest index known to be on disk (acknowledged through `advance`).
    stabled: LogIndex,
    /// Highest index known committed.
    committed: LogIndex,
    /// Highest index handed to the state machine.
    applied: LogIndex,
    /// Lowest index truncated since the last `take_unstable`, so that an `advance` for a
    /// Ready built before the truncation does not mark replaced entries as persisted.
    truncated_since_ready: Option<LogIndex>,
}

impl RaftLog {
    /// A log recovered from storage: `entries` are persisted. Returns the log and the number
    /// of recovered entries dropped because they were not contiguous from index 1 with
    /// non-decreasing terms (only the valid prefix is kept; storage should never produce that).
    pub fn recover(entries: Vec<Entry>, committed: LogIndex) -> (RaftLog, usize) {
        let total = entries.len();
        let mut kept: Vec<Entry> = Vec::with_capacity(total);
        for e in entries {
            let prev_term = kept.last().map_or(0, |p| p.term);
            if e.index != kept.len() as LogIndex + 1 || e.term < prev_term || e.term == 0 {
                break;
            }
            kept.push(e);
        }
        let dropped = total - kept.len();
        let last = kept.len() as LogIndex;
        let log = RaftLog {
            entries: kept,
            stabled: last,
            committed: committed.min(last),
            applied: 0,
            truncated_since_ready: None,
        };
        (log, dropped)
    }

    /// Index of the last entry (0 when empty).
    pub fn last_index(&self) -> LogIndex {
        self.entries.len() as LogIndex
    }

    /// Term of the last entry (0 when empty).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(0, |e| e.term)
    }

    /// Term at `index`: `Some(0)` for index 0, `None` beyond the end.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == 0 {
            return Some(0);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if present.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index == 0 {
            return None;
        }
        self.entries.get((index - 1) as usize)
    }

    /// All entries (index 1 first).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Entries in `[lo, hi]`, clipped to the log.
    pub fn slice(&self, lo: LogIndex, hi: LogIndex) -> Vec<Entry> {
        let hi = hi.min(self.last_index());
        if lo == 0 || lo > hi {
            return Vec::new();
        }
        self.entries[(lo - 1) as usize..hi as usize].to_vec()
    }

    /// Commit index.
    pub fn committed(&self) -> LogIndex {
        self.committed
    }

    /// Applied index.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// Highest persisted index.
    pub fn stabled(&self) -> LogIndex {
        self.stabled
    }

    /// The election restriction (§5.4.1): a candidate whose last entry is `(index, term)` is
    /// at least as up-to-date as this log.
    pub fn is_up_to_date(&self, index: LogIndex, term: Term) -> bool {
        term > self.last_term() || (term == self.last_term() && index >= self.last_index())
    }

    /// Appends one entry at the end (leader path). Returns its index.
    pub fn push(&mut self, term: Term, payload: super::types::EntryPayload) -> LogIndex {
        let index = self.last_index() + 1;
        self.entries.push(Entry {
            term,
            index,
            payload,
        });
        index
    }

    /// The first index among `entries` that is either absent from this log or present with
    /// another term; None when every entry is already here.
    pub fn find_conflict(&self, entries: &[Entry]) -> Option<LogIndex> {
        entries
            .iter()
            .find(|e| self.term(e.index) != Some(e.term))
            .map(|e| e.index)
    }

    /// Follower side of AppendEntries after the consistency check on `prev_index` passed:
    /// appends `entries`, truncating a conflicting suffix (or, with `no_truncate`, the
    /// deliberate bug, overwriting in place and keeping a longer conflicting suffix).
    /// Returns the last index known to match the leader (`prev_index + entries.len()`).
    pub fn append_after(
        &mut self,
        prev_index: LogIndex,
        entries: &[Entry],
        no_truncate: bool,
    ) -> Result<LogIndex, AppendError> {
        for (i, e) in entries.iter().enumerate() {
            if e.index != prev_index + 1 + i as LogIndex {
                return Err(AppendError::NotContiguous { prev_index });
            }
        }
        let last_new = prev_index + entries.len() as LogIndex;
        let Some(conflict) = self.find_conflict(entries) else {
            return Ok(last_new);
        };
        if conflict <= self.committed {
            return Err(AppendError::ConflictWithCommitted {
                index: conflict,
                committed: self.committed,
            });
        }
        let from = (conflict - prev_index - 1) as usize;
        if no_truncate {
            for e in &entries[from..] {
                if e.index <= self.last_index() {
                    self.mark_replaced(e.index);
                    self.entries[(e.index - 1) as usize] = e.clone();
                } else {
                    self.entries.push(e.clone());
                }
            }
        } else {
            self.truncate_from(conflict);
            self.entries.extend_from_slice(&entries[from..]);
        }
        Ok(last_new)
    }

    /// Drops every entry at `index` and after.
    fn truncate_from(&mut self, index: LogIndex) {
        if index <= self.last_index() {
            self.mark_replaced(index);
            self.entries.truncate((index - 1) as usize);
        }
    }

    /// Notes that the entry at `index` changes, so it and all after it must be persisted again.
    fn mark_replaced(&mut self, index: LogIndex) {
        self.stabled = self.stabled.min(index - 1);
        self.truncated_since_ready =
            Some(self.truncated_since_ready.map_or(index, |t| t.min(index)));
    }

    /// The rejection hint for a failed consistency check at `prev_index`: `(0, last + 1)` if
    /// the log is short, else the term at `prev_index` and the first index of that term
    /// (never at or below the commit index, which is known to match the leader).
    pub fn conflict_hint(&self, prev_index: LogIndex) -> (Term, LogIndex) {
        match self.term(prev_index) {
            None => (0, self.last_index() + 1),
            Some(t) => {
                let mut first = prev_index;
                while first > self.committed + 1 && self.term(first - 1) == Some(t) {
                    first -= 1;
                }
                (t, first)
            }
        }
    }

    /// Leader side of fast backtracking: the last index at or below `max` whose term is
    /// `term`, if this log has any.
    pub fn last_index_of_term(&self, term: Term, max: LogIndex) -> Option<LogIndex> {
        let mut i = max.min(self.last_index());
        while i > 0 {
            let t = self.term(i)?;
            if t == term {
                return Some(i);
            }
            if t < term {
                return None;
            }
            i -= 1;
        }
        None
    }

    /// Raises the commit index to `index` (clipped to the log). Returns true if it grew.
    pub fn commit_to(&mut self, index: LogIndex) -> bool {
        let index = index.min(self.last_index());
        if index > self.committed {
            self.committed = index;
            true
        } else {
            false
        }
    }

    /// Commits up to `index` if the entry there is of `term` (the Figure 8 rule), or
    /// unconditionally when `ignore_term` (the deliberate bug). Returns true if it grew.
    pub fn maybe_commit(&mut self, index: LogIndex, term: Term, ignore_term: bool) -> bool {
        if index > self.committed && (ignore_term || self.term(index) == Some(term)) {
            self.commit_to(index)
        } else {
            false
        }
    }

    /// Whether there are entries not yet handed out for persisting.
    pub fn has_unstable(&self) -> bool {
        self.last_index() > self.stabled
    }

    /// Entries to persist in the next Ready; opens a new "since ready" truncation window.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        self.truncated_since_ready = None;
        self.slice(self.stabled + 1, self.last_index())
    }

    /// Marks entries up to the Ready's last entry `(index, term)` as persisted, unless they
    /// were replaced after the Ready was built.
    pub fn stable_to(&mut self, index: LogIndex, term: Term) {
        let mut upto = index;
        if let Some(t) = self.truncated_since_ready {
            upto = upto.min(t - 1);
        }
        if self.term(upto).is_some() && (upto < index || self.term(index) == Some(term)) {
            self.stabled = self.stabled.max(upto);
        }
    }

    /// Whether committed, persisted entries wait to be applied.
    pub fn has_next_committed(&self) -> bool {
        self.committed.min(self.stabled) > self.applied
    }

    /// Committed and persisted entries not yet applied, at most `max`.
    pub fn next_committed(&self, max: usize) -> Vec<Entry> {
        let hi = self.committed.min(self.stabled);
        let hi = hi.min(self.applied + max as LogIndex);
        self.slice(self.applied + 1, hi)
    }

    /// Records that entries up to `index` were handed to the state machine.
    pub fn applied_to(&mut self, index: LogIndex) {
        if index > self.applied && index <= self.committed {
            self.applied = index;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::EntryPayload;

    fn ents(terms: &[Term], start: LogIndex) -> Vec<Entry> {
        terms
            .iter()
            .enumerate()
            .map(|(i, &term)| Entry {
                term,
                index: start + i as LogIndex,
                payload: EntryPayload::Noop,
            })
            .collect()
    }

    fn terms(log: &RaftLog) -> Vec<Term> {
        log.entries().iter().map(|e| e.term).collect()
    }

    #[test]
    fn recover_keeps_the_valid_prefix() {
        let mut e = ents(&[1, 1, 2], 1);
        e.push(Entry {
            term: 2,
            index: 7,
            payload: EntryPayload::Noop,
        });
        let (log, dropped) = RaftLog::recover(e, 10);
        assert_eq!((log.last_index(), dropped, log.committed()), (3, 1, 3));
    }

    #[test]
    fn append_truncates_conflicts_and_tracks_stability() {
        let (mut log, _) = RaftLog::recover(ents(&[1, 1, 2, 2], 1), 1);
        assert!(!log.has_unstable());
        assert_eq!(log.append_after(2, &ents(&[3], 3), false), Ok(3));
        assert_eq!(terms(&log), vec![1, 1, 3]);
        assert_eq!(log.stabled(), 2);
        let unstable = log.take_unstable();
        assert_eq!(unstable.len(), 1);
        log.stable_to(3, 3);
        assert_eq!(log.stabled(), 3);
        // Duplicates change nothing.
        assert_eq!(log.append_after(1, &ents(&[1], 2), false), Ok(2));
        assert_eq!(terms(&log), vec![1, 1, 3]);
    }

    #[test]
    fn advance_after_truncation_does_not_mark_replaced_entries() {
        let (mut log, _) = RaftLog::recover(ents(&[1], 1), 0);
        log.append_after(1, &ents(&[2, 2], 2), false).unwrap();
        let r = log.take_unstable();
        log.append_after(1, &ents(&[3], 2), false).unwrap();
        let last = r.last().unwrap();
        log.stable_to(last.index, last.term);
        assert_eq!(log.stabled(), 1);
        assert_eq!(log.take_unstable(), ents(&[3], 2));
    }

    #[test]
    fn no_truncate_bug_keeps_a_conflicting_suffix() {
        let (mut log, _) = RaftLog::recover(ents(&[1, 2, 2, 2], 1), 1);
        log.append_after(1, &ents(&[3], 2), true).unwrap();
        assert_eq!(terms(&log), vec![1, 3, 2, 2]);
    }

    #[test]
    fn committed_entries_are_never_replaced() {
        let (mut log, _) = RaftLog::recover(ents(&[1, 2], 1), 2);
        assert!(matches!(
            log.append_after(1, &ents(&[3], 2), false),
            Err(AppendError::ConflictWithCommitted { index: 2, .. })
        ));
        assert!(log.append_after(0, &ents(&[1], 5), false).is_err());
    }

    #[test]
    fn hints_and_commit_rule() {
        let (mut log, _) = RaftLog::recover(ents(&[1, 1, 4, 4, 4], 1), 0);
        assert_eq!(log.conflict_hint(9), (0, 6));
        assert_eq!(log.conflict_hint(5), (4, 3));
        assert_eq!(log.last_index_of_term(1, 5), Some(2));
        assert_eq!(log.last_index_of_term(2, 5), None);
        assert!(
            !log.maybe_commit(2, 4, false),
            "old-term entry is not committed by count"
        );
        assert!(log.maybe_commit(2, 4, true));
        assert!(log.maybe_commit(4, 4, false));
        assert_eq!(log.next_committed(10).len(), 4);
    }
}

//! The in-memory Raft log with its persistence and apply cursors.
//!
//! ```text
//!  1 ..... applied ..... committed ........ stabled ........ last
//!  |-- handed to the ---|-- committed, ---|                 |
//!  |   state machine    |   not applied   |                 |
//!  |----------- persisted (acknowledged by advance) --------|-- unstable: next Ready --|
//! ```
//! Entries are delivered for applying only up to `min(committed, stabled)`: a committed
//! entry is applied only once it is on this node's disk too (`docs/raft-pitfalls.md` #17).

use super::types::{ClusterConfig, Entry, EntryPayload, LogIndex, SnapshotMeta, Term};
use std::collections::BTreeMap;

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

/// The log of one node. Entries up to `offset` were compacted into a snapshot; `entries[i]`
/// holds index `offset + i + 1`.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    entries: Vec<Entry>,
    /// The last index covered by the snapshot (0 without one).
    offset: LogIndex,
    /// The term of the entry at `offset` (kept after compaction so that the consistency
    /// check of an append right after the snapshot still works: `docs/raft-pitfalls.md` #20,
    /// compaction keeps the term at the snapshot's index).
    offset_term: Term,
    /// The configuration in effect at `offset`.
    base_config: ClusterConfig,
    /// Configuration entries present in `entries`, by index: the last one is in effect.
    configs: BTreeMap<LogIndex, ClusterConfig>,
    /// Highest index known to be on disk (acknowledged through `advance`).
    stabled: LogIndex,
    /// Highest index known committed.
    committed: LogIndex,
    /// Highest index handed to the state machine.
    applied: LogIndex,
    /// Lowest index truncated since the last `take_unstable`, so that an `advance` for a
    /// Ready built before the truncation does not mark replaced entries as persisted.
    truncated_since_ready: Option<LogIndex>,
    /// Deliberate bug `vote-ignores-log`, follower half: trust any leader the way a naive
    /// implementation does, replacing even committed entries (and the commit index with
    /// them) instead of refusing. Together with votes granted without the up-to-date check,
    /// this is how forgetting the election restriction loses committed writes.
    overwrite_committed: bool,
}

impl RaftLog {
    /// A log recovered from storage without a snapshot: `entries` are persisted, and
    /// `base_config` is the configuration before any config entry. See [`RaftLog::recover_from`].
    pub fn recover(entries: Vec<Entry>, committed: LogIndex) -> (RaftLog, usize) {
        RaftLog::recover_from(None, ClusterConfig::default(), entries, committed)
    }

    /// A log recovered from storage: an optional snapshot (whose state the state machine
    /// already holds) and the persisted entries after it. Returns the log and the number of
    /// recovered entries dropped because they were not contiguous after the snapshot with
    /// non-decreasing terms (only the valid prefix is kept; storage should never produce that).
    pub fn recover_from(
        snapshot: Option<&SnapshotMeta>,
        initial_config: ClusterConfig,
        entries: Vec<Entry>,
        committed: LogIndex,
    ) -> (RaftLog, usize) {
        let (offset, offset_term, base_config) = match snapshot {
            Some(m) => (m.index, m.term, m.config.clone()),
            None => (0, 0, initial_config),
        };
        let total = entries.len();
        let mut log = RaftLog {
            entries: Vec::with_capacity(total),
            offset,
            offset_term,
            base_config,
            configs: BTreeMap::new(),
            stabled: 0,
            committed: 0,
            applied: offset,
            truncated_since_ready: None,
            overwrite_committed: false,
        };
        for e in entries {
            if e.index != log.last_index() + 1 || e.term < log.last_term() || e.term == 0 {
                break;
            }
            log.push_entry(e);
        }
        let dropped = total - log.entries.len();
        log.stabled = log.last_index();
        log.committed = committed.clamp(offset, log.last_index());
        (log, dropped)
    }

    /// Index of the last entry (the snapshot's index when no entry follows it; 0 when empty).
    pub fn last_index(&self) -> LogIndex {
        self.offset + self.entries.len() as LogIndex
    }

    /// Term of the last entry (0 when empty).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.offset_term, |e| e.term)
    }

    /// The first index still held as an entry (`snapshot_index() + 1`).
    pub fn first_index(&self) -> LogIndex {
        self.offset + 1
    }

    /// The last index covered by the snapshot (0 without one).
    pub fn snapshot_index(&self) -> LogIndex {
        self.offset
    }

    /// Term at `index`: `Some(0)` for index 0, the snapshot's term at its index, `None`
    /// beyond the end or below the snapshot (compacted).
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.offset {
            return Some(self.offset_term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if present (not compacted, not beyond the end).
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.offset {
            return None;
        }
        self.entries.get((index - self.offset - 1) as usize)
    }

    /// All entries held (index `first_index()` first).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Entries in `[lo, hi]`, clipped to the held entries.
    pub fn slice(&self, lo: LogIndex, hi: LogIndex) -> Vec<Entry> {
        let hi = hi.min(self.last_index());
        let lo = lo.max(self.offset + 1);
        if lo > hi {
            return Vec::new();
        }
        self.entries[(lo - self.offset - 1) as usize..(hi - self.offset) as usize].to_vec()
    }

    /// Entries in `[lo, hi]`, clipped to the held entries, cut short so that their
    /// [`Entry::size_bytes`] sum to at most `max_bytes`, except that the first entry is always
    /// included (an entry larger than `max_bytes` must still be sendable on its own).
    pub fn slice_bounded(&self, lo: LogIndex, hi: LogIndex, max_bytes: usize) -> Vec<Entry> {
        let hi = hi.min(self.last_index());
        let lo = lo.max(self.offset + 1);
        if lo > hi {
            return Vec::new();
        }
        let all = &self.entries[(lo - self.offset - 1) as usize..(hi - self.offset) as usize];
        let mut total = 0usize;
        let mut n = 0;
        for e in all {
            total = total.saturating_add(e.size_bytes());
            if n > 0 && total > max_bytes {
                break;
            }
            n += 1;
        }
        all[..n].to_vec()
    }

    /// The configuration in effect: the last config entry in the log, else the snapshot's.
    pub fn config(&self) -> &ClusterConfig {
        self.configs
            .last_key_value()
            .map_or(&self.base_config, |(_, c)| c)
    }

    /// The index of the entry that set the configuration in effect (the snapshot index when
    /// it comes from the snapshot).
    pub fn config_index(&self) -> LogIndex {
        self.configs
            .last_key_value()
            .map_or(self.offset, |(&i, _)| i)
    }

    /// The configuration in effect at `index` (at or after the snapshot index).
    pub fn config_at(&self, index: LogIndex) -> &ClusterConfig {
        self.configs
            .range(..=index)
            .next_back()
            .map_or(&self.base_config, |(_, c)| c)
    }

    fn push_entry(&mut self, e: Entry) {
        if let EntryPayload::Config(c) = &e.payload {
            self.configs.insert(e.index, c.clone());
        }
        self.entries.push(e);
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
    pub fn push(&mut self, term: Term, payload: EntryPayload) -> LogIndex {
        let index = self.last_index() + 1;
        self.push_entry(Entry {
            term,
            index,
            payload,
        });
        index
    }

    /// The first index among `entries` that is either absent from this log or present with
    /// another term; None when every entry is already here. Entries covered by the snapshot
    /// count as present (they are committed, hence match).
    pub fn find_conflict(&self, entries: &[Entry]) -> Option<LogIndex> {
        entries
            .iter()
            .find(|e| e.index > self.offset && self.term(e.index) != Some(e.term))
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
        if conflict <= self.committed && (!self.overwrite_committed || conflict <= self.offset) {
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
                    let pos = (e.index - self.offset - 1) as usize;
                    self.configs.remove(&e.index);
                    if let EntryPayload::Config(c) = &e.payload {
                        self.configs.insert(e.index, c.clone());
                    }
                    self.entries[pos] = e.clone();
                } else {
                    self.push_entry(e.clone());
                }
            }
        } else {
            self.truncate_from(conflict);
            for e in &entries[from..] {
                self.push_entry(e.clone());
            }
        }
        // Only with the deliberate bug can a committed entry have been replaced.
        self.committed = self.committed.min(self.last_index());
        Ok(last_new)
    }

    /// Turns on the follower half of the deliberate bug `vote-ignores-log` (see the field).
    pub fn set_overwrite_committed(&mut self, on: bool) {
        self.overwrite_committed = on;
    }

    /// Drops every entry at `index` and after (never below the snapshot).
    fn truncate_from(&mut self, index: LogIndex) {
        let index = index.max(self.offset + 1);
        if index <= self.last_index() {
            self.mark_replaced(index);
            self.entries.truncate((index - self.offset - 1) as usize);
            self.configs.split_off(&index);
        }
    }

    /// Notes that the entry at `index` changes, so it and all after it must be persisted again.
    fn mark_replaced(&mut self, index: LogIndex) {
        self.stabled = self.stabled.min(index - 1);
        self.truncated_since_ready =
            Some(self.truncated_since_ready.map_or(index, |t| t.min(index)));
    }

    /// Discards the entries up to `index`, which a snapshot now covers. Only applied,
    /// persisted entries may be compacted; returns false (changing nothing) otherwise.
    pub fn compact_to(&mut self, index: LogIndex) -> bool {
        if index <= self.offset || index > self.applied || index > self.stabled {
            return false;
        }
        let Some(term) = self.term(index) else {
            return false;
        };
        self.base_config = self.config_at(index).clone();
        self.entries.drain(..(index - self.offset) as usize);
        self.configs = self.configs.split_off(&(index + 1));
        self.offset = index;
        self.offset_term = term;
        true
    }

    /// Replaces the whole log by a snapshot received from the leader: every entry is
    /// discarded, and the snapshot's index counts as committed, applied and persisted (the
    /// Ready that carries the snapshot persists and applies it before anything else).
    pub fn restore(&mut self, meta: &SnapshotMeta) {
        // A Ready built before this call must not mark anything of the old log persisted.
        let old_first = self.first_index();
        self.truncated_since_ready = Some(
            self.truncated_since_ready
                .map_or(old_first, |t| t.min(old_first)),
        );
        self.entries.clear();
        self.configs.clear();
        self.offset = meta.index;
        self.offset_term = meta.term;
        self.base_config = meta.config.clone();
        self.committed = self.committed.max(meta.index);
        self.applied = meta.index;
        self.stabled = meta.index;
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
    fn config_takes_effect_when_appended_and_reverts_on_truncation() {
        let base = ClusterConfig::simple([1, 2, 3]);
        let (mut log, _) = RaftLog::recover_from(None, base.clone(), ents(&[1], 1), 1);
        let joint = ClusterConfig {
            voters: [1, 2, 3, 4].into_iter().collect(),
            outgoing: [1, 2, 3].into_iter().collect(),
            context: Vec::new(),
        };
        let e = Entry {
            term: 1,
            index: 2,
            payload: EntryPayload::Config(joint.clone()),
        };
        log.append_after(1, &[e], false).unwrap();
        assert_eq!(
            log.config(),
            &joint,
            "in effect once in the log, uncommitted"
        );
        assert_eq!(log.config_index(), 2);
        log.append_after(1, &ents(&[2], 2), false).unwrap();
        assert_eq!(log.config(), &base, "reverted with the truncated entry");
        assert_eq!(log.config_index(), 0);
    }

    #[test]
    fn compaction_keeps_term_and_config_of_the_snapshot_index() {
        let c = ClusterConfig::simple([1, 2]);
        let (mut log, _) = RaftLog::recover(ents(&[1, 1, 2], 1), 3);
        let e = Entry {
            term: 2,
            index: 4,
            payload: EntryPayload::Config(c.clone()),
        };
        log.append_after(3, &[e], false).unwrap();
        let _ = log.take_unstable();
        log.stable_to(4, 2);
        log.commit_to(4);
        log.applied_to(4);
        assert!(!log.compact_to(5), "not applied");
        assert!(log.compact_to(4));
        assert_eq!((log.first_index(), log.last_index()), (5, 4));
        assert_eq!(log.term(4), Some(2));
        assert_eq!(log.term(3), None);
        assert_eq!(log.config(), &c);
        assert!(log.slice(1, 4).is_empty());
        assert_eq!(log.push(3, EntryPayload::Noop), 5);
        assert_eq!(log.entry(5).map(|e| e.term), Some(3));
    }

    #[test]
    fn slice_bounded_cuts_by_bytes_but_keeps_one_entry() {
        let (mut log, _) = RaftLog::recover(Vec::new(), 0);
        for _ in 0..10 {
            log.push(1, EntryPayload::Command(vec![0; 100]));
        }
        let one = log.entry(1).unwrap().size_bytes();
        assert_eq!(log.slice_bounded(1, 10, 3 * one).len(), 3);
        assert_eq!(log.slice_bounded(1, 10, 3 * one - 1).len(), 2);
        assert_eq!(log.slice_bounded(1, 10, 1).len(), 1, "always one entry");
        assert_eq!(log.slice_bounded(4, 10, usize::MAX).len(), 7);
        assert!(log.slice_bounded(11, 20, usize::MAX).is_empty());
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

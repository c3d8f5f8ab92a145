//! Replay: folds the records of the write-ahead log, in file order, into the log and hard
//! state they describe.

use super::record::{CorruptAt, Record};
use crate::raft::{Entry, HardState, LogIndex};

/// The state rebuilt so far from the records seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replayer {
    /// The last hard state seen (default when none).
    pub hard_state: HardState,
    /// The log, contiguous after `base`: `entries[i]` has index `base + i + 1`.
    pub entries: Vec<Entry>,
    /// The index covered by the snapshot the log follows (0 without one); entries at or
    /// below it are already in the snapshot and are skipped.
    pub base: LogIndex,
}

impl Replayer {
    /// The index of the last entry (0 when the log is empty).
    pub fn last_index(&self) -> LogIndex {
        self.base + self.entries.len() as LogIndex
    }

    /// Applies one record found at byte `offset`. An entry at or below the last index
    /// replaces that index and everything after it (one at or below `base` empties the log); an entry past `last_index() + 1` (a gap)
    /// or with index 0 is no log a correct writer produces and is reported as corruption.
    pub fn apply(&mut self, offset: u64, record: Record) -> Result<(), CorruptAt> {
        match record {
            Record::HardState(hs) => self.hard_state = hs,
            // Covered by the snapshot, but it still replaces everything after its index: any
            // entry past the snapshot seen before it was truncated by it (a conflict), and
            // must not survive because the snapshot happened to land in between.
            Record::Entry(e) if e.index != 0 && e.index <= self.base => self.entries.clear(),
            Record::Entry(e) => {
                let next = self.last_index() + 1;
                if e.index == 0 || e.index > next {
                    return Err(CorruptAt {
                        offset,
                        reason: format!(
                            "entry with index {} does not follow the log (last index {})",
                            e.index,
                            next - 1
                        ),
                    });
                }
                // Lossless: base < e.index <= base + len + 1.
                self.entries.truncate((e.index - self.base - 1) as usize);
                self.entries.push(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryPayload;

    fn e(index: u64, term: u64) -> Record {
        Record::Entry(Entry {
            term,
            index,
            payload: EntryPayload::Noop,
        })
    }

    fn terms(r: &Replayer) -> Vec<(u64, u64)> {
        r.entries.iter().map(|e| (e.index, e.term)).collect()
    }

    #[test]
    fn conflict_replaces_suffix() {
        let mut r = Replayer::default();
        for (i, t) in [(1, 1), (2, 1), (3, 1), (4, 2), (2, 3), (3, 3)] {
            r.apply(0, e(i, t)).unwrap();
        }
        assert_eq!(terms(&r), vec![(1, 1), (2, 3), (3, 3)]);
        r.apply(0, e(1, 4)).unwrap();
        assert_eq!(terms(&r), vec![(1, 4)]);
    }

    #[test]
    fn last_hard_state_wins() {
        let mut r = Replayer::default();
        for t in [1, 5, 3] {
            r.apply(
                0,
                Record::HardState(HardState {
                    term: t,
                    voted_for: None,
                    commit: 0,
                }),
            )
            .unwrap();
        }
        assert_eq!(r.hard_state.term, 3);
    }

    #[test]
    fn an_entry_below_the_base_drops_the_entries_after_the_base() {
        let mut r = Replayer {
            base: 5,
            ..Replayer::default()
        };
        for (i, t) in [(4, 1), (5, 1), (6, 1), (7, 1), (5, 2), (3, 2)] {
            r.apply(0, e(i, t)).unwrap();
        }
        assert_eq!(terms(&r), vec![]);
        r.apply(0, e(6, 2)).unwrap();
        assert_eq!(terms(&r), vec![(6, 2)]);
    }

    #[test]
    fn gap_and_zero_index_are_corrupt() {
        let mut r = Replayer::default();
        assert_eq!(r.apply(40, e(0, 1)).unwrap_err().offset, 40);
        r.apply(0, e(1, 1)).unwrap();
        let err = r.apply(77, e(3, 1)).unwrap_err();
        assert_eq!(err.offset, 77);
        assert!(err.reason.contains("index 3"), "{}", err.reason);
    }
}

//! Durable storage: the write-ahead log of entries and the hard state (term, vote, commit).
//!
//! One append-only file, [`WAL_FILE_NAME`] in the data directory, holds checksummed records
//! of two kinds, an entry or a hard state (format in [`record`]). Nothing is ever rewritten
//! in place: the Raft core's conflict truncation is made durable by appending the replacing
//! entries, and replay lets an entry at or below the last index replace that index and
//! everything after it; the last hard state wins.
//!
//! Durability: [`Storage::append`] and [`Storage::save_hard_state`] only buffer (under
//! [`FsyncPolicy::Batch`]); [`Storage::sync`] writes everything buffered and calls
//! `fdatasync` once, so a batch of many clients' entries costs one fsync (group commit).
//! The runtime must not send a message or acknowledge a write that depends on a record
//! before `sync` has returned `Ok`.
//!
//! On open, a torn last record (a crash in the middle of a write) is cut off and logged; a
//! damaged record with data after it is a fatal [`StorageError::Corrupt`].
//!
//! Log compaction (issue 4) will add snapshot files and split the log into segments named
//! by their first index; the record format and replay rules do not change for that.

pub mod error;
pub mod record;
pub mod replay;

#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub use error::StorageError;
use record::{encode_record, RecordRef};
use replay::Replayer;

use crate::raft::{Entry, HardState, LogIndex, Term};

/// The name of the write-ahead log file inside the data directory.
pub const WAL_FILE_NAME: &str = "wal-00000000000000000001.log";

/// Buffered bytes beyond which `append` writes them to the file (without syncing) so that a
/// caller who syncs rarely does not grow memory without bound.
const FLUSH_THRESHOLD: usize = 1 << 20;

/// When storage calls `fdatasync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Once per [`Storage::sync`] call, covering everything appended since the last one
    /// (group commit). The production setting.
    Batch,
    /// After every record, as a naive log would; for the group-commit benchmark.
    PerEntry,
    /// Never (not even on create or when cutting a torn tail). Only for tests that do not
    /// care about crashes of the machine; a killed process still loses nothing it wrote.
    Never,
}

impl FsyncPolicy {
    /// Every policy, in the order help texts list them.
    pub const ALL: [FsyncPolicy; 3] = [
        FsyncPolicy::Batch,
        FsyncPolicy::PerEntry,
        FsyncPolicy::Never,
    ];

    /// The name used on command lines: `batch`, `per-entry` or `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            FsyncPolicy::Batch => "batch",
            FsyncPolicy::PerEntry => "per-entry",
            FsyncPolicy::Never => "never",
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    /// Parses the names of [`FsyncPolicy::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FsyncPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown fsync policy {s:?} (expected batch, per-entry or never)")
            })
    }
}

/// How to open storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    pub fsync: FsyncPolicy,
}

impl Default for StorageOptions {
    /// Group commit.
    fn default() -> Self {
        StorageOptions {
            fsync: FsyncPolicy::Batch,
        }
    }
}

/// What was on disk when storage was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The last hard state saved (the default, term 0 and no vote, for a new node).
    pub hard_state: HardState,
    /// The log, contiguous from index 1 (`entries[i].index == i + 1`).
    pub entries: Vec<Entry>,
    /// Bytes of a torn last record cut off the end of the file (0 when the file was clean).
    pub torn_bytes_cut: u64,
}

/// The open write-ahead log of one node. Holds an exclusive lock on the file, so two
/// processes can never write the same log.
#[derive(Debug)]
pub struct Storage {
    path: PathBuf,
    file: File,
    opts: StorageOptions,
    /// Encoded records not yet written to the file.
    pending: Vec<u8>,
    /// The term of every entry in the log: index `i` at `terms[i - 1]`. Kept so that appends
    /// can be checked and `last_index`/`term` answered without reading the file.
    terms: Vec<Term>,
    /// The last hard state saved (durable once `sync` returns).
    hard_state: HardState,
    /// Set after a failed write or fsync; every later call fails (see
    /// [`StorageError::Poisoned`]).
    poisoned: bool,
}

impl Storage {
    /// Opens (creating if absent) the log in `dir`, replays it, and returns the storage and
    /// what it held. A new directory or file is made durable (the parent directory is
    /// fsynced) before this returns. A torn last record is cut off, the file fsynced, and a
    /// warning logged naming the file, offset and bytes cut. A damaged record followed by
    /// more data fails with [`StorageError::Corrupt`] naming the file and the record's
    /// offset.
    pub fn open(dir: &Path, opts: StorageOptions) -> Result<(Storage, Recovered), StorageError> {
        let sync = opts.fsync != FsyncPolicy::Never;
        let dir_existed = dir.is_dir();
        std::fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
        if !dir_existed && sync {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let path = dir.join(WAL_FILE_NAME);
        let (mut file, created) = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => (f, true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => (
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path, "open"))?,
                false,
            ),
            Err(e) => return Err(io_err(&path, "create")(e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StorageError::Locked { path }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path, "lock")(e)),
        }
        if created && sync {
            // The file's directory entry must be durable too, or a crash can lose the whole
            // file (etcd issue #6368).
            sync_dir(dir)?;
        }

        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_err(&path, "read"))?;
        let mut replayer = Replayer::default();
        let corrupt = |c: record::CorruptAt| StorageError::Corrupt {
            path: path.clone(),
            offset: c.offset,
            reason: c.reason,
        };
        let scanned = record::scan(&bytes, |o, r| replayer.apply(o, r)).map_err(corrupt)?;
        let file_len = bytes.len() as u64;
        drop(bytes);
        let mut torn_bytes_cut = 0;
        if let Some(torn) = scanned.torn {
            torn_bytes_cut = file_len - scanned.valid_len;
            tracing::warn!(
                file = %path.display(),
                offset = torn.offset,
                bytes_cut = torn_bytes_cut,
                reason = torn.reason,
                "cutting torn tail of write-ahead log"
            );
            file.set_len(scanned.valid_len)
                .map_err(io_err(&path, "truncate"))?;
            if sync {
                file.sync_all().map_err(io_err(&path, "fsync"))?;
            }
        }
        file.seek(SeekFrom::Start(scanned.valid_len))
            .map_err(io_err(&path, "seek"))?;

        let Replayer {
            hard_state,
            entries,
        } = replayer;
        let storage = Storage {
            path,
            file,
            opts,
            pending: Vec::new(),
            terms: entries.iter().map(|e| e.term).collect(),
            hard_state,
            poisoned: false,
        };
        Ok((
            storage,
            Recovered {
                hard_state,
                entries,
                torn_bytes_cut,
            },
        ))
    }

    /// Appends `entries` (consecutive indexes). The first may be at or below the last index:
    /// it then replaces that index and everything after it, on disk (at replay) as here.
    /// Fails without writing anything if the first index is 0 or past `last_index() + 1`,
    /// or the entries are not consecutive. Durable only after [`Storage::sync`] (or at once
    /// under [`FsyncPolicy::PerEntry`]).
    ///
    /// The Raft core must pass only entries from the first conflicting index on: passing an
    /// entry the log already has, followed by a shorter tail, truncates the log.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_usable()?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let last = self.last_index();
        if first.index == 0 || first.index > last + 1 {
            return Err(StorageError::InvalidAppend(format!(
                "first entry has index {} but the log's last index is {last}",
                first.index
            )));
        }
        if let Some(w) = entries.windows(2).find(|w| w[1].index != w[0].index + 1) {
            return Err(StorageError::InvalidAppend(format!(
                "entries are not consecutive: index {} follows {}",
                w[1].index, w[0].index
            )));
        }
        let new_last = first.index + entries.len() as u64 - 1;
        if first.index <= last && self.term(first.index) == Some(first.term) && new_last < last {
            // Log matching says this entry is already here; truncating after it can lose
            // committed entries (a stale AppendEntries must not shorten the log).
            tracing::warn!(
                file = %self.path.display(),
                index = first.index,
                term = first.term,
                dropped_from = new_last + 1,
                dropped_to = last,
                "append rewrites an entry the log already has and truncates the entries after it"
            );
        }
        self.push_records(entries.iter().map(RecordRef::Entry))?;
        self.terms.truncate((first.index - 1) as usize);
        self.terms.extend(entries.iter().map(|e| e.term));
        Ok(())
    }

    /// Saves the hard state (durable after [`Storage::sync`], or at once under
    /// [`FsyncPolicy::PerEntry`]). Refuses a term lower than the saved one, or a different
    /// vote in the same term once a vote is saved: either would let the node vote twice.
    /// Saving the state already saved writes nothing.
    pub fn save_hard_state(&mut self, hs: &HardState) -> Result<(), StorageError> {
        self.check_usable()?;
        let old = self.hard_state;
        if hs.term < old.term {
            return Err(StorageError::HardStateRegression(format!(
                "term {} is below the saved term {}",
                hs.term, old.term
            )));
        }
        if hs.term == old.term && old.voted_for.is_some() && hs.voted_for != old.voted_for {
            return Err(StorageError::HardStateRegression(format!(
                "vote for {:?} in term {} replaces the saved vote for {:?}",
                hs.voted_for, hs.term, old.voted_for
            )));
        }
        if *hs == old {
            return Ok(());
        }
        self.push_records([RecordRef::HardState(hs)])?;
        self.hard_state = *hs;
        Ok(())
    }

    /// Makes everything appended or saved so far durable: writes the buffered records and
    /// calls `fdatasync` once (no fsync under [`FsyncPolicy::Never`]). When this returns `Ok`
    /// the records survive a crash of the machine. After an error, storage is poisoned.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        self.write_pending()?;
        if self.opts.fsync == FsyncPolicy::Batch {
            self.fsync()?;
        }
        Ok(())
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The index of the last entry appended (0 for an empty log), durable or not.
    pub fn last_index(&self) -> LogIndex {
        self.terms.len() as LogIndex
    }

    /// The term of the entry at `index`, if the log has one.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        let i = usize::try_from(index.checked_sub(1)?).ok()?;
        self.terms.get(i).copied()
    }

    /// The hard state last saved, durable or not.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The options storage was opened with.
    pub fn options(&self) -> StorageOptions {
        self.opts
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Encodes records into the buffer and applies the policy's write/fsync rule. If any
    /// record cannot be encoded, nothing is buffered (the caller's state stays unchanged).
    fn push_records<'a>(
        &mut self,
        records: impl IntoIterator<Item = RecordRef<'a>>,
    ) -> Result<(), StorageError> {
        let mark = self.pending.len();
        let mut ends = Vec::new();
        for r in records {
            if let Err(e) = encode_record(r, &mut self.pending) {
                self.pending.truncate(mark);
                return Err(e.into());
            }
            ends.push(self.pending.len());
        }
        match self.opts.fsync {
            FsyncPolicy::PerEntry => {
                // Under this policy the buffer is empty between calls (mark == 0): write and
                // fsync each record on its own, as a log without group commit would.
                let mut start = 0;
                for end in ends {
                    let res = self.file.write_all(&self.pending[start..end]);
                    if let Err(e) = res {
                        self.poisoned = true;
                        return Err(io_err(&self.path, "write")(e));
                    }
                    self.fsync()?;
                    start = end;
                }
                self.pending.clear();
                Ok(())
            }
            FsyncPolicy::Batch | FsyncPolicy::Never if self.pending.len() >= FLUSH_THRESHOLD => {
                self.write_pending()
            }
            FsyncPolicy::Batch | FsyncPolicy::Never => Ok(()),
        }
    }

    fn write_pending(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.pending) {
            // Part of the buffer may be in the file: a torn tail that the next open cuts.
            self.poisoned = true;
            return Err(io_err(&self.path, "write")(e));
        }
        self.pending.clear();
        Ok(())
    }

    fn fsync(&mut self) -> Result<(), StorageError> {
        if let Err(e) = self.file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages and a retry
            // could report success without the data on disk (PostgreSQL "fsyncgate").
            self.poisoned = true;
            return Err(io_err(&self.path, "fsync")(e));
        }
        Ok(())
    }
}

/// Fsyncs a directory so that entries created in it survive a crash.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { path, op, source }
}

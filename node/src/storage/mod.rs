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
//! Log compaction: the log is split into segment files `wal-<seq>.log` (sequence numbers
//! increase; [`WAL_FILE_NAME`] is the first). [`Storage::save_snapshot`] writes a snapshot
//! file atomically ([`snapfile`]), starts a new segment (whose first record repeats the hard
//! state) and deletes the segments the snapshot covers wholly. On open the newest snapshot
//! is loaded (a damaged one is a fatal [`StorageError::CorruptSnapshot`]) and the log after
//! it replayed; the segments it covers contribute only their hard-state records.
//!
//! Every file-system call goes through [`fs::Fs`] ([`fs::RealFs`], plain `std::fs`, in
//! production), so that tests run storage on a simulated disk that loses what was not
//! fsynced at a power failure (`crash_fs`, `crash_tests`).

pub mod error;
pub mod fs;
pub mod record;
pub mod replay;
pub mod snapfile;

#[cfg(test)]
pub mod crash_fs;
#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use error::StorageError;
use fs::{Fs, FsFile, FsLock, LockError, OpenMode, RealFs};
use record::{encode_record, RecordRef};
use replay::Replayer;

use crate::raft::{Entry, HardState, LogIndex, Snapshot, Term};
use std::sync::Arc;

/// The name of the first write-ahead log segment inside the data directory.
pub const WAL_FILE_NAME: &str = "wal-00000000000000000001.log";

/// The name of the lock file that keeps two processes from opening one data directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// The file name of WAL segment `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("wal-{seq:020}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// The steps of [`Storage::save_snapshot`], in order; a test can stop after any of them to
/// simulate a crash there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SnapshotStep {
    /// A new WAL segment (holding the hard state) was created and made durable.
    SegmentStarted,
    /// The snapshot was written to its temporary file (not fsynced).
    TempWritten,
    /// The temporary file was fsynced.
    TempSynced,
    /// The temporary file was renamed to its final name.
    Renamed,
    /// The directory was fsynced, making the rename durable.
    DirSynced,
    /// Covered segments and older snapshots were deleted.
    Cleaned,
}

impl SnapshotStep {
    /// Every step, in order.
    pub const ALL: [SnapshotStep; 6] = [
        SnapshotStep::SegmentStarted,
        SnapshotStep::TempWritten,
        SnapshotStep::TempSynced,
        SnapshotStep::Renamed,
        SnapshotStep::DirSynced,
        SnapshotStep::Cleaned,
    ];
}

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
    /// The newest snapshot, if any: the state machine starts from it.
    pub snapshot: Option<Snapshot>,
    /// The log after the snapshot, contiguous (`entries[i].index == snapshot index + i + 1`).
    pub entries: Vec<Entry>,
    /// Bytes of a torn last record cut off the end of the last segment (0 when clean).
    pub torn_bytes_cut: u64,
}

/// One WAL segment: its sequence number and the highest entry index written to it.
#[derive(Clone, Copy, Debug)]
struct Segment {
    seq: u64,
    max_index: LogIndex,
}

/// The open write-ahead log of one node. Holds an exclusive lock on the data directory, so
/// two processes can never write the same log.
#[derive(Debug)]
pub struct Storage {
    /// The file system everything goes through ([`RealFs`] outside tests).
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    /// The current (last) segment, the only one written to.
    path: PathBuf,
    file: Box<dyn FsFile>,
    /// Held for the lifetime of the storage: the directory lock.
    _lock: Box<dyn FsLock>,
    opts: StorageOptions,
    /// Encoded records not yet written to the file.
    pending: Vec<u8>,
    /// The index and term covered by the snapshot (0, 0 without one).
    offset: LogIndex,
    offset_term: Term,
    /// The term of every entry after the snapshot: index `offset + i + 1` at `terms[i]`.
    terms: Vec<Term>,
    /// Segments in order; the last is the current one.
    segments: Vec<Segment>,
    /// The last hard state saved (durable once `sync` returns).
    hard_state: HardState,
    /// Set after a failed write or fsync; every later call fails (see
    /// [`StorageError::Poisoned`]).
    poisoned: bool,
}

impl Storage {
    /// Opens (creating if absent) the log in `dir`, loads the newest snapshot, replays the
    /// log after it, and returns the storage and what it held. A new directory (with any
    /// new parents) or file is made durable (each parent directory of a created one is
    /// fsynced) before this returns. A torn last
    /// record of the last segment is cut off, the file fsynced, and a warning logged naming
    /// the file, offset and bytes cut. A damaged record followed by more data fails with
    /// [`StorageError::Corrupt`] naming the file and the record's offset; a damaged snapshot
    /// with [`StorageError::CorruptSnapshot`]. Leftover temporary snapshot files (a crash
    /// while writing one) are deleted.
    pub fn open(dir: &Path, opts: StorageOptions) -> Result<(Storage, Recovered), StorageError> {
        Storage::open_with(Arc::new(RealFs), dir, opts)
    }

    /// [`Storage::open`] on the file system `fs` (tests pass a simulated disk).
    pub fn open_with(
        fs: Arc<dyn Fs>,
        dir: &Path,
        opts: StorageOptions,
    ) -> Result<(Storage, Recovered), StorageError> {
        let sync = opts.fsync != FsyncPolicy::Never;
        // The directories about to be created, innermost first: the entry of each in its
        // parent is durable only once that parent is fsynced, and losing any of them after
        // a crash loses the whole log. Bounded by the number of components of `dir`.
        let mut missing = Vec::new();
        let mut next = Some(dir);
        while let Some(d) = next.filter(|d| !d.as_os_str().is_empty() && !fs.is_dir(d)) {
            missing.push(d);
            next = d.parent();
        }
        fs.create_dir_all(dir)
            .map_err(io_err(dir, "create directory"))?;
        if sync {
            for created in missing.iter().rev() {
                let parent = created
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                sync_dir(&*fs, parent)?;
            }
        }
        let lock_path = dir.join(LOCK_FILE_NAME);
        let lock = match fs.lock(&lock_path) {
            Ok(lock) => lock,
            Err(LockError::WouldBlock) => {
                return Err(StorageError::Locked {
                    path: dir.join(WAL_FILE_NAME),
                })
            }
            Err(LockError::Open(e)) => return Err(io_err(&lock_path, "open")(e)),
            Err(LockError::Lock(e)) => return Err(io_err(&lock_path, "lock")(e)),
        };

        let mut seqs = Vec::new();
        let mut snaps = Vec::new();
        for file_name in fs.list_dir(dir).map_err(io_err(dir, "list directory"))? {
            let name = file_name.to_string_lossy().into_owned();
            if let Some(seq) = parse_segment_name(&name) {
                seqs.push(seq);
            } else if let Some(index) = snapfile::parse_name(&name) {
                snaps.push(index);
            } else if name.starts_with("snap-") && name.ends_with(".tmp") {
                // A crash while writing a snapshot: the old state is complete without it.
                let p = dir.join(&file_name);
                tracing::warn!(file = %p.display(), "removing unfinished snapshot file");
                fs.remove_file(&p).map_err(io_err(&p, "remove"))?;
            }
        }
        seqs.sort_unstable();
        snaps.sort_unstable();

        let mut snapshot = None;
        let mut first_segment = 0;
        if let Some(&index) = snaps.last() {
            let p = dir.join(snapfile::file_name(index));
            let bytes = fs.read(&p).map_err(io_err(&p, "read"))?;
            let body =
                snapfile::decode(&bytes).map_err(|reason| StorageError::CorruptSnapshot {
                    path: p.clone(),
                    reason,
                })?;
            if body.meta.index != index {
                return Err(StorageError::CorruptSnapshot {
                    path: p,
                    reason: format!("holds index {} under another name", body.meta.index),
                });
            }
            first_segment = body.first_segment;
            snapshot = Some(Snapshot {
                meta: body.meta,
                data: Arc::new(body.data),
            });
        }
        let created = seqs.is_empty();
        if created {
            seqs.push(1);
        }

        let base = snapshot.as_ref().map_or(0, |s| s.meta.index);
        let mut replayer = Replayer {
            base,
            ..Replayer::default()
        };
        let mut segments = Vec::new();
        let mut torn_bytes_cut = 0;
        let mut file = None;
        for (k, &seq) in seqs.iter().enumerate() {
            let last = k + 1 == seqs.len();
            let path = dir.join(segment_name(seq));
            let mode = if last {
                OpenMode::ReadWrite
            } else {
                OpenMode::ReadOnly
            };
            let mut f = fs.open(&path, mode).map_err(io_err(&path, "open"))?;
            if created && sync {
                // The file's directory entry must be durable too, or a crash can lose the
                // whole file (`docs/raft-pitfalls.md` #18).
                sync_dir(&*fs, dir)?;
            }
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map_err(io_err(&path, "read"))?;
            let corrupt = |c: record::CorruptAt| StorageError::Corrupt {
                path: path.clone(),
                offset: c.offset,
                reason: c.reason,
            };
            let covered = seq < first_segment;
            let mut max_index = 0;
            let scanned = record::scan(&bytes, |o, r| {
                if let record::Record::Entry(e) = &r {
                    if covered {
                        // Covered by the snapshot, and by any later one: max_index stays 0
                        // so that a later local snapshot never names this segment as the
                        // start of its log (its entries may be stale, replaced by a
                        // leader's snapshot whose clean-up a crash interrupted).
                        return Ok(());
                    }
                    max_index = max_index.max(e.index);
                }
                replayer.apply(o, r)
            })
            .map_err(corrupt)?;
            let file_len = bytes.len() as u64;
            drop(bytes);
            if let Some(torn) = scanned.torn {
                if !last {
                    return Err(StorageError::Corrupt {
                        path,
                        offset: torn.offset,
                        reason: format!("{} in a segment that is not the last", torn.reason),
                    });
                }
                torn_bytes_cut = file_len - scanned.valid_len;
                tracing::warn!(
                    file = %path.display(),
                    offset = torn.offset,
                    bytes_cut = torn_bytes_cut,
                    reason = torn.reason,
                    "cutting torn tail of write-ahead log"
                );
                f.set_len(scanned.valid_len)
                    .map_err(io_err(&path, "truncate"))?;
                if sync {
                    f.sync_all().map_err(io_err(&path, "fsync"))?;
                }
            }
            segments.push(Segment { seq, max_index });
            if last {
                f.seek_to(scanned.valid_len)
                    .map_err(io_err(&path, "seek"))?;
                file = Some((f, path));
            }
        }
        let (file, path) = file.expect("at least one segment");

        let Replayer {
            hard_state,
            entries,
            ..
        } = replayer;
        let storage = Storage {
            fs,
            dir: dir.to_path_buf(),
            path,
            file,
            _lock: lock,
            opts,
            pending: Vec::new(),
            offset: base,
            offset_term: snapshot.as_ref().map_or(0, |s| s.meta.term),
            terms: entries.iter().map(|e| e.term).collect(),
            segments,
            hard_state,
            poisoned: false,
        };
        Ok((
            storage,
            Recovered {
                hard_state,
                snapshot,
                entries,
                torn_bytes_cut,
            },
        ))
    }

    /// Appends `entries` (consecutive indexes). The first may be at or below the last index:
    /// it then replaces that index and everything after it, on disk (at replay) as here.
    /// Fails without writing anything if the first index is at or below the snapshot's
    /// index or past `last_index() + 1`, or the entries are not consecutive. Durable only
    /// after [`Storage::sync`] (or at once under [`FsyncPolicy::PerEntry`]).
    ///
    /// The Raft core must pass only entries from the first conflicting index on: passing an
    /// entry the log already has, followed by a shorter tail, truncates the log.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_usable()?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let last = self.last_index();
        if first.index <= self.offset || first.index > last + 1 {
            return Err(StorageError::InvalidAppend(format!(
                "first entry has index {} but the log holds ({}, {last}]",
                first.index, self.offset
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
        self.terms
            .truncate((first.index - self.offset - 1) as usize);
        self.terms.extend(entries.iter().map(|e| e.term));
        if let Some(seg) = self.segments.last_mut() {
            seg.max_index = seg.max_index.max(new_last);
        }
        Ok(())
    }

    /// Makes `snapshot` the base of the log, durably: first makes everything appended or
    /// saved so far durable (as [`Storage::sync`]), then starts a new segment that repeats the
    /// hard state, writes the snapshot file atomically (temporary file, fsync, rename, fsync
    /// the directory), then deletes the segments and snapshots it makes useless. If the log
    /// holds the snapshot's last entry with its term (a local compaction), the entries after
    /// it are kept; otherwise (a snapshot from the leader) the whole log is replaced. A crash
    /// at any point leaves either the old or the new snapshot with a consistent log.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.save_snapshot_until(snapshot, SnapshotStep::Cleaned)
    }

    /// [`Storage::save_snapshot`], stopping after `stop` (tests simulate a crash there by
    /// dropping the storage and opening the directory again).
    pub fn save_snapshot_until(
        &mut self,
        snapshot: &Snapshot,
        stop: SnapshotStep,
    ) -> Result<(), StorageError> {
        self.check_usable()?;
        let meta = &snapshot.meta;
        if meta.index < self.offset {
            return Err(StorageError::InvalidAppend(format!(
                "snapshot at {} is older than the one held at {}",
                meta.index, self.offset
            )));
        }
        let keep_log = self.term(meta.index) == Some(meta.term);
        let sync = self.opts.fsync != FsyncPolicy::Never;
        // Everything written so far must be durable before older segments can go.
        self.write_pending()?;
        if sync {
            self.fsync()?;
        }

        // 1. A new segment that starts with the hard state, so that deleting older
        //    segments can never lose the latest term or vote.
        let seq = self.segments.last().map_or(1, |s| s.seq) + 1;
        let path = self.dir.join(segment_name(seq));
        let mut file = self
            .fs
            .open(&path, OpenMode::CreateNew)
            .map_err(io_err(&path, "create"))?;
        let mut buf = Vec::new();
        encode_record(RecordRef::HardState(&self.hard_state), &mut buf)?;
        let res = file
            .write_all(&buf)
            .and_then(|_| if sync { file.sync_all() } else { Ok(()) });
        if let Err(e) = res {
            self.poisoned = true;
            return Err(io_err(&path, "write")(e));
        }
        if sync {
            sync_dir(&*self.fs, &self.dir)?;
        }
        self.file = file;
        self.path = path;
        self.segments.push(Segment { seq, max_index: 0 });
        if stop == SnapshotStep::SegmentStarted {
            return Ok(());
        }

        // 2. The snapshot file, atomically.
        let first_segment = if keep_log {
            self.segments
                .iter()
                .find(|s| s.max_index > meta.index)
                .map_or(seq, |s| s.seq)
        } else {
            seq
        };
        let bytes = snapfile::encode(&snapfile::SnapshotBody {
            meta: meta.clone(),
            first_segment,
            data: snapshot.data.as_ref().clone(),
        })
        .map_err(|e| StorageError::Encode(record::EncodeError::Bincode(e)))?;
        let tmp = snapfile::temp_path(&self.dir, meta.index);
        let mut f = self
            .fs
            .open(&tmp, OpenMode::CreateTruncate)
            .map_err(io_err(&tmp, "create"))?;
        f.write_all(&bytes).map_err(io_err(&tmp, "write"))?;
        if stop == SnapshotStep::TempWritten {
            return Ok(());
        }
        if sync {
            f.sync_all().map_err(io_err(&tmp, "fsync"))?;
        }
        drop(f);
        if stop == SnapshotStep::TempSynced {
            return Ok(());
        }
        let fin = self.dir.join(snapfile::file_name(meta.index));
        self.fs.rename(&tmp, &fin).map_err(io_err(&fin, "rename"))?;
        if stop == SnapshotStep::Renamed {
            return Ok(());
        }
        if sync {
            sync_dir(&*self.fs, &self.dir)?;
        }
        // The snapshot is durable: from here on a restart uses it.
        let old_offset = self.offset;
        self.offset = meta.index;
        self.offset_term = meta.term;
        if keep_log {
            self.terms.drain(..(meta.index - old_offset) as usize);
        } else {
            self.terms.clear();
        }
        if stop == SnapshotStep::DirSynced {
            return Ok(());
        }

        // 3. Clean up what the snapshot covers.
        let (old, keep): (Vec<Segment>, Vec<Segment>) =
            self.segments.iter().partition(|s| s.seq < first_segment);
        for s in old {
            let p = self.dir.join(segment_name(s.seq));
            self.fs.remove_file(&p).map_err(io_err(&p, "remove"))?;
        }
        self.segments = keep;
        let names = self
            .fs
            .list_dir(&self.dir)
            .map_err(io_err(&self.dir, "list directory"))?;
        for file_name in names {
            let name = file_name.to_string_lossy();
            if snapfile::parse_name(&name).is_some_and(|i| i < meta.index) {
                let p = self.dir.join(&file_name);
                self.fs.remove_file(&p).map_err(io_err(&p, "remove"))?;
            }
        }
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

    /// The current segment's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index of the last entry appended (the snapshot's index when none follows it; 0
    /// for an empty log), durable or not.
    pub fn last_index(&self) -> LogIndex {
        self.offset + self.terms.len() as LogIndex
    }

    /// The index covered by the snapshot (0 without one).
    pub fn snapshot_index(&self) -> LogIndex {
        self.offset
    }

    /// The term of the entry at `index`, if the log has one (the snapshot's term at its index).
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.offset {
            return Some(self.offset_term);
        }
        let i = usize::try_from(index.checked_sub(self.offset + 1)?).ok()?;
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
fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
    fs.sync_dir(dir).map_err(io_err(dir, "fsync directory"))
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { path, op, source }
}

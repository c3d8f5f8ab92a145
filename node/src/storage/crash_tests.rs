//! Storage on a disk that loses power ([`CrashFs`]): whatever `sync`, `save_snapshot`, a
//! `PerEntry` call or `open` acknowledged survives the crash, and reopening after one never
//! fails. Each test exercises one fsync of the storage code, so deleting that fsync makes
//! it fail.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::crash_fs::{CrashFs, Op};
use super::fs::Fs;
use super::*;
use crate::raft::{ClusterConfig, EntryPayload, SnapshotMeta};

/// The data directory of most tests; its parent `/data` is durable from the start.
const DIR: &str = "/data/node";

fn opts(fsync: FsyncPolicy) -> StorageOptions {
    StorageOptions { fsync }
}

/// A disk holding a durable, empty `/data`.
fn disk() -> CrashFs {
    let fs = CrashFs::new();
    fs.create_dir_all(Path::new("/data")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs
}

fn open_at(fs: &CrashFs, dir: &str, fsync: FsyncPolicy) -> (Storage, Recovered) {
    Storage::open_with(Arc::new(fs.clone()), Path::new(dir), opts(fsync))
        .unwrap_or_else(|e| panic!("open {dir}: {e}"))
}

fn open(fs: &CrashFs) -> (Storage, Recovered) {
    open_at(fs, DIR, FsyncPolicy::Batch)
}

fn entry(index: u64, term: u64, payload_len: usize) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Command(vec![b'a' + (index % 26) as u8; payload_len]),
    }
}

fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to).map(|i| entry(i, term, 16)).collect()
}

fn snap(index: u64, term: u64, data: &[u8]) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            config: ClusterConfig::simple([1, 2, 3]),
        },
        data: Arc::new(data.to_vec()),
    }
}

fn hs(term: u64, voted_for: Option<u64>, commit: u64) -> HardState {
    HardState {
        term,
        voted_for,
        commit,
    }
}

/// (index, term) of the recovered log after the snapshot.
fn log(rec: &Recovered) -> Vec<(u64, u64)> {
    rec.entries.iter().map(|e| (e.index, e.term)).collect()
}

fn pairs(from: u64, to: u64, term: u64) -> Vec<(u64, u64)> {
    (from..=to).map(|i| (i, term)).collect()
}

/// Storage of a log with entries 1..=10 (term 1) and a hard state, synced.
fn synced_log(fs: &CrashFs) -> Storage {
    let (mut s, _) = open(fs);
    s.append(&entries(1, 10, 1)).unwrap();
    s.save_hard_state(&hs(1, Some(1), 5)).unwrap();
    s.sync().unwrap();
    s
}

#[test]
fn synced_entries_and_hard_state_survive_a_crash() {
    let fs = disk();
    let mut s = synced_log(&fs);
    s.append(&entries(11, 12, 1)).unwrap();
    s.sync().unwrap();
    s.append(&entries(13, 14, 1)).unwrap();
    drop(s);
    fs.crash_losing_unsynced();
    let (_, rec) = open(&fs);
    assert_eq!(log(&rec), pairs(1, 12, 1));
    assert_eq!(rec.hard_state, hs(1, Some(1), 5));
}

#[test]
fn per_entry_records_are_durable_when_the_call_returns() {
    let fs = disk();
    let (mut s, _) = open_at(&fs, DIR, FsyncPolicy::PerEntry);
    s.append(&entries(1, 3, 1)).unwrap();
    s.save_hard_state(&hs(2, None, 3)).unwrap();
    drop(s);
    fs.crash_losing_unsynced();
    let (_, rec) = open_at(&fs, DIR, FsyncPolicy::PerEntry);
    assert_eq!(log(&rec), pairs(1, 3, 1));
    assert_eq!(rec.hard_state, hs(2, None, 3));
}

#[test]
fn a_new_data_directory_survives_a_crash() {
    let fs = disk();
    synced_log(&fs);
    fs.crash_losing_unsynced();
    let (_, rec) = open(&fs);
    assert_eq!(log(&rec), pairs(1, 10, 1));
}

#[test]
fn the_first_segment_in_an_existing_directory_survives_a_crash() {
    let fs = disk();
    fs.create_dir_all(Path::new(DIR)).unwrap();
    fs.sync_dir(Path::new("/data")).unwrap();
    synced_log(&fs);
    fs.crash_losing_unsynced();
    let (_, rec) = open(&fs);
    assert_eq!(log(&rec), pairs(1, 10, 1));
}

/// A torn tail is cut at open. If the cut were not durable, a later write placed after the
/// cut could reach the disk over the old garbage while the file keeps its old length, and
/// the next open would find a good record followed by garbage: `Corrupt`.
#[test]
fn a_cut_torn_tail_stays_cut_when_the_next_write_crashes() {
    let mut torn_seen = 0;
    for seed in 0..200u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ctx = format!("seed {seed} (a_cut_torn_tail_stays_cut_when_the_next_write_crashes)");
        let fs = disk();
        let mut s = synced_log(&fs);
        // A large record whose write reaches the file but whose fsync never happens.
        s.append(&[entry(11, 1, 400)]).unwrap();
        fs.power_off_after(1);
        assert!(s.sync().is_err(), "{ctx}");
        drop(s);
        fs.crash(&mut rng);
        let (mut s, rec) = Storage::open_with(
            Arc::new(fs.clone()),
            Path::new(DIR),
            opts(FsyncPolicy::Batch),
        )
        .unwrap_or_else(|e| panic!("{ctx}: first reopen: {e}"));
        torn_seen += usize::from(rec.torn_bytes_cut > 0);
        let before = log(&rec);
        let next = before.last().map_or(1, |&(i, _)| i + 1);
        // A small record, written over the cut tail, then the power fails again.
        s.append(&[entry(next, 1, 1)]).unwrap();
        fs.power_off_after(1);
        assert!(s.sync().is_err(), "{ctx}");
        drop(s);
        fs.crash(&mut rng);
        let (_, rec) = Storage::open_with(
            Arc::new(fs.clone()),
            Path::new(DIR),
            opts(FsyncPolicy::Batch),
        )
        .unwrap_or_else(|e| panic!("{ctx}: second reopen: {e}"));
        let after = log(&rec);
        let mut with_next = before.clone();
        with_next.push((next, 1));
        assert!(after == before || after == with_next, "{ctx}: {after:?}");
    }
    assert!(torn_seen > 20, "only {torn_seen} torn tails");
}

#[test]
fn a_local_snapshot_is_durable_when_save_snapshot_returns() {
    let fs = disk();
    let mut s = synced_log(&fs);
    s.save_snapshot(&snap(6, 1, b"state at 6")).unwrap();
    drop(s);
    fs.crash_losing_unsynced();
    let (_, rec) = open(&fs);
    let got = rec.snapshot.as_ref().expect("the snapshot survives");
    assert_eq!(
        (got.meta.index, got.data.as_slice()),
        (6, &b"state at 6"[..])
    );
    assert_eq!(log(&rec), pairs(7, 10, 1));
    assert_eq!(rec.hard_state, hs(1, Some(1), 5));
}

#[test]
fn a_leader_snapshot_is_durable_when_save_snapshot_returns() {
    let fs = disk();
    let mut s = synced_log(&fs);
    s.save_snapshot(&snap(30, 4, b"leader state")).unwrap();
    drop(s);
    fs.crash_losing_unsynced();
    let (_, rec) = open(&fs);
    let got = rec.snapshot.as_ref().expect("the snapshot survives");
    assert_eq!((got.meta.index, got.meta.term), (30, 4));
    assert_eq!(log(&rec), vec![]);
}

/// `save_snapshot` makes the entries appended before it durable: the segment they are in
/// is never synced again once a new one is started.
#[test]
fn entries_appended_before_a_snapshot_survive_it() {
    let fs = disk();
    let mut s = synced_log(&fs);
    s.append(&entries(11, 15, 1)).unwrap();
    s.save_snapshot(&snap(8, 1, b"state at 8")).unwrap();
    s.append(&entries(16, 16, 1)).unwrap();
    s.sync().unwrap();
    drop(s);
    fs.crash_losing_unsynced();
    let (_, rec) = open(&fs);
    assert_eq!(log(&rec), pairs(9, 16, 1));
}

/// The new segment's record of the hard state must be durable before the segments it
/// replaces can be deleted: a crash may make the deletion durable and not the record.
#[test]
fn the_hard_state_survives_a_crash_after_compaction() {
    for seed in 0..100u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fs = disk();
        let mut s = synced_log(&fs);
        s.save_hard_state(&hs(3, Some(2), 10)).unwrap();
        s.sync().unwrap();
        s.save_snapshot(&snap(10, 1, b"state at 10")).unwrap();
        drop(s);
        fs.crash(&mut rng);
        let (_, rec) = open(&fs);
        assert_eq!(rec.hard_state, hs(3, Some(2), 10), "seed {seed}");
        assert_eq!(rec.snapshot.map(|s| s.meta.index), Some(10), "seed {seed}");
    }
}

/// A snapshot that fails after its new segment was started leaves storage writing to that
/// segment; its directory entry must already be durable, or what is synced into it later
/// is lost with it.
#[test]
fn writes_after_a_failed_snapshot_survive_a_crash() {
    let fs = disk();
    let mut s = synced_log(&fs);
    fs.fail_once(Op::Open, ".tmp");
    assert!(s.save_snapshot(&snap(5, 1, b"state at 5")).is_err());
    s.append(&entries(11, 12, 1)).unwrap();
    s.sync().unwrap();
    drop(s);
    fs.crash_losing_unsynced();
    let (_, rec) = open(&fs);
    assert_eq!(rec.snapshot, None);
    assert_eq!(log(&rec), pairs(1, 12, 1));
}

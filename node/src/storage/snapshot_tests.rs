//! Tests of snapshots in storage: a crash after each step of writing one leaves the old or
//! the new snapshot with a consistent log (never a mix), a damaged snapshot is detected by
//! its checksum, and compaction deletes the segments a snapshot covers.

use super::*;
use crate::raft::{ClusterConfig, EntryPayload, SnapshotMeta};

fn opts() -> StorageOptions {
    StorageOptions {
        fsync: FsyncPolicy::Batch,
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Command(format!("cmd-{index}-{term}").into_bytes()),
    }
}

fn snap(index: u64, term: u64, data: &str) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            config: ClusterConfig::simple([1, 2, 3]),
        },
        data: Arc::new(data.as_bytes().to_vec()),
    }
}

/// The log a recovery describes, as (index, term) from index `from` on, with entries covered
/// by the snapshot taken from `full` (the log before the snapshot) so both shapes compare.
fn flatten(rec: &Recovered) -> (u64, Vec<(u64, u64)>) {
    let base = rec.snapshot.as_ref().map_or(0, |s| s.meta.index);
    let entries: Vec<(u64, u64)> = rec.entries.iter().map(|e| (e.index, e.term)).collect();
    if let Some(first) = entries.first() {
        assert_eq!(first.0, base + 1, "log follows the snapshot contiguously");
    }
    (base, entries)
}

fn hard() -> HardState {
    HardState {
        term: 3,
        voted_for: Some(2),
        commit: 12,
    }
}

/// A log of 20 entries (terms 1, then 2 from index 11) with a hard state, synced.
fn setup(dir: &Path) {
    let (mut s, _) = Storage::open(dir, opts()).unwrap();
    let ents: Vec<Entry> = (1..=20)
        .map(|i| entry(i, if i <= 10 { 1 } else { 2 }))
        .collect();
    s.append(&ents).unwrap();
    s.save_hard_state(&hard()).unwrap();
    s.sync().unwrap();
}

#[test]
fn crash_after_each_step_of_a_local_snapshot_restarts_consistently() {
    for second in [false, true] {
        for stop in SnapshotStep::ALL {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            setup(dir);
            let (old_base, new) = if second {
                // An older snapshot exists already, with more log after it.
                let (mut s, _) = Storage::open(dir, opts()).unwrap();
                s.save_snapshot(&snap(5, 1, "at-5")).unwrap();
                s.append(&[entry(21, 3)]).unwrap();
                s.sync().unwrap();
                (5, snap(15, 2, "at-15"))
            } else {
                (0, snap(10, 1, "at-10"))
            };
            let last = if second { 21 } else { 20 };
            {
                let (mut s, _) = Storage::open(dir, opts()).unwrap();
                s.save_snapshot_until(&new, stop).unwrap();
                if stop == SnapshotStep::TempWritten {
                    // A crash may leave the unsynced temporary file half written.
                    let t = snapfile::temp_path(dir, new.meta.index);
                    let len = std::fs::metadata(&t).unwrap().len();
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&t)
                        .unwrap()
                        .set_len(len / 2)
                        .unwrap();
                }
            } // crash: the storage is dropped without any further step
            let (s, rec) = Storage::open(dir, opts()).unwrap();
            let ctx = format!("second={second} stop={stop:?}");
            assert_eq!(rec.hard_state, hard(), "{ctx}");
            let (base, entries) = flatten(&rec);
            let expect_new = stop >= SnapshotStep::Renamed;
            let want_base = if expect_new { new.meta.index } else { old_base };
            assert_eq!(base, want_base, "{ctx}: old or new snapshot");
            if let Some(sn) = &rec.snapshot {
                let want = if expect_new {
                    &new
                } else {
                    &snap(5, 1, "at-5")
                };
                assert_eq!(sn, want, "{ctx}: snapshot content");
            }
            let want: Vec<(u64, u64)> = (base + 1..=last)
                .map(|i| {
                    (
                        i,
                        if i <= 10 {
                            1
                        } else if i <= 20 {
                            2
                        } else {
                            3
                        },
                    )
                })
                .collect();
            assert_eq!(entries, want, "{ctx}: the log after the snapshot");
            assert_eq!(s.last_index(), last, "{ctx}");
            assert!(
                !std::fs::read_dir(dir).unwrap().any(|d| d
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")),
                "{ctx}: temporary file removed"
            );
        }
    }
}

#[test]
fn crash_after_each_step_of_installing_a_leader_snapshot_restarts_consistently() {
    for stop in SnapshotStep::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        setup(dir);
        // The leader's snapshot at 30 (term 4): this log diverges, so it is replaced whole.
        let new = snap(30, 4, "leader");
        {
            let (mut s, _) = Storage::open(dir, opts()).unwrap();
            s.save_snapshot_until(&new, stop).unwrap();
        }
        let (mut s, rec) = Storage::open(dir, opts()).unwrap();
        let ctx = format!("stop={stop:?}");
        assert_eq!(rec.hard_state, hard(), "{ctx}");
        if stop >= SnapshotStep::Renamed {
            assert_eq!(rec.snapshot.as_ref(), Some(&new), "{ctx}");
            assert!(rec.entries.is_empty(), "{ctx}: the old log is gone");
            assert_eq!(s.last_index(), 30);
            assert_eq!(s.term(30), Some(4));
            s.append(&[entry(31, 4)]).unwrap();
            s.sync().unwrap();
            drop(s);
            let (_, rec) = Storage::open(dir, opts()).unwrap();
            assert_eq!(rec.entries, vec![entry(31, 4)], "{ctx}");
        } else {
            assert_eq!(rec.snapshot, None, "{ctx}");
            assert_eq!(rec.entries.len(), 20, "{ctx}: the old log is intact");
        }
    }
}

#[test]
fn damaged_snapshot_is_detected_by_its_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    {
        let (mut s, _) = Storage::open(dir, opts()).unwrap();
        s.save_snapshot(&snap(10, 1, "some state")).unwrap();
    }
    let p = dir.join(snapfile::file_name(10));
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x01;
    std::fs::write(&p, &bytes).unwrap();
    match Storage::open(dir, opts()) {
        Err(StorageError::CorruptSnapshot { path, reason }) => {
            assert_eq!(path, p);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected a corrupt snapshot error, got {other:?}"),
    }
}

#[test]
fn compaction_deletes_covered_segments_and_older_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut s, _) = Storage::open(dir, opts()).unwrap();
    let mut next = 1;
    for round in 1..=5u64 {
        let ents: Vec<Entry> = (next..next + 100).map(|i| entry(i, 1)).collect();
        next += 100;
        s.append(&ents).unwrap();
        s.sync().unwrap();
        // Snapshot all but the last 10 entries.
        s.save_snapshot(&snap(next - 11, 1, &format!("round {round}")))
            .unwrap();
    }
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let segs = names.iter().filter(|n| n.starts_with("wal-")).count();
    let snaps = names.iter().filter(|n| n.starts_with("snap-")).count();
    assert!(segs <= 2, "segments left: {names:?}");
    assert_eq!(snaps, 1, "{names:?}");
    drop(s);
    let (s, rec) = Storage::open(dir, opts()).unwrap();
    assert_eq!(rec.snapshot.as_ref().map(|s| s.meta.index), Some(next - 11));
    assert_eq!(rec.entries.len(), 10);
    assert_eq!(s.last_index(), next - 1);
}

/// Measures that compaction bounds the disk: the data directory after 1,000,000 puts on
/// 1,000 keys, with a snapshot every 10,000 entries and without compaction. Run with
/// `cargo test --release -p node --lib measure_ -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_data_dir_size_with_and_without_compaction() {
    use crate::command::{self, WriteId};
    use crate::kv::{Command, KvStore};
    for compact in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut s, _) = Storage::open(
            dir,
            StorageOptions {
                fsync: FsyncPolicy::Never,
            },
        )
        .unwrap();
        let mut kv = KvStore::new();
        let started = std::time::Instant::now();
        let mut batch = Vec::with_capacity(1000);
        let dir_bytes = |dir: &Path| -> u64 {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|d| d.unwrap().metadata().unwrap().len())
                .sum()
        };
        let mut peak = 0u64;
        for i in 1..=1_000_000u64 {
            let cmd = Command::Put(command::Put {
                key: format!("key-{}", i % 1000),
                value: i as i64,
                write_id: WriteId { client: 1, seq: i },
            });
            kv.apply(i, &cmd);
            batch.push(Entry {
                term: 1,
                index: i,
                payload: EntryPayload::Command(cmd.encode()),
            });
            if batch.len() == 1000 {
                s.append(&batch).unwrap();
                s.sync().unwrap();
                batch.clear();
                if i % 10_000 == 0 {
                    // Just before a snapshot: the most the directory holds.
                    peak = peak.max(dir_bytes(dir));
                }
            }
            if compact && i % 10_000 == 0 {
                s.save_snapshot(&Snapshot {
                    meta: SnapshotMeta {
                        index: i,
                        term: 1,
                        config: ClusterConfig::simple([1]),
                    },
                    data: Arc::new(kv.to_snapshot()),
                })
                .unwrap();
            }
        }
        let bytes = dir_bytes(dir);
        println!(
            "1,000,000 puts on 1,000 keys, compaction {}: data directory {:.1} KiB at the end \
             (peak {:.1} KiB) in {} files ({:?})",
            if compact {
                "every 10,000 entries"
            } else {
                "off"
            },
            bytes as f64 / 1024.0,
            peak as f64 / 1024.0,
            std::fs::read_dir(dir).unwrap().count(),
            started.elapsed()
        );
    }
}

/// A leader snapshot replaces a longer log, and a crash before its clean-up leaves the
/// replaced segments on disk. A later local snapshot must not take them for the log that
/// follows it: their entries past its index are stale and must not come back.
#[test]
fn segments_left_by_a_crash_before_clean_up_stay_covered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir); // entries 1..=20
    {
        let (mut s, _) = Storage::open(dir, opts()).unwrap();
        s.save_snapshot_until(&snap(12, 5, "leader"), SnapshotStep::DirSynced)
            .unwrap();
    } // crash before the replaced segment is deleted
    let (mut s, rec) = Storage::open(dir, opts()).unwrap();
    assert_eq!(flatten(&rec), (12, vec![]));
    s.save_snapshot(&snap(12, 5, "local")).unwrap();
    drop(s);
    let (s, rec) = Storage::open(dir, opts()).unwrap();
    assert_eq!(flatten(&rec), (12, vec![]), "stale entries came back");
    assert_eq!(s.last_index(), 12);
}

/// Entries a conflict truncated stay truncated when a local snapshot lands between the
/// truncation point and their indexes: replay must drop them when it meets the record
/// that truncated them, even though that record is at or below the snapshot.
#[test]
fn entries_truncated_before_a_local_snapshot_stay_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir); // entries 1..=20
    let (mut s, _) = Storage::open(dir, opts()).unwrap();
    s.append(&[entry(12, 3)]).unwrap(); // the log is now 1..=12
    s.sync().unwrap();
    s.save_snapshot(&snap(12, 3, "at-12")).unwrap();
    assert_eq!(s.last_index(), 12);
    drop(s);
    let (s, rec) = Storage::open(dir, opts()).unwrap();
    assert_eq!(flatten(&rec), (12, vec![]), "truncated entries came back");
    assert_eq!(s.last_index(), 12);
}

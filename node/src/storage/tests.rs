//! Tests of [`Storage`] against real files: torn tails at every offset, corruption at every
//! byte, hard state across restarts, conflict replacement, and a seeded model test.

use super::record::{Record, HEADER_BYTES};
use super::*;
use crate::raft::EntryPayload;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn no_sync() -> StorageOptions {
    StorageOptions {
        fsync: FsyncPolicy::Never,
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Command(format!("cmd-{index}-{term}").into_bytes()),
    }
}

fn hs(term: u64, voted_for: Option<u64>, commit: u64) -> HardState {
    HardState {
        term,
        voted_for,
        commit,
    }
}

fn file_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(WAL_FILE_NAME)).unwrap().len()
}

/// Writes `records` (in order) to a new log in `dir`; returns the byte offset each starts at.
fn write_records(dir: &Path, records: &[Record]) -> Vec<u64> {
    let (mut s, rec) = Storage::open(dir, no_sync()).unwrap();
    assert_eq!(rec, Recovered::default());
    let mut offsets = Vec::new();
    for r in records {
        s.sync().unwrap();
        offsets.push(file_len(dir));
        match r {
            Record::Entry(e) => s.append(std::slice::from_ref(e)).unwrap(),
            Record::HardState(h) => s.save_hard_state(h).unwrap(),
        }
    }
    s.sync().unwrap();
    offsets
}

/// What replaying `records` must recover.
fn expected(records: &[Record]) -> (HardState, Vec<Entry>) {
    let mut r = replay::Replayer::default();
    for rec in records {
        r.apply(0, rec.clone()).unwrap();
    }
    (r.hard_state, r.entries)
}

fn sample_records(last_is_entry: bool) -> Vec<Record> {
    let mut v = vec![
        Record::HardState(hs(1, Some(1), 0)),
        Record::Entry(entry(1, 1)),
        Record::Entry(entry(2, 1)),
        Record::HardState(hs(2, Some(2), 1)),
        Record::Entry(entry(3, 2)),
    ];
    if last_is_entry {
        v.push(Record::Entry(entry(4, 2)));
    } else {
        v.push(Record::HardState(hs(3, None, 3)));
    }
    v
}

#[test]
fn fsync_policy_names_round_trip() {
    for p in FsyncPolicy::ALL {
        assert_eq!(p.to_string().parse::<FsyncPolicy>(), Ok(p));
    }
    assert!("sometimes".parse::<FsyncPolicy>().is_err());
}

#[test]
fn new_directory_starts_empty_and_creates_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("b");
    let (s, rec) = Storage::open(
        &dir,
        StorageOptions {
            fsync: FsyncPolicy::Batch,
        },
    )
    .unwrap();
    assert_eq!(rec, Recovered::default());
    assert_eq!(s.path(), dir.join(WAL_FILE_NAME));
    assert_eq!(s.last_index(), 0);
    assert_eq!(file_len(&dir), 0);
    drop(s);
    let (_, rec) = Storage::open(&dir, no_sync()).unwrap();
    assert_eq!(rec, Recovered::default());
}

#[test]
fn cut_at_every_offset_of_the_last_record_recovers_the_preceding_records() {
    for last_is_entry in [true, false] {
        let records = sample_records(last_is_entry);
        let tmp = tempfile::tempdir().unwrap();
        let offsets = write_records(tmp.path(), &records);
        let full = std::fs::read(tmp.path().join(WAL_FILE_NAME)).unwrap();
        let start = *offsets.last().unwrap();
        let (want_hs, want_entries) = expected(&records[..records.len() - 1]);
        for cut in start..full.len() as u64 {
            let ctx = format!("last_is_entry={last_is_entry} cut={cut} start={start}");
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join(WAL_FILE_NAME), &full[..cut as usize]).unwrap();
            let (mut s, rec) = Storage::open(d.path(), no_sync()).expect(&ctx);
            assert_eq!(rec.hard_state, want_hs, "{ctx}");
            assert_eq!(rec.entries, want_entries, "{ctx}");
            assert_eq!(rec.torn_bytes_cut, cut - start, "{ctx}");
            assert_eq!(file_len(d.path()), start, "{ctx}: file truncated");
            // The log is usable after the cut: append where the torn record was.
            let next = entry(want_entries.len() as u64 + 1, 9);
            s.append(std::slice::from_ref(&next)).expect(&ctx);
            s.sync().expect(&ctx);
            drop(s);
            let (_, rec) = Storage::open(d.path(), no_sync()).expect(&ctx);
            assert_eq!(rec.torn_bytes_cut, 0, "{ctx}");
            assert_eq!(rec.entries.last(), Some(&next), "{ctx}");
            assert_eq!(rec.entries.len(), want_entries.len() + 1, "{ctx}");
        }
    }
}

#[test]
fn flipped_byte_in_an_earlier_record_is_fatal_and_names_file_and_offset() {
    let records = sample_records(true);
    let tmp = tempfile::tempdir().unwrap();
    let offsets = write_records(tmp.path(), &records);
    let full = std::fs::read(tmp.path().join(WAL_FILE_NAME)).unwrap();
    // Every earlier record, every byte of it (header included), two different flips.
    for r in 0..records.len() - 1 {
        let (start, end) = (offsets[r], offsets[r + 1]);
        for pos in start..end {
            for mask in [0xffu8, 0x01] {
                let ctx =
                    format!("record {r} byte {pos} (record starts at {start}) mask {mask:#x}");
                let d = tempfile::tempdir().unwrap();
                let path = d.path().join(WAL_FILE_NAME);
                let mut bytes = full.clone();
                bytes[pos as usize] ^= mask;
                std::fs::write(&path, &bytes).unwrap();
                match Storage::open(d.path(), no_sync()) {
                    Err(StorageError::Corrupt {
                        path: p,
                        offset,
                        reason,
                    }) => {
                        assert_eq!(p, path, "{ctx}");
                        assert_eq!(offset, start, "{ctx}: {reason}");
                        let msg = StorageError::Corrupt {
                            path: p,
                            offset,
                            reason,
                        }
                        .to_string();
                        assert!(msg.contains(&path.display().to_string()), "{msg}");
                        assert!(msg.contains(&format!("offset {start}")), "{msg}");
                    }
                    other => panic!("{ctx}: expected Corrupt, got {other:?}"),
                }
                // Refusing to start must not have changed the file.
                assert_eq!(std::fs::read(&path).unwrap(), bytes, "{ctx}");
            }
        }
    }
}

#[test]
fn flipped_byte_in_the_last_record_payload_is_a_torn_tail() {
    let records = sample_records(true);
    let tmp = tempfile::tempdir().unwrap();
    let offsets = write_records(tmp.path(), &records);
    let path = tmp.path().join(WAL_FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    let start = *offsets.last().unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let (_, rec) = Storage::open(tmp.path(), no_sync()).unwrap();
    assert_eq!(rec.torn_bytes_cut, n as u64 - start);
    assert_eq!(rec.entries.len(), 3);
}

#[test]
fn zero_filled_tail_is_cut() {
    let records = sample_records(true);
    let tmp = tempfile::tempdir().unwrap();
    write_records(tmp.path(), &records);
    let path = tmp.path().join(WAL_FILE_NAME);
    let good = file_len(tmp.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0u8; 8192]);
    std::fs::write(&path, &bytes).unwrap();
    let (_, rec) = Storage::open(tmp.path(), no_sync()).unwrap();
    assert_eq!(rec.torn_bytes_cut, 8192);
    assert_eq!(rec.entries.len(), 4);
    assert_eq!(file_len(tmp.path()), good);
}

#[test]
fn hard_state_survives_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = StorageOptions {
        fsync: FsyncPolicy::Batch,
    };
    {
        let (mut s, _) = Storage::open(tmp.path(), opts).unwrap();
        s.save_hard_state(&hs(3, Some(2), 0)).unwrap();
        s.append(&[entry(1, 3)]).unwrap();
        s.save_hard_state(&hs(3, Some(2), 1)).unwrap();
        s.sync().unwrap();
    }
    let (mut s, rec) = Storage::open(tmp.path(), opts).unwrap();
    assert_eq!(rec.hard_state, hs(3, Some(2), 1));
    assert_eq!(s.hard_state(), hs(3, Some(2), 1));
    s.save_hard_state(&hs(7, None, 1)).unwrap();
    s.sync().unwrap();
    drop(s);
    let (_, rec) = Storage::open(tmp.path(), opts).unwrap();
    assert_eq!(rec.hard_state, hs(7, None, 1));
}

#[test]
fn hard_state_regressions_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, _) = Storage::open(tmp.path(), no_sync()).unwrap();
    s.save_hard_state(&hs(5, Some(1), 0)).unwrap();
    assert!(matches!(
        s.save_hard_state(&hs(4, None, 0)),
        Err(StorageError::HardStateRegression(_))
    ));
    assert!(matches!(
        s.save_hard_state(&hs(5, Some(2), 0)),
        Err(StorageError::HardStateRegression(_))
    ));
    assert!(matches!(
        s.save_hard_state(&hs(5, None, 0)),
        Err(StorageError::HardStateRegression(_))
    ));
    // Same term and vote, new commit: fine. Vote in a term with none yet: fine.
    s.save_hard_state(&hs(5, Some(1), 3)).unwrap();
    s.save_hard_state(&hs(6, None, 3)).unwrap();
    s.save_hard_state(&hs(6, Some(3), 3)).unwrap();
    s.sync().unwrap();
    drop(s);
    let (_, rec) = Storage::open(tmp.path(), no_sync()).unwrap();
    assert_eq!(rec.hard_state, hs(6, Some(3), 3));
}

#[test]
fn conflict_replacement_replays_correctly() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = Storage::open(tmp.path(), no_sync()).unwrap();
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)])
            .unwrap();
        s.sync().unwrap();
        // A new leader's entries replace index 3 and everything after it.
        s.append(&[entry(3, 2)]).unwrap();
        assert_eq!(s.last_index(), 3);
        assert_eq!(s.term(3), Some(2));
        assert_eq!(s.term(4), None);
        s.sync().unwrap();
    }
    let (mut s, rec) = Storage::open(tmp.path(), no_sync()).unwrap();
    assert_eq!(rec.entries, vec![entry(1, 1), entry(2, 1), entry(3, 2)]);
    // Replay after reopen + append (including another replacement).
    s.append(&[entry(4, 2), entry(5, 2)]).unwrap();
    s.append(&[entry(2, 3)]).unwrap();
    s.append(&[entry(3, 3)]).unwrap();
    s.sync().unwrap();
    drop(s);
    let (_, rec) = Storage::open(tmp.path(), no_sync()).unwrap();
    assert_eq!(rec.entries, vec![entry(1, 1), entry(2, 3), entry(3, 3)]);
}

#[test]
fn invalid_appends_are_refused_without_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, _) = Storage::open(tmp.path(), no_sync()).unwrap();
    s.append(&[]).unwrap();
    for bad in [
        vec![entry(0, 1)],
        vec![entry(2, 1)],
        vec![entry(1, 1), entry(3, 1)],
        vec![entry(1, 1), entry(1, 1)],
    ] {
        assert!(
            matches!(s.append(&bad), Err(StorageError::InvalidAppend(_))),
            "{bad:?}"
        );
    }
    s.sync().unwrap();
    assert_eq!(file_len(tmp.path()), 0);
    assert_eq!(s.last_index(), 0);
}

#[test]
fn unsynced_records_are_not_in_the_file_under_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = StorageOptions {
        fsync: FsyncPolicy::Batch,
    };
    let (mut s, _) = Storage::open(tmp.path(), opts).unwrap();
    s.append(&[entry(1, 1), entry(2, 1)]).unwrap();
    s.save_hard_state(&hs(1, Some(1), 0)).unwrap();
    assert_eq!(file_len(tmp.path()), 0, "append buffers until sync");
    s.sync().unwrap();
    assert!(file_len(tmp.path()) > 0);
}

#[test]
fn per_entry_policy_writes_every_record_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = StorageOptions {
        fsync: FsyncPolicy::PerEntry,
    };
    let (mut s, _) = Storage::open(tmp.path(), opts).unwrap();
    s.append(&[entry(1, 1)]).unwrap();
    let one = file_len(tmp.path());
    assert!(one > HEADER_BYTES as u64);
    s.append(&[entry(2, 1)]).unwrap();
    assert!(file_len(tmp.path()) > one);
    drop(s);
    let (_, rec) = Storage::open(tmp.path(), opts).unwrap();
    assert_eq!(rec.entries, vec![entry(1, 1), entry(2, 1)]);
}

#[test]
fn second_open_of_the_same_log_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_s, _) = Storage::open(tmp.path(), no_sync()).unwrap();
    assert!(matches!(
        Storage::open(tmp.path(), no_sync()),
        Err(StorageError::Locked { .. })
    ));
}

#[test]
fn gap_in_the_file_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    record::encode_record(Record::Entry(entry(1, 1)).as_ref(), &mut bytes).unwrap();
    let second = bytes.len() as u64;
    record::encode_record(Record::Entry(entry(3, 1)).as_ref(), &mut bytes).unwrap();
    std::fs::write(tmp.path().join(WAL_FILE_NAME), &bytes).unwrap();
    match Storage::open(tmp.path(), no_sync()) {
        Err(StorageError::Corrupt { offset, .. }) => assert_eq!(offset, second),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Random appends (with conflicts), hard states, syncs, reopenings and torn tails against an
/// in-memory model of what must be recovered.
#[test]
fn random_operations_match_the_model() {
    for seed in 0..20u64 {
        let result = std::panic::catch_unwind(|| run_model(seed));
        if let Err(e) = result {
            eprintln!("random_operations_match_the_model failed with seed {seed}");
            std::panic::resume_unwind(e);
        }
    }
}

fn run_model(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, _) = Storage::open(tmp.path(), no_sync()).unwrap();
    // What is synced (must survive) and what is merely appended.
    let mut synced: (HardState, Vec<Entry>) = Default::default();
    let mut current: (HardState, Vec<Entry>) = Default::default();
    for step in 0..200 {
        match rng.gen_range(0..10) {
            0..=4 => {
                let last = current.1.len() as u64;
                let first = rng.gen_range(1..=last + 1);
                let n = rng.gen_range(1..5);
                let term = current.0.term.max(1) + rng.gen_range(0..2);
                let es: Vec<Entry> = (first..first + n).map(|i| entry(i, term)).collect();
                s.append(&es).unwrap();
                current.1.truncate(first as usize - 1);
                current.1.extend(es);
            }
            5 => {
                let h = hs(current.0.term + rng.gen_range(0..2), None, step);
                let h = if h.term == current.0.term {
                    HardState {
                        voted_for: current.0.voted_for,
                        ..h
                    }
                } else {
                    h
                };
                s.save_hard_state(&h).unwrap();
                current.0 = h;
            }
            6..=7 => {
                s.sync().unwrap();
                synced = current.clone();
            }
            8 => {
                // Restart; unsynced records were never written (Batch-like buffering).
                drop(s);
                let (s2, rec) = Storage::open(tmp.path(), no_sync()).unwrap();
                assert_eq!(
                    (rec.hard_state, rec.entries),
                    synced,
                    "seed {seed} step {step}"
                );
                s = s2;
                current = synced.clone();
            }
            _ => {
                // Crash mid-write: sync, then leave a partial record at the end.
                s.sync().unwrap();
                synced = current.clone();
                drop(s);
                let path = tmp.path().join(WAL_FILE_NAME);
                let mut junk = Vec::new();
                record::encode_record(Record::Entry(entry(999, 9)).as_ref(), &mut junk).unwrap();
                let keep = rng.gen_range(1..junk.len());
                let mut bytes = std::fs::read(&path).unwrap();
                bytes.extend_from_slice(&junk[..keep]);
                std::fs::write(&path, &bytes).unwrap();
                let (s2, rec) = Storage::open(tmp.path(), no_sync()).unwrap();
                assert_eq!(rec.torn_bytes_cut, keep as u64, "seed {seed} step {step}");
                assert_eq!(
                    (rec.hard_state, rec.entries),
                    synced,
                    "seed {seed} step {step}"
                );
                s = s2;
            }
        }
    }
}

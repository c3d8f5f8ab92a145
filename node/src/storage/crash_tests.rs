//! Storage on a disk that loses power ([`CrashFs`]): whatever `sync`, `save_snapshot`, a
//! `PerEntry` call or `open` acknowledged survives the crash, and reopening after one never
//! fails. Each targeted test exercises one fsync of the storage code, so deleting that
//! fsync makes it fail; the seeded random test crashes at random points of random work.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
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

/// Every directory `open` creates needs its parent synced, not only the last one.
#[test]
fn a_new_nested_data_directory_survives_a_crash() {
    let fs = disk();
    let dir = "/data/new/node";
    let (mut s, _) = open_at(&fs, dir, FsyncPolicy::Batch);
    s.append(&entries(1, 3, 1)).unwrap();
    s.sync().unwrap();
    drop(s);
    fs.crash_losing_unsynced();
    let (_, rec) = open_at(&fs, dir, FsyncPolicy::Batch);
    assert_eq!(log(&rec), pairs(1, 3, 1));
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

/// What storage holds, in the shape of [`Recovered`] (the snapshot as index, term, data).
#[derive(Clone, Default, PartialEq, Eq)]
struct State {
    hs: HardState,
    snap: Option<(LogIndex, Term, Vec<u8>)>,
    entries: Vec<Entry>,
}

/// One change made to storage, in the order storage writes them.
#[derive(Clone)]
enum Event {
    Entry(Entry),
    HardState(HardState),
    Snapshot(Snapshot),
}

/// Entries as index/term/payload length, snapshot data as text: failures stay readable.
impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snap = self
            .snap
            .as_ref()
            .map(|(i, t, d)| format!("{i}t{t} {:?}", String::from_utf8_lossy(d)));
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|e| match &e.payload {
                EntryPayload::Command(c) => format!("{}t{}/{}", e.index, e.term, c.len()),
                other => format!("{}t{} {other:?}", e.index, e.term),
            })
            .collect();
        write!(f, "{:?} snapshot {snap:?} log {entries:?}", self.hs)
    }
}

/// Events as compact as [`State`]'s Debug.
impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Entry(e) => {
                let len = match &e.payload {
                    EntryPayload::Command(c) => c.len(),
                    _ => 0,
                };
                write!(f, "E{}t{}/{len}", e.index, e.term)
            }
            Event::HardState(h) => write!(f, "{h:?}"),
            Event::Snapshot(s) => write!(f, "S{}t{}", s.meta.index, s.meta.term),
        }
    }
}

impl State {
    fn recovered(rec: &Recovered) -> State {
        State {
            hs: rec.hard_state,
            snap: rec
                .snapshot
                .as_ref()
                .map(|s| (s.meta.index, s.meta.term, s.data.to_vec())),
            entries: rec.entries.clone(),
        }
    }

    fn snap_index(&self) -> LogIndex {
        self.snap.as_ref().map_or(0, |s| s.0)
    }

    fn last_index(&self) -> LogIndex {
        self.snap_index() + self.entries.len() as LogIndex
    }

    fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snap_index() {
            return Some(self.snap.as_ref().map_or(0, |s| s.1));
        }
        let i = index.checked_sub(self.snap_index() + 1)?;
        self.entries.get(i as usize).map(|e| e.term)
    }

    fn apply(&mut self, ev: &Event) {
        match ev {
            Event::Entry(e) => {
                self.entries
                    .truncate((e.index - self.snap_index() - 1) as usize);
                self.entries.push(e.clone());
            }
            Event::HardState(h) => self.hs = *h,
            Event::Snapshot(s) => {
                let m = &s.meta;
                if self.term(m.index) == Some(m.term) {
                    self.entries.retain(|e| e.index > m.index);
                } else {
                    self.entries.clear();
                }
                self.snap = Some((m.index, m.term, s.data.to_vec()));
            }
        }
    }
}

/// The acknowledged state and the changes made since, not yet acknowledged: after a crash
/// storage must hold the acknowledged state plus some prefix of those changes.
#[derive(Default)]
struct Model {
    acked: State,
    current: State,
    unacked: Vec<Event>,
}

impl Model {
    fn push(&mut self, ev: Event) {
        self.current.apply(&ev);
        self.unacked.push(ev);
    }

    fn ack(&mut self) {
        self.acked = self.current.clone();
        self.unacked.clear();
    }

    /// Checks a recovery against the model, then takes it as the new truth.
    fn recovered(&mut self, rec: &Recovered, ctx: &str) {
        let got = State::recovered(rec);
        let mut candidate = self.acked.clone();
        let mut ok = candidate == got;
        for ev in &self.unacked {
            candidate.apply(ev);
            ok |= candidate == got;
        }
        assert!(
            ok,
            "{ctx}: recovered {got:?}\nbut acknowledged {:?}\nfollowed by {:?}",
            self.acked, self.unacked
        );
        self.current = got;
        self.ack();
    }
}

fn random_hard_state(rng: &mut ChaCha8Rng, cur: HardState, last: LogIndex) -> HardState {
    let term = cur.term + rng.gen_range(0..2);
    let voted_for = if term == cur.term && cur.voted_for.is_some() {
        cur.voted_for
    } else if rng.gen_bool(0.5) {
        Some(rng.gen_range(1..4))
    } else {
        None
    };
    hs(term, voted_for, rng.gen_range(0..=last))
}

/// Random appends (with conflicts), hard states, syncs and snapshots (local and from a
/// leader), under `Batch` or `PerEntry`, with the power failing after a random number of
/// file-system operations (also inside `open`) and random crash outcomes.
fn run_random_crashes(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let fs = disk();
    let policy = if rng.gen_ratio(1, 4) {
        FsyncPolicy::PerEntry
    } else {
        FsyncPolicy::Batch
    };
    let mut m = Model::default();
    for round in 0..12 {
        let ctx = format!("seed {seed} round {round} ({policy})");
        if round > 0 && rng.gen_ratio(3, 4) {
            fs.power_off_after(rng.gen_range(0..80));
        }
        let mut opened = None;
        for _attempt in 0..3 {
            match Storage::open_with(Arc::new(fs.clone()), Path::new(DIR), opts(policy)) {
                Ok(o) => {
                    opened = Some(o);
                    break;
                }
                Err(e) if fs.is_powered_off() => {
                    let _ = e;
                    fs.crash(&mut rng);
                }
                Err(e) => panic!("{ctx}: open failed: {e}"),
            }
        }
        let (mut s, rec) = opened.unwrap_or_else(|| panic!("{ctx}: never opened"));
        m.recovered(&rec, &format!("{ctx} [{}]", fs.describe(Path::new(DIR))));
        for step in 0..rng.gen_range(1..30) {
            let ctx = format!("{ctx} step {step}");
            let res = match rng.gen_range(0..10) {
                0..=3 => {
                    let c = &m.current;
                    let first = rng.gen_range(c.snap_index() + 1..=c.last_index() + 1);
                    let term = c.hs.term.max(1);
                    let es: Vec<Entry> = (first..first + rng.gen_range(1..4))
                        .map(|i| entry(i, term, rng.gen_range(0..200)))
                        .collect();
                    for e in &es {
                        m.push(Event::Entry(e.clone()));
                    }
                    s.append(&es).map(|()| policy == FsyncPolicy::PerEntry)
                }
                4 => {
                    let h = random_hard_state(&mut rng, m.current.hs, m.current.last_index());
                    if h != m.current.hs {
                        m.push(Event::HardState(h));
                    }
                    s.save_hard_state(&h)
                        .map(|()| policy == FsyncPolicy::PerEntry)
                }
                5..=6 => s.sync().map(|()| true),
                7 => {
                    let c = &m.current;
                    let index = rng.gen_range(c.snap_index()..=c.last_index());
                    let term = c.term(index).expect("index in the log");
                    let data = format!("local {index} {seed} {step}").into_bytes();
                    let sn = snap(index, term, &data);
                    m.push(Event::Snapshot(sn.clone()));
                    s.save_snapshot(&sn).map(|()| true)
                }
                8 => {
                    let c = &m.current;
                    let index = c.last_index() + rng.gen_range(0..3);
                    let top = c.entries.iter().map(|e| e.term).max().unwrap_or(0);
                    let term = top.max(c.snap.as_ref().map_or(0, |s| s.1)) + 1;
                    let data = format!("leader {index} {seed} {step}").into_bytes();
                    let sn = snap(index, term, &data);
                    m.push(Event::Snapshot(sn.clone()));
                    s.save_snapshot(&sn).map(|()| true)
                }
                _ => break,
            };
            match res {
                Ok(true) => m.ack(),
                Ok(false) => {}
                Err(_) if fs.is_powered_off() => break,
                Err(e) => panic!("{ctx}: {e}"),
            }
        }
        drop(s);
        if rng.gen_ratio(1, 4) {
            fs.crash_losing_unsynced();
        } else {
            fs.crash(&mut rng);
        }
    }
    let (_, rec) = open_at(&fs, DIR, policy);
    m.recovered(&rec, &format!("seed {seed} final"));
}

/// Many seeds of [`run_random_crashes`]; `STORAGE_CRASH_SEED=n` runs only seed `n`.
#[test]
fn random_crashes_lose_nothing_acknowledged() {
    let seeds: Vec<u64> = match std::env::var("STORAGE_CRASH_SEED") {
        Ok(s) => vec![s.parse().expect("STORAGE_CRASH_SEED is a number")],
        Err(_) => (0..2000).collect(),
    };
    for seed in seeds {
        if let Err(e) = std::panic::catch_unwind(|| run_random_crashes(seed)) {
            eprintln!("random_crashes_lose_nothing_acknowledged failed with seed {seed}");
            std::panic::resume_unwind(e);
        }
    }
}

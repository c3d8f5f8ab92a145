//! The history recorder shared by every client and the nemesis.
//!
//! One lock orders everything: an event's `index` and `time` are assigned and the line is
//! written to the buffered file under the same lock, so the file order is the index order and
//! `time` never decreases (see `docs/spec/history.md`). The buffer is flushed at least every
//! [`FLUSH_INTERVAL`] by a background thread, on [`Recorder::flush`], and when the last clone
//! of the recorder is dropped, so a killed harness keeps (almost) everything it saw.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use node::protocol::ReadMode;

use crate::history::{Event, EventType, Process};

/// The longest time an event stays in the write buffer before it reaches the file.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// Why the recorder could not create or write the history.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The history file could not be created or written.
    #[error("history {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Whether a nemesis event opens or closes a fault window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NemesisPhase {
    /// The fault begins (`f: "start"`).
    Start,
    /// The fault ends (`f: "stop"`).
    Stop,
}

/// The fields of a client operation that its invocation and completion share.
#[derive(Clone, Debug, PartialEq)]
pub struct OpRecord {
    /// The logical client process.
    pub process: u64,
    /// `read`, `write`, `cas` or `add`.
    pub f: &'static str,
    /// The key the operation is about.
    pub key: String,
    /// The invocation's value (see the spec: `null` for reads).
    pub value: serde_json::Value,
    /// The node name the request is (or was finally) sent to, e.g. `n2`.
    pub node: String,
    /// The read path, on reads.
    pub read_mode: Option<ReadMode>,
}

/// Completion counts of one operation name (`f`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// Invocations recorded.
    pub invoke: u64,
    /// `ok` completions.
    pub ok: u64,
    /// `fail` completions.
    pub fail: u64,
    /// `info` completions.
    pub info: u64,
}

/// A snapshot of the recorder's counters, for progress display and run statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// All client operations together.
    pub total: OutcomeCounts,
    /// Per operation name (`read`, `write`, ...).
    pub by_f: BTreeMap<String, OutcomeCounts>,
    /// Nemesis events recorded.
    pub nemesis: u64,
    /// Events recorded in total (= the next index).
    pub events: u64,
}

impl Counts {
    fn count(&mut self, f: &str, kind: EventType) {
        let per = self.by_f.entry(f.to_string()).or_default();
        for c in [&mut self.total, per] {
            match kind {
                EventType::Invoke => c.invoke += 1,
                EventType::Ok => c.ok += 1,
                EventType::Fail => c.fail += 1,
                EventType::Info => c.info += 1,
            }
        }
    }
}

struct State {
    next_index: u64,
    last_time: u64,
    writer: Option<BufWriter<File>>,
    /// The first write error; later writes are skipped (the error is reported by `flush`).
    io_error: Option<String>,
    counts: Counts,
    events: Option<Vec<Event>>,
    /// Greater than every client process id recorded or reserved so far.
    next_free_process: u64,
    /// The current fault description of each open nemesis fault, by its `fault` field.
    open_faults: BTreeMap<String, serde_json::Value>,
}

struct Inner {
    start: Instant,
    path: Option<PathBuf>,
    state: Mutex<State>,
    /// Dropped with the last recorder: wakes and ends the background flusher at once.
    _flusher_stop: Option<mpsc::Sender<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = state.writer.as_mut() {
            let _ = w.flush();
        }
    }
}

/// The history recorder. Cheap to clone (all clones share one history).
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Creates (truncates) the history file at `path` and starts the background flusher.
    /// Time 0 is now. Events are not kept in memory (see [`Recorder::create_keeping_events`]).
    pub fn create(path: &Path) -> Result<Recorder, RecorderError> {
        Self::open(Some(path), false)
    }

    /// Like [`Recorder::create`], and also keeps every event in memory for [`Recorder::events`].
    pub fn create_keeping_events(path: &Path) -> Result<Recorder, RecorderError> {
        Self::open(Some(path), true)
    }

    /// A recorder with no file that keeps its events in memory (for tests and checks).
    pub fn in_memory() -> Recorder {
        Self::open(None, true).expect("no file to open")
    }

    fn open(path: Option<&Path>, keep: bool) -> Result<Recorder, RecorderError> {
        let writer = match path {
            Some(p) => Some(BufWriter::with_capacity(
                64 * 1024,
                File::create(p).map_err(|source| RecorderError::Io {
                    path: p.display().to_string(),
                    source,
                })?,
            )),
            None => None,
        };
        let has_file = writer.is_some();
        let (tx, rx) = mpsc::channel::<()>();
        let inner = Arc::new(Inner {
            start: Instant::now(),
            path: path.map(Path::to_path_buf),
            state: Mutex::new(State {
                next_index: 0,
                last_time: 0,
                writer,
                io_error: None,
                counts: Counts::default(),
                events: keep.then(Vec::new),
                next_free_process: 0,
                open_faults: BTreeMap::new(),
            }),
            _flusher_stop: has_file.then_some(tx),
        });
        if has_file {
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name("history-flusher".into())
                .spawn(move || flusher(weak, rx))
                .map_err(|source| RecorderError::Io {
                    path: path.map(|p| p.display().to_string()).unwrap_or_default(),
                    source,
                })?;
        }
        Ok(Recorder { inner })
    }

    /// The instant that is time 0 of the history.
    pub fn start(&self) -> Instant {
        self.inner.start
    }

    /// Nanoseconds since time 0 (what the next event would roughly carry).
    pub fn now_ns(&self) -> u64 {
        self.inner.start.elapsed().as_nanos() as u64
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters more than losing the history, so keep going.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one event, assigning its `index` and `time`; returns the event as written.
    /// Any `index`/`time` in `event` is overwritten.
    pub fn record(&self, mut event: Event) -> Event {
        let mut st = self.lock();
        let now = self.inner.start.elapsed().as_nanos() as u64;
        let time = now.max(st.last_time);
        st.last_time = time;
        event.index = st.next_index;
        event.time = time;
        st.next_index += 1;
        st.counts.events = st.next_index;
        match event.process {
            Process::Client(p) => {
                st.counts.count(&event.f, event.kind);
                st.next_free_process = st.next_free_process.max(p + 1);
            }
            Process::Nemesis => st.counts.nemesis += 1,
        }
        if st.io_error.is_none() {
            if let Some(w) = st.writer.as_mut() {
                let res = serde_json::to_writer(&mut *w, &event)
                    .map_err(std::io::Error::from)
                    .and_then(|_| w.write_all(b"\n"));
                if let Err(e) = res {
                    st.io_error = Some(e.to_string());
                }
            }
        }
        if let Some(evs) = st.events.as_mut() {
            evs.push(event.clone());
        }
        event
    }

    /// Records the invocation of a client operation (type `invoke`).
    pub fn invoke(&self, op: &OpRecord) -> Event {
        self.record(client_event(op, EventType::Invoke, op.value.clone(), None))
    }

    /// Records the completion of a client operation: `kind` is `Ok`, `Fail` or `Info`;
    /// `value` is the completion's value (a read's observed value; for writes the invoke's);
    /// `error` says why on `fail`/`info`.
    pub fn complete(
        &self,
        op: &OpRecord,
        kind: EventType,
        value: serde_json::Value,
        error: Option<String>,
    ) -> Event {
        debug_assert!(kind != EventType::Invoke);
        self.record(client_event(op, kind, value, error))
    }

    /// Records a nemesis event (`process: "nemesis"`, `type: "info"`, `f: start|stop`).
    /// `value` should be an object with at least a `fault` field.
    pub fn nemesis(&self, phase: NemesisPhase, value: serde_json::Value) -> Event {
        let fault = value
            .get("fault")
            .and_then(|f| f.as_str())
            .unwrap_or("unknown")
            .to_string();
        {
            let mut st = self.lock();
            match phase {
                NemesisPhase::Start => {
                    st.open_faults.insert(fault, value.clone());
                }
                NemesisPhase::Stop => {
                    st.open_faults.remove(&fault);
                }
            }
        }
        self.record(Event {
            index: 0,
            time: 0,
            process: Process::Nemesis,
            kind: EventType::Info,
            f: match phase {
                NemesisPhase::Start => "start".into(),
                NemesisPhase::Stop => "stop".into(),
            },
            key: None,
            value,
            node: None,
            read_mode: None,
            error: None,
        })
    }

    /// The faults started and not yet stopped, by their `fault` name (for progress display).
    pub fn open_faults(&self) -> BTreeMap<String, serde_json::Value> {
        self.lock().open_faults.clone()
    }

    /// Reserves a client process id greater than every id recorded or reserved so far (for
    /// operations issued outside the client pool, such as final reads).
    pub fn reserve_process(&self) -> u64 {
        let mut st = self.lock();
        let p = st.next_free_process;
        st.next_free_process += 1;
        p
    }

    /// Writes every buffered event to the file. Reports the first write error seen so far.
    pub fn flush(&self) -> Result<(), RecorderError> {
        let mut st = self.lock();
        flush_state(&mut st);
        match &st.io_error {
            None => Ok(()),
            Some(msg) => Err(RecorderError::Io {
                path: self
                    .inner
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                source: std::io::Error::other(msg.clone()),
            }),
        }
    }

    /// A snapshot of the counters.
    pub fn counts(&self) -> Counts {
        self.lock().counts.clone()
    }

    /// Every event recorded so far, if this recorder keeps them (else empty).
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone().unwrap_or_default()
    }

    /// The history file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }
}

fn client_event(
    op: &OpRecord,
    kind: EventType,
    value: serde_json::Value,
    error: Option<String>,
) -> Event {
    Event {
        index: 0,
        time: 0,
        process: Process::Client(op.process),
        kind,
        f: op.f.to_string(),
        key: Some(op.key.clone()),
        value,
        node: Some(op.node.clone()),
        read_mode: op.read_mode.map(|m| m.as_str().to_string()),
        error,
    }
}

fn flush_state(st: &mut State) {
    if st.io_error.is_some() {
        return;
    }
    if let Some(w) = st.writer.as_mut() {
        if let Err(e) = w.flush() {
            st.io_error = Some(e.to_string());
        }
    }
}

/// Flushes every [`FLUSH_INTERVAL`] until the last recorder is dropped (the channel then
/// disconnects, which wakes this thread at once).
fn flusher(weak: Weak<Inner>, stop: mpsc::Receiver<()>) {
    loop {
        match stop.recv_timeout(FLUSH_INTERVAL) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Disconnected: the recorder is gone; a stray message cannot happen (never sent).
            _ => return,
        }
        let Some(inner) = weak.upgrade() else { return };
        let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        flush_state(&mut st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::read_events;

    fn op(process: u64) -> OpRecord {
        OpRecord {
            process,
            f: "write",
            key: "k1".into(),
            value: serde_json::json!(3),
            node: "n1".into(),
            read_mode: None,
        }
    }

    #[test]
    fn indexes_are_consecutive_and_time_monotonic_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let rec = Recorder::create(&path).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let o = op(t);
                        rec.invoke(&o);
                        rec.complete(&o, EventType::Ok, o.value.clone(), None);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        rec.flush().unwrap();
        let evs = read_events(&path).unwrap();
        assert_eq!(evs.len(), 1600);
        for (i, e) in evs.iter().enumerate() {
            assert_eq!(e.index, i as u64);
            if i > 0 {
                assert!(e.time >= evs[i - 1].time);
            }
        }
        let c = rec.counts();
        assert_eq!(c.total.invoke, 800);
        assert_eq!(c.total.ok, 800);
        assert_eq!(c.by_f["write"].ok, 800);
        assert_eq!(c.events, 1600);
    }

    #[test]
    fn background_flush_reaches_the_file_without_explicit_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let rec = Recorder::create(&path).unwrap();
        rec.invoke(&op(0));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "not flushed within 5 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn drop_flushes_and_nemesis_events_have_the_spec_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        {
            let rec = Recorder::create(&path).unwrap();
            rec.nemesis(
                NemesisPhase::Start,
                serde_json::json!({"fault": "kill", "nodes": ["n3"]}),
            );
            assert!(rec.open_faults().contains_key("kill"));
            rec.nemesis(
                NemesisPhase::Stop,
                serde_json::json!({"fault": "kill", "nodes": ["n3"]}),
            );
            assert!(rec.open_faults().is_empty());
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["process"], "nemesis");
        assert_eq!(first["type"], "info");
        assert_eq!(first["f"], "start");
        assert!(first.get("key").is_none());
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn reserved_processes_exceed_every_recorded_one() {
        let rec = Recorder::in_memory();
        rec.invoke(&op(41));
        assert_eq!(rec.reserve_process(), 42);
        assert_eq!(rec.reserve_process(), 43);
        assert_eq!(rec.events().len(), 1);
    }

    #[test]
    fn create_in_missing_directory_is_a_clear_error() {
        let err = Recorder::create(Path::new("/nonexistent-dir-xyz/h.jsonl")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir-xyz/h.jsonl"));
    }
}

//! The history format of `docs/spec/history.md`: one JSON object per line, one line per
//! event, in the order the harness observed the events.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::Path;

/// Who issued an event: a logical client process, or the nemesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A logical client; a fresh id is used after an `info`.
    Client(u64),
    /// The fault injector (`"nemesis"` in JSON); its events are not paired.
    Nemesis,
}

impl Serialize for Process {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(n) => s.serialize_u64(*n),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(Process::Client)
                .ok_or_else(|| serde::de::Error::custom("process must be a non-negative integer")),
            serde_json::Value::String(s) if s == "nemesis" => Ok(Process::Nemesis),
            other => Err(serde::de::Error::custom(format!(
                "process must be an integer or \"nemesis\", got {other}"
            ))),
        }
    }
}

/// The type of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client is about to send the request.
    Invoke,
    /// The operation certainly took effect.
    Ok,
    /// The operation certainly did not take effect.
    Fail,
    /// The outcome is unknown.
    Info,
}

impl EventType {
    /// `invoke`, `ok`, `fail` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

/// One line of a history. Unknown extra fields are ignored when reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 0, 1, 2, … the line's position.
    pub index: u64,
    /// Nanoseconds since the test started (harness monotonic clock).
    pub time: u64,
    /// Who issued it.
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// `read`, `write`, `cas`, `add`, or `start`/`stop` for the nemesis.
    pub f: String,
    /// The key the operation is about (absent on nemesis events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// See the spec; `null` is kept as `Value::Null`.
    #[serde(default)]
    pub value: serde_json::Value,
    /// The node the request was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// On reads: the read path (`log`, `read-index`, `lease`, `follower`, `stale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_mode: Option<String>,
    /// On `fail` and `info`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Event {
    /// True for the operations that may change state: `write`, `cas` and `add`.
    pub fn is_write(&self) -> bool {
        matches!(self.f.as_str(), "write" | "cas" | "add")
    }
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be read. The I/O error is part of the message, not a separate
    /// source, so a chain printer (`{:#}`) says it once.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// A line other than the last is not a well-formed event (bad JSON, missing or mistyped
    /// field, not UTF-8). `line` is 1-based.
    #[error("{path}: line {line}: {reason}")]
    Malformed {
        path: String,
        line: usize,
        reason: String,
    },
    /// The events parse but do not form a valid history (see `checker::validate`): `line` is
    /// the 1-based line of the offending event, counting events in the order given.
    #[error("line {line}: {reason}")]
    Structure { line: usize, reason: String },
}

impl HistoryError {
    /// A structural error at the event at 0-based position `pos` (reported as line `pos + 1`).
    pub fn at(pos: usize, reason: impl Into<String>) -> Self {
        HistoryError::Structure {
            line: pos + 1,
            reason: reason.into(),
        }
    }
}

/// Reads every event of a JSONL history, checking only that each line is a well-formed event
/// (blank lines are skipped). Structural checks (index, pairing) are the checker's job.
///
/// Strict: a torn last line is an error too. Readers of histories from the real world
/// (written by a harness that was killed, or onto a full disk) use [`read_history`].
pub fn read_events(path: &Path) -> Result<Vec<Event>, HistoryError> {
    let h = read_history(path)?;
    match h.torn {
        None => Ok(h.events),
        Some(t) => Err(HistoryError::Malformed {
            path: path.display().to_string(),
            line: t.line,
            reason: t.reason,
        }),
    }
}

/// A history as read by [`read_history`].
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    /// Every well-formed event, in file order.
    pub events: Vec<Event>,
    /// The last non-blank line, if it was not a well-formed event (and was left out).
    pub torn: Option<TornLine>,
}

/// A last line that was left out of a history: what a writer that was killed mid-write, or
/// ran out of disk, leaves behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornLine {
    /// Its 1-based line number.
    pub line: usize,
    /// Why it is not an event.
    pub reason: String,
}

impl History {
    /// The one warning to show for this history read from `path`, if its last line was left
    /// out: names the file and the line.
    pub fn warning(&self, path: &Path) -> Option<String> {
        self.torn.as_ref().map(|t| {
            format!(
                "{}: line {}: torn last line ignored ({})",
                path.display(),
                t.line,
                t.reason
            )
        })
    }

    /// True when some event is a client operation (not only nemesis events): a history
    /// without any can show nothing, so its verdict is `unknown`.
    pub fn has_operations(&self) -> bool {
        has_operations(&self.events)
    }
}

/// True when some event is a client operation (not only nemesis events).
pub fn has_operations(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e.process, Process::Client(_)))
}

/// Reads a JSONL history as [`read_events`] does, except that a last non-blank line that is
/// not a well-formed event (incomplete JSON, with or without a trailing newline, bytes that
/// are not UTF-8) is left out and reported in [`History::torn`] instead of failing.
///
/// Guarantees: every event returned is well-formed; only the last non-blank line may be left
/// out; a malformed line followed by any non-blank line is a [`HistoryError::Malformed`]
/// naming that line. Reads line by line (memory: one line at a time, plus the events).
pub fn read_history(path: &Path) -> Result<History, HistoryError> {
    let p = path.display().to_string();
    let io = |error| HistoryError::Io {
        path: p.clone(),
        error,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = std::io::BufReader::new(file);
    let mut events = Vec::new();
    // A line that did not parse: fatal if any non-blank line follows it.
    let mut bad: Option<TornLine> = None;
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io)? == 0 {
            break;
        }
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Some(t) = bad.take() {
            return Err(HistoryError::Malformed {
                path: p,
                line: t.line,
                reason: t.reason,
            });
        }
        // Without its line ending, so that a reason reads "EOF while parsing", not "control
        // character in a string", for a line cut inside a string.
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        match serde_json::from_slice::<Event>(text) {
            Ok(ev) => events.push(ev),
            Err(e) => {
                bad = Some(TornLine {
                    line,
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(History { events, torn: bad })
}

/// Writes events as JSON lines.
pub fn write_events<W: Write>(mut w: W, events: &[Event]) -> std::io::Result<()> {
    for e in events {
        serde_json::to_writer(&mut w, e)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = concat!(
        r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"write","key":"k","value":1}"#,
        "\n",
        r#"{"index":1,"time":2,"process":0,"type":"ok","f":"write","key":"k","value":1}"#,
        "\n",
    );

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        f
    }

    #[test]
    fn a_whole_history_reads_without_warning() {
        let f = file(GOOD.as_bytes());
        let h = read_history(f.path()).unwrap();
        assert_eq!(h.events.len(), 2);
        assert_eq!(h.torn, None);
        assert_eq!(h.warning(f.path()), None);
        assert!(h.has_operations());
        assert_eq!(read_events(f.path()).unwrap(), h.events);
    }

    #[test]
    fn a_last_line_cut_short_is_left_out_with_one_warning() {
        let f = file(format!("{GOOD}{{\"index\":2,\"time\":3,\"proc").as_bytes());
        let h = read_history(f.path()).unwrap();
        assert_eq!(h.events.len(), 2);
        assert_eq!(h.torn.as_ref().map(|t| t.line), Some(3));
        let w = h.warning(f.path()).unwrap();
        assert!(
            w.starts_with(&format!("{}: line 3: ", f.path().display())),
            "{w}"
        );
        // The strict reader still refuses it.
        assert!(matches!(
            read_events(f.path()),
            Err(HistoryError::Malformed { line: 3, .. })
        ));
    }

    #[test]
    fn a_bad_last_line_with_newline_or_trailing_blanks_is_left_out() {
        for tail in ["garbage\n", "{\"index\":2}\n\n  \n", "\u{0}\u{0}\u{0}"] {
            let f = file(format!("{GOOD}{tail}").as_bytes());
            let h = read_history(f.path()).unwrap();
            assert_eq!(h.events.len(), 2, "{tail:?}");
            assert_eq!(h.torn.map(|t| t.line), Some(3), "{tail:?}");
        }
    }

    #[test]
    fn a_last_line_cut_inside_a_multibyte_character_is_left_out() {
        let mut bytes = GOOD.as_bytes().to_vec();
        bytes.extend_from_slice(b"{\"index\":2,\"key\":\"\xE2\x82");
        let f = file(&bytes);
        let h = read_history(f.path()).unwrap();
        assert_eq!(h.events.len(), 2);
        assert_eq!(h.torn.map(|t| t.line), Some(3));
    }

    #[test]
    fn a_bad_line_before_the_end_is_an_error_naming_it() {
        let lines: Vec<&str> = GOOD.lines().collect();
        let text = format!("{}\n{{\"index\":1,\"ti\n{}\n", lines[0], lines[1]);
        let f = file(text.as_bytes());
        let e = read_history(f.path()).unwrap_err();
        assert!(
            matches!(e, HistoryError::Malformed { line: 2, .. }),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("{}: line 2: EOF", f.path().display())),
            "{msg}"
        );
        assert_eq!(
            msg.matches(&f.path().display().to_string()).count(),
            1,
            "{msg}"
        );
    }

    #[test]
    fn empty_and_nemesis_only_histories_have_no_operations() {
        let f = file(b"");
        let h = read_history(f.path()).unwrap();
        assert!(h.events.is_empty() && h.torn.is_none() && !h.has_operations());
        let f = file(
            br#"{"index":0,"time":1,"process":"nemesis","type":"info","f":"start","value":{"fault":"kill"}}"#,
        );
        let h = read_history(f.path()).unwrap();
        assert_eq!(h.events.len(), 1);
        assert!(!h.has_operations());
    }
}

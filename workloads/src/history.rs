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

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A line is not a well-formed event (bad JSON, missing or mistyped field).
    #[error("{path}:{line}: {reason}")]
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
pub fn read_events(path: &Path) -> Result<Vec<Event>, HistoryError> {
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| HistoryError::Io {
        path: p.clone(),
        source,
    })?;
    let mut events = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| HistoryError::Io {
            path: p.clone(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let ev: Event = serde_json::from_str(&line).map_err(|e| HistoryError::Malformed {
            path: p.clone(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        events.push(ev);
    }
    Ok(events)
}

/// Writes events as JSON lines.
pub fn write_events<W: Write>(mut w: W, events: &[Event]) -> std::io::Result<()> {
    for e in events {
        serde_json::to_writer(&mut w, e)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

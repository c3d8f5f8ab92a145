//! Structural validation of a history, and the pairing of invocations with completions that
//! every checker builds on.

use super::fasthash::FastMap;
use crate::history::{Event, EventType, HistoryError, Process};

/// One client operation: the positions (in the event slice) of its invocation and of its
/// completion, if it completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Paired {
    /// Position of the `invoke` event.
    pub invoke: usize,
    /// Position of the `ok`/`fail`/`info` event; `None` if the history ended first.
    pub complete: Option<usize>,
}

/// Checks that `events` form a well-formed history (`docs/spec/history.md`):
/// - `index` is 0, 1, 2, … (the event's position);
/// - `time` never decreases;
/// - every completion (`ok`, `fail`, `info`) of a client process matches that process's open
///   invocation, with the same `f` and `key`;
/// - a process invokes at most one operation at a time, and never again after an `info`.
///
/// Nemesis events are not paired. The error names the 1-based line (position + 1) and the
/// reason.
pub fn validate(events: &[Event]) -> Result<(), HistoryError> {
    pair(events).map(|_| ())
}

/// Validates (as [`validate`]) and pairs every client invocation with its completion; the
/// result is in invocation order.
pub(crate) fn pair(events: &[Event]) -> Result<Vec<Paired>, HistoryError> {
    let mut ops: Vec<Paired> = Vec::with_capacity(events.len() / 2 + 1);
    // process -> index into `ops` of its open operation
    let mut open: FastMap<u64, usize> = FastMap::default();
    // process -> position of the `info` that retired it
    let mut retired: FastMap<u64, usize> = FastMap::default();
    let mut last_time = 0u64;
    for (pos, e) in events.iter().enumerate() {
        if e.index != pos as u64 {
            return Err(HistoryError::at(
                pos,
                format!("index is {} but the event is number {pos} (indexes must be 0, 1, 2, ... without gaps)", e.index),
            ));
        }
        if e.time < last_time {
            return Err(HistoryError::at(
                pos,
                format!(
                    "time {} is before the previous event's time {last_time}",
                    e.time
                ),
            ));
        }
        last_time = e.time;
        let p = match e.process {
            Process::Nemesis => continue,
            Process::Client(p) => p,
        };
        match e.kind {
            EventType::Invoke => {
                if let Some(&at) = retired.get(&p) {
                    return Err(HistoryError::at(
                        pos,
                        format!(
                            "process {p} is used again after its operation ended `info` on line {} (a fresh process id must be used)",
                            at + 1
                        ),
                    ));
                }
                if let Some(&i) = open.get(&p) {
                    return Err(HistoryError::at(
                        pos,
                        format!(
                            "process {p} invokes a new operation while its operation from line {} is still open",
                            ops[i].invoke + 1
                        ),
                    ));
                }
                open.insert(p, ops.len());
                ops.push(Paired {
                    invoke: pos,
                    complete: None,
                });
            }
            EventType::Ok | EventType::Fail | EventType::Info => {
                let Some(i) = open.remove(&p) else {
                    return Err(HistoryError::at(
                        pos,
                        format!(
                            "`{}` of process {p} without an open invocation of that process",
                            e.kind.as_str()
                        ),
                    ));
                };
                let inv = &events[ops[i].invoke];
                if inv.f != e.f {
                    return Err(HistoryError::at(
                        pos,
                        format!(
                            "completion `{}` does not match the invocation `{}` of process {p} on line {}",
                            e.f,
                            inv.f,
                            ops[i].invoke + 1
                        ),
                    ));
                }
                if inv.key != e.key {
                    return Err(HistoryError::at(
                        pos,
                        format!(
                            "completion key {:?} does not match the invocation key {:?} of process {p} on line {}",
                            e.key,
                            inv.key,
                            ops[i].invoke + 1
                        ),
                    ));
                }
                ops[i].complete = Some(pos);
                if e.kind == EventType::Info {
                    retired.insert(p, pos);
                }
            }
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(index: u64, process: u64, kind: EventType, f: &str) -> Event {
        Event {
            index,
            time: index,
            process: Process::Client(process),
            kind,
            f: f.into(),
            key: Some("k".into()),
            value: json!(null),
            node: None,
            read_mode: None,
            error: None,
        }
    }

    fn line_of(r: Result<(), HistoryError>) -> usize {
        match r {
            Err(HistoryError::Structure { line, .. }) => line,
            other => panic!("expected a structure error, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_simple_history_and_pairs_it() {
        let h = vec![
            ev(0, 0, EventType::Invoke, "read"),
            ev(1, 1, EventType::Invoke, "write"),
            ev(2, 0, EventType::Ok, "read"),
        ];
        let p = pair(&h).unwrap();
        assert_eq!(
            p,
            vec![
                Paired {
                    invoke: 0,
                    complete: Some(2)
                },
                Paired {
                    invoke: 1,
                    complete: None
                }
            ]
        );
    }

    #[test]
    fn rejects_gaps_in_index() {
        let h = vec![
            ev(0, 0, EventType::Invoke, "read"),
            ev(2, 0, EventType::Ok, "read"),
        ];
        assert_eq!(line_of(validate(&h)), 2);
    }

    #[test]
    fn rejects_completion_without_invoke() {
        let h = vec![ev(0, 3, EventType::Ok, "read")];
        assert_eq!(line_of(validate(&h)), 1);
    }

    #[test]
    fn rejects_mismatched_completion() {
        let h = vec![
            ev(0, 0, EventType::Invoke, "read"),
            ev(1, 0, EventType::Ok, "write"),
        ];
        assert_eq!(line_of(validate(&h)), 2);
    }

    #[test]
    fn rejects_double_invoke_and_reuse_after_info() {
        let h = vec![
            ev(0, 0, EventType::Invoke, "read"),
            ev(1, 0, EventType::Invoke, "read"),
        ];
        assert_eq!(line_of(validate(&h)), 2);
        let h = vec![
            ev(0, 0, EventType::Invoke, "write"),
            ev(1, 0, EventType::Info, "write"),
            ev(2, 0, EventType::Invoke, "read"),
        ];
        let err = validate(&h).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("info"), "{err}");
    }

    #[test]
    fn rejects_time_going_backwards() {
        let mut h = vec![
            ev(0, 0, EventType::Invoke, "read"),
            ev(1, 0, EventType::Ok, "read"),
        ];
        h[0].time = 10;
        assert_eq!(line_of(validate(&h)), 2);
    }
}

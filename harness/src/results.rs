//! `results.json`, the verdicts of one run (`docs/spec/cli.md`): one type, [`Results`],
//! written by `harness test` (`test::check`) and read back by the report, soak, self-test and
//! the results index.
//!
//! Reading is tolerant on purpose: a report must still be drawn for a half-written run, a run
//! of an older harness or a file someone edited by hand. A field of an unexpected shape reads
//! as absent (a verdict as `unknown`, never `valid`); only a file that is not a JSON object at
//! all fails to load. The checkers' own reports (`checkers.<name>`) and the operation
//! statistics (`stats`) are kept as the JSON their owners wrote: the checkers define them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use workloads::checker::Verdict;

use crate::coverage::Coverage;

/// The file's name in a run directory.
pub const FILE_NAME: &str = "results.json";

/// Everything `results.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Overall: the worst of every checker and read mode.
    #[serde(default = "unknown")]
    pub valid: Verdict,
    /// One entry per read mode used in the run.
    #[serde(default, deserialize_with = "lenient")]
    pub read_modes: BTreeMap<String, ModeResult>,
    /// Each checker's full report (`linearizable` or `set`, `availability`, `convergence`),
    /// as the checker serialized it; each has a `valid` field.
    #[serde(default, deserialize_with = "lenient")]
    pub checkers: BTreeMap<String, Value>,
    /// Every anomaly of the run, each with its context where one could be found.
    #[serde(default, deserialize_with = "anomaly_list")]
    pub anomalies: Vec<Anomaly>,
    /// Operation counts and latency quantiles (`report::stats`).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub stats: Value,
    /// The run's seed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub seed: Option<u64>,
    /// The test's name (`<workload>-<nemeses>-<read modes>`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub test: Option<String>,
    /// The system under test (`raft-kv`, `etcd`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub system: Option<String>,
    /// Its version as its binary reports it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub system_version: Option<String>,
    /// The command that reproduces the run.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub command_line: Option<String>,
    /// Set when a signal stopped the run before its end.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "interrupted"
    )]
    pub interrupted: Option<Interrupted>,
    /// What the faults did.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub coverage: Option<Coverage>,
}

/// The verdict of one read mode: the writes plus the reads of that mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModeResult {
    #[serde(default = "unknown")]
    pub valid: Verdict,
    /// How many reads of this mode were checked, if the checker said.
    #[serde(default, deserialize_with = "lenient")]
    pub reads: Option<u64>,
    /// The anomalies found on this mode's reads.
    #[serde(default, deserialize_with = "anomaly_list")]
    pub anomalies: Vec<Anomaly>,
}

/// One anomaly a checker reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The checker, for anomalies of the whole run (`availability`, `convergence`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub checker: Option<String>,
    /// The key (`set` for the set workload; the checker's name for whole-run anomalies).
    #[serde(default, deserialize_with = "text")]
    pub key: Option<String>,
    /// The read mode (`-` for whole-run anomalies).
    #[serde(default, deserialize_with = "text")]
    pub read_mode: Option<String>,
    /// What went wrong, in words (possibly several lines).
    pub explanation: String,
    /// History line indexes (`index`) of the operations involved.
    #[serde(default, deserialize_with = "lenient")]
    pub ops: Vec<u64>,
    /// The span it happened in, [from, to] ns on the history's clock, when the checker knows
    /// one better than its operations' (a lost write: from its acknowledgement to the first
    /// read that missed it).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub span_ns: Option<[u64; 2]>,
    /// What was going on then: faults, the leader, the answering node's view.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub context: Option<AnomalyContext>,
    /// The checker's own fields (a register anomaly's `op`, `concurrent`, `prefix_tail`,
    /// `possible_values`, ...), kept as written.
    #[serde(flatten)]
    pub detail: serde_json::Map<String, Value>,
}

impl Anomaly {
    /// An anomaly of the whole run found by `checker` (availability, convergence).
    pub fn of_run(checker: &str, key: Option<&str>, explanation: &str) -> Anomaly {
        Anomaly {
            checker: Some(checker.to_string()),
            key: Some(key.unwrap_or(checker).to_string()),
            read_mode: Some("-".into()),
            explanation: explanation.to_string(),
            ops: Vec::new(),
            span_ns: None,
            context: None,
            detail: serde_json::Map::new(),
        }
    }

    /// An anomaly with only an explanation (what a bare string in the list reads as).
    pub fn explained(explanation: impl Into<String>) -> Anomaly {
        Anomaly {
            checker: None,
            key: None,
            read_mode: None,
            explanation: explanation.into(),
            ops: Vec::new(),
            span_ns: None,
            context: None,
            detail: serde_json::Map::new(),
        }
    }

    /// The history index of the operation that cannot be placed (`op.invoke_index`), for
    /// anomalies that name one.
    pub fn focus(&self) -> Option<u64> {
        self.detail.get("op")?.get("invoke_index")?.as_u64()
    }

    /// The operation the anomaly is about (`op`): invocation and completion indexes and the
    /// node that answered, when the checker named one.
    pub fn op_lines(&self) -> Option<(u64, Option<u64>, Option<String>)> {
        let op = self.detail.get("op")?;
        Some((
            op.get("invoke_index")?.as_u64()?,
            op.get("complete_index").and_then(Value::as_u64),
            op.get("node").and_then(Value::as_str).map(String::from),
        ))
    }

    /// The first line of the explanation.
    pub fn headline(&self) -> &str {
        self.explanation.lines().next().unwrap_or("")
    }

    /// Reads one element of an anomaly list leniently: an object of the expected shape as
    /// is; a bare string as the explanation; anything else with its `explanation` (or
    /// `type`, or the whole value) as the explanation and its other fields kept.
    pub fn from_value(v: Value) -> Anomaly {
        let Value::Object(mut m) = v else {
            return Anomaly::explained(match v {
                Value::String(s) => s,
                other => other.to_string(),
            });
        };
        // Every other field reads leniently, so with a string explanation the object parses.
        let explanation = ["explanation", "type"]
            .iter()
            .find_map(|k| m.get(*k).filter(|x| !x.is_null()).map(text_of))
            .unwrap_or_else(|| Value::Object(m.clone()).to_string());
        m.insert("explanation".into(), Value::String(explanation.clone()));
        serde_json::from_value(Value::Object(m)).unwrap_or_else(|_| Anomaly::explained(explanation))
    }
}

/// A run stopped by a signal before its end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interrupted {
    /// Seconds since the test started (tenths), if recorded.
    #[serde(default, deserialize_with = "lenient")]
    pub at_s: Option<f64>,
    /// The signal's name (`SIGINT`, `SIGTERM`), if recorded.
    #[serde(default, deserialize_with = "lenient")]
    pub signal: Option<String>,
}

impl Default for Results {
    /// Nothing known: `unknown`, no modes, no checkers, no anomalies.
    fn default() -> Results {
        Results {
            valid: Verdict::Unknown,
            read_modes: BTreeMap::new(),
            checkers: BTreeMap::new(),
            anomalies: Vec::new(),
            stats: Value::Null,
            seed: None,
            test: None,
            system: None,
            system_version: None,
            command_line: None,
            interrupted: None,
            coverage: None,
        }
    }
}

/// One fault active during the anomaly's operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// The fault's kind (`partition`, `kill`, ...).
    pub fault: String,
    /// The partition's shape, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
    /// Its window, seconds from the start of the test (`end_s` absent if never healed).
    pub start_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_s: Option<f64>,
    /// The fault in words, relative to the answering node where that helps ("n2 on the
    /// minority side {n2}, cut off from n1, n3").
    pub summary: String,
}

/// The context of one anomaly, as results.json's `anomalies[i].context`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyContext {
    /// The span looked at: the anomalous operation's invocation to completion (seconds).
    pub from_s: f64,
    pub to_s: f64,
    /// The node that answered the operation, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Faults whose windows overlap the span.
    pub faults: Vec<ActiveFault>,
    /// The cluster's leader at the end of the span (highest term claimed), when observed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    /// How the answering node saw itself then ("leader of term 2", "follower of n1, term 3").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_view: Option<String>,
    /// All of the above in one sentence.
    pub text: String,
}

/// Why `results.json` could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a results object: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing {path}: {message}")]
    Write { path: String, message: String },
}

impl Results {
    /// Parses the text of a results file (tolerantly, see the module doc); fails only when it
    /// is not a JSON object.
    pub fn from_slice(bytes: &[u8]) -> Result<Results, serde_json::Error> {
        Results::from_value(serde_json::from_slice(bytes)?)
    }

    /// Reads a parsed results file (tolerantly); fails only when it is not a JSON object.
    pub fn from_value(v: Value) -> Result<Results, serde_json::Error> {
        if !v.is_object() {
            return Err(serde::de::Error::custom(
                "results.json must be a JSON object",
            ));
        }
        serde_json::from_value(v)
    }

    /// Reads `dir/results.json`.
    pub fn read(dir: &Path) -> Result<Results, ResultsError> {
        let path = dir.join(FILE_NAME);
        let bytes = std::fs::read(&path).map_err(|source| ResultsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Results::from_slice(&bytes).map_err(|source| ResultsError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Writes `dir/results.json` (pretty, atomically: a reader sees the old file or the new
    /// one, never half of one).
    pub fn write(&self, dir: &Path) -> Result<(), ResultsError> {
        let path = dir.join(FILE_NAME);
        let err = |message: String| ResultsError::Write {
            path: path.display().to_string(),
            message,
        };
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| err(e.to_string()))?;
        bytes.push(b'\n');
        crate::run_dir::write_atomic(&path, &bytes).map_err(|e| err(format!("{e:#}")))
    }

    /// The verdict a checker reported (`unknown` for a checker not run).
    pub fn checker_verdict(&self, checker: &str) -> Verdict {
        Verdict::from_json(self.checkers.get(checker).and_then(|c| c.get("valid")))
    }

    /// The anomalies a checker's report lists under `anomalies` (none if it lists none).
    pub fn checker_anomalies(&self, checker: &str) -> Vec<Anomaly> {
        match self.checkers.get(checker).and_then(|c| c.get("anomalies")) {
            Some(Value::Array(list)) => list.iter().cloned().map(Anomaly::from_value).collect(),
            _ => Vec::new(),
        }
    }

    /// Every anomaly: the run's list, then each mode's, without repeats.
    pub fn all_anomalies(&self) -> Vec<Anomaly> {
        let mut out: Vec<Anomaly> = Vec::new();
        let modes = self.read_modes.iter().flat_map(|(mode, m)| {
            m.anomalies.iter().map(move |a| {
                let mut a = a.clone();
                a.read_mode.get_or_insert_with(|| mode.clone());
                a
            })
        });
        for a in self.anomalies.iter().cloned().chain(modes) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// The verdict of each read mode in words: `read-index: valid, lease: INVALID`.
    pub fn modes_line(&self) -> Vec<String> {
        self.read_modes
            .iter()
            .map(|(m, r)| format!("{m}: {}", r.valid.label()))
            .collect()
    }
}

fn unknown() -> Verdict {
    Verdict::Unknown
}

/// A field of another shape than `T` reads as `T::default()` (absent, empty).
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// A string as is; another value (a number, an object) as its JSON; null as absent.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        v => Some(text_of(&v)),
    })
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A list of anomalies, each read by [`Anomaly::from_value`]; not a list: empty.
fn anomaly_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Anomaly>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(xs) => xs.into_iter().map(Anomaly::from_value).collect(),
        _ => Vec::new(),
    })
}

/// `{"at_s": .., "signal": ..}`, or `true` (interrupted, when and how not recorded).
fn interrupted<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Interrupted>, D::Error> {
    Ok(match Value::deserialize(d)? {
        v @ Value::Object(_) => serde_json::from_value(v).ok(),
        Value::Bool(true) => Some(Interrupted {
            at_s: None,
            signal: None,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn register_anomaly() -> Value {
        json!({"key": "k1", "read_mode": "lease", "explanation": "read 3 could only hold {4}\nmore",
               "ops": [4, 9], "op": {"invoke_index": 4, "complete_index": 9, "node": "n2"},
               "concurrent": [], "prefix_length": 2})
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let r = Results {
            valid: Verdict::Invalid,
            read_modes: [(
                "lease".to_string(),
                ModeResult {
                    valid: Verdict::Invalid,
                    reads: Some(12),
                    anomalies: vec![Anomaly::from_value(register_anomaly())],
                },
            )]
            .into(),
            checkers: [("linearizable".to_string(), json!({"valid": false}))].into(),
            anomalies: vec![
                Anomaly::from_value(register_anomaly()),
                Anomaly::of_run("availability", None, "no write succeeded after the heal"),
            ],
            stats: json!({"ops": 10}),
            seed: Some(7),
            test: Some("register-partition-lease".into()),
            system: Some("raft-kv".into()),
            system_version: Some("0.1.0".into()),
            command_line: Some("harness test --seed 7".into()),
            interrupted: Some(Interrupted {
                at_s: Some(3.5),
                signal: Some("SIGINT".into()),
            }),
            coverage: None,
        };
        let dir = tempfile::tempdir().unwrap();
        r.write(dir.path()).unwrap();
        let back = Results::read(dir.path()).unwrap();
        assert_eq!(back, r);
        // The checker's own fields survive the round trip.
        assert_eq!(back.anomalies[0].focus(), Some(4));
        assert_eq!(
            back.anomalies[0].op_lines(),
            Some((4, Some(9), Some("n2".into())))
        );
        assert_eq!(back.anomalies[0].detail["prefix_length"], json!(2));
        assert_eq!(back.anomalies[0].headline(), "read 3 could only hold {4}");
    }

    #[test]
    fn the_fields_the_spec_names_are_written_under_their_names() {
        let mut r = Results {
            valid: Verdict::Unknown,
            seed: Some(42),
            test: Some("t".into()),
            ..Results::default()
        };
        r.read_modes.insert(
            "stale".into(),
            ModeResult {
                valid: Verdict::Invalid,
                reads: Some(5),
                anomalies: vec![],
            },
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["valid"], json!("unknown"));
        assert_eq!(v["read_modes"]["stale"]["valid"], json!(false));
        assert_eq!(v["read_modes"]["stale"]["reads"], json!(5));
        assert_eq!(v["read_modes"]["stale"]["anomalies"], json!([]));
        assert_eq!(v["seed"], json!(42));
        assert_eq!(v["test"], json!("t"));
        assert!(v.get("interrupted").is_none(), "only when interrupted: {v}");
    }

    #[test]
    fn odd_shapes_degrade_to_unknown_or_absent_never_valid() {
        let r: Results = serde_json::from_value(json!({
            "valid": "maybe",
            "read_modes": {"lease": {"valid": 1, "reads": "many", "anomalies": ["stale read"]}},
            "checkers": [1, 2],
            "anomalies": [{"type": "lost write", "ops": [3]}, 17, {"explanation": "x", "ops": "y"}],
            "seed": "seven",
            "interrupted": true,
            "coverage": {"leader_changes": "many"}
        }))
        .unwrap();
        assert_eq!(r.valid, Verdict::Unknown);
        let lease = &r.read_modes["lease"];
        assert_eq!(lease.valid, Verdict::Unknown);
        assert_eq!(lease.reads, None);
        assert_eq!(lease.anomalies[0].explanation, "stale read");
        assert!(r.checkers.is_empty());
        assert_eq!(r.anomalies[0].explanation, "lost write");
        assert_eq!(r.anomalies[0].ops, vec![3]);
        assert_eq!(r.anomalies[1].explanation, "17");
        assert_eq!(r.anomalies[2].explanation, "x");
        assert_eq!(r.seed, None);
        assert_eq!(
            r.interrupted,
            Some(Interrupted {
                at_s: None,
                signal: None
            })
        );
        assert_eq!(r.coverage, None);
        assert!(Results::from_slice(b"[1]").is_err());
        assert!(Results::from_slice(b"{}").is_ok());
    }

    #[test]
    fn all_anomalies_lists_each_once_with_its_mode() {
        let mut r = Results::default();
        let a = Anomaly::from_value(register_anomaly());
        r.anomalies.push(a.clone());
        let mut b = Anomaly::explained("only in the mode");
        b.key = Some("k2".into());
        r.read_modes.insert(
            "lease".into(),
            ModeResult {
                valid: Verdict::Invalid,
                reads: None,
                anomalies: vec![a, b],
            },
        );
        let all = r.all_anomalies();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].read_mode.as_deref(), Some("lease"));
    }
}

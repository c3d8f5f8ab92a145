//! Reading a run directory: `test.json` (options), `results.json` (verdicts, anomalies) and
//! `history.jsonl`. Every file is optional except the history, and every field is tolerated
//! missing or of an unexpected shape: a report of a half-written run is still a report.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use workloads::checker::Verdict;

/// The verdict of one read mode.
#[derive(Clone, Debug, PartialEq)]
pub struct ModeResult {
    /// The verdict for writes plus the reads of this mode.
    pub verdict: Verdict,
    /// How many reads of this mode were checked, if the checker said.
    pub reads: Option<u64>,
    /// How many anomalies the checker reported for this mode.
    pub anomalies: usize,
}

/// One anomaly reported by a checker.
#[derive(Clone, Debug, PartialEq)]
pub struct Anomaly {
    /// The key, if any.
    pub key: Option<String>,
    /// The read mode, if any.
    pub read_mode: Option<String>,
    /// The checker's explanation.
    pub explanation: String,
    /// History line indexes of the operations involved.
    pub ops: Vec<u64>,
    /// What was going on then (faults, the answering node's side, the leader): the
    /// `context.text` the harness wrote, if any.
    pub context: Option<String>,
    /// The invocation line of the operation that cannot be placed (`op.invoke_index`).
    pub focus: Option<u64>,
}

/// A run stopped by a signal before its end (`results.json`'s `"interrupted"`).
#[derive(Clone, Debug, PartialEq)]
pub struct Interrupted {
    /// Seconds since the test started, if recorded.
    pub at_s: Option<f64>,
    /// The signal's name (`SIGINT`, ...), if recorded.
    pub signal: Option<String>,
}

/// What `results.json` says, tolerantly parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResults {
    /// Whether `results.json` existed and parsed.
    pub present: bool,
    /// The overall verdict.
    pub overall: Verdict,
    /// Per read mode.
    pub read_modes: BTreeMap<String, ModeResult>,
    /// Per checker: its verdict and its full JSON.
    pub checkers: BTreeMap<String, (Verdict, Value)>,
    /// All anomalies, from the top-level list and the per-mode lists, deduplicated.
    pub anomalies: Vec<Anomaly>,
    /// What the faults did, if recorded and of the expected shape.
    pub coverage: Option<crate::coverage::Coverage>,
    /// Set when the run was interrupted.
    pub interrupted: Option<Interrupted>,
    /// Why the report shows a verdict other than `results.json`'s, if it does (e.g. "no
    /// operations": the history holds no client operation, so nothing was shown correct).
    pub override_reason: Option<String>,
}

impl RunResults {
    /// No `results.json`: everything unknown.
    pub fn missing() -> RunResults {
        RunResults {
            present: false,
            overall: Verdict::Unknown,
            read_modes: BTreeMap::new(),
            checkers: BTreeMap::new(),
            anomalies: Vec::new(),
            coverage: None,
            interrupted: None,
            override_reason: None,
        }
    }

    /// Marks the run `unknown` whatever `results.json` says: a history without any client
    /// operation shows nothing, so no checker's `valid` can stand on it.
    pub fn no_operations(&mut self) {
        self.overall = Verdict::Unknown;
        for m in self.read_modes.values_mut() {
            m.verdict = Verdict::Unknown;
        }
        self.override_reason = Some("no operations".into());
    }

    /// Parses the JSON of `results.json`; unknown shapes degrade to `unknown`.
    pub fn from_json(v: &Value) -> RunResults {
        let mut r = RunResults::missing();
        r.present = true;
        r.overall = Verdict::from_json(v.get("valid"));
        let mut anomalies: Vec<Anomaly> = Vec::new();
        let mut push = |a: Anomaly| {
            if !anomalies.contains(&a) {
                anomalies.push(a);
            }
        };
        if let Some(Value::Array(list)) = v.get("anomalies") {
            for a in list {
                push(anomaly(a, None));
            }
        }
        if let Some(Value::Object(modes)) = v.get("read_modes") {
            for (mode, m) in modes {
                let list = match m.get("anomalies") {
                    Some(Value::Array(l)) => l.as_slice(),
                    _ => &[],
                };
                for a in list {
                    push(anomaly(a, Some(mode)));
                }
                r.read_modes.insert(
                    mode.clone(),
                    ModeResult {
                        verdict: Verdict::from_json(m.get("valid")),
                        reads: m.get("reads").and_then(Value::as_u64),
                        anomalies: list.len(),
                    },
                );
            }
        }
        if let Some(Value::Object(cs)) = v.get("checkers") {
            for (name, c) in cs {
                r.checkers.insert(
                    name.clone(),
                    (Verdict::from_json(c.get("valid")), c.clone()),
                );
            }
        }
        r.anomalies = anomalies;
        // A coverage of another shape is left out (the report recomputes it from the files).
        r.coverage = v
            .get("coverage")
            .and_then(|c| serde_json::from_value(c.clone()).ok());
        r.interrupted = match v.get("interrupted") {
            Some(i @ Value::Object(_)) => Some(Interrupted {
                at_s: i.get("at_s").and_then(Value::as_f64),
                signal: i.get("signal").and_then(Value::as_str).map(str::to_string),
            }),
            Some(Value::Bool(true)) => Some(Interrupted {
                at_s: None,
                signal: None,
            }),
            _ => None,
        };
        r
    }

    /// The anomalies a checker's JSON lists under `"anomalies"` (none if it lists none).
    pub fn checker_anomalies(&self, checker: &str) -> Vec<Anomaly> {
        match self
            .checkers
            .get(checker)
            .and_then(|(_, c)| c.get("anomalies"))
        {
            Some(Value::Array(list)) => list.iter().map(|a| anomaly(a, None)).collect(),
            _ => Vec::new(),
        }
    }
}

/// Parses one anomaly object; a bare string becomes the explanation.
fn anomaly(v: &Value, mode: Option<&String>) -> Anomaly {
    let s = |k: &str| match v.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let ops = match v.get("ops") {
        Some(Value::Array(xs)) => xs.iter().filter_map(Value::as_u64).collect(),
        _ => Vec::new(),
    };
    let explanation = match v {
        Value::String(t) => t.clone(),
        _ => s("explanation")
            .or_else(|| s("type"))
            .unwrap_or_else(|| v.to_string()),
    };
    Anomaly {
        key: s("key"),
        read_mode: s("read_mode").or_else(|| mode.cloned()),
        explanation,
        ops,
        focus: v
            .get("op")
            .and_then(|o| o.get("invoke_index"))
            .and_then(Value::as_u64),
        context: v
            .get("context")
            .and_then(|c| c.get("text"))
            .and_then(Value::as_str)
            .map(String::from),
    }
}

/// `test.json`, kept as raw JSON with typed accessors for the fields reports use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TestInfo {
    /// The whole object (empty if the file is missing or not an object).
    pub raw: serde_json::Map<String, Value>,
}

impl TestInfo {
    /// A field rendered as text: strings as-is, other values as compact JSON.
    pub fn text(&self, field: &str) -> Option<String> {
        match self.raw.get(field)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Array(xs) if xs.iter().all(Value::is_string) => Some(
                xs.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            other => Some(other.to_string()),
        }
    }

    /// The command line that reproduces the run, if recorded (a string, or an array of
    /// arguments joined by spaces).
    pub fn command_line(&self) -> Option<String> {
        match self.raw.get("command_line")? {
            Value::Array(xs) => Some(
                xs.iter()
                    .map(|x| x.as_str().map(str::to_string).unwrap_or(x.to_string()))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => self.text("command_line"),
        }
    }
}

/// Everything read from a run directory.
#[derive(Clone, Debug)]
pub struct Run {
    /// The directory.
    pub dir: PathBuf,
    /// `test.json`.
    pub test: TestInfo,
    /// `results.json`.
    pub results: RunResults,
}

impl Run {
    /// Reads `test.json` and `results.json` (each optional; an unreadable or malformed file
    /// is treated as missing, since the report must still be drawn).
    pub fn load_meta(dir: &Path) -> Run {
        let read = |name: &str| -> Option<Value> {
            let bytes = std::fs::read(dir.join(name)).ok()?;
            serde_json::from_slice(&bytes).ok()
        };
        let test = match read("test.json") {
            Some(Value::Object(m)) => TestInfo { raw: m },
            _ => TestInfo::default(),
        };
        let results = match read("results.json") {
            Some(v @ Value::Object(_)) => RunResults::from_json(&v),
            _ => RunResults::missing(),
        };
        Run {
            dir: dir.to_path_buf(),
            test,
            results,
        }
    }

    /// The test's name: `test.json`'s `"test"`, else the parent directory's name (the results
    /// layout is `<test>/<timestamp>`), else `run`.
    pub fn name(&self) -> String {
        self.test.text("test").unwrap_or_else(|| {
            self.dir
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".to_string())
        })
    }

    /// The run's timestamp: the directory's own name.
    pub fn timestamp(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_results_tolerantly() {
        let v = json!({
            "valid": false,
            "read_modes": {
                "lease": {"valid": false, "reads": 10, "anomalies": [
                    {"key": "k1", "explanation": "stale read", "ops": [3, 7]}]},
                "log": {"valid": "unknown"},
                "stale": {"valid": 17}
            },
            "anomalies": [{"key": "k1", "read_mode": "lease", "explanation": "stale read",
                           "ops": [3, 7]}, "free text"],
            "checkers": {"linearizable": {"valid": true}, "set": 5}
        });
        let r = RunResults::from_json(&v);
        assert_eq!(r.overall, Verdict::Invalid);
        assert_eq!(r.read_modes["lease"].verdict, Verdict::Invalid);
        assert_eq!(r.read_modes["lease"].reads, Some(10));
        assert_eq!(r.read_modes["log"].verdict, Verdict::Unknown);
        assert_eq!(r.read_modes["stale"].verdict, Verdict::Unknown);
        assert_eq!(r.anomalies.len(), 2, "{:?}", r.anomalies);
        assert_eq!(r.anomalies[0].ops, vec![3, 7]);
        assert_eq!(r.anomalies[1].explanation, "free text");
        assert_eq!(r.checkers["linearizable"].0, Verdict::Valid);
        assert_eq!(r.checkers["set"].0, Verdict::Unknown);
        assert_eq!(r.coverage, None);
        assert_eq!(r.interrupted, None);
    }

    #[test]
    fn parses_interruption_checker_anomalies_and_coverage() {
        let cov = crate::coverage::compute(&[], &[], &Default::default());
        let v = json!({
            "valid": "unknown",
            "interrupted": {"at_s": 7.0, "signal": "SIGINT"},
            "checkers": {"availability": {"valid": false, "anomalies": [
                {"explanation": "no ok write after the heal"}]}},
            "coverage": cov,
        });
        let r = RunResults::from_json(&v);
        assert_eq!(
            r.interrupted,
            Some(Interrupted {
                at_s: Some(7.0),
                signal: Some("SIGINT".into())
            })
        );
        let a = r.checker_anomalies("availability");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].explanation, "no ok write after the heal");
        assert!(r.checker_anomalies("convergence").is_empty());
        assert_eq!(r.coverage, Some(cov));
        let odd = RunResults::from_json(&json!({"coverage": {"leader_changes": "many"}}));
        assert_eq!(
            odd.coverage, None,
            "a coverage of another shape is left out"
        );
    }

    #[test]
    fn missing_files_mean_unknown() {
        let d = tempfile::tempdir().unwrap();
        let run = Run::load_meta(d.path());
        assert!(!run.results.present);
        assert_eq!(run.results.overall, Verdict::Unknown);
        std::fs::write(d.path().join("results.json"), b"{not json").unwrap();
        std::fs::write(
            d.path().join("test.json"),
            br#"{"test":"t","command_line":["a","b"]}"#,
        )
        .unwrap();
        let run = Run::load_meta(d.path());
        assert!(!run.results.present);
        assert_eq!(run.name(), "t");
        assert_eq!(run.test.command_line().as_deref(), Some("a b"));
    }
}

//! Reading a run directory: `test.json` (options), `results.json` (verdicts, anomalies) and
//! `history.jsonl`. Every file is optional except the history, and every field is tolerated
//! missing or of an unexpected shape: a report of a half-written run is still a report.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use workloads::checker::Verdict;

use crate::results::Results;
pub use crate::results::{Anomaly, Interrupted, ModeResult};

/// What `results.json` says, tolerantly parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResults {
    /// Whether `results.json` existed and parsed.
    pub present: bool,
    /// The overall verdict.
    pub overall: Verdict,
    /// Per read mode (its verdict, reads, anomalies).
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
            m.valid = Verdict::Unknown;
        }
        self.override_reason = Some("no operations".into());
    }

    /// The report's view of a [`Results`]: every anomaly (the run's and each mode's) once,
    /// each checker with its verdict.
    pub fn from_results(r: Results) -> RunResults {
        RunResults {
            present: true,
            overall: r.valid,
            anomalies: r.all_anomalies(),
            checkers: r
                .checkers
                .iter()
                .map(|(name, c)| (name.clone(), (r.checker_verdict(name), c.clone())))
                .collect(),
            read_modes: r.read_modes,
            coverage: r.coverage,
            interrupted: r.interrupted,
            override_reason: None,
        }
    }

    /// Parses the JSON of `results.json` (see [`Results`]: unknown shapes degrade to
    /// `unknown`); a value that is not an object reads as missing.
    pub fn from_json(v: &Value) -> RunResults {
        match Results::from_value(v.clone()) {
            Ok(r) => RunResults::from_results(r),
            Err(_) => RunResults::missing(),
        }
    }

    /// The anomalies a checker's JSON lists under `"anomalies"` (none if it lists none).
    pub fn checker_anomalies(&self, checker: &str) -> Vec<Anomaly> {
        match self
            .checkers
            .get(checker)
            .and_then(|(_, c)| c.get("anomalies"))
        {
            Some(Value::Array(list)) => list.iter().cloned().map(Anomaly::from_value).collect(),
            _ => Vec::new(),
        }
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
        let results = match Results::read(dir) {
            Ok(r) => RunResults::from_results(r),
            Err(_) => RunResults::missing(),
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
        assert_eq!(r.read_modes["lease"].valid, Verdict::Invalid);
        assert_eq!(r.read_modes["lease"].reads, Some(10));
        assert_eq!(r.read_modes["log"].valid, Verdict::Unknown);
        assert_eq!(r.read_modes["stale"].valid, Verdict::Unknown);
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

//! `harness check HISTORY.jsonl... [--model register|set] [--json] [--check-timeout SECS]`:
//! checks recorded histories (`docs/spec/history.md`) and prints one verdict per file.
//!
//! Output: one line per file, `FILE: valid|INVALID|unknown (stats)`, followed for an invalid
//! or unknown file by the explanation (indented); with `--json`, one JSON object per file per
//! line with `file`, `model`, `valid` (true, false or "unknown") and the checker's report
//! (per read mode verdicts and anomalies for registers; lost/unexpected/recovered for sets).
//! A file that cannot be read or is malformed prints `FILE: error: line N: reason` (or a JSON
//! object with `error`). A torn last line (a writer killed mid-line, a full disk) is left out
//! with one warning on stderr naming the file and line. A history without any client
//! operation (empty, or nemesis events only) is `unknown (no operations)`. Exit code: the
//! worst over all files, 255 (malformed or I/O error) > 1 (invalid) > 2 (unknown) > 0 (valid).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use workloads::checker::{
    check_register, check_set, detect_model, CheckOptions, RegisterReport, SetReport, Verdict,
};
use workloads::generator::WorkloadKind;
use workloads::history::read_history;

/// Options of `harness check`.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckArgs {
    /// History files (JSON Lines, one event per line).
    #[arg(required = true, value_name = "HISTORY.jsonl")]
    pub files: Vec<PathBuf>,
    /// The model to check against; by default `set` if the history has `add` operations,
    /// else `register`.
    #[arg(long, value_enum)]
    pub model: Option<WorkloadKind>,
    /// Print one JSON object per file per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Seconds the checker may spend on each file before answering `unknown`.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub check_timeout: f64,
    /// Memory budget of the linearizability search per file, in MiB; beyond it a key is
    /// `unknown`.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub check_memory: usize,
    /// Checker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Report every anomaly: keep checking the other keys after the first invalid one
    /// (within the same budgets). By default the first invalid key decides.
    #[arg(long)]
    pub all: bool,
}

/// Exit code of a file that could not be read or is malformed.
const EXIT_ERROR: i32 = 255;

/// The worse of two exit codes: 255 > 1 > 2 > 0.
fn worst_code(a: i32, b: i32) -> i32 {
    let clamp = |c: i32| c.clamp(0, 255) as u8;
    i32::from(crate::exit::worst(clamp(a), clamp(b)))
}

/// Runs `harness check`; prints to stdout and returns the exit code.
pub fn run(args: &CheckArgs) -> i32 {
    let opts = CheckOptions {
        timeout: Duration::from_secs_f64(args.check_timeout.clamp(0.0, 1e9)),
        memory_limit: args.check_memory.saturating_mul(1 << 20),
        threads: args.threads,
        all_anomalies: args.all,
    };
    let mut code = 0;
    let mut out = std::io::stdout().lock();
    for file in &args.files {
        let (line, c) = check_file(file, args, &opts);
        code = worst_code(code, c);
        // A closed stdout (`| head`) ends the output quietly; the exit code still counts
        // what was checked.
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    code
}

enum Outcome {
    Register(RegisterReport),
    // Boxed: the set report is several times the register report's size.
    Set(Box<SetReport>),
}

/// Checks one file; returns what to print and its exit code.
fn check_file(file: &Path, args: &CheckArgs, opts: &CheckOptions) -> (String, i32) {
    let name = file.display().to_string();
    let result = read_history(file).inspect(|h| {
        if let Some(w) = h.warning(file) {
            eprintln!("warning: {w}");
        }
    });
    if let Ok(h) = &result {
        if !h.has_operations() {
            let text = if args.json {
                serde_json::json!({"file": name, "valid": "unknown", "reason": "no operations"})
                    .to_string()
            } else {
                format!("{name}: unknown (no operations)")
            };
            return (text, i32::from(Verdict::Unknown.exit_code()));
        }
    }
    let result = result.and_then(|h| {
        let events = h.events;
        match args.model.unwrap_or_else(|| detect_model(&events)) {
            WorkloadKind::Register => check_register(&events, opts).map(Outcome::Register),
            WorkloadKind::Set => check_set(&events).map(|s| Outcome::Set(Box::new(s))),
        }
    });
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            // Reader errors already carry the path (once); structure errors do not.
            let msg = e.to_string();
            let msg = msg
                .strip_prefix(&format!("{name}:"))
                .map(|s| s.trim_start().to_string())
                .unwrap_or(msg);
            let text = if args.json {
                serde_json::json!({"file": name, "valid": "unknown", "error": msg}).to_string()
            } else {
                format!("{name}: error: {msg}")
            };
            return (text, EXIT_ERROR);
        }
    };
    let verdict = match &outcome {
        Outcome::Register(r) => r.valid,
        Outcome::Set(s) => s.valid,
    };
    let text = if args.json {
        json_line(&name, &outcome)
    } else {
        match &outcome {
            Outcome::Register(r) => register_text(&name, r),
            Outcome::Set(s) => set_text(&name, s),
        }
    };
    (text, i32::from(verdict.exit_code()))
}

fn json_line(name: &str, outcome: &Outcome) -> String {
    let (model, report) = match outcome {
        Outcome::Register(r) => ("register", serde_json::to_value(r)),
        Outcome::Set(s) => ("set", serde_json::to_value(s)),
    };
    let mut obj = serde_json::Map::new();
    obj.insert("file".into(), name.into());
    obj.insert("model".into(), model.into());
    match report {
        Ok(serde_json::Value::Object(m)) => obj.extend(m),
        Ok(other) => {
            obj.insert("report".into(), other);
        }
        Err(e) => {
            obj.insert("valid".into(), "unknown".into());
            obj.insert("error".into(), e.to_string().into());
        }
    }
    serde_json::Value::Object(obj).to_string()
}

fn register_text(name: &str, r: &RegisterReport) -> String {
    let s = &r.stats;
    let modes: Vec<String> = r
        .read_modes
        .iter()
        .map(|(m, rep)| format!("{m}={}", rep.valid.label()))
        .collect();
    let mut out = format!(
        "{name}: {} (register; {} ops: {} ok, {} fail, {} info, {} pending; {} keys; read modes {}; {:.1} ms)",
        r.valid.label(),
        s.ops,
        s.ok,
        s.fail,
        s.info,
        s.pending,
        s.keys,
        modes.join(", "),
        r.elapsed_ms
    );
    for a in r.anomalies() {
        out.push('\n');
        let lines: Vec<String> = a.explanation.lines().map(|l| format!("  {l}")).collect();
        out.push_str(&lines.join("\n"));
        let idx: Vec<String> = a.ops.iter().map(|i| i.to_string()).collect();
        out.push_str(&format!("\n  history lines (index): {}", idx.join(", ")));
    }
    if r.valid != Verdict::Valid {
        for (m, rep) in &r.read_modes {
            for (k, kr) in &rep.keys {
                if let (Verdict::Unknown, Some(reason)) = (kr.valid, &kr.reason) {
                    if rep.valid == Verdict::Unknown {
                        out.push_str(&format!("\n  key {k:?}, read mode {m}: unknown: {reason}"));
                    }
                }
            }
        }
    }
    out
}

fn set_text(name: &str, s: &SetReport) -> String {
    let show = |v: &[i64]| {
        let mut parts: Vec<String> = v.iter().take(20).map(|x| x.to_string()).collect();
        if v.len() > 20 {
            parts.push(format!("... ({} more)", v.len() - 20));
        }
        parts.join(", ")
    };
    let mut out = format!(
        "{name}: {} (set; {} adds: {} ok, {} fail, {} indeterminate; {} reads; lost {}, unexpected {}, recovered {}; stable {}, stale {} ({} stale reads), never read {}; {:.1} ms)",
        s.valid.label(),
        s.attempted,
        s.acknowledged,
        s.failed,
        s.indeterminate,
        s.reads,
        s.lost.count,
        s.unexpected.count,
        s.recovered.count,
        s.stable_count,
        s.stale_count,
        s.stale_reads,
        s.never_read.count,
        s.elapsed_ms
    );
    if let Some(q) = &s.stable_latency {
        out.push_str(&format!(
            "\n  stable latency: p50 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1} ms",
            q.p50, q.p95, q.p99, q.max
        ));
    }
    if s.lost.count > 0 {
        out.push_str(&format!(
            "\n  lost (acknowledged or read, then absent from every later read): {}",
            show(&s.lost.elements)
        ));
    }
    if s.unexpected.count > 0 {
        out.push_str(&format!(
            "\n  unexpected (read, never successfully added): {}",
            show(&s.unexpected.elements)
        ));
    }
    if !s.bad_reads.is_empty() {
        out.push_str(&format!(
            "\n  reads at history lines (index): {}",
            show(&s.bad_reads.iter().map(|&i| i as i64).collect::<Vec<_>>())
        ));
    }
    if s.reads == 0 {
        out.push_str("\n  no read completed ok: nothing to check against");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_ranks_error_over_invalid_over_unknown() {
        assert_eq!(worst_code(0, 2), 2);
        assert_eq!(worst_code(2, 1), 1);
        assert_eq!(worst_code(1, 255), 255);
        assert_eq!(worst_code(0, 0), 0);
    }
}

//! Running one `harness test` from inside another command (soak, selftest): building its
//! options exactly as the command line would, and summarising what it found.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::exit;
use crate::test::TestArgs;
use crate::test::{self, Plan, RunOutcome};
use workloads::checker::Verdict;

/// `harness test` options parsed from words, so every option keeps the default the command
/// line gives it (and options added later need no change here).
#[derive(Parser, Debug)]
#[command(name = "test", no_binary_name = true)]
struct Wrapped {
    #[command(flatten)]
    args: TestArgs,
}

/// Why a run's options were refused.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The words are not valid `harness test` options.
    #[error("bad test options {words:?}: {message}")]
    Options { words: Vec<String>, message: String },
    /// `harness test`'s validation refused them (exit code and message).
    #[error("{message}")]
    Plan { code: u8, message: String },
}

/// Parses words as `harness test` options (without the `harness test` prefix).
pub fn test_args(words: &[String]) -> Result<TestArgs, RunnerError> {
    Wrapped::try_parse_from(words)
        .map(|w| w.args)
        .map_err(|e| RunnerError::Options {
            words: words.to_vec(),
            message: e.to_string().lines().next().unwrap_or("").to_string(),
        })
}

/// Validates options as `harness test` does.
pub fn plan(args: &TestArgs) -> Result<Plan, RunnerError> {
    test::plan(args).map_err(|f| RunnerError::Plan {
        code: f.code,
        message: f.message,
    })
}

/// The command that reproduces a run by itself: `harness test ...` with the seed, results in
/// the default `results/` directory, and `--node-bin` when one was given.
pub fn reproduce_command(args: &TestArgs, seed: u64) -> String {
    let mut a = args.clone();
    a.results_dir = PathBuf::from("results");
    let mut s = test::command_line(&a, seed);
    if let Some(n) = &args.node_bin {
        s.push_str(&format!(" --node-bin {}", n.display()));
    }
    s
}

/// Runs one test; a run whose cluster could not even start (exit 255 within a few seconds and
/// no results, e.g. a port taken between choosing and binding it) is retried with the same
/// seed, at most twice, so a transient start failure is not mistaken for a verdict.
pub async fn run_test_retrying(plan: &Plan, seed: u64) -> anyhow::Result<RunOutcome> {
    let mut attempt = 0;
    loop {
        let o = test::run_test(plan, seed).await?;
        let start_failure = o.code == exit::HARNESS_FAILED
            && o.results.is_null()
            && o.elapsed < std::time::Duration::from_secs(10);
        if !start_failure || attempt >= 2 {
            return Ok(o);
        }
        attempt += 1;
        eprintln!(
            "harness: the cluster did not start (seed {seed}); retrying ({attempt} of 2); {}",
            o.run_dir.display()
        );
        // The failed attempt's directory holds only node logs of a cluster that never ran.
        let _ = std::fs::remove_dir_all(&o.run_dir);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// One line about what a run found: the verdict per read mode and the first anomaly.
pub fn one_line(outcome: &RunOutcome) -> String {
    let mut s = exit::label(outcome.code).to_string();
    if let Some(modes) = outcome.results["read_modes"].as_object() {
        let per: Vec<String> = modes
            .iter()
            .map(|(m, v)| format!("{m}: {}", Verdict::from_json(Some(&v["valid"])).label()))
            .collect();
        if !per.is_empty() {
            s.push_str(&format!(" ({})", per.join(", ")));
        }
    }
    if let Some(a) = outcome.results["anomalies"]
        .as_array()
        .and_then(|a| a.first())
    {
        let first = a["explanation"]
            .as_str()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        s.push_str(&format!(
            "; on {}: {}",
            a["key"].as_str().unwrap_or("?"),
            first.chars().take(200).collect::<String>()
        ));
    }
    s
}

/// A path relative to `base` when it lies under it (for links in pages), else as is.
pub fn relative_to(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_with_defaults_and_rejects_unknown_options() {
        let a = test_args(&words("--nodes 3 --nemesis kill --bug commit-by-count")).unwrap();
        assert_eq!(a.nodes, 3);
        assert_eq!(a.nemesis, "kill");
        assert_eq!(a.read_mode, "read-index");
        assert_eq!(a.bug.as_deref(), Some("commit-by-count"));
        let e = test_args(&words("--flood 3")).unwrap_err();
        assert!(e.to_string().contains("flood"), "{e}");
    }

    #[test]
    fn reproduce_command_names_seed_bug_and_node_bin() {
        let a = test_args(&words(
            "--nodes 3 --bug read-index-no-confirm --results-dir /tmp/x --node-bin /bin/node",
        ))
        .unwrap();
        let c = reproduce_command(&a, 17);
        assert!(c.starts_with("harness test "), "{c}");
        assert!(c.contains("--seed 17"), "{c}");
        assert!(c.contains("--bug read-index-no-confirm"), "{c}");
        assert!(c.contains("--node-bin /bin/node"), "{c}");
        assert!(!c.contains("/tmp/x"), "{c}");
    }
}

//! One run of `harness test` from start to verdict: the run directory and `test.json`, the
//! system under test started, driven ([`super::drive`]), stopped, checked and reported
//! ([`super::check`]). Soak and self-test run their tests through here too, with the options
//! parsed from words exactly as the command line parses them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use workloads::recorder::Recorder;

use super::plan::Plan;
use super::TestArgs;
use crate::cluster::{Cluster, ClusterOptions};
use crate::exit;
use crate::results::{Interrupted, Results};
use crate::system::etcd::EtcdSut;
use crate::system::{System, SystemKind};

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    crate::run_dir::write_atomic(path, &bytes)
}

/// What one run of `harness test` found.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The exit code of this run (0 valid, 1 invalid, 2 unknown, 255 harness failure).
    pub code: u8,
    /// The run directory (`results/<test>/<timestamp>`).
    pub run_dir: PathBuf,
    /// The seed used.
    pub seed: u64,
    /// `results.json` as written (`None` if the run failed before checking).
    pub results: Option<Results>,
    /// The reproduce command.
    pub command_line: String,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
}

/// Runs one test with a fresh cluster and returns what it found. An error means the harness
/// could not even create the run directory; a cluster that fails to start is an outcome with
/// code 255.
pub async fn run_test(plan: &Plan, seed: u64) -> anyhow::Result<RunOutcome> {
    let started = Instant::now();
    let args = &plan.args;
    let results_dir = &args.results_dir;
    let run_dir = crate::run_dir::create(results_dir, &plan.test_name)?;
    let mut outcome = RunOutcome {
        code: exit::HARNESS_FAILED,
        run_dir: run_dir.clone(),
        seed,
        results: None,
        command_line: args.command_line(seed),
        elapsed: Duration::ZERO,
    };
    eprintln!("harness: test {} seed {seed}", plan.test_name);
    // A harness killed by SIGKILL could not unmount its lazy filesystems: do it now.
    for p in lazyfs::mounts::cleanup_stale(results_dir) {
        eprintln!(
            "harness: unmounted a stale lazy filesystem at {}",
            p.display()
        );
    }
    eprintln!("harness: run directory {}", run_dir.display());

    let mut test_json = json!({
        "test": plan.test_name,
        "seed": seed,
        "command_line": outcome.command_line,
        "options": args,
        "nodes": args.nodes,
        "concurrency": args.concurrency,
        "time_limit": args.time_limit,
        "rate": args.rate,
        "workload": args.workload.as_str(),
        "keys": args.keys,
        "read_mode": args.read_mode,
        "read_modes": plan.read_modes.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "nemesis": args.nemesis,
        "nemesis_interval": args.nemesis_interval,
        "bug": args.bug,
        "system": args.system.as_str(),
        "harness_version": env!("CARGO_PKG_VERSION"),
        "git_commit": git_commit(),
        "node_command": &plan.command,
        "started": crate::run_dir::timestamp(),
    });
    write_json(&run_dir.join("test.json"), &test_json)?;

    let recorder = Recorder::create_keeping_events(&run_dir.join("history.jsonl"))
        .context("creating history.jsonl")?;
    let mut extra_args = vec![
        "--read-mode".to_string(),
        plan.read_modes[0].as_str().to_string(),
    ];
    if let Some(b) = &args.bug {
        extra_args.extend(["--bug".to_string(), b.clone()]);
    }
    let started_system: anyhow::Result<Box<dyn System>> = match args.system {
        SystemKind::Etcd => EtcdSut::start(
            &run_dir,
            args.nodes,
            &args.etcd_bin,
            plan.families
                .iter()
                .any(|&f| crate::system::etcd::needs_namespaces(f)),
        )
        .await
        .map(|s| Box::new(s) as Box<dyn System>),
        SystemKind::RaftKv => Cluster::start(
            &run_dir,
            &ClusterOptions {
                nodes: args.nodes,
                command: plan.command.clone(),
                extra_args,
                seed,
                node_env: if super::drive::test_hook("diverge-n1") {
                    [(
                        1,
                        vec![(
                            node::runtime::config::TEST_DIVERGE_PUTS_ENV.to_string(),
                            "1".to_string(),
                        )],
                    )]
                    .into()
                } else {
                    Default::default()
                },
                lazy_fs: plan.families.iter().any(|f| f.needs_lazy_fs()),
                power_tear: args.power_tear,
            },
        )
        .await
        .map(|c| Box::new(c) as Box<dyn System>),
    };
    let cluster = match started_system {
        Ok(c) => c,
        Err(e) => {
            eprintln!("harness: could not start the cluster: {e:#}");
            outcome.elapsed = started.elapsed();
            return Ok(outcome);
        }
    };
    test_json["node_command_lines"] = json!(cluster.command_lines());
    test_json["system_version"] = json!(cluster.version());
    write_json(&run_dir.join("test.json"), &test_json)?;

    // Test hook: proves a panic mid-run leaves no node behind (harness/tests/no_orphans.rs).
    if std::env::var_os("HARNESS_TEST_PANIC_AFTER_START").is_some() {
        let _ = crate::system::wait_for_leader(&*cluster, Duration::from_secs(20)).await;
        panic!("HARNESS_TEST_PANIC_AFTER_START is set: panicking with the cluster running");
    }
    let driven = super::drive::drive(plan, seed, &*cluster, &recorder, &run_dir).await;
    // Whatever happened, stop every node and keep the history.
    cluster.shutdown().await;
    let _ = recorder.flush();
    let driven = match driven {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "harness: {e:#}; node logs under {}",
                run_dir.join("nodes").display()
            );
            outcome.elapsed = started.elapsed();
            return Ok(outcome);
        }
    };

    let events = recorder.events();
    let interrupted = crate::interrupt::received().map(|(signal, at)| Interrupted {
        at_s: Some(
            (at.saturating_duration_since(recorder.start()).as_secs_f64() * 10.0).round() / 10.0,
        ),
        signal: Some(signal.to_string()),
    });
    let (code, results) =
        super::check::check_and_report(plan, seed, &run_dir, &events, &driven, interrupted)?;
    outcome.code = code;
    outcome.results = Some(results);
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

/// The command that reproduces a run by itself: `harness test ...` with the seed and results
/// in the default `results/` directory (not the soak's or self-test's own).
pub fn reproduce_command(args: &TestArgs, seed: u64) -> String {
    let mut a = args.clone();
    a.results_dir = TestArgs::defaults().results_dir;
    a.command_line(seed)
}

/// Runs one test; a run whose cluster could not even start (exit 255 within a few seconds and
/// no results, e.g. a port taken between choosing and binding it) is retried with the same
/// seed, at most twice, so a transient start failure is not mistaken for a verdict.
pub async fn run_test_retrying(plan: &Plan, seed: u64) -> anyhow::Result<RunOutcome> {
    let mut attempt = 0;
    loop {
        let o = run_test(plan, seed).await?;
        let start_failure = o.code == exit::HARNESS_FAILED
            && o.results.is_none()
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
    let Some(results) = &outcome.results else {
        return s;
    };
    let per = results.modes_line();
    if !per.is_empty() {
        s.push_str(&format!(" ({})", per.join(", ")));
    }
    if let Some(a) = results.anomalies.first() {
        s.push_str(&format!(
            "; on {}: {}",
            a.key.as_deref().unwrap_or("?"),
            a.headline().chars().take(200).collect::<String>()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn reproduce_command_names_seed_bug_and_node_bin() {
        let a = super::super::args::test_args(&words(
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

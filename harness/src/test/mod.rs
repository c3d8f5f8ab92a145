//! `harness test`: start a cluster, run a workload under the nemesis schedule, heal, final
//! reads, stop, check the history, write `results.json` and the report; exit with the
//! verdict's code (see `docs/spec/cli.md`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use nemesis::failpoint_faults::{self, FailpointSet};
use nemesis::schedule::{self, FaultFamily, Planner, PlannerConfig};
use node::failpoints::Failpoint;
use node::protocol::ReadMode;
use rand::Rng;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use workloads::checker::{self, CheckOptions, Verdict};
use workloads::client::ClientConfig;
use workloads::driver::{self, LargePut, WorkloadConfig};
use workloads::generator::{self, WorkloadKind};
use workloads::recorder::{NemesisPhase, Recorder};

pub mod args;

use crate::cluster::{Cluster, ClusterOptions, NodeCommand};
use crate::convergence::ConvergenceReport;
use crate::exit;
use crate::system::etcd::EtcdSut;
use crate::system::{System, SystemKind};
pub use args::TestArgs;

/// Mixed into the test's seed for the nemesis planner, so its draws are independent of the
/// workload generator's.
const NEMESIS_SEED_SALT: u64 = 0x006e_656d_6573_6973;

/// A test's options after validation.
#[derive(Clone, Debug)]
pub struct Plan {
    pub args: TestArgs,
    pub read_modes: Vec<ReadMode>,
    pub families: Vec<FaultFamily>,
    /// The failpoints the failpoint family may set.
    pub failpoints: FailpointSet,
    pub command: NodeCommand,
    /// `<workload>-<nemeses>-<read-mode>`.
    pub test_name: String,
}

/// The failpoints of `--failpoints` as given, or by default every one drawn, less the read
/// points of read paths the run does not use (they would never fire).
fn failpoint_set(given: Option<&str>, read_modes: &[ReadMode]) -> Result<FailpointSet, String> {
    if let Some(list) = given {
        let choices = failpoint_faults::parse_choices(list)?;
        if choices.is_empty() {
            return Err("no failpoint named".into());
        }
        return Ok(FailpointSet::Given(choices));
    }
    let unused_read = |p: &Failpoint| {
        [
            ReadMode::Log,
            ReadMode::ReadIndex,
            ReadMode::Lease,
            ReadMode::Follower,
            ReadMode::Stale,
        ]
        .into_iter()
        .any(|m| Failpoint::before_read(m) == *p && !read_modes.contains(&m))
    };
    Ok(FailpointSet::Drawn(
        Failpoint::ALL
            .into_iter()
            .filter(|p| !unused_read(p))
            .collect(),
    ))
}

/// A usage problem (exit 254) or a harness failure (exit 255), with a one-line message.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::BAD_USAGE,
        message: message.into(),
    }
}

/// Checks every option and resolves the node binary; names the first problem found.
pub fn plan(args: &TestArgs) -> Result<Plan, Failure> {
    if args.nodes == 0 || args.nodes > 15 {
        return Err(usage(format!(
            "--nodes must be between 1 and 15, got {}",
            args.nodes
        )));
    }
    if args.concurrency == 0 {
        return Err(usage("--concurrency must be at least 1"));
    }
    if !(args.time_limit.is_finite() && args.time_limit > 0.0) {
        return Err(usage(format!(
            "--time-limit must be positive, got {}",
            args.time_limit
        )));
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(usage(format!("--rate must be positive, got {}", args.rate)));
    }
    if args.keys == 0 {
        return Err(usage("--keys must be at least 1"));
    }
    if args.test_count == 0 {
        return Err(usage("--test-count must be at least 1"));
    }
    if !(args.nemesis_interval.is_finite() && args.nemesis_interval > 0.0) {
        return Err(usage("--nemesis-interval must be positive"));
    }
    if !(args.recovery_time.is_finite() && args.recovery_time >= 0.0) {
        return Err(usage(format!(
            "--recovery-time must be zero or positive, got {}",
            args.recovery_time
        )));
    }
    if args.observe_interval < 10 {
        return Err(usage(format!(
            "--observe-interval must be at least 10 ms, got {}",
            args.observe_interval
        )));
    }
    if !(args.op_timeout.is_finite() && args.op_timeout > 0.0) {
        return Err(usage("--op-timeout must be positive"));
    }
    let read_modes = generator::parse_read_modes(&args.read_mode)
        .map_err(|e| usage(format!("--read-mode: {e}")))?;
    let families =
        schedule::parse_families(&args.nemesis).map_err(|e| usage(format!("--nemesis: {e}")))?;
    if args.power_tear && !families.contains(&FaultFamily::Power) {
        return Err(usage("--power-tear needs --nemesis power"));
    }
    let failpoints = failpoint_set(args.failpoints.as_deref(), &read_modes)
        .map_err(|e| usage(format!("--failpoints: {e}")))?;
    crate::system::supports(args.system, &families, &read_modes).map_err(usage)?;
    if args.system == SystemKind::Etcd {
        if let Some(script) = partition_shapes(args)
            .iter()
            .find(|s| schedule::Script::from_name(s).is_some())
        {
            return Err(usage(format!(
                "--system etcd cannot play the scripted shape {script}: it slows single links, \
                 which the network-namespace backend cannot do yet"
            )));
        }
    }
    if args.system == SystemKind::Etcd {
        if args.bug.is_some() {
            return Err(usage(
                "--bug switches our node's deliberate bugs; etcd has none",
            ));
        }
        if !etcd_system::launcher::available(&args.etcd_bin) {
            return Err(usage(format!(
                "--system etcd: cannot run {} (install it: apt-get install etcd-server, or give \
                 --etcd-bin)",
                args.etcd_bin.display()
            )));
        }
    }
    if args.failpoints.is_some() && !families.contains(&FaultFamily::Failpoint) {
        return Err(usage("--failpoints needs --nemesis failpoint"));
    }
    // Power and slow-disk need the lazy filesystem: never run without it, say what is missing.
    if let Some(f) = families.iter().find(|f| f.needs_lazy_fs()) {
        lazyfs::mounts::check_available()
            .map_err(|e| usage(format!("--nemesis {}: {e}", f.as_str())))?;
    }
    if args.large_put_bytes.is_some() && args.workload != WorkloadKind::Register {
        return Err(usage("--large-put-bytes needs the register workload"));
    }
    // A key beyond a 4 MiB frame is refused by the client (a definite fail, nothing sent);
    // beyond this bound it is only memory spent for nothing.
    const MAX_KEY_BYTES: usize = 8 << 20;
    if args.key_bytes > MAX_KEY_BYTES || args.large_put_bytes.is_some_and(|b| b > MAX_KEY_BYTES) {
        return Err(usage(format!(
            "--key-bytes and --large-put-bytes must be at most {MAX_KEY_BYTES}"
        )));
    }
    // The node refuses offsets beyond a day; refuse them here, before anything starts.
    if !(args.clock_bump_ms.is_finite() && (0.0..=86_400_000.0).contains(&args.clock_bump_ms)) {
        return Err(usage(format!(
            "--clock-bump-ms must be within [0, 86400000], got {}",
            args.clock_bump_ms
        )));
    }
    // Reject what the planner cannot do (e.g. membership) before starting anything.
    Planner::new(
        0,
        PlannerConfig {
            families: families.clone(),
            nodes: (1..=args.nodes as u64).collect(),
            clock_rate_min: args.clock_rate_min,
            clock_rate_max: args.clock_rate_max,
            clock_bump_ms: 0.0,
            failpoints: failpoints.clone(),
        },
    )
    .map_err(|e| usage(format!("--nemesis: {e}")))?
    .with_partition_shapes(&partition_shapes(args))
    .map_err(|e| usage(format!("--partition-shapes: {e}")))?;
    if let Some(b) = &args.bug {
        if let Err(e) = b.parse::<node::bugs::Bug>() {
            return Err(usage(format!("--bug: {e}")));
        }
    }
    let command =
        NodeCommand::resolve(args.node_bin.as_deref()).map_err(|e| usage(format!("{e:#}")))?;
    check_writable(&args.results_dir).map_err(|e| Failure {
        code: exit::HARNESS_FAILED,
        message: format!(
            "results directory {} is not writable: {e}",
            args.results_dir.display()
        ),
    })?;
    let nemeses = if families.is_empty() {
        "none".to_string()
    } else {
        families
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("+")
    };
    let modes = if args.read_mode.trim() == "all" {
        "all".to_string()
    } else {
        read_modes
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join("+")
    };
    let mut test_name = format!("{}-{}-{}", args.workload.as_str(), nemeses, modes);
    if args.system != SystemKind::RaftKv {
        test_name = format!("{}-{test_name}", args.system.as_str());
    }
    if let Some(b) = &args.bug {
        test_name.push_str(&format!("-bug-{b}"));
    }
    Ok(Plan {
        args: args.clone(),
        read_modes,
        families,
        failpoints,
        command,
        test_name,
    })
}

/// `--partition-shapes` as a list (empty: every shape).
fn partition_shapes(args: &TestArgs) -> Vec<String> {
    let given: Vec<String> = args
        .partition_shapes
        .as_deref()
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default();
    if given.is_empty() && args.system == SystemKind::Etcd {
        // The scripts slow single links, which the namespace backend cannot yet do.
        return schedule::PARTITION_SHAPES
            .iter()
            .filter(|s| schedule::Script::from_name(s).is_none())
            .map(|s| s.to_string())
            .collect();
    }
    given
}

fn check_writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// Runs `harness test` (all `--test-count` runs); returns the exit code.
pub fn run(args: &TestArgs) -> u8 {
    let plan = match plan(args) {
        Ok(p) => p,
        Err(f) => {
            eprintln!("harness test: {}", f.message);
            return f.code;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("harness test: cannot start the async runtime: {e}");
            return exit::HARNESS_FAILED;
        }
    };
    if let Err(e) = crate::interrupt::install_handler(&rt) {
        eprintln!("harness test: {e:#}");
        return exit::HARNESS_FAILED;
    }
    let mut code = exit::VALID;
    let mut rng = rand::thread_rng();
    for i in 0..plan.args.test_count {
        if crate::interrupt::token().is_cancelled() {
            break;
        }
        // With --test-count, the first run uses --seed and the next ones seed + i, so each is
        // reproducible on its own.
        let seed = match plan.args.seed {
            Some(s) => s.wrapping_add(i as u64),
            None => rng.gen::<u64>() >> 11,
        };
        let c = match rt.block_on(run_one(&plan, seed)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("harness test: {e:#}");
                exit::HARNESS_FAILED
            }
        };
        code = exit::worst(code, c);
    }
    code
}

/// The reproduce command of a run.
pub fn command_line(args: &TestArgs, seed: u64) -> String {
    let mut s = format!(
        "harness test --nodes {} --concurrency {} --time-limit {} --rate {} --workload {} --keys {} \
         --read-mode {} --nemesis {} --nemesis-interval {} --seed {}",
        args.nodes,
        args.concurrency,
        args.time_limit,
        args.rate,
        args.workload.as_str(),
        args.keys,
        args.read_mode,
        args.nemesis,
        args.nemesis_interval,
        seed
    );
    if let Some(b) = &args.bug {
        s.push_str(&format!(" --bug {b}"));
    }
    if args.system != SystemKind::RaftKv {
        s.push_str(&format!(" --system {}", args.system.as_str()));
        if args.etcd_bin != Path::new("etcd") {
            s.push_str(&format!(" --etcd-bin {}", args.etcd_bin.display()));
        }
    }
    if let Some(f) = &args.failpoints {
        s.push_str(&format!(" --failpoints '{f}'"));
    }
    if args.op_timeout != 1.0 {
        s.push_str(&format!(" --op-timeout {}", args.op_timeout));
    }
    if args.clock_rate_min != 0.95 || args.clock_rate_max != 1.05 {
        s.push_str(&format!(
            " --clock-rate-min {} --clock-rate-max {}",
            args.clock_rate_min, args.clock_rate_max
        ));
    }
    if args.check_all {
        s.push_str(" --check-all");
    }
    if args.key_bytes != 0 {
        s.push_str(&format!(" --key-bytes {}", args.key_bytes));
    }
    if let Some(b) = args.large_put_bytes {
        s.push_str(&format!(" --large-put-bytes {b}"));
    }
    if args.clock_bump_ms != 250.0 {
        s.push_str(&format!(" --clock-bump-ms {}", args.clock_bump_ms));
    }
    if let Some(p) = &args.partition_shapes {
        s.push_str(&format!(" --partition-shapes {p}"));
    }
    if args.recovery_time != 10.0 {
        s.push_str(&format!(" --recovery-time {}", args.recovery_time));
    }
    if args.no_overlap {
        s.push_str(" --no-overlap");
    }
    if args.power_tear {
        s.push_str(" --power-tear");
    }
    if args.results_dir != Path::new("results") {
        s.push_str(&format!(" --results-dir {}", args.results_dir.display()));
    }
    s
}

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
    crate::report::index::write_atomic(path, &bytes)
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
    /// `results.json` as written (`Null` if the run failed before checking).
    pub results: serde_json::Value,
    /// The reproduce command.
    pub command_line: String,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
}

/// One run with a fresh cluster; returns the exit code of its verdict.
async fn run_one(plan: &Plan, seed: u64) -> anyhow::Result<u8> {
    Ok(run_test(plan, seed).await?.code)
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
        results: serde_json::Value::Null,
        command_line: command_line(args, seed),
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
        "command_line": command_line(args, seed),
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
                node_env: if test_hook("diverge-n1") {
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
    let driven = drive(plan, seed, &*cluster, &recorder, &run_dir).await;
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
        at_s: (at.saturating_duration_since(recorder.start()).as_secs_f64() * 10.0).round() / 10.0,
        signal,
    });
    let (code, results) = check_and_report(plan, seed, &run_dir, &events, &driven, interrupted)?;
    outcome.code = code;
    outcome.results = results;
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

/// What happened after the faults, for the availability and convergence checkers.
#[derive(Debug, Default)]
struct Driven {
    /// When the final heal completed (ns on the history's clock), when faults were enabled.
    heal_at_ns: Option<u64>,
    /// Why the final heal could not be completed.
    heal_error: Option<String>,
    /// Heals of the schedule that failed during the run (the final heal retried them).
    heal_errors_during_run: Vec<String>,
    /// The run was interrupted before its recovery phase ended.
    cut_short: bool,
    /// The members compared after the workload stopped (None when interrupted).
    convergence: Option<ConvergenceReport>,
    /// Every member's status changes during the run (also in cluster.jsonl).
    observations: Vec<crate::observer::Observation>,
    /// When the workload stopped (ns on the history's clock).
    workload_end_ns: Option<u64>,
    /// The system's version as its binary reports it.
    system_version: String,
}

/// Test-only hooks, from `HARNESS_TEST_HOOK` (comma-separated), that break the cluster in
/// ways no fault of the schedule does, so that tests can show the checkers catch them:
/// `pause-majority-after-heal` keeps a majority of the nodes SIGSTOPped after the final heal
/// (the cluster cannot recover); `diverge-n1` starts n1 with the node's test-only divergence
/// fault (its state machine applies puts wrongly).
fn test_hook(name: &str) -> bool {
    std::env::var("HARNESS_TEST_HOOK")
        .map(|v| v.split(',').any(|h| h.trim() == name))
        .unwrap_or(false)
}

/// How long the final heal may take before the workload is stopped regardless (a heal that
/// hangs is reported by the availability checker, not waited on forever).
const HEAL_BUDGET: Duration = Duration::from_secs(90);

/// Waits for a leader, runs the workload and the nemesis until the time limit, heals
/// everything, lets the workload go on for the recovery time, final reads, then compares the
/// members. Errors only for what is the harness's own failure.
async fn drive(
    plan: &Plan,
    seed: u64,
    cluster: &dyn System,
    recorder: &Recorder,
    run_dir: &Path,
) -> anyhow::Result<Driven> {
    let args = &plan.args;
    crate::system::wait_for_leader(cluster, Duration::from_secs(20))
        .await
        .context("the cluster did not elect a leader")?;
    // Watches every member until the members are compared (or the run fails).
    let observer_stop = CancellationToken::new();
    let observer = crate::observer::Observer {
        nodes: cluster.ids(),
        interval: Duration::from_millis(args.observe_interval.max(1)),
        path: run_dir.join("cluster.jsonl"),
        t0: recorder.start(),
    };
    let observed = observer.run_on(cluster, observer_stop.clone());
    let body = async {
        let r = drive_observed(plan, seed, cluster, recorder).await;
        observer_stop.cancel();
        r
    };
    let (driven, observations) = tokio::join!(body, observed);
    let mut driven = driven?;
    driven.system_version = cluster.version();
    driven.observations = match observations {
        Ok(obs) => obs,
        Err(e) => {
            eprintln!("harness: the cluster observer failed: {e:#}");
            Vec::new()
        }
    };
    Ok(driven)
}

/// The part of [`drive`] that runs while the observer watches.
async fn drive_observed(
    plan: &Plan,
    seed: u64,
    cluster: &dyn System,
    recorder: &Recorder,
) -> anyhow::Result<Driven> {
    let args = &plan.args;

    let stop = crate::interrupt::token().child_token();
    let faults_on = !plan.families.is_empty();
    let recovery = if faults_on {
        Duration::from_secs_f64(args.recovery_time)
    } else {
        Duration::ZERO
    };

    let time_limit = Duration::from_secs_f64(args.time_limit);
    let deadline = Instant::now() + time_limit;
    let nodes = cluster.clients();
    let client = ClientConfig {
        op_timeout: Duration::from_secs_f64(args.op_timeout),
        key_bytes: args.key_bytes,
        ..ClientConfig::default()
    };
    let config = WorkloadConfig {
        workload: args.workload,
        concurrency: args.concurrency,
        rate: args.rate,
        keys: args.keys,
        read_modes: plan.read_modes.clone(),
        seed,
        client: client.clone(),
        // Halfway through the faults.
        large_put: args.large_put_bytes.map(|key_bytes| LargePut {
            key_bytes,
            after: Duration::from_secs_f64(args.time_limit / 2.0),
        }),
    };

    let planner = Planner::new(
        seed ^ NEMESIS_SEED_SALT,
        PlannerConfig {
            families: plan.families.clone(),
            nodes: cluster.ids(),
            clock_rate_min: args.clock_rate_min,
            clock_rate_max: args.clock_rate_max,
            clock_bump_ms: args.clock_bump_ms,
            failpoints: plan.failpoints.clone(),
        },
    )
    .and_then(|p| p.with_partition_shapes(&partition_shapes(args)))
    .map_err(anyhow::Error::msg)?
    .with_overlap(!args.no_overlap);
    // The workload outlives the nemesis: through the final heal and the recovery time after
    // it. `workload_stop` ends it; its deadline is only a bound.
    let workload_stop = stop.child_token();
    let workload_deadline = deadline + HEAL_BUDGET + recovery;
    let progress = progress_task(
        recorder.clone(),
        time_limit + recovery,
        stop.clone(),
        args.quiet,
    );
    let workload = driver::run_workload_on(
        &config,
        &*nodes,
        recorder,
        workload_deadline.into(),
        workload_stop.clone(),
    );
    let faults_then_heal = async {
        let scheduled = crate::faults::run_schedule(
            planner,
            cluster,
            recorder,
            deadline,
            stop.clone(),
            args.nemesis_interval,
        )
        .await;
        let mut driven = Driven::default();
        if faults_on {
            let healed = tokio::time::timeout(HEAL_BUDGET, cluster.heal_all()).await;
            let error = match healed {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(_) => Some(format!("still healing after {} s", HEAL_BUDGET.as_secs())),
            };
            let mut desc = json!({"fault": "heal-all"});
            if let Some(e) = &error {
                desc["error"] = json!(e);
                eprintln!("harness: the final heal did not complete: {e}");
            }
            recorder.nemesis(NemesisPhase::Stop, desc);
            driven.heal_at_ns = Some(recorder.now_ns());
            driven.heal_error = error;
            if test_hook("pause-majority-after-heal") {
                let majority: Vec<_> = cluster.ids().into_iter().take(args.nodes / 2 + 1).collect();
                eprintln!("harness: test hook: pausing {majority:?} after the heal");
                let pause = nemesis::schedule::Fault::Pause {
                    target: nemesis::targets::Target::Minority,
                    nodes: majority,
                };
                if let Err(e) = cluster.apply(&pause).await {
                    eprintln!("harness: test hook failed: {e:#}");
                }
            }
            if !stop.is_cancelled() {
                eprintln!(
                    "harness: healed; the workload goes on for {:.1} s of recovery",
                    recovery.as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::time::sleep(recovery) => {}
                    _ = stop.cancelled() => {}
                }
            }
        }
        driven.cut_short = stop.is_cancelled();
        workload_stop.cancel();
        (scheduled, driven)
    };
    let (w, (n, mut driven)) = tokio::join!(workload, faults_then_heal);
    progress.abort();
    driven.workload_end_ns = Some(recorder.now_ns());
    let summary = w.context("running the workload")?;
    if let Err(e) = n {
        // A fault the schedule could not heal (a membership change that never finished, a
        // node that would not restart) is the system's doing: the final heal tried again,
        // and the availability checker judges whether the cluster came back.
        eprintln!("harness: a heal during the run failed: {e:#}");
        driven.heal_errors_during_run.push(format!("{e:#}"));
    }
    eprintln!(
        "harness: workload done: {} ops ({} ok, {} fail, {} info) in {:.1} s",
        summary.ops,
        summary.ok,
        summary.fail,
        summary.info,
        summary.elapsed.as_secs_f64()
    );
    if stop.is_cancelled() {
        return Ok(driven);
    }
    if args.workload == WorkloadKind::Set {
        if let Err(e) = crate::system::wait_for_leader(cluster, Duration::from_secs(30)).await {
            // Not the harness's failure: the checkers say what it means for the system.
            eprintln!("harness: no stable leader for the final reads: {e:#}");
        }
        let mode = plan.read_modes[0];
        driver::final_set_reads_on(&*nodes, recorder, mode, &client, Duration::from_secs(15)).await;
    }
    let keys: Vec<String> = run_keys(&recorder.events())
        .iter()
        .map(|k| workloads::client::wire_key(k, args.key_bytes))
        .collect();
    let budget = Duration::from_secs_f64(args.recovery_time.max(1.0));
    driven.convergence = Some(crate::convergence::check(cluster, &keys, budget).await);
    Ok(driven)
}

/// Every key a client operation of the run touched, in order.
fn run_keys(events: &[workloads::history::Event]) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = events
        .iter()
        .filter(|e| e.process != workloads::history::Process::Nemesis)
        .filter_map(|e| e.key.as_ref())
        .collect();
    keys.into_iter().cloned().collect()
}

/// Prints progress: a line every 5 s (every second on a terminal).
fn progress_task(
    recorder: Recorder,
    time_limit: Duration,
    stop: CancellationToken,
    quiet: bool,
) -> tokio::task::JoinHandle<()> {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    tokio::spawn(async move {
        let start = Instant::now();
        // Bounded by the time limit plus slack; aborted by the caller at the end.
        while !quiet
            && start.elapsed() < time_limit + Duration::from_secs(30)
            && !stop.is_cancelled()
        {
            tokio::time::sleep(every).await;
            let c = recorder.counts();
            let faults: Vec<String> = recorder.open_faults().keys().cloned().collect();
            eprintln!(
                "harness: {:>5.1}/{:.0} s  ops {:>6}  ok {:>6}  fail {:>5}  info {:>5}  faults: {}",
                start.elapsed().as_secs_f64(),
                time_limit.as_secs_f64(),
                c.total.invoke,
                c.total.ok,
                c.total.fail,
                c.total.info,
                if faults.is_empty() {
                    "none".into()
                } else {
                    faults.join(", ")
                }
            );
        }
    })
}

/// Checks the history, writes results.json and the report, updates the results index.
fn check_and_report(
    plan: &Plan,
    seed: u64,
    run_dir: &Path,
    events: &[workloads::history::Event],
    driven: &Driven,
    interrupted: Option<Interrupted>,
) -> anyhow::Result<(u8, serde_json::Value)> {
    let args = &plan.args;
    let opts = CheckOptions {
        timeout: Duration::from_secs_f64(args.check_timeout),
        all_anomalies: args.check_all,
        ..CheckOptions::default()
    };
    let stats = crate::report::compute(events);
    let (verdict, read_modes, checkers, anomalies) = match args.workload {
        WorkloadKind::Register => {
            let r = checker::check_register(events, &opts).context("checking the history")?;
            let modes: serde_json::Map<String, serde_json::Value> = r
                .read_modes
                .iter()
                .map(|(m, rep)| {
                    (
                        m.clone(),
                        json!({"valid": rep.valid, "reads": rep.reads, "anomalies": rep.anomalies}),
                    )
                })
                .collect();
            let anomalies: Vec<_> = r.anomalies().cloned().collect();
            (r.valid, modes, json!({"linearizable": r}), json!(anomalies))
        }
        WorkloadKind::Set => {
            let s = checker::check_set(events).context("checking the history")?;
            let mode = plan.read_modes[0].as_str().to_string();
            let mut modes = serde_json::Map::new();
            modes.insert(
                mode.clone(),
                json!({"valid": s.valid, "reads": s.reads, "anomalies": []}),
            );
            let mut anomalies = Vec::new();
            if s.lost.count > 0 {
                let mut a = json!({"key": "set", "read_mode": mode, "explanation":
                    lost_explanation(&s),
                    "ops": s.bad_reads});
                // The span the loss happened in: from the first lost acknowledgement to
                // the first read that missed a lost element (the faults in between are
                // the suspects).
                let from = s.lost_details.iter().map(|d| d.ack_time).min();
                let to = s.lost_details.iter().map(|d| d.first_missing_time).min();
                if let (Some(from), Some(to)) = (from, to) {
                    a["span_ns"] = json!([from, to.max(from)]);
                }
                anomalies.push(a);
            }
            if s.stale_linearizable_reads > 0 {
                anomalies.push(json!({"key": "set", "read_mode": mode, "explanation":
                    stale_explanation(&s),
                    "ops": s.bad_reads}));
            }
            if s.unexpected.count > 0 {
                anomalies.push(json!({"key": "set", "read_mode": mode, "explanation":
                    format!("{} elements read were never added: {}", s.unexpected.count, elements_preview(&s.unexpected.elements)),
                    "ops": s.bad_reads}));
            }
            (s.valid, modes, json!({"set": s}), json!(anomalies))
        }
    };
    let (mut checkers, mut anomalies) = (checkers, anomalies);
    let mut verdict = verdict;
    if let Some(heal_at_ns) = driven.heal_at_ns {
        let reads_in_run = match args.workload {
            WorkloadKind::Register => plan.read_modes.iter().map(|m| m.as_str().into()).collect(),
            WorkloadKind::Set => Vec::new(),
        };
        let a = crate::availability::check(
            events,
            &crate::availability::AvailabilityInput {
                heal_at_ns,
                recovery_time_s: args.recovery_time,
                read_modes: reads_in_run,
                heal_error: driven.heal_error.clone(),
                cut_short: driven.cut_short,
            },
        );
        verdict = verdict.worst(a.valid);
        for an in &a.anomalies {
            push_anomaly(&mut anomalies, "availability", None, &an.explanation);
        }
        let mut a = serde_json::to_value(&a)?;
        if !driven.heal_errors_during_run.is_empty() {
            a["heal_errors_during_run"] = json!(driven.heal_errors_during_run);
        }
        checkers["availability"] = a;
    }
    let convergence = match &driven.convergence {
        Some(c) => c.clone(),
        None => crate::convergence::ConvergenceReport::not_run("the run was interrupted"),
    };
    verdict = verdict.worst(convergence.valid);
    if driven.convergence.is_some() {
        for an in &convergence.anomalies {
            push_anomaly(
                &mut anomalies,
                "convergence",
                an.key.as_deref(),
                &an.explanation,
            );
        }
    }
    checkers["convergence"] = json!(convergence);
    // An interrupted run covers only what was recorded: never valid.
    if interrupted.is_some() && verdict == Verdict::Valid {
        verdict = Verdict::Unknown;
    }
    let mut results = json!({
        "valid": verdict,
        "read_modes": read_modes,
        "checkers": checkers,
        "anomalies": anomalies,
        "stats": stats,
        "seed": seed,
        "test": plan.test_name,
        "system": args.system.as_str(),
        "system_version": driven.system_version,
        "command_line": command_line(args, seed),
    });
    if let Some(i) = &interrupted {
        results["interrupted"] = json!(i);
    }
    let coverage = crate::coverage::compute(
        events,
        &driven.observations,
        &crate::coverage::CoverageInput {
            families: plan.families.clone(),
            read_modes: plan.read_modes.iter().map(|m| m.as_str().into()).collect(),
            nodes: (1..=args.nodes as u64).map(node::raft::node_name).collect(),
            workload_end_ns: driven.workload_end_ns,
            final_heal_ns: None,
        },
    );
    // Each anomaly in its context: the faults active then, the leader, the node's view.
    if let Some(list) = results["anomalies"].as_array_mut() {
        for a in list.iter_mut() {
            let ctx =
                crate::anomaly_context::of(a, events, &coverage.windows, &driven.observations);
            if let (Some(ctx), Some(obj)) = (ctx, a.as_object_mut()) {
                obj.insert("context".into(), serde_json::to_value(ctx)?);
            }
        }
    }
    let anomalies = results["anomalies"].clone();
    results["coverage"] = serde_json::to_value(&coverage)?;
    write_json(&run_dir.join("results.json"), &results)?;
    if !args.no_report {
        if let Err(e) = crate::report::build_run_report(run_dir) {
            eprintln!("harness: report failed: {e:#}");
        }
    }
    crate::report::update_latest(&args.results_dir, run_dir)?;
    if let Err(e) = crate::report::rebuild_results_index(&args.results_dir) {
        eprintln!("harness: results index failed: {e:#}");
    }
    let label = verdict.label();
    let per_mode: Vec<String> = read_modes
        .iter()
        .map(|(m, v)| format!("{m}: {}", Verdict::from_json(Some(&v["valid"])).label()))
        .collect();
    let mut notes = per_mode;
    if let Some(i) = &interrupted {
        notes.push(format!("interrupted by {} at {:.1} s", i.signal, i.at_s));
    }
    match coverage.warnings.len() {
        0 => {}
        1 => notes.push("1 coverage warning".into()),
        n => notes.push(format!("{n} coverage warnings")),
    }
    println!(
        "{}: {label} ({}) seed {seed}",
        plan.test_name,
        notes.join(", ")
    );
    for w in &coverage.warnings {
        println!("  coverage warning: {w}");
    }
    println!("  {}", coverage_line(&coverage));
    for a in anomalies.as_array().into_iter().flatten().take(3) {
        println!(
            "  anomaly on {} ({}): {}",
            a["key"].as_str().unwrap_or("?"),
            a["read_mode"].as_str().unwrap_or("?"),
            a["explanation"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
        if let Some(c) = a["context"]["text"].as_str() {
            println!("    context: {c}");
        }
    }
    // --no-report writes no page: print no path to one.
    if !args.no_report {
        println!("  report: {}", run_dir.join("index.html").display());
    }
    Ok((verdict.exit_code(), results))
}

/// One line of what the faults did: leader changes, leaderless time, under partition.
fn coverage_line(c: &crate::coverage::Coverage) -> String {
    fn known<T: std::fmt::Display>(v: Option<T>) -> String {
        v.map_or_else(|| "?".into(), |x| x.to_string())
    }
    let mut s = format!(
        "faults: {} windows, {} leader changes, max term {}, {} s without a leader",
        c.windows.len(),
        known(c.leader_changes),
        known(c.max_term),
        known(c.leaderless_s),
    );
    if let Some(share) = c.partition_leaderless_share() {
        s.push_str(&format!(
            " ({:.0}% of the time under partition)",
            share * 100.0
        ));
    }
    if !c.failpoints.is_empty() {
        let fired = c
            .failpoints
            .iter()
            .filter(|u| u.fired.is_some_and(|f| f > 0))
            .count();
        let crashes: u64 = c.failpoints.iter().map(|u| u.crashed).sum();
        s.push_str(&format!(
            "; {} failpoints set, {fired} fired, {crashes} crashes ({})",
            c.failpoints.len(),
            c.failpoints
                .iter()
                .map(|u| u.point.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s
}

/// A run stopped by a signal: which and when (seconds since the test start).
#[derive(Clone, Copy, Debug, serde::Serialize)]
struct Interrupted {
    at_s: f64,
    signal: &'static str,
}

/// Adds a checker's anomaly to the run's list (`anomalies` in results.json).
fn push_anomaly(
    anomalies: &mut serde_json::Value,
    checker: &str,
    key: Option<&str>,
    explanation: &str,
) {
    if let Some(list) = anomalies.as_array_mut() {
        list.push(json!({"checker": checker, "key": key.unwrap_or(checker), "read_mode": "-", "explanation": explanation}));
    }
}

/// The first elements of a (possibly huge) list, for one-line explanations; the full lists
/// are in `results.json` under `checkers.set`.
/// The set checker's lost elements in words: how many, then the first few one by one.
fn lost_explanation(s: &checker::SetReport) -> String {
    const SHOWN: usize = 10;
    let secs = |ns: u64| format!("{:.3}", ns as f64 / 1e9);
    let mut out = format!(
        "{} elements acknowledged (or read) are absent from every read after some point (lost): {}",
        s.lost.count,
        elements_preview(&s.lost.elements)
    );
    for d in s.lost_details.iter().take(SHOWN) {
        let seen = match (d.last_seen_index, d.last_seen_time) {
            (Some(i), Some(t)) => format!("last seen by read #{i} at {} s", secs(t)),
            _ => "never read".into(),
        };
        out.push_str(&format!(
            "\n  {}: added at {} s (#{}){}, {} at {} s (#{}), {seen}, missing from read #{} at {} s",
            d.element,
            secs(d.add_time),
            d.add_index,
            d.node.as_deref().map(|n| format!(" via {n}")).unwrap_or_default(),
            if d.acknowledged { "acknowledged" } else { "first read" },
            secs(d.ack_time),
            d.ack_index,
            d.first_missing_index,
            secs(d.first_missing_time),
        ));
    }
    if s.lost.count > SHOWN {
        out.push_str(&format!(
            "\n  … {} more in results.json (checkers.set.lost_details)",
            s.lost.count - SHOWN
        ));
    }
    out
}

/// The set checker's stale reads through linearizable paths in words, worst elements first.
fn stale_explanation(s: &checker::SetReport) -> String {
    let worst: Vec<String> = s
        .worst_stale
        .iter()
        .map(|w| {
            format!(
                "{} (missing until {:.1} ms after it was known, last by read #{})",
                w.element,
                w.stable_latency_ns as f64 / 1e6,
                w.last_missing_index
            )
        })
        .collect();
    format!(
        "{} linearizable reads were stale: they began after an element was acknowledged (or read) and missed it, and a later read held it ({} stale elements; worst: {})",
        s.stale_linearizable_reads,
        s.stale_count,
        worst.join(", ")
    )
}

fn elements_preview(elements: &[i64]) -> String {
    const SHOWN: usize = 20;
    let head: Vec<String> = elements.iter().take(SHOWN).map(i64::to_string).collect();
    if elements.len() > SHOWN {
        format!("{}, … ({} more)", head.join(", "), elements.len() - SHOWN)
    } else {
        head.join(", ")
    }
}

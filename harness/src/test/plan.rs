//! The options of `harness test` checked once and turned into typed values: read modes, fault
//! families, failpoints, the node binary, the test's name. Everything after the plan works
//! from these values, never from the raw strings.

use std::path::Path;

use nemesis::failpoint_faults::{self, FailpointSet};
use nemesis::schedule::{self, FaultFamily, Planner, PlannerConfig};
use node::failpoints::Failpoint;
use node::protocol::ReadMode;
use workloads::generator::{self, WorkloadKind};

use super::TestArgs;
use crate::cluster::NodeCommand;
use crate::exit;
use crate::system::SystemKind;

/// Mixed into the test's seed for the nemesis planner, so its draws are independent of the
/// workload generator's.
pub(super) const NEMESIS_SEED_SALT: u64 = 0x006e_656d_6573_6973;

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
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The exit code `harness test` gives for it.
    pub code: u8,
    /// What is wrong, in one line.
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
pub(super) fn partition_shapes(args: &TestArgs) -> Vec<String> {
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

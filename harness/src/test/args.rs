//! The options of `harness test` (see `docs/spec/cli.md`: these names are a contract), parsed
//! by clap and shared by `soak` and `selftest`, which build them for each run.

use std::path::{Path, PathBuf};

use clap::Args;
use workloads::generator::WorkloadKind;

use crate::system::SystemKind;

/// Options of `harness test`.
#[derive(Args, Debug, Clone, serde::Serialize)]
pub struct TestArgs {
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Client processes.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Seconds the workload runs (then heal, settle, final reads, check).
    #[arg(long, default_value_t = 60.0)]
    pub time_limit: f64,
    /// Target operations per second over all clients.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// register (put/get/cas on independent keys) or set (unique adds + final reads).
    #[arg(long, value_enum, default_value_t = WorkloadKind::Register)]
    pub workload: WorkloadKind,
    /// Keys the register workload spreads over.
    #[arg(long, default_value_t = 8)]
    pub keys: usize,
    /// log, read-index, lease, follower, stale, a comma-separated list, or all (the four
    /// linearizable paths).
    #[arg(long, default_value = "read-index")]
    pub read_mode: String,
    /// Comma-separated faults: none, partition, delay, loss, kill, pause, clock, membership,
    /// all (those seven), and power, slow-disk (need FUSE), failpoint (node failpoints).
    #[arg(long, default_value = "none")]
    pub nemesis: String,
    /// Mean seconds between fault changes.
    #[arg(long, default_value_t = 5.0)]
    pub nemesis_interval: f64,
    /// Seeds every random choice of the harness (default: random, printed and stored).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where runs are stored.
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
    /// The node binary under test (default: the `node` built beside `harness`).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    /// Start every node with a deliberate protocol bug (self-validation).
    #[arg(long)]
    pub bug: Option<String>,
    /// Run the test N times with fresh clusters; the exit code is the worst.
    #[arg(long, default_value_t = 1)]
    pub test_count: usize,
    /// Seconds a client waits for an answer before recording `info`.
    #[arg(long, default_value_t = 1.0)]
    pub op_timeout: f64,
    /// Seconds the checker may spend before answering `unknown`.
    #[arg(long, default_value_t = 300.0)]
    pub check_timeout: f64,
    /// Report every anomaly: the checker keeps checking the other keys after the first
    /// invalid one (within --check-timeout). By default the first invalid key decides.
    #[arg(long)]
    pub check_all: bool,
    /// Slowest clock rate the clock nemesis sets (1.0 = real time).
    #[arg(long, default_value_t = 0.95)]
    pub clock_rate_min: f64,
    /// Fastest clock rate the clock nemesis sets.
    #[arg(long, default_value_t = 1.05)]
    pub clock_rate_max: f64,
    /// Pad every key sent to the nodes to this many bytes (the history keeps the short
    /// names), so the nodes replicate entries of about this size. 0: keys as they are.
    #[arg(long, default_value_t = 0)]
    pub key_bytes: usize,
    /// Register workload: one put halfway through the run whose key is padded to this many
    /// bytes (history key `large`). 4190000 fits a client frame but not a log entry: the
    /// node must refuse it `invalid` while the cluster goes on committing.
    #[arg(long)]
    pub large_put_bytes: Option<usize>,
    /// Largest clock offset bump (ms, either way) the clock nemesis sets; also how far
    /// `isolated-leader-clock-back` steps the isolated leader's wall clock back.
    #[arg(long, default_value_t = 250.0)]
    pub clock_bump_ms: f64,
    /// Don't write charts and HTML (faster; results.json is still written).
    #[arg(long)]
    pub no_report: bool,
    /// No progress lines (the verdict line is still printed).
    #[arg(long)]
    pub quiet: bool,
    /// Draw partitions only of these shapes (comma-separated): isolate-one, halves,
    /// majorities-ring, bridge, isolate-leader, leader-in-minority, one-way-leader-deaf,
    /// lagging-rejoin (a follower cut off until it lags, let back in as the leader is cut
    /// off), slow-isolated-leader (the leader cut off while its clock runs slow; needs the
    /// clock nemesis), deaf-leader-fast-follower (the leader hears nobody while one
    /// follower's clock runs at a rate drawn from the clock range; needs the clock nemesis),
    /// isolated-leader-clock-back (the leader cut off while its wall clock steps back by
    /// --clock-bump-ms; needs the clock nemesis),
    /// figure-8 (the Raft paper's Figure 8 replayed step by step as the nodes report each
    /// step; 5 nodes or more; give --op-timeout a few seconds so that the clients it catches
    /// wait for their answers), stale-tail (a follower left holding a stale suffix behind a
    /// newer leader's entries, then the old leader back; 5 nodes or more), deposed-tail (a
    /// leader cut off while it appends a long tail of uncommitted entries stands for election,
    /// at the newer term, as the majority's new leader is cut off; 3 nodes or more),
    /// new-leader-isolated (a new leader cut off from everyone before its no-op commits, while
    /// clients read from it; 3 nodes or more). Default: all.
    #[arg(long)]
    pub partition_shapes: Option<String>,
    /// After the final heal the workload goes on this many seconds; the availability
    /// checker needs an ok write (and an ok read of every read mode in use) within it, and
    /// every member then has as long again to reach the leader's commit index.
    #[arg(long, default_value_t = 10.0)]
    pub recovery_time: f64,
    /// How often (ms) every member's status is polled into cluster.jsonl.
    #[arg(long, default_value_t = 100)]
    pub observe_interval: u64,
    /// One fault at a time. By default faults of different families overlap (a kill during a
    /// partition, a delay during a clock skew), with at most one network fault at a time and
    /// process, clock and membership faults on disjoint nodes; scripts and sequences always
    /// run alone.
    #[arg(long)]
    pub no_overlap: bool,
    /// With `--nemesis power`: a power loss keeps a random strict prefix of each file's last
    /// unsynced write (a torn write) instead of dropping it whole.
    #[arg(long)]
    pub power_tear: bool,
    /// With `--nemesis failpoint`: set only these node failpoints, comma-separated
    /// `NAME[=ACTION][@TARGET]` (e.g. `after-persist-before-send=1*panic@leader`); the action
    /// and target are drawn when not given. Default: every failpoint (the read points of the
    /// read modes in use), with election windows. The README lists the failpoints.
    #[arg(long)]
    pub failpoints: Option<String>,
    /// The system under test: raft-kv (our node) or etcd (from --etcd-bin). What a system
    /// cannot do (a read mode, a fault family) exits 254 with the reason.
    #[arg(long, value_enum, default_value = "raft-kv")]
    pub system: crate::system::SystemKind,
    /// With --system etcd: the etcd binary (Debian: apt-get install etcd-server).
    #[arg(long, default_value = "etcd")]
    pub etcd_bin: PathBuf,
}

impl TestArgs {
    /// The reproduce command of a run.
    pub fn command_line(&self, seed: u64) -> String {
        let args = self;
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
}

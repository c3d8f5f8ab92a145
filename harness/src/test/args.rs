//! The options of `harness test` (see `docs/spec/cli.md`: these names are a contract), parsed
//! by clap and shared by `soak` and `selftest`, which build them for each run.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser};
use serde_json::Value;
use workloads::generator::WorkloadKind;

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

/// `harness test` options parsed from words, so every option keeps the default the command
/// line gives it (and options added later need no change where options are built).
#[derive(Parser, Debug)]
#[command(name = "test", no_binary_name = true)]
struct Wrapped {
    #[command(flatten)]
    args: TestArgs,
}

/// Why words are not valid `harness test` options.
#[derive(Debug, thiserror::Error)]
#[error("bad test options {words:?}: {message}")]
pub struct ArgsError {
    /// The words given.
    pub words: Vec<String>,
    /// clap's first line about them.
    pub message: String,
}

/// Parses words as `harness test` options (without the `harness test` prefix).
pub fn test_args(words: &[String]) -> Result<TestArgs, ArgsError> {
    Wrapped::try_parse_from(words)
        .map(|w| w.args)
        .map_err(|e| ArgsError {
            words: words.to_vec(),
            message: e.to_string().lines().next().unwrap_or("").to_string(),
        })
}

/// Options always written in a reproduce command, default or not, so that it reads as a
/// description of the run.
const ALWAYS_SHOWN: [&str; 9] = [
    "nodes",
    "concurrency",
    "time_limit",
    "rate",
    "workload",
    "keys",
    "read_mode",
    "nemesis",
    "nemesis_interval",
];

/// Options a reproduce command leaves out: how many runs and how they are shown, not what
/// one run does (`seed` is written from the run's own seed).
const NEVER_SHOWN: [&str; 4] = ["seed", "test_count", "quiet", "no_report"];

impl TestArgs {
    /// The options as clap gives them when none is given on the command line.
    pub fn defaults() -> TestArgs {
        test_args(&[]).expect("every option of harness test has a default or is optional")
    }

    /// The words after `harness test` that reproduce one run with `seed`: the options that
    /// describe the run, then `--seed`, then every other option whose value differs from its
    /// default. The defaults are clap's (one definition): parsing these words gives back these
    /// options, with `seed` set.
    pub fn reproduce_words(&self, seed: u64) -> Vec<String> {
        let mine = serde_json::to_value(self).unwrap_or(Value::Null);
        let defaults = serde_json::to_value(TestArgs::defaults()).unwrap_or(Value::Null);
        let command = Wrapped::command();
        let option = |id: &str| -> Vec<String> {
            let Some(arg) = command.get_arguments().find(|a| a.get_id() == id) else {
                return Vec::new();
            };
            let long = format!("--{}", arg.get_long().unwrap_or(id));
            match &mine[id] {
                Value::Null => Vec::new(),
                Value::Bool(true) => vec![long],
                Value::Bool(false) => Vec::new(),
                v => vec![long, word(v)],
            }
        };
        let mut words: Vec<String> = ALWAYS_SHOWN.iter().flat_map(|id| option(id)).collect();
        words.extend(["--seed".to_string(), seed.to_string()]);
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if ALWAYS_SHOWN.contains(&id) || NEVER_SHOWN.contains(&id) {
                continue;
            }
            if mine[id] != defaults[id] {
                words.extend(option(id));
            }
        }
        words
    }

    /// The reproduce command of a run: `harness test` and [`TestArgs::reproduce_words`],
    /// each word quoted for a POSIX shell where it needs to be.
    pub fn command_line(&self, seed: u64) -> String {
        let mut s = String::from("harness test");
        for w in self.reproduce_words(seed) {
            s.push(' ');
            s.push_str(&shell_quote(&w));
        }
        s
    }
}

/// An option's value as the command line writes it: a string as is, a number as Rust prints
/// it (so `60.0` is `60`, as clap's default shows it).
fn word(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (None, Some(i), _) => i.to_string(),
            (None, None, Some(f)) => f.to_string(),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// `w` as a POSIX shell reads it back as one word: as is when it holds only characters no
/// shell treats specially, else in single quotes.
fn shell_quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/=+@%".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    /// Every option, as JSON, for comparing two parses.
    fn json(a: &TestArgs) -> Value {
        serde_json::to_value(a).unwrap()
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
    fn the_reproduce_words_parse_back_to_the_same_options() {
        for given in [
            "",
            "--nodes 3 --time-limit 12.5 --workload set --read-mode all --nemesis partition,kill",
            "--bug read-index-no-confirm --op-timeout 2.5 --clock-rate-min 0.9 --check-all \
             --key-bytes 64 --clock-bump-ms 100 --partition-shapes halves,bridge \
             --recovery-time 4 --no-overlap --observe-interval 50 --check-timeout 20 \
             --results-dir /tmp/somewhere --node-bin /bin/node",
            "--nemesis power --power-tear --large-put-bytes 4190000",
            "--nemesis failpoint --failpoints after-persist-before-send=1*panic@leader",
            "--system etcd --etcd-bin /usr/bin/etcd --read-mode follower,log",
        ] {
            let a = test_args(&words(given)).unwrap();
            let back = test_args(&a.reproduce_words(42)).unwrap();
            let mut expected = a.clone();
            expected.seed = Some(42);
            assert_eq!(json(&back), json(&expected), "{given}");
        }
    }

    #[test]
    fn defaults_are_left_out_and_the_run_is_described() {
        let a = TestArgs::defaults();
        assert_eq!(
            a.command_line(7),
            "harness test --nodes 5 --concurrency 10 --time-limit 60 --rate 100 \
             --workload register --keys 8 --read-mode read-index --nemesis none \
             --nemesis-interval 5 --seed 7"
        );
        let a = test_args(&words("--op-timeout 2 --quiet --no-report --test-count 3")).unwrap();
        let c = a.command_line(7);
        assert!(c.ends_with("--seed 7 --op-timeout 2"), "{c}");
    }

    #[test]
    fn values_a_shell_would_split_are_quoted() {
        let a = test_args(&words("--failpoints before-persist=sleep(50)@leader")).unwrap();
        let c = a.command_line(1);
        assert!(
            c.contains("--failpoints 'before-persist=sleep(50)@leader'"),
            "{c}"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a,b:c/d"), "a,b:c/d");
    }
}

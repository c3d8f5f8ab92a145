//! The node's command line: parsed here (in the library) so that both the `node` binary and
//! `harness node` (the harness re-executing itself as a node) share one definition.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use crate::bugs::Bug;
use crate::protocol::ReadMode;
use crate::raft::{parse_node_name, NodeId};
use crate::runtime::{self, NodeConfig};
use crate::storage::FsyncPolicy;

/// A Raft-replicated key-value store (the system under test of `harness`).
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Args {
    /// This node's id: `n1` or `1`.
    #[arg(long, value_parser = parse_id)]
    id: NodeId,
    /// Address to accept peer (Raft) connections on.
    #[arg(long)]
    peer_listen: String,
    /// Address to accept client and admin requests on.
    #[arg(long)]
    client_listen: String,
    /// The other voters and how to reach their peer port: `n2=127.0.0.1:7002,n3=...`.
    #[arg(long, default_value = "", value_parser = parse_addr_map)]
    peers: BTreeMap<NodeId, String>,
    /// Every node's client address (for "not leader" hints): `n1=127.0.0.1:8001,...`.
    #[arg(long, default_value = "", value_parser = parse_addr_map)]
    client_addrs: BTreeMap<NodeId, String>,
    /// Directory of the write-ahead log (created if absent).
    #[arg(long)]
    data_dir: PathBuf,
    /// One Raft tick, in milliseconds of the node's clock.
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
    /// Heartbeat interval (ms); rounded to ticks.
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    /// Smallest randomized election timeout (ms); rounded to ticks.
    #[arg(long, default_value_t = 300)]
    election_timeout_min_ms: u64,
    /// Largest randomized election timeout (ms, exclusive); rounded to ticks.
    #[arg(long, default_value_t = 600)]
    election_timeout_max_ms: u64,
    /// Read path for requests that name none.
    #[arg(long, default_value = "read-index")]
    read_mode: ReadMode,
    /// Clock drift bound assumed by lease reads: the lease lasts
    /// ⌊(election ticks min − 1) × (1 − drift)⌋ ticks after a heartbeat's send tick, safe
    /// while no clock runs more than 1 / (1 − drift) times as fast as the leader's.
    #[arg(long, default_value_t = 0.1)]
    max_clock_drift: f64,
    /// When to fsync the log: once per batch (group commit), after every entry, or never.
    #[arg(long, value_enum, default_value_t = FsyncArg::Batch)]
    fsync: FsyncArg,
    /// A deliberate protocol bug (repeatable); see the README's table.
    #[arg(long = "bug", value_enum)]
    bugs: Vec<Bug>,
    /// How long a request may wait inside the node before it is answered "timeout".
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
    /// The run's seed, the same for every node: the randomized election timeouts draw from
    /// `raft::node_seed(seed, id)`, so nodes given one seed still time out apart
    /// (default: the time).
    #[arg(long)]
    seed: Option<u64>,
    /// Snapshot the state machine and compact the log every this many applied entries
    /// (0: never).
    #[arg(long, default_value_t = 10_000)]
    snapshot_entries: u64,
    /// Start outside the cluster and wait for the leader to add this node (a membership
    /// change); --peers then only says how to reach the existing nodes.
    #[arg(long)]
    join: bool,
    /// Exit (status 1) within about half a second once the process that started this node is
    /// gone. The harness passes it, so a node outlives no harness however it ended; a node
    /// started by hand from a shell leaves it off and stays up when the shell goes.
    #[arg(long)]
    exit_with_parent: bool,
    /// Limit: open connections on the client port. At the cap, each new connection closes
    /// the longest-idle one (logged), so idle connections cannot lock anyone out.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_client_connections: u32,
    /// Limit: open connections on the peer port (same policy as the client port).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_peer_connections: u32,
    /// Limit: once a frame's first byte arrived, the whole frame must arrive within this
    /// many milliseconds or the connection is closed. Connections between frames may idle.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    frame_timeout_ms: u64,
    /// Limit: MiB that unfinished frames of all connections together may buffer beyond each
    /// connection's first 64 KiB (at least one 4 MiB frame is always allowed); a connection
    /// over it waits, within its frame timeout.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    frame_buffer_mib: u32,
}

/// How often `--exit-with-parent` checks that the parent is still there.
const PARENT_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Starts a thread that exits the process once its parent is gone: when the parent dies the
/// kernel reparents the process, so `getppid()` no longer returns the PID it had at start.
/// This backs up the harness's PR_SET_PDEATHSIG for nodes started by other means (a wrapper
/// script, another harness) and costs one system call per interval.
fn exit_with_parent() -> std::io::Result<()> {
    let parent = nix::unistd::getppid();
    std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || loop {
            std::thread::sleep(PARENT_CHECK_INTERVAL);
            if nix::unistd::getppid() != parent {
                tracing::error!(%parent, "the parent process is gone; exiting");
                eprintln!("node: the parent process (pid {parent}) is gone; exiting");
                // The log is durable by design (as after kill -9): nothing to flush.
                std::process::exit(1);
            }
        })?;
    Ok(())
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FsyncArg {
    Batch,
    PerEntry,
    Never,
}

fn parse_id(s: &str) -> Result<NodeId, String> {
    parse_node_name(s).ok_or_else(|| format!("bad node id {s:?} (expected n1 or 1)"))
}

fn parse_addr_map(s: &str) -> Result<BTreeMap<NodeId, String>, String> {
    let mut map = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("bad entry {part:?} (expected n2=127.0.0.1:7002)"))?;
        let id = parse_id(id)?;
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("bad address {addr:?} for n{id}"));
        }
        map.insert(id, addr.to_string());
    }
    Ok(map)
}

fn ticks(ms: u64, tick_ms: u64) -> u32 {
    (ms / tick_ms.max(1)).max(1) as u32
}

/// Runs a node with the given command line (`args[0]` is the program name) until it is
/// killed or fails; returns the process exit code.
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .init();
    if args.tick_ms == 0 || args.election_timeout_min_ms >= args.election_timeout_max_ms {
        eprintln!("node: need tick_ms > 0 and election-timeout-min-ms < election-timeout-max-ms");
        return ExitCode::from(2);
    }
    if !(0.0..1.0).contains(&args.max_clock_drift) {
        eprintln!("node: --max-clock-drift must be in [0, 1)");
        return ExitCode::from(2);
    }
    let bugs: std::collections::BTreeSet<Bug> = args.bugs.iter().copied().collect();
    // The core mixes in the id, so the time alone is enough here.
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let config = NodeConfig {
        id: args.id,
        peer_listen: args.peer_listen,
        client_listen: args.client_listen,
        peers: args.peers,
        join: args.join,
        snapshot_entries: args.snapshot_entries,
        client_addrs: args.client_addrs,
        data_dir: args.data_dir,
        tick_ms: args.tick_ms,
        heartbeat_ticks: ticks(args.heartbeat_ms, args.tick_ms),
        election_ticks_min: ticks(args.election_timeout_min_ms, args.tick_ms),
        election_ticks_max: ticks(args.election_timeout_max_ms, args.tick_ms),
        default_read_mode: args.read_mode,
        max_clock_drift: args.max_clock_drift,
        fsync: match args.fsync {
            _ if bugs.contains(&Bug::SkipFsync) => FsyncPolicy::Never,
            FsyncArg::Batch => FsyncPolicy::Batch,
            FsyncArg::PerEntry => FsyncPolicy::PerEntry,
            FsyncArg::Never => FsyncPolicy::Never,
        },
        bugs,
        test_diverge_puts: std::env::var_os(crate::runtime::config::TEST_DIVERGE_PUTS_ENV)
            .is_some_and(|v| v == "1"),
        request_timeout_ms: args.request_timeout_ms,
        seed,
        limits: runtime::ConnLimits {
            max_client_connections: args.max_client_connections as usize,
            max_peer_connections: args.max_peer_connections as usize,
            frame_timeout: std::time::Duration::from_millis(args.frame_timeout_ms),
            frame_buffer_bytes: (args.frame_buffer_mib as usize) << 20,
        },
    };
    if args.exit_with_parent {
        if let Err(e) = exit_with_parent() {
            eprintln!("node: cannot watch the parent process: {e}");
            return ExitCode::from(1);
        }
    }
    tracing::info!(id = config.id, ?config.bugs, seed, "starting");
    match runtime::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("fatal: {e:#}");
            eprintln!("node: fatal: {e:#}");
            ExitCode::from(1)
        }
    }
}

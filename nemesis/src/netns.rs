//! A packet-level partition backend: one network namespace per member, joined by veth links
//! to a bridge in a namespace of its own, with nftables drop rules per directed pair.
//!
//! The proxy mesh ([`crate::mesh`]) needs every node to dial a distinct address per peer;
//! systems that dial a peer's single advertised URL (etcd) cannot be put behind it. Here each
//! member owns a real address (`10.X.Y.i`) in its own namespace, and faults are rules in the
//! receiving member's namespace, so any program can be partitioned without knowing it.
//!
//! Layout of one [`NetnsCluster`] (run id `jh-<pid>-<k>`, `k` a per-process counter):
//!
//! - namespace `<run>-br` holds bridge `br0` with the controller address `10.X.Y.254/24`
//!   (clients and the harness reach members from here; its traffic is never cut);
//! - namespace `<run>-n<id>` per member holds `lo` (up) and `eth0` (`10.X.Y.<index+1>/24`),
//!   the peer of veth `v<index>` enslaved to `br0`;
//! - in every member namespace an nftables table `inet jepsen_harness` (and nothing else of
//!   ours) drops, on the input hook, every packet from the addresses in its set `cut`, and
//!   drops a fraction of packets from lossy peers in its chain `loss`.
//!
//! Nothing is created in the host's own namespace: no interface, address, route or nftables
//! table there is touched. The subnet exists only inside the run's namespaces, so it cannot
//! clash with the host's networks, and runs never share a namespace or bridge.
//!
//! Packet-level cuts differ from the proxy's frame-level cuts in one way: a TCP connection
//! needs both directions, so a one-way cut `a -> b` also stops TCP from `b` to `a` (b's
//! segments arrive but a's acknowledgements do not). Datagrams from `b` to `a` still pass.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use nix::libc;
use node::raft::NodeId;

use crate::partition::Grudge;

/// The nftables table this module creates in each member namespace (and only there).
pub const NFT_TABLE: &str = "jepsen_harness";

/// Where `ip netns` keeps the namespaces it names.
const NETNS_DIR: &str = "/var/run/netns";

/// The last octet of the controller's address on the bridge.
const CONTROLLER_OCTET: u8 = 254;

/// Why a namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// An external command could not be started.
    #[error("cannot run `{command}`: {error}")]
    Spawn {
        command: String,
        error: std::io::Error,
    },
    /// An external command ran and failed; its stderr says why.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    /// The member is not in the cluster (or `from == to`).
    #[error("no member n{0} in the namespace cluster")]
    UnknownNode(NodeId),
    /// A link from a member to itself was named.
    #[error("no link from n{0} to itself")]
    SelfLink(NodeId),
    /// The cluster size is outside what one /24 can hold (1 to 250 members).
    #[error("a namespace cluster holds 1 to 250 distinct members, got {0}")]
    BadSize(usize),
    /// A fault this host cannot apply; nothing was changed.
    #[error("{what} is unsupported here: {reason}")]
    Unsupported { what: String, reason: String },
    /// Entering a namespace from a thread failed.
    #[error("entering namespace {ns}: {error}")]
    Setns { ns: String, error: std::io::Error },
    /// The cluster was already torn down.
    #[error("the namespace cluster was torn down")]
    TornDown,
}

/// Renders a command as a shell would show it, for error messages.
fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion (feeding `stdin` if given); its stdout on success, otherwise an
/// error naming the command and carrying its stderr.
fn run(mut cmd: Command, stdin: Option<&str>) -> Result<String, NetnsError> {
    let command = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|error| NetnsError::Spawn {
        command: command.clone(),
        error,
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error shows up as the command's failure below; the pipe closes on drop.
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|error| NetnsError::Spawn {
            command: command.clone(),
            error,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let stderr = if stdin.is_some() {
            format!("{stderr}\n--- input was:\n{}", stdin.unwrap_or_default())
        } else {
            stderr
        };
        Err(NetnsError::Command {
            command,
            status: out.status.to_string(),
            stderr,
        })
    }
}

fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let mut c = Command::new("ip");
    c.args(args);
    run(c, None)
}

/// `ip netns exec <ns> <program>`: the command prefix that runs a program in namespace `ns`.
fn in_ns(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// Runs `f` on a new thread that has first entered the network namespace named `ns`; sockets
/// `f` creates belong to that namespace for their whole life, whichever thread uses them
/// later.
fn run_in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    let path = format!("{NETNS_DIR}/{ns}");
    let file = std::fs::File::open(&path).map_err(|error| NetnsError::Setns {
        ns: ns.to_string(),
        error,
    })?;
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            // SAFETY: setns on the calling thread only, with a valid open descriptor; a
            // network namespace switch affects this (short-lived, scoped) thread alone.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(NetnsError::Setns {
                    ns: ns.to_string(),
                    error: std::io::Error::last_os_error(),
                });
            }
            drop(file);
            Ok(f())
        });
        match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The next run id of this process, `jh-<pid>-<k>`.
fn next_run_id() -> (String, u64) {
    let k = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
    (format!("jh-{}-{k}", std::process::id()), k)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Checks that this host can run a [`NetnsCluster`]: root, `ip` and `nft` on PATH, and that a
/// namespace with a veth link, a bridge and an nftables table can really be created (then
/// removes it). `Err` is a one-line reason, fit for `SKIPPED: <reason>` or a refusal.
pub fn available() -> Result<(), String> {
    if !is_root() {
        return Err("network namespaces need root (effective uid is not 0)".into());
    }
    for (tool, arg, pkg) in [("ip", "-V", "iproute2"), ("nft", "--version", "nftables")] {
        let mut c = Command::new(tool);
        c.arg(arg);
        run(c, None).map_err(|e| format!("`{tool}` is not usable (apt-get install {pkg}): {e}"))?;
    }
    let (run_id, _) = next_run_id();
    let a = format!("{run_id}-probe-a");
    let b = format!("{run_id}-probe-b");
    let probe = || -> Result<(), NetnsError> {
        ip(&["netns", "add", &a])?;
        ip(&["netns", "add", &b])?;
        ip(&["-n", &a, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n", &a, "link", "add", "v0", "type", "veth", "peer", "name", "eth0", "netns", &b,
        ])?;
        let mut c = in_ns(&b, "nft");
        c.args(["-f", "-"]);
        run(c, Some(&format!("table inet {NFT_TABLE} {{ }}\n")))?;
        Ok(())
    };
    let r = probe();
    // Best effort: a failure above may have left either namespace without the other.
    for ns in [&a, &b] {
        let _ = ip(&["netns", "del", ns]);
    }
    r.map_err(|e| format!("cannot build a test network namespace: {e}"))
}

/// Deletes namespaces left by earlier runs of this module whose process is gone (names
/// `jh-<pid>-...` with no live `<pid>`); returns the names deleted. Namespaces of live
/// processes (concurrent runs) are never touched. A leftover never breaks a new run anyway
/// (names are unique per run); this only frees the kernel objects.
pub fn remove_stale() -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return removed;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("jh-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive && ip(&["netns", "del", &name]).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// The fault state this module keeps; the kernel's rules are always rebuilt from it.
#[derive(Debug, Default)]
struct Faults {
    /// Directed links `(from, to)` whose packets `to` drops.
    cuts: BTreeSet<(NodeId, NodeId)>,
    /// Directed links with a loss probability in `(0, 1]`.
    loss: BTreeMap<(NodeId, NodeId), f64>,
    /// Directed links with a netem delay `(fixed ms, jitter ms)`.
    delay: BTreeMap<(NodeId, NodeId), (u32, u32)>,
    /// Members whose `eth0` carries our tc tree (so a rebuild must delete it first).
    tc_installed: BTreeSet<NodeId>,
}

/// `n` members, each in its own network namespace, on one bridge, with per-directed-pair
/// packet faults. Every namespace is deleted by [`NetnsCluster::teardown`] or on drop.
///
/// Processes started in the namespaces belong to the caller: kill them (by PID) before the
/// cluster is torn down, or the namespaces (not their names) live on until they exit.
#[derive(Debug)]
pub struct NetnsCluster {
    run_id: String,
    nodes: Vec<NodeId>,
    subnet: [u8; 2],
    faults: Mutex<Faults>,
    /// Namespaces created and not yet deleted (the bridge namespace first).
    created: Mutex<Vec<String>>,
}

impl NetnsCluster {
    /// Builds the namespaces of members `nodes` (distinct ids; member `nodes[k]` gets address
    /// `10.X.Y.<k+1>`), with loopback and `eth0` up, the bridge up, and an empty nftables
    /// table in each member namespace. On error everything created so far is removed.
    /// Names that already exist (a leftover of a crashed run with a reused PID) are skipped
    /// by moving on to the next run id.
    pub fn create(nodes: &[NodeId]) -> Result<NetnsCluster, NetnsError> {
        let distinct: BTreeSet<_> = nodes.iter().collect();
        if nodes.is_empty() || nodes.len() > 250 || distinct.len() != nodes.len() {
            return Err(NetnsError::BadSize(nodes.len()));
        }
        let mut last_err = None;
        for _ in 0..16 {
            let (run_id, k) = next_run_id();
            if std::path::Path::new(&format!("{NETNS_DIR}/{run_id}-br")).exists() {
                continue;
            }
            // The subnet only exists inside this run's namespaces; deriving it from the run
            // id just makes concurrent runs easy to tell apart in captures and logs.
            let pid = std::process::id() as u64;
            let h = pid.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let subnet = [(h % 254) as u8 + 1, ((h >> 8) % 256) as u8];
            let c = NetnsCluster {
                run_id,
                nodes: nodes.to_vec(),
                subnet,
                faults: Mutex::new(Faults::default()),
                created: Mutex::new(Vec::new()),
            };
            match c.build() {
                Ok(()) => return Ok(c),
                Err(e) => {
                    let exists = matches!(&e, NetnsError::Command { stderr, .. } if stderr.contains("exists"));
                    let _ = c.teardown();
                    if !exists {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or(NetnsError::TornDown))
    }

    /// As [`NetnsCluster::create`] for members `1..=n`.
    pub fn create_n(n: usize) -> Result<NetnsCluster, NetnsError> {
        Self::create(&(1..=n as NodeId).collect::<Vec<_>>())
    }

    fn add_ns(&self, name: &str) -> Result<(), NetnsError> {
        ip(&["netns", "add", name])?;
        self.created.lock().unwrap().push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn build(&self) -> Result<(), NetnsError> {
        let br = self.bridge_namespace();
        self.add_ns(&br)?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        let ctl = format!("{}/24", self.controller_addr());
        ip(&["-n", &br, "addr", "add", &ctl, "dev", "br0"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for (k, &id) in self.nodes.iter().enumerate() {
            let ns = self.namespace(id)?;
            self.add_ns(&ns)?;
            let v = format!("v{k}");
            ip(&[
                "-n", &br, "link", "add", &v, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["-n", &br, "link", "set", &v, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &v, "up"])?;
            let a = format!("{}/24", self.addr(id)?);
            ip(&["-n", &ns, "addr", "add", &a, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            self.sync_nft(id, &Faults::default())?;
        }
        Ok(())
    }

    /// The run id every name of this cluster starts with (`jh-<pid>-<k>`).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The members, in the order given to [`NetnsCluster::create`].
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    fn index(&self, id: NodeId) -> Result<usize, NetnsError> {
        self.nodes
            .iter()
            .position(|&n| n == id)
            .ok_or(NetnsError::UnknownNode(id))
    }

    /// Member `id`'s namespace name (`<run>-n<id>`).
    pub fn namespace(&self, id: NodeId) -> Result<String, NetnsError> {
        self.index(id)?;
        Ok(format!("{}-n{id}", self.run_id))
    }

    /// The bridge's namespace (`<run>-br`), where the controller address lives.
    pub fn bridge_namespace(&self) -> String {
        format!("{}-br", self.run_id)
    }

    /// Member `id`'s address (`10.X.Y.<index+1>`), reachable from every member and from the
    /// controller while no fault stands in the way.
    pub fn addr(&self, id: NodeId) -> Result<Ipv4Addr, NetnsError> {
        let k = self.index(id)?;
        Ok(Ipv4Addr::new(
            10,
            self.subnet[0],
            self.subnet[1],
            k as u8 + 1,
        ))
    }

    /// The controller's address on the bridge (`10.X.Y.254`); no fault ever drops its
    /// packets, so clients and probes run from here (see [`NetnsCluster::run_in_controller`]).
    pub fn controller_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], CONTROLLER_OCTET)
    }

    /// `ip netns exec <ns of id> <program>`: add arguments and spawn it (through
    /// [`crate::process::spawner`] for a long-lived process). `ip` enters the namespace and
    /// then execs `program`, so the child's PID is `program`'s own (kill it by that PID) and
    /// `PR_SET_PDEATHSIG` set by the spawner survives the exec.
    pub fn command(&self, id: NodeId, program: &str) -> Result<Command, NetnsError> {
        Ok(in_ns(&self.namespace(id)?, program))
    }

    /// The prefix [`NetnsCluster::command`] uses, as words (`["ip", "netns", "exec", ns]`), for
    /// launchers that build their own command lines.
    pub fn exec_prefix(&self, id: NodeId) -> Result<Vec<String>, NetnsError> {
        let ns = self.namespace(id)?;
        Ok(["ip", "netns", "exec", &ns]
            .iter()
            .map(|s| s.to_string())
            .collect())
    }

    /// Runs `f` on a new thread inside member `id`'s namespace and returns its result.
    /// Sockets created in `f` stay in that namespace (use them from any thread afterwards).
    /// Do not start processes from `f` except through [`NetnsCluster::command`]: the first
    /// use of the process-wide spawner would pin its thread to this namespace.
    pub fn run_in<T: Send>(
        &self,
        id: NodeId,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, NetnsError> {
        run_in_ns(&self.namespace(id)?, f)
    }

    /// As [`NetnsCluster::run_in`], in the bridge namespace (source address
    /// [`NetnsCluster::controller_addr`], never cut): where clients of the members run.
    pub fn run_in_controller<T: Send>(
        &self,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, NetnsError> {
        run_in_ns(&self.bridge_namespace(), f)
    }

    fn check_link(&self, from: NodeId, to: NodeId) -> Result<(), NetnsError> {
        self.index(from)?;
        self.index(to)?;
        if from == to {
            return Err(NetnsError::SelfLink(from));
        }
        Ok(())
    }

    /// Rewrites member `to`'s table from `f` in one nftables transaction: the set of cut
    /// senders and the loss rules. The chain hooks input at raw priority, before conntrack,
    /// with no state match, so packets of established connections are dropped too.
    fn sync_nft(&self, to: NodeId, f: &Faults) -> Result<(), NetnsError> {
        let t = NFT_TABLE;
        // Rules inside a `table { chain { ... } }` block are appended on every load, so the
        // block only declares; every chain and the set are flushed and refilled below.
        let mut s = format!(
            "table inet {t} {{\n  set cut {{ type ipv4_addr; }}\n  chain loss {{ }}\n  \
             chain input {{ type filter hook input priority raw; policy accept; }}\n}}\n\
             flush chain inet {t} input\nflush set inet {t} cut\nflush chain inet {t} loss\n\
             add rule inet {t} input ip saddr @cut drop\nadd rule inet {t} input jump loss\n"
        );
        let cut: Vec<String> = f
            .cuts
            .iter()
            .filter(|(_, t2)| *t2 == to)
            .map(|&(from, _)| self.addr(from).map(|a| a.to_string()))
            .collect::<Result<_, _>>()?;
        if !cut.is_empty() {
            s.push_str(&format!(
                "add element inet {t} cut {{ {} }}\n",
                cut.join(", ")
            ));
        }
        for (&(from, _), &p) in f.loss.iter().filter(|((_, t2), _)| *t2 == to) {
            // numgen draws uniformly in [0, 1e6): drop when below p * 1e6.
            let below = (p.clamp(0.0, 1.0) * 1_000_000.0).round() as u64;
            // numgen's result cannot reach 1e6, so p = 1 is an unconditional drop.
            let draw = if below >= 1_000_000 {
                String::new()
            } else {
                format!(" numgen random mod 1000000 < {below}")
            };
            s.push_str(&format!(
                "add rule inet {t} loss ip saddr {}{draw} drop\n",
                self.addr(from)?
            ));
        }
        let mut c = in_ns(&self.namespace(to)?, "nft");
        c.args(["-f", "-"]);
        run(c, Some(&s)).map(drop)
    }

    /// Rebuilds member `from`'s egress tc tree from `f`: an HTB root whose default class
    /// passes traffic untouched, and per delayed destination a class with a netem qdisc and
    /// a u32 filter on the destination address. Delay is applied where packets leave, so it
    /// acts on exactly one direction.
    fn sync_tc(&self, from: NodeId, f: &mut Faults) -> Result<(), NetnsError> {
        let ns = self.namespace(from)?;
        if f.tc_installed.remove(&from) {
            let mut c = in_ns(&ns, "tc");
            c.args(["qdisc", "del", "dev", "eth0", "root"]);
            run(c, None)?;
        }
        let delays: Vec<_> = f
            .delay
            .iter()
            .filter(|((f2, _), _)| *f2 == from)
            .map(|(&(_, to), &d)| (to, d))
            .collect();
        if delays.is_empty() {
            return Ok(());
        }
        let mut b = String::from(
            "qdisc add dev eth0 root handle 1: htb default 1\n\
             class add dev eth0 parent 1: classid 1:1 htb rate 100gbit\n",
        );
        for (to, (ms, jitter)) in delays {
            let k = self.index(to)? + 10;
            let jitter = if jitter > 0 {
                format!(" {jitter}ms")
            } else {
                String::new()
            };
            b.push_str(&format!(
                "class add dev eth0 parent 1: classid 1:{k:x} htb rate 100gbit\n\
                 qdisc add dev eth0 parent 1:{k:x} handle {k:x}: netem delay {ms}ms{jitter}\n\
                 filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst {}/32 flowid 1:{k:x}\n",
                self.addr(to)?
            ));
        }
        let mut c = in_ns(&ns, "tc");
        c.args(["-batch", "-"]);
        f.tc_installed.insert(from);
        run(c, Some(&b)).map(drop)
    }

    fn faults(&self) -> Result<std::sync::MutexGuard<'_, Faults>, NetnsError> {
        if self.created.lock().unwrap().is_empty() {
            return Err(NetnsError::TornDown);
        }
        Ok(self.faults.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Drops every packet `from` sends to `to` (received by `to`), established connections
    /// included; `to -> from` is untouched. Takes effect when this returns.
    pub fn cut(&self, from: NodeId, to: NodeId) -> Result<(), NetnsError> {
        self.check_link(from, to)?;
        let mut f = self.faults()?;
        f.cuts.insert((from, to));
        self.sync_nft(to, &f)
    }

    /// Undoes [`NetnsCluster::cut`]`(from, to)` (a link not cut is left alone).
    pub fn heal(&self, from: NodeId, to: NodeId) -> Result<(), NetnsError> {
        self.check_link(from, to)?;
        let mut f = self.faults()?;
        f.cuts.remove(&(from, to));
        self.sync_nft(to, &f)
    }

    /// True while `from -> to` is cut.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cuts
            .contains(&(from, to))
    }

    /// Cuts every link the grudge names (`from -> to` when `to` holds a grudge against
    /// `from`), one nftables transaction per receiving member. Other links are left as they
    /// are. The grudge is checked first, so on [`NetnsError::UnknownNode`] nothing changed.
    pub fn apply_grudge(&self, grudge: &Grudge) -> Result<(), NetnsError> {
        for (from, to) in grudge.cut_links() {
            self.check_link(from, to)?;
        }
        let mut f = self.faults()?;
        f.cuts.extend(grudge.cut_links());
        let receivers: BTreeSet<NodeId> = grudge.cut_links().map(|(_, to)| to).collect();
        for to in receivers {
            self.sync_nft(to, &f)?;
        }
        Ok(())
    }

    /// Every cut, loss and delay removed, on every member. Tries every member even when one
    /// fails, and reports the first failure.
    pub fn heal_all(&self) -> Result<(), NetnsError> {
        let mut f = self.faults()?;
        f.cuts.clear();
        f.loss.clear();
        f.delay.clear();
        let mut first = None;
        for &id in &self.nodes {
            let r = self
                .sync_nft(id, &f)
                .and_then(|()| self.sync_tc(id, &mut f));
            if let (Err(e), None) = (r, &first) {
                first = Some(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Drops each packet `from` sends to `to` independently with probability `p` (clamped to
    /// `[0, 1]`; 0 removes the loss), drawn by nftables' `numgen random` at `to`. Applies to
    /// established connections too.
    pub fn set_loss(&self, from: NodeId, to: NodeId, p: f64) -> Result<(), NetnsError> {
        self.check_link(from, to)?;
        let mut f = self.faults()?;
        if p > 0.0 {
            f.loss.insert((from, to), p.min(1.0));
        } else {
            f.loss.remove(&(from, to));
        }
        self.sync_nft(to, &f)
    }

    /// Delays every packet `from` sends to `to` by `ms` plus up to `jitter_ms` (tc netem on
    /// `from`'s `eth0`, filtered by destination); `ms == 0 && jitter_ms == 0` removes it.
    /// Returns [`NetnsError::Unsupported`] when the kernel has no netem qdisc, and then
    /// leaves `from`'s other delays as they were.
    pub fn set_delay(
        &self,
        from: NodeId,
        to: NodeId,
        ms: u32,
        jitter_ms: u32,
    ) -> Result<(), NetnsError> {
        self.check_link(from, to)?;
        let mut f = self.faults()?;
        let before = f.delay.get(&(from, to)).copied();
        if ms == 0 && jitter_ms == 0 {
            f.delay.remove(&(from, to));
        } else {
            f.delay.insert((from, to), (ms, jitter_ms));
        }
        match self.sync_tc(from, &mut f) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Put the previous state back so the kernel and our record agree again.
                match before {
                    Some(d) => f.delay.insert((from, to), d),
                    None => f.delay.remove(&(from, to)),
                };
                let _ = self.sync_tc(from, &mut f);
                match e {
                    NetnsError::Command { stderr, .. }
                        if stderr.contains("qdisc kind is unknown") =>
                    {
                        Err(NetnsError::Unsupported {
                            what: format!("delay n{from} -> n{to}"),
                            reason: "this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM); \
                                     tc said: Specified qdisc kind is unknown"
                                .into(),
                        })
                    }
                    e => Err(e),
                }
            }
        }
    }

    /// Deletes every namespace of the cluster (members and bridge; their veth links and
    /// rules go with them). Idempotent; tries every namespace and reports the first failure.
    /// Afterwards every operation but this returns [`NetnsError::TornDown`].
    pub fn teardown(&self) -> Result<(), NetnsError> {
        let names = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        let mut first = None;
        // Members first, bridge last: a member's veth dies with its namespace.
        for ns in names.iter().rev() {
            if let (Err(e), None) = (ip(&["netns", "del", ns]), &first) {
                first = Some(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for NetnsCluster {
    /// Deletes every namespace still present; a failure is logged, not raised.
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!("tearing down namespaces of {}: {e}", self.run_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_unique_and_carry_the_pid() {
        let (a, _) = next_run_id();
        let (b, _) = next_run_id();
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("jh-{}-", std::process::id())));
    }

    #[test]
    fn bad_sizes_are_refused_before_touching_anything() {
        assert!(matches!(
            NetnsCluster::create(&[]),
            Err(NetnsError::BadSize(0))
        ));
        assert!(matches!(
            NetnsCluster::create(&[1, 1]),
            Err(NetnsError::BadSize(2))
        ));
    }

    #[test]
    fn failing_commands_name_the_command_and_its_stderr() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo nope >&2; exit 3"]);
        let e = run(c, None).unwrap_err().to_string();
        assert!(e.contains("sh -c"), "{e}");
        assert!(e.contains("nope"), "{e}");
    }
}

//! A `harness test` that is interrupted (SIGINT), panics or is killed (SIGKILL) leaves no node
//! process behind. Node PIDs are read from the node logs (the supervisor writes `started pid N`
//! at each start), or for SIGKILL from /proc (the harness's children), and checked after the
//! harness has exited.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn start_harness(results: &Path, panic: bool) -> Child {
    start_harness_with(results, panic, "pause")
}

fn start_harness_with(results: &Path, panic: bool, nemesis: &str) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.args([
        "test",
        "--nodes",
        "3",
        "--time-limit",
        "60",
        "--nemesis",
        nemesis,
        "--nemesis-interval",
        "1",
        "--seed",
        "5",
        "--quiet",
        "--results-dir",
    ])
    .arg(results)
    .stdout(Stdio::null())
    .stderr(Stdio::from(
        std::fs::File::create(stderr_path(results)).expect("harness stderr file"),
    ));
    if panic {
        cmd.env("HARNESS_TEST_PANIC_AFTER_START", "1");
    }
    cmd.spawn().expect("start harness")
}

/// Where the harness's stderr goes: beside the results, for failure messages.
fn stderr_path(results: &Path) -> PathBuf {
    results.join("harness.stderr")
}

/// What the harness printed and which node logs exist, for a failure message.
fn diagnostics(results: &Path) -> String {
    let stderr = std::fs::read_to_string(stderr_path(results)).unwrap_or_default();
    let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
    let mut s = String::from("\n--- harness stderr (last 30 lines) ---\n");
    for l in tail.into_iter().rev() {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(&format!("--- node pids found: {:?}\n", node_pids(results)));
    s
}

/// PIDs from `=== nemesis: started pid N` lines of every node log under `results`.
fn node_pids(results: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    let mut stack: Vec<PathBuf> = vec![results.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        seen += 1;
        if seen > 10_000 {
            break;
        }
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "node.log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                for l in text.lines() {
                    if let Some(rest) = l.strip_prefix("=== nemesis: started pid ") {
                        if let Ok(pid) = rest.trim().parse() {
                            pids.push(pid);
                        }
                    }
                }
            }
        }
    }
    pids
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); treat /proc state Z as gone.
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.contains(") Z ")
}

fn wait_for_nodes(results: &Path, harness: &mut Child) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let pids = node_pids(results);
        if pids.len() >= 3 {
            // Let the cluster come up (and the panic hook, if set, fire).
            return pids;
        }
        if let Some(status) = harness.try_wait().unwrap() {
            // It may have started the last node and exited (the panic hook) between the
            // read above and now: read once more before calling that early.
            let pids = node_pids(results);
            assert!(
                pids.len() >= 3,
                "harness exited early ({status}) with node pids {pids:?}{}",
                diagnostics(results)
            );
            return pids;
        }
        // Generous: three harnesses start at once here, beside other tests, on 2 cores.
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nodes never started within 60 s{}",
            diagnostics(results)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(harness: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = harness.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = harness.kill();
            panic!("harness did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_all_gone(pids: &[i32]) {
    // Orphans would be reparented and keep running; give the kernel a moment to reap.
    let start = Instant::now();
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() {
            return;
        }
        if start.elapsed() > Duration::from_secs(5) {
            for &p in &left {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            panic!("node processes left behind: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigint_leaves_no_node_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start_harness(dir.path(), false);
    let pids = wait_for_nodes(dir.path(), &mut h);
    std::thread::sleep(Duration::from_secs(3));
    kill(Pid::from_raw(h.id() as i32), Signal::SIGINT).unwrap();
    wait_exit(&mut h, Duration::from_secs(60));
    assert_all_gone(&node_pids(dir.path()));
    assert!(!pids.is_empty());
}

#[test]
fn panic_leaves_no_node_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start_harness(dir.path(), true);
    wait_for_nodes(dir.path(), &mut h);
    let status = wait_exit(&mut h, Duration::from_secs(60));
    assert!(
        !status.success(),
        "the harness should have failed on the panic"
    );
    assert_all_gone(&node_pids(dir.path()));
}

/// The PIDs whose parent is `parent`, from /proc/*/stat (bounded scan).
fn children_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten().take(100_000) {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // After the command name in parentheses: state, then the parent's PID.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// True when `pid` is a node of this test that has exec'd: its command line carries the flag
/// the harness gives nodes and a data directory under `results` (so neither a fork of the
/// harness that has not exec'd yet nor a stranger that reused a PID).
fn is_ours(pid: i32, results: &Path) -> bool {
    let Ok(c) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<String> = c
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let under = results.display().to_string();
    args.iter().any(|a| a == "--exit-with-parent") && args.iter().any(|a| a.starts_with(&under))
}

#[test]
fn sigkill_leaves_no_node_behind() {
    let dir = tempfile::tempdir().unwrap();
    // The kill nemesis restarts nodes from short-lived blocking threads: those children must
    // survive their thread and still die with the harness.
    let mut h = start_harness_with(dir.path(), false, "kill");
    let hpid = h.id() as i32;
    let start = Instant::now();
    // Up, and at least one node restarted by the nemesis (a fourth `started pid` line).
    let nodes = loop {
        let kids: Vec<i32> = children_of(hpid)
            .into_iter()
            .filter(|&p| is_ours(p, dir.path()))
            .collect();
        if kids.len() >= 3 && node_pids(dir.path()).len() >= 4 {
            break kids;
        }
        if h.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(30) {
            let _ = h.kill();
            let _ = h.wait();
            for p in children_of(hpid) {
                if is_ours(p, dir.path()) {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
            }
            panic!("the harness never had 3 node children and one restart");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    kill(Pid::from_raw(hpid), Signal::SIGKILL).unwrap();
    let _ = h.wait();
    let killed_at = Instant::now();
    // Everything the harness ever started that is still one of ours (a PID from the logs may
    // belong to a stranger by now), in case one was restarting at the moment.
    let mut all = nodes.clone();
    all.extend(node_pids(dir.path()));
    all.sort_unstable();
    all.dedup();
    let left = loop {
        let left: Vec<i32> = all
            .iter()
            .copied()
            .filter(|&p| alive(p) && is_ours(p, dir.path()))
            .collect();
        if left.is_empty() || killed_at.elapsed() > Duration::from_secs(2) {
            break left;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "node children {nodes:?}: {} left {:?} after SIGKILL of the harness",
        left.len(),
        killed_at.elapsed()
    );
    for &p in &left {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    assert!(
        left.is_empty(),
        "nodes outlived the harness by 2 s: {left:?}"
    );
}

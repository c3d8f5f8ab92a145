//! A `harness test` that is interrupted (SIGINT) or panics leaves no node process behind.
//! Node PIDs are read from the node logs (the supervisor writes `started pid N` at each start)
//! and checked with kill(pid, 0) after the harness has exited.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn start_harness(results: &Path, panic: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.args([
        "test",
        "--nodes",
        "3",
        "--time-limit",
        "60",
        "--nemesis",
        "pause",
        "--nemesis-interval",
        "1",
        "--seed",
        "5",
        "--quiet",
        "--results-dir",
    ])
    .arg(results)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if panic {
        cmd.env("HARNESS_TEST_PANIC_AFTER_START", "1");
    }
    cmd.spawn().expect("start harness")
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
        assert!(
            harness.try_wait().unwrap().is_none(),
            "harness exited early"
        );
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nodes never started"
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

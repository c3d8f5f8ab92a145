//! No orphans: a harness process that is killed by SIGINT (or SIGTERM) or that panics
//! leaves no child process behind, checked by PID.
//!
//! The "harness" is this test binary re-run as a helper (`orphan_helper`, active only when
//! the helper environment variable is set): it starts `sleep 1000` children through a
//! `Supervisor`, pauses one of them, writes their PIDs to a file, then waits to be signalled
//! or panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use nemesis::process::{install_signal_handlers, ProcessSpec, Supervisor};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const MODE_ENV: &str = "NEMESIS_ORPHAN_HELPER_MODE";
const DIR_ENV: &str = "NEMESIS_ORPHAN_HELPER_DIR";
const CHILDREN: usize = 3;

/// The helper: does nothing in a normal test run.
#[test]
fn orphan_helper() {
    let (Ok(mode), Ok(dir)) = (std::env::var(MODE_ENV), std::env::var(DIR_ENV)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    install_signal_handlers().unwrap();
    let sup = Supervisor::new();
    let mut pids = Vec::new();
    for i in 0..CHILDREN {
        let spec = ProcessSpec::new("sleep", ["1000"], dir.join(format!("n{i}.log")));
        pids.push(sup.spawn(&format!("n{i}"), spec).unwrap());
    }
    // A stopped child must not survive either.
    sup.pause("n0").unwrap();
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    let tmp = dir.join("pids.tmp");
    std::fs::write(&tmp, list.join("\n")).unwrap();
    std::fs::rename(&tmp, dir.join("pids")).unwrap();
    match mode.as_str() {
        "panic" => panic!("the helper panics on purpose"),
        _ => {
            // Wait to be signalled; bounded so a broken test cannot leave it running.
            std::thread::sleep(Duration::from_secs(30));
            eprintln!("helper was never signalled");
            std::process::exit(3); // skips Drop: the parent would then see orphans
        }
    }
}

/// True when no live process has this PID (zombies count as gone: they run nothing).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state == 'Z' || state == 'X'),
    }
}

fn is_our_sleep(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.starts_with(b"sleep\0"))
        .unwrap_or(false)
}

/// Kills, by PID, whatever the helper left behind, so a failing test still cleans up.
struct Cleanup {
    pids: Vec<u32>,
    helper: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(h) = self.helper.as_mut() {
            let _ = h.kill();
            let _ = h.wait();
        }
        for &pid in &self.pids {
            if !gone(pid) && is_our_sleep(pid) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}

fn read_pids(dir: &Path, helper: &mut Child) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = std::fs::read_to_string(dir.join("pids")) {
            return s.lines().map(|l| l.parse().unwrap()).collect();
        }
        if let Ok(Some(st)) = helper.try_wait() {
            panic!("helper exited before starting its children: {st:?}");
        }
        assert!(Instant::now() < deadline, "helper never wrote its PIDs");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_helper(helper: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = helper.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "helper did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the helper in `mode`, signals it with `signal` if given, and returns its exit status
/// after checking that every child it started is gone.
fn run(mode: &str, signal: Option<Signal>) -> ExitStatus {
    let dir = tempfile::tempdir().unwrap();
    let helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "orphan_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MODE_ENV, mode)
        .env(DIR_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut cleanup = Cleanup {
        pids: Vec::new(),
        helper: Some(helper),
    };
    let helper = cleanup.helper.as_mut().unwrap();
    let pids = read_pids(dir.path(), helper);
    cleanup.pids = pids.clone();
    assert_eq!(pids.len(), CHILDREN);
    if let Some(sig) = signal {
        for &pid in &pids {
            assert!(!gone(pid), "child {pid} not running before the signal");
        }
        kill(Pid::from_raw(helper.id() as i32), sig).unwrap();
    }
    let status = wait_helper(helper);
    cleanup.helper = None;
    // The children are killed and reaped before the helper exits, so no wait is needed; a
    // short bounded grace period only guards against a slow /proc.
    let deadline = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|&p| !gone(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left: Vec<u32> = pids.iter().copied().filter(|&p| !gone(p)).collect();
    assert!(
        left.is_empty(),
        "mode {mode}: children left behind: {left:?}"
    );
    status
}

#[test]
fn sigint_leaves_no_child_behind() {
    let st = run("wait", Some(Signal::SIGINT));
    assert_eq!(st.code(), Some(128 + Signal::SIGINT as i32), "{st:?}");
}

#[test]
fn sigterm_leaves_no_child_behind() {
    let st = run("wait", Some(Signal::SIGTERM));
    assert_eq!(st.code(), Some(128 + Signal::SIGTERM as i32), "{st:?}");
}

#[test]
fn panic_leaves_no_child_behind() {
    let st = run("panic", None);
    assert!(!st.success(), "the panicking helper must fail: {st:?}");
}

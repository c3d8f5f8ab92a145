//! `--exit-with-parent`: a node whose parent process dies exits by itself; a node started
//! without the flag stays up.
//!
//! Each node is started by a shell that then becomes `sleep` (same PID, so it stays the node's
//! parent); the test kills both parents with SIGKILL at once, waits for the flagged node to be
//! gone, and checks the other one still runs (it had the same time to notice).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A shell (which becomes `sleep 1000`) running one single-node `node` in the background;
/// returns the shell and the node's PID.
fn node_under_shell(dir: &std::path::Path, name: &str, port: u16, flag: bool) -> (Child, i32) {
    let mut args = vec![
        "--id".to_string(),
        "n1".into(),
        "--peer-listen".into(),
        format!("127.0.0.1:{}", common::free_port()),
        "--client-listen".into(),
        format!("127.0.0.1:{port}"),
        "--data-dir".into(),
        dir.join(name).display().to_string(),
    ];
    if flag {
        args.push("--exit-with-parent".into());
    }
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut sh = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" "$@" >/dev/null 2>&1 </dev/null & echo $!; exec sleep 1000"#)
        .arg(env!("CARGO_BIN_EXE_node"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(sh.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = line.trim().parse().unwrap_or_else(|_| {
        let _ = sh.kill();
        panic!("no node PID from the shell: {line:?}")
    });
    (sh, pid)
}

/// True while `pid` runs (a zombie runs nothing: it counts as gone).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => !s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|c| c == 'Z' || c == 'X'),
    }
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_node_with_exit_with_parent_exits_when_its_parent_dies_and_one_without_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (flagged_port, plain_port) = (common::free_port(), common::free_port());
    let (mut sh1, flagged) = node_under_shell(dir.path(), "flagged", flagged_port, true);
    let (mut sh2, plain) = node_under_shell(dir.path(), "plain", plain_port, false);
    let cleanup = |sh1: &mut Child, sh2: &mut Child| {
        for p in [flagged, plain] {
            if alive(p) {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        for sh in [sh1, sh2] {
            let _ = sh.kill();
            let _ = sh.wait();
        }
    };
    // The client port accepts only after the parent watch has started.
    let up = wait_until(Duration::from_secs(20), || {
        [flagged_port, plain_port]
            .iter()
            .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
    });
    if !up {
        cleanup(&mut sh1, &mut sh2);
        panic!("the nodes never accepted connections");
    }
    for sh in [&mut sh1, &mut sh2] {
        kill(Pid::from_raw(sh.id() as i32), Signal::SIGKILL).unwrap();
        let _ = sh.wait();
    }
    let exited = wait_until(Duration::from_secs(3), || !alive(flagged));
    let plain_alive = alive(plain);
    cleanup(&mut sh1, &mut sh2);
    assert!(
        exited,
        "the node with --exit-with-parent outlived its parent by 3 s"
    );
    assert!(
        plain_alive,
        "the node without --exit-with-parent exited with its parent"
    );
}

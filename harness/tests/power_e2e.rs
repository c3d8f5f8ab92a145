//! `--nemesis power` end to end: the lazy filesystem under every node catches a node that
//! never fsyncs, every mount is gone when the run ends, and a harness killed with SIGKILL
//! leaves a mount that the next start removes. These need FUSE (`/dev/fuse`, root or
//! `fusermount3`): where it is missing they fail saying so, never pass silently.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

fn need_fuse() {
    if let Err(e) = lazyfs::mounts::check_available() {
        panic!("this test needs FUSE and cannot run here: {e}");
    }
}

#[test]
fn skip_fsync_is_caught_by_a_power_loss_and_every_mount_is_gone_after() {
    need_fuse();
    let seed = 1;
    let t = tempfile::tempdir().unwrap();
    let out = common::harness_test(
        common::harness(),
        &[
            "--nodes",
            "3",
            "--workload",
            "set",
            "--read-mode",
            "log",
            "--nemesis",
            "power",
            "--nemesis-interval",
            "1.5",
            "--time-limit",
            "5",
            "--recovery-time",
            "3",
            "--bug",
            "skip-fsync",
        ],
        &seed.to_string(),
        t.path(),
    );
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    assert_eq!(out.code, Some(1), "seed {seed}: {stdout}\n{stderr}");
    assert!(stdout.contains("(lost)"), "seed {seed}: {stdout}");
    assert!(
        lazyfs::mounts::find(t.path()).is_empty(),
        "seed {seed}: a mount is left"
    );
    let run = common::latest(t.path());
    let power: Vec<_> = common::history(&run)
        .into_iter()
        .filter(|e| e["process"] == "nemesis" && e["value"]["fault"] == "power")
        .collect();
    let first = power.first().expect("a power fault was applied");
    assert_eq!(first["value"]["target"], "all", "seed {seed}: {first}");
    let lost: u64 = first["value"]["discarded"]
        .as_object()
        .unwrap()
        .values()
        .map(|d| d["bytes"].as_u64().unwrap())
        .sum();
    assert!(
        lost > 0,
        "seed {seed}: the never-fsynced log was discarded: {first}"
    );
    // The durable state is kept beside the (now unmounted, empty) data directory.
    assert!(run.join("nodes/n1/durable").is_dir());
}

#[test]
fn a_mount_left_by_a_killed_harness_is_removed_at_the_next_start() {
    need_fuse();
    let t = tempfile::tempdir().unwrap();
    let mut child = common::harness()
        .args([
            "test",
            "--nodes",
            "1",
            "--nemesis",
            "power",
            "--time-limit",
            "30",
            "--seed",
            "3",
            "--results-dir",
        ])
        .arg(t.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while lazyfs::mounts::find(t.path()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no mount appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGKILL by PID: no destructor runs, the mount stays (its node exits with its parent).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert_eq!(lazyfs::mounts::find(t.path()).len(), 1);
    let out = common::harness()
        .args([
            "test",
            "--nodes",
            "1",
            "--time-limit",
            "1",
            "--seed",
            "3",
            "--results-dir",
        ])
        .arg(t.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unmounted a stale lazy filesystem"),
        "{stderr}"
    );
    assert!(lazyfs::mounts::find(t.path()).is_empty());
}

#[test]
fn ctrl_c_and_a_panic_unmount_every_lazy_filesystem() {
    need_fuse();
    let t = tempfile::tempdir().unwrap();
    // Ctrl-C (SIGINT by PID): the run heals, stops its nodes and unmounts.
    let mut child = common::harness()
        .args([
            "test",
            "--nodes",
            "3",
            "--nemesis",
            "power",
            "--time-limit",
            "30",
            "--seed",
            "4",
            "--results-dir",
        ])
        .arg(t.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while lazyfs::mounts::find(t.path()).len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no mounts appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "an interrupted run is unknown");
    assert!(
        lazyfs::mounts::find(t.path()).is_empty(),
        "a mount is left after Ctrl-C"
    );

    // A panic with the cluster running: unwinding drops the mounts.
    let out = common::harness()
        .env("HARNESS_TEST_PANIC_AFTER_START", "1")
        .args([
            "test",
            "--nodes",
            "1",
            "--nemesis",
            "power",
            "--seed",
            "4",
            "--results-dir",
        ])
        .arg(t.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HARNESS_TEST_PANIC_AFTER_START"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        lazyfs::mounts::find(t.path()).is_empty(),
        "a mount is left after a panic"
    );
}

#[test]
fn without_fuse_power_and_slow_disk_exit_254_with_one_line() {
    let t = tempfile::tempdir().unwrap();
    for nemesis in ["power", "kill,slow-disk"] {
        let out = common::harness()
            .env("LAZYFS_TEST_DEV_FUSE", t.path().join("no-such-device"))
            .args([
                "test",
                "--nodes",
                "1",
                "--time-limit",
                "1",
                "--nemesis",
                nemesis,
            ])
            .arg("--results-dir")
            .arg(t.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "{nemesis}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{nemesis}: {stderr}");
        assert!(
            stderr.contains("FUSE is not available"),
            "{nemesis}: {stderr}"
        );
        assert!(!t.path().join("latest").exists(), "{nemesis}: nothing ran");
    }
}

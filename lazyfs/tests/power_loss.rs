//! End-to-end tests of the lazy filesystem through a real FUSE mount. They need `/dev/fuse`
//! and root (or `fusermount3`): where FUSE is missing they fail saying so, never pass.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use lazyfs::Mount;
use rand::SeedableRng;

fn mount(t: &Path) -> Mount {
    if let Err(e) = lazyfs::mounts::check_available() {
        panic!("this test needs FUSE and cannot run here: {e}");
    }
    Mount::new(&t.join("backing"), &t.join("mnt"), &t.join("trash"), 1).expect("mount")
}

fn sync_dir(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

#[test]
fn fsynced_file_survives_power_loss_unsynced_does_not() {
    let t = tempfile::tempdir().unwrap();
    let m = mount(t.path());
    let mnt = m.mountpoint().to_path_buf();
    let mut a = File::create(mnt.join("synced")).unwrap();
    a.write_all(b"durable").unwrap();
    a.sync_all().unwrap();
    sync_dir(&mnt); // reaches fsyncdir: the create is durable
    let mut b = File::create(mnt.join("unsynced")).unwrap();
    b.write_all(b"lost").unwrap();
    a.write_all(b" and more").unwrap(); // not fsynced
    drop((a, b));
    assert_eq!(
        std::fs::read(mnt.join("synced")).unwrap(),
        b"durable and more"
    );

    let d = m.controller().power_loss(None).unwrap();
    assert_eq!(std::fs::read(mnt.join("synced")).unwrap(), b"durable");
    assert!(
        !mnt.join("unsynced").exists(),
        "a create without a directory fsync is undone"
    );
    assert_eq!(d.bytes, 9 + 4, "{d:?}");
    assert_eq!(d.entries, 1, "{d:?}");
    assert!(m.controller().all_durable());
    m.unmount().unwrap();
    assert_eq!(
        std::fs::read(t.path().join("backing/synced")).unwrap(),
        b"durable"
    );
    assert!(lazyfs::mounts::find(t.path()).is_empty());
}

#[test]
fn file_fsync_without_dir_fsync_loses_the_new_file() {
    let t = tempfile::tempdir().unwrap();
    let m = mount(t.path());
    let mnt = m.mountpoint().to_path_buf();
    let mut f = File::create(mnt.join("seg-1")).unwrap();
    f.write_all(b"entries").unwrap();
    f.sync_data().unwrap();
    drop(f);
    m.controller().power_loss(None).unwrap();
    assert!(!mnt.join("seg-1").exists());
}

#[test]
fn rename_without_directory_fsync_is_undone() {
    let t = tempfile::tempdir().unwrap();
    let m = mount(t.path());
    let mnt = m.mountpoint().to_path_buf();
    std::fs::write(mnt.join("state"), b"old").unwrap();
    File::open(mnt.join("state")).unwrap().sync_all().unwrap();
    let mut tmp = File::create(mnt.join("state.tmp")).unwrap();
    tmp.write_all(b"new").unwrap();
    tmp.sync_all().unwrap();
    sync_dir(&mnt); // old state and the temp file are durable
    std::fs::rename(mnt.join("state.tmp"), mnt.join("state")).unwrap();
    assert_eq!(std::fs::read(mnt.join("state")).unwrap(), b"new");
    m.controller().power_loss(None).unwrap();
    assert_eq!(std::fs::read(mnt.join("state")).unwrap(), b"old");
    assert_eq!(std::fs::read(mnt.join("state.tmp")).unwrap(), b"new");

    // The same rename followed by a directory fsync stays.
    std::fs::rename(mnt.join("state.tmp"), mnt.join("state")).unwrap();
    sync_dir(&mnt);
    m.controller().power_loss(None).unwrap();
    assert_eq!(std::fs::read(mnt.join("state")).unwrap(), b"new");
    assert!(!mnt.join("state.tmp").exists());
}

#[test]
fn torn_write_keeps_a_prefix() {
    let seed = 7u64;
    let t = tempfile::tempdir().unwrap();
    let m = mount(t.path());
    let mnt = m.mountpoint().to_path_buf();
    let tail: Vec<u8> = (0..200u8).collect();
    let mut torn = 0;
    for round in 0..5u64 {
        let wal = mnt.join(format!("wal-{round}"));
        let mut f = File::create(&wal).unwrap();
        f.write_all(b"HEAD").unwrap();
        f.sync_all().unwrap();
        sync_dir(&mnt);
        f.write_all(&tail).unwrap();
        drop(f);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed + round);
        let d = m.controller().power_loss(Some(&mut rng)).unwrap();
        let got = std::fs::read(&wal).unwrap();
        assert!(got.starts_with(b"HEAD"), "seed {}", seed + round);
        let kept = &got[4..];
        assert!(
            kept.len() < tail.len(),
            "seed {}: a strict prefix",
            seed + round
        );
        assert_eq!(kept, &tail[..kept.len()], "seed {}", seed + round);
        assert_eq!(d.torn_bytes_kept as usize, kept.len());
        torn += kept.len();
    }
    assert!(torn > 0, "seed {seed}: some round kept a non-empty prefix");
}

#[test]
fn slow_disk_delays_fsync() {
    let t = tempfile::tempdir().unwrap();
    let m = mount(t.path());
    let mnt = m.mountpoint().to_path_buf();
    let mut f = File::create(mnt.join("x")).unwrap();
    m.controller().set_slow(Some(lazyfs::SlowDisk {
        min_ms: 50,
        max_ms: 60,
    }));
    let t0 = std::time::Instant::now();
    f.write_all(b"x").unwrap();
    f.sync_all().unwrap();
    let took = t0.elapsed();
    m.controller().set_slow(None);
    assert!(took >= std::time::Duration::from_millis(100), "{took:?}");
}

#[test]
fn stale_mount_is_found_and_removed() {
    let t = tempfile::tempdir().unwrap();
    let m = mount(t.path());
    assert_eq!(lazyfs::mounts::find(t.path()).len(), 1);
    // A live mount (its owner serves it) is left alone.
    assert!(lazyfs::mounts::cleanup_stale(t.path()).is_empty());
    assert_eq!(lazyfs::mounts::find(t.path()).len(), 1);
    // A mount whose owner died (as after SIGKILL) is found by a later start: forget() and
    // the PID of a process that has exited stand in for the kill.
    let mp = m.mountpoint().to_path_buf();
    std::mem::forget(m);
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    std::fs::write(lazyfs::mounts::owner_file(&mp), gone.id().to_string()).unwrap();
    let cleaned = lazyfs::mounts::cleanup_stale(t.path());
    assert_eq!(cleaned.len(), 1);
    assert!(lazyfs::mounts::find(t.path()).is_empty());
}

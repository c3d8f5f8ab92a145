//! Whether FUSE can be used here, and the clean-up of lazy mounts a killed process left.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Mount points of this process's live mounts, for [`unmount_registered`].
static REGISTERED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The file beside a mount point (`data` → `data.lazyfs-owner`) naming the PID of the
/// process serving the mount, so that a later start unmounts only mounts whose server died.
pub fn owner_file(mp: &Path) -> PathBuf {
    mp.with_extension("lazyfs-owner")
}

/// Writes the owner file of `mp` (before mounting, so no mount of ours is ever ownerless).
pub(crate) fn claim(mp: &Path) -> std::io::Result<()> {
    std::fs::write(owner_file(mp), format!("{}\n", std::process::id()))
}

/// Records a live mount of this process (a canonical path).
pub(crate) fn register(mp: &Path) {
    REGISTERED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(mp.to_path_buf());
}

/// Forgets a mount being unmounted, and its owner file.
pub(crate) fn deregister(mp: &Path) {
    REGISTERED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| p != mp);
    let _ = std::fs::remove_file(owner_file(mp));
}

/// Whether no live process serves the mount at `mp`: its owner file is missing or names a
/// process that is gone (or this process, which no longer holds it).
fn is_stale(mp: &Path) -> bool {
    let owner = std::fs::read_to_string(owner_file(mp))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    match owner {
        None => true,
        Some(pid) if pid == std::process::id() => !REGISTERED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|p| p == mp),
        Some(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// Unmounts (lazily) every mount this process made and has not unmounted: for an exit that
/// skips destructors (`std::process::exit` after a second Ctrl-C).
pub fn unmount_registered() {
    let mps = std::mem::take(&mut *REGISTERED.lock().unwrap_or_else(|e| e.into_inner()));
    for mp in mps {
        let _ = nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH);
    }
}

use crate::{LazyFsError, FS_NAME};

/// Ok when this process can mount a FUSE filesystem: `/dev/fuse` opens for reading and
/// writing, the kernel knows the `fuse` filesystem, and we are root or `fusermount3` (Debian
/// package `fuse3`) is on the PATH. Otherwise one line saying what is missing.
///
/// Test hook: `LAZYFS_TEST_DEV_FUSE=PATH` checks PATH instead of `/dev/fuse`, so that a test
/// can see what a machine without FUSE gets.
pub fn check_available() -> Result<(), LazyFsError> {
    let dev = std::env::var_os("LAZYFS_TEST_DEV_FUSE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/fuse"));
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
    {
        return Err(LazyFsError::Unavailable(format!(
            "FUSE is not available: cannot open {} ({e}); needs Linux with the fuse module \
             and the Debian package fuse3",
            dev.display()
        )));
    }
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fs
        .lines()
        .any(|l| l.split_whitespace().last() == Some("fuse"))
    {
        return Err(LazyFsError::Unavailable(
            "FUSE is not available: the kernel lists no fuse filesystem in /proc/filesystems"
                .into(),
        ));
    }
    let root = nix::unistd::geteuid().is_root();
    let fusermount = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("fusermount3").is_file()))
        .unwrap_or(false);
    if !root && !fusermount {
        return Err(LazyFsError::Unavailable(
            "FUSE is not available: not root and no fusermount3 on the PATH (Debian package \
             fuse3)"
                .into(),
        ));
    }
    Ok(())
}

/// Lazy mounts (ours: file system type `fuse` or `fuse.lazyfs`, source `lazyfs`) at or below `under`, from
/// `/proc/self/mountinfo`.
pub fn find(under: &Path) -> Vec<PathBuf> {
    let under = std::fs::canonicalize(under).unwrap_or_else(|_| under.to_path_buf());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        // "fuse" when mounted directly (root), "fuse.lazyfs" through fusermount3; the
        // source is our name either way.
        let mut fields = right.split_whitespace();
        let fstype = fields.next().unwrap_or("");
        let source = fields.next().unwrap_or("");
        if !(fstype == "fuse" || fstype == format!("fuse.{FS_NAME}")) || source != FS_NAME {
            continue;
        }
        let Some(mp) = left.split_whitespace().nth(4) else {
            continue;
        };
        let mp = PathBuf::from(unescape(mp));
        if mp.starts_with(&under) {
            out.push(mp);
        }
    }
    out
}

/// Unmounts (lazily) every lazy mount at or below `under` whose serving process is gone:
/// those a harness killed with SIGKILL could not unmount. Mounts of a live process (another
/// harness using the same results directory) are left alone. Returns the paths unmounted;
/// failures are logged and skipped.
pub fn cleanup_stale(under: &Path) -> Vec<PathBuf> {
    let mut done = Vec::new();
    for mp in find(under).into_iter().filter(|mp| is_stale(mp)) {
        match nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => {
                let _ = std::fs::remove_file(owner_file(&mp));
                done.push(mp)
            }
            Err(e) => tracing::warn!("cannot unmount stale {}: {e}", mp.display()),
        }
    }
    done
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(super::unescape(r"/a\040b/c"), "/a b/c");
        assert_eq!(super::unescape("/plain"), "/plain");
    }
}

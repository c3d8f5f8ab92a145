//! A lazy filesystem, as Jepsen's LazyFS: a FUSE passthrough to a backing directory that
//! keeps apart every write not yet made durable (file data not followed by an
//! `fsync`/`fdatasync` of that file; creates, removals and renames not followed by an `fsync`
//! of their directory) and drops it on a simulated power loss, optionally keeping a torn
//! prefix of each file's last unsynced write. It can also delay writes and fsyncs (a slow
//! disk).
//!
//! Its own crate because it is its own job (a filesystem, with its own tests that need
//! `/dev/fuse`), and so that only the harness, which mounts it, links `fuser`.
//!
//! The durability model is in [`journal`]; the FUSE side in `fs`; finding FUSE and cleaning
//! up mounts left by a killed process in [`mounts`].

mod fs;
pub mod journal;
pub mod mounts;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use fs::SlowDisk;
pub use journal::Discarded;

/// What can go wrong mounting or driving a lazy filesystem.
#[derive(Debug, thiserror::Error)]
pub enum LazyFsError {
    /// FUSE cannot be used on this machine; the message says what is missing.
    #[error("{0}")]
    Unavailable(String),
    /// An I/O error on the backing directory or the mount.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The mount's source name (and subtype) in `/proc/self/mountinfo`;
/// [`mounts::cleanup_stale`] recognises our mounts by them.
pub const FS_NAME: &str = "lazyfs";

/// A mounted lazy filesystem. Dropping it unmounts it (lazily: a process still inside gets
/// `ENOTCONN`), so every exit path that unwinds unmounts; a SIGKILL of the mounting process
/// leaves a dead mount that [`mounts::cleanup_stale`] removes at the next start.
pub struct Mount {
    mountpoint: PathBuf,
    shared: Arc<fs::Shared>,
    session: Option<fuser::BackgroundSession>,
}

impl Mount {
    /// Mounts a lazy view of `backing` (which holds the durable state) at `mountpoint`;
    /// `trash` (outside both, same filesystem as `backing`) keeps removed files until their
    /// removal is durable. Creates the three directories if missing. `seed` draws the
    /// slow-disk delays.
    pub fn new(
        backing: &Path,
        mountpoint: &Path,
        trash: &Path,
        seed: u64,
    ) -> Result<Mount, LazyFsError> {
        mounts::check_available()?;
        for (what, p) in [
            ("create backing directory", backing),
            ("create mount point", mountpoint),
        ] {
            std::fs::create_dir_all(p).map_err(|source| LazyFsError::Io {
                what,
                path: p.to_path_buf(),
                source,
            })?;
        }
        let shared = fs::Shared::new(backing, trash, seed).map_err(|source| LazyFsError::Io {
            what: "create trash directory",
            path: trash.to_path_buf(),
            source,
        })?;
        // Canonical, as /proc/self/mountinfo names it (stale-mount clean-up compares them).
        let mountpoint = &std::fs::canonicalize(mountpoint).map_err(|source| LazyFsError::Io {
            what: "resolve mount point",
            path: mountpoint.to_path_buf(),
            source,
        })?;
        mounts::claim(mountpoint).map_err(|source| LazyFsError::Io {
            what: "write the owner file beside",
            path: mountpoint.to_path_buf(),
            source,
        })?;
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName(FS_NAME.into()),
            fuser::MountOption::Subtype(FS_NAME.into()),
            fuser::MountOption::DefaultPermissions,
        ];
        let session = fuser::spawn_mount(
            fs::LazyFs {
                shared: shared.clone(),
            },
            mountpoint,
            &config,
        )
        .map_err(|source| {
            let _ = std::fs::remove_file(mounts::owner_file(mountpoint));
            LazyFsError::Io {
                what: "mount FUSE filesystem at",
                path: mountpoint.to_path_buf(),
                source,
            }
        })?;
        mounts::register(mountpoint);
        Ok(Mount {
            mountpoint: mountpoint.to_path_buf(),
            shared,
            session: Some(session),
        })
    }

    /// Where the filesystem is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// A handle that can cut the power and slow the disk from another thread.
    pub fn controller(&self) -> Controller {
        Controller {
            shared: self.shared.clone(),
        }
    }

    /// Unmounts and waits for the session thread to end.
    pub fn unmount(mut self) -> Result<(), LazyFsError> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), LazyFsError> {
        if let Some(s) = self.session.take() {
            mounts::deregister(&self.mountpoint);
            s.umount_and_join().map_err(|source| LazyFsError::Io {
                what: "unmount",
                path: self.mountpoint.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            tracing::warn!("{e}");
        }
    }
}

/// Cuts the power and slows the disk of one mount. Cheap to clone.
#[derive(Clone)]
pub struct Controller {
    shared: Arc<fs::Shared>,
}

impl Controller {
    /// Power loss: drops every change not durable, so that the backing directory (and the
    /// mount) holds exactly what was. With `tear`, each file's last unsynced write keeps a
    /// random strict prefix drawn from the generator. The process using the filesystem must
    /// be dead first (its later writes would land on the durable state).
    pub fn power_loss(
        &self,
        tear: Option<&mut dyn rand::RngCore>,
    ) -> Result<Discarded, LazyFsError> {
        let mut s = self.shared.lock();
        let (d, undone) = s
            .journal
            .power_loss(tear)
            .map_err(|source| LazyFsError::Io {
                what: "undo unsynced changes under",
                path: PathBuf::from("(backing directory)"),
                source,
            })?;
        s.apply_undone(undone);
        Ok(d)
    }

    /// Delays every later write and fsync by `slow` (None: full speed).
    pub fn set_slow(&self, slow: Option<SlowDisk>) {
        self.shared.slow.lock().unwrap_or_else(|e| e.into_inner()).0 = slow;
    }

    /// Whether no change is waiting to be made durable.
    pub fn all_durable(&self) -> bool {
        self.shared.lock().journal.is_empty()
    }
}

//! The file-system operations storage needs, behind a trait, so that tests can run storage
//! on a simulated disk that loses unsynced writes at a power failure
//! (`crash_fs::CrashFs`) while production runs on the real one ([`RealFs`]).
//!
//! The trait is deliberately narrow: exactly the calls [`super::Storage`] makes, so that
//! every `fsync` of the storage code is a visible call a crash model can honour or ignore.

use std::ffi::OsString;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// How [`Fs::open`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    ReadOnly,
    /// Read and write, created empty if absent, never truncated.
    ReadWrite,
    /// Read and write; fails with `AlreadyExists` if the file exists.
    CreateNew,
    /// Write only, created if absent, truncated to zero length if present.
    CreateTruncate,
}

/// Why [`Fs::lock`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another holder has the lock.
    #[error("locked by another holder")]
    WouldBlock,
    /// The lock file could not be opened or created.
    #[error("open: {0}")]
    Open(#[source] std::io::Error),
    /// The lock call itself failed.
    #[error("lock: {0}")]
    Lock(#[source] std::io::Error),
}

/// A file system as storage sees it. Paths are those storage was given. Nothing here is
/// durable until the matching sync call returns `Ok`: file contents by
/// [`FsFile::sync_data`] or [`FsFile::sync_all`], directory entries (a created, renamed or
/// removed name) by [`Fs::sync_dir`] on the directory holding them.
pub trait Fs: Debug + Send + Sync {
    /// Whether `path` is an existing directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Creates `path` and any missing parents.
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()>;
    /// Opens `path` as `mode` says.
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Box<dyn FsFile>>;
    /// Opens (creating if absent, never truncating) `path` and takes an exclusive lock on
    /// it, held until the returned guard is dropped.
    fn lock(&self, path: &Path) -> Result<Box<dyn FsLock>, LockError>;
    /// The names of the entries of directory `path`, in no particular order.
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<OsString>>;
    /// The whole content of file `path`.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// Renames `from` to `to` (same directory), replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// Removes file `path`.
    fn remove_file(&self, path: &Path) -> std::io::Result<()>;
    /// Makes the entries of directory `path` durable (`fsync` on the directory).
    fn sync_dir(&self, path: &Path) -> std::io::Result<()>;
}

/// An open file. Reads and writes start at the current position and advance it.
pub trait FsFile: Debug + Send {
    /// Reads from the position to the end of the file, appending to `buf`.
    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize>;
    /// Writes all of `buf` at the position.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> std::io::Result<()>;
    /// Moves the position to byte `pos`.
    fn seek_to(&mut self, pos: u64) -> std::io::Result<()>;
    /// Makes the content (and the size) durable: `fdatasync`.
    fn sync_data(&mut self) -> std::io::Result<()>;
    /// Makes the content and all metadata durable: `fsync`.
    fn sync_all(&mut self) -> std::io::Result<()>;
}

/// A held lock; dropping it releases the lock.
pub trait FsLock: Debug + Send {}

/// The operating system's file system: every method is the one `std::fs` call it names,
/// so storage on `RealFs` makes exactly the system calls it made before the trait existed.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// A file of [`RealFs`].
#[derive(Debug)]
struct RealFile(File);

impl FsLock for File {}

impl Fs for RealFs {
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Box<dyn FsFile>> {
        let f = match mode {
            OpenMode::ReadOnly => File::open(path)?,
            OpenMode::ReadWrite => OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?,
            OpenMode::CreateNew => OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)?,
            OpenMode::CreateTruncate => File::create(path)?,
        };
        Ok(Box::new(RealFile(f)))
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn FsLock>, LockError> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(LockError::Open)?;
        match f.try_lock() {
            Ok(()) => Ok(Box::new(f)),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::WouldBlock),
            Err(std::fs::TryLockError::Error(e)) => Err(LockError::Lock(e)),
        }
    }

    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<OsString>> {
        std::fs::read_dir(path)?
            .map(|de| de.map(|de| de.file_name()))
            .collect()
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        File::open(path).and_then(|d| d.sync_all())
    }
}

impl FsFile for RealFile {
    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        self.0.read_to_end(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }

    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }

    fn seek_to(&mut self, pos: u64) -> std::io::Result<()> {
        self.0.seek(SeekFrom::Start(pos)).map(|_| ())
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&mut self) -> std::io::Result<()> {
        self.0.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crash tests run storage on a simulated disk, so they cannot see whether
    /// [`RealFs`] really asks the kernel to sync. procfs refuses `fsync` with `EINVAL`, so a
    /// sync on a procfs file or directory fails exactly when the system call is made.
    #[cfg(target_os = "linux")]
    #[test]
    fn real_fs_syncs_reach_the_kernel() {
        let einval = |r: std::io::Result<()>, what: &str| {
            let e = r.expect_err(&format!("{what} did not call the kernel"));
            assert_eq!(e.raw_os_error(), Some(22), "{what}: {e}");
        };
        let fs = RealFs;
        let mut f = fs
            .open(Path::new("/proc/self/status"), OpenMode::ReadOnly)
            .unwrap();
        einval(f.sync_data(), "FsFile::sync_data");
        einval(f.sync_all(), "FsFile::sync_all");
        einval(fs.sync_dir(Path::new("/proc/self")), "Fs::sync_dir");
    }

    #[test]
    fn real_fs_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = RealFs;
        let d = tmp.path().join("x").join("y");
        assert!(!fs.is_dir(&d));
        fs.create_dir_all(&d).unwrap();
        assert!(fs.is_dir(&d));
        let p = d.join("f");
        let mut f = fs.open(&p, OpenMode::CreateNew).unwrap();
        f.write_all(b"hello world").unwrap();
        f.set_len(5).unwrap();
        f.seek_to(1).unwrap();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        assert_eq!(buf, b"ello");
        f.sync_all().unwrap();
        fs.sync_dir(&d).unwrap();
        assert!(fs.open(&p, OpenMode::CreateNew).is_err());
        let q = d.join("g");
        fs.rename(&p, &q).unwrap();
        assert_eq!(fs.list_dir(&d).unwrap(), vec![OsString::from("g")]);
        assert_eq!(fs.read(&q).unwrap(), b"hello");
        let _lock = fs.lock(&d.join("LOCK")).unwrap();
        assert!(matches!(
            fs.lock(&d.join("LOCK")),
            Err(LockError::WouldBlock)
        ));
        fs.remove_file(&q).unwrap();
        assert!(fs.read(&q).is_err());
    }
}

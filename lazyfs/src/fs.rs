//! The FUSE passthrough filesystem: every request goes to the backing directory, through
//! the [`Journal`] that remembers how to undo what is not durable.
//!
//! Caching is off on purpose: entries and attributes have a zero time-to-live and files are
//! opened with direct I/O, so the kernel keeps no page cache of its own that could outlive a
//! power loss (the whole point is that only what the backing directory holds survives).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use rand::{Rng, SeedableRng};

use crate::journal::{Journal, Undone};

const TTL: Duration = Duration::ZERO;

/// Delays applied to writes and fsyncs (the slow-disk fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowDisk {
    /// Smallest delay per write or fsync, ms.
    pub min_ms: u64,
    /// Largest delay, ms (drawn uniformly in between: the jitter).
    pub max_ms: u64,
}

/// State shared by the FUSE session thread and the controller.
pub(crate) struct Shared {
    pub(crate) inner: Mutex<Inner>,
    pub(crate) slow: Mutex<(Option<SlowDisk>, rand_chacha::ChaCha8Rng)>,
}

impl Shared {
    pub(crate) fn new(root: &Path, trash: &Path, seed: u64) -> std::io::Result<Arc<Shared>> {
        let mut paths = HashMap::new();
        paths.insert(1, PathBuf::new());
        let mut inos = HashMap::new();
        inos.insert(PathBuf::new(), 1);
        Ok(Arc::new(Shared {
            inner: Mutex::new(Inner {
                root: root.to_path_buf(),
                journal: Journal::new(root, trash)?,
                paths,
                inos,
                next_ino: 2,
                handles: HashMap::new(),
                next_fh: 1,
            }),
            slow: Mutex::new((None, rand_chacha::ChaCha8Rng::seed_from_u64(seed))),
        }))
    }

    fn delay(&self) {
        let d = {
            let mut s = self.slow.lock().unwrap_or_else(|e| e.into_inner());
            match s.0 {
                Some(cfg) => {
                    let hi = cfg.max_ms.max(cfg.min_ms);
                    Some(s.1.gen_range(cfg.min_ms..=hi))
                }
                None => None,
            }
        };
        if let Some(ms) = d {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) struct Inner {
    root: PathBuf,
    pub(crate) journal: Journal,
    /// Inode number → path relative to the root (the root is the empty path, inode 1).
    paths: HashMap<u64, PathBuf>,
    inos: HashMap<PathBuf, u64>,
    next_ino: u64,
    handles: HashMap<u64, (u64, File)>,
    next_fh: u64,
}

impl Inner {
    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn ino_for(&mut self, rel: &Path) -> u64 {
        if let Some(&i) = self.inos.get(rel) {
            return i;
        }
        let i = self.next_ino;
        self.next_ino += 1;
        self.inos.insert(rel.to_path_buf(), i);
        self.paths.insert(i, rel.to_path_buf());
        i
    }

    fn forget_path(&mut self, rel: &Path) {
        let gone: Vec<PathBuf> = self
            .inos
            .keys()
            .filter(|p| p.starts_with(rel))
            .cloned()
            .collect();
        for p in gone {
            if let Some(i) = self.inos.remove(&p) {
                self.paths.remove(&i);
            }
        }
    }

    fn move_path(&mut self, from: &Path, to: &Path) {
        self.forget_path(to);
        let moved: Vec<(PathBuf, u64)> = self
            .inos
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, i) in moved {
            self.inos.remove(&p);
            let np = to.join(p.strip_prefix(from).expect("filtered"));
            let np = if p == from { to.to_path_buf() } else { np };
            self.inos.insert(np.clone(), i);
            self.paths.insert(i, np);
        }
    }

    pub(crate) fn apply_undone(&mut self, undone: Vec<Undone>) {
        for u in undone {
            match u {
                Undone::Gone(p) => self.forget_path(&p),
                Undone::Moved { from, to } => self.move_path(&from, &to),
            }
        }
    }

    fn attr(&mut self, rel: &Path) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(self.root.join(rel)).map_err(Errno::from)?;
        let ino = self.ino_for(rel);
        Ok(to_attr(ino, &m))
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    fn new_handle(&mut self, ino: u64, f: File) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, (ino, f));
        fh
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

fn to_attr(ino: u64, m: &std::fs::Metadata) -> FileAttr {
    let kind = if m.is_dir() {
        FileType::Directory
    } else if m.file_type().is_symlink() {
        FileType::Symlink
    } else {
        FileType::RegularFile
    };
    FileAttr {
        ino: INodeNo(ino),
        size: m.size(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: time(m.ctime(), m.ctime_nsec()),
        kind,
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn open_backing(p: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open(p)
}

/// The filesystem the FUSE session serves.
pub(crate) struct LazyFs {
    pub(crate) shared: Arc<Shared>,
}

macro_rules! tri {
    ($reply:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => {
                $reply.error(Errno::from(e));
                return;
            }
        }
    };
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.shared.lock();
        let rel = tri!(reply, s.child(parent, name));
        match s.attr(&rel) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut s = self.shared.lock();
        let rel = tri!(reply, s.path(ino));
        match s.attr(&rel) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.shared.lock();
        let rel = tri!(reply, s.path(ino));
        let abs = s.root.join(&rel);
        if let Some(size) = size {
            tri!(reply, s.journal.before_truncate(ino.0, &rel, size));
            tri!(reply, open_backing(&abs).and_then(|f| f.set_len(size)));
        }
        if let Some(mode) = mode {
            tri!(
                reply,
                std::fs::set_permissions(&abs, std::fs::Permissions::from_mode(mode & 0o7777))
            );
        }
        match s.attr(&rel) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.shared.lock();
        let rel = tri!(reply, s.child(parent, name));
        tri!(
            reply,
            std::fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(s.root.join(&rel))
        );
        tri!(reply, s.journal.created(parent.0, &rel, None));
        match s.attr(&rel) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.shared.lock();
        let rel = tri!(reply, s.child(parent, name));
        tri!(reply, s.journal.remove(parent.0, &rel));
        s.forget_path(&rel);
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.shared.lock();
        let rel = tri!(reply, s.child(parent, name));
        let abs = s.root.join(&rel);
        match std::fs::read_dir(&abs) {
            Ok(mut d) => {
                if d.next().is_some() {
                    reply.error(Errno::from_i32(libc_enotempty()));
                    return;
                }
            }
            Err(e) => {
                reply.error(Errno::from(e));
                return;
            }
        }
        tri!(reply, s.journal.remove(parent.0, &rel));
        s.forget_path(&rel);
        reply.ok();
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.shared.lock();
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            reply.error(Errno::EINVAL);
            return;
        }
        let from = tri!(reply, s.child(parent, name));
        let to = tri!(reply, s.child(newparent, newname));
        if flags.contains(RenameFlags::RENAME_NOREPLACE)
            && std::fs::symlink_metadata(s.root.join(&to)).is_ok()
        {
            reply.error(Errno::EEXIST);
            return;
        }
        tri!(reply, s.journal.rename(parent.0, &from, newparent.0, &to));
        s.move_path(&from, &to);
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.shared.lock();
        let rel = tri!(reply, s.path(ino));
        let f = tri!(reply, open_backing(&s.root.join(&rel)));
        let fh = s.new_handle(ino.0, f);
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = self.shared.lock();
        let Some((_, f)) = s.handles.get(&fh.0) else {
            reply.error(Errno::EBADF);
            return;
        };
        let mut buf = vec![0; size as usize];
        let mut n = 0;
        while n < buf.len() {
            match f.read_at(&mut buf[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => {
                    reply.error(Errno::from(e));
                    return;
                }
            }
        }
        reply.data(&buf[..n]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.shared.delay();
        let mut s = self.shared.lock();
        let rel = tri!(reply, s.path(ino));
        tri!(reply, s.journal.before_write(ino.0, &rel, offset, data));
        let Some((_, f)) = s.handles.get(&fh.0) else {
            reply.error(Errno::EBADF);
            return;
        };
        tri!(reply, f.write_all_at(data, offset));
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.lock().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.delay();
        let mut s = self.shared.lock();
        if let Some((_, f)) = s.handles.get(&fh.0) {
            tri!(
                reply,
                if datasync {
                    f.sync_data()
                } else {
                    f.sync_all()
                }
            );
        }
        s.journal.file_synced(ino.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let s = self.shared.lock();
        tri!(reply, s.path(ino));
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut s = self.shared.lock();
        let rel = tri!(reply, s.path(ino));
        let rd = tri!(reply, std::fs::read_dir(s.root.join(&rel)));
        let mut entries: Vec<(u64, FileType, std::ffi::OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (1, FileType::Directory, "..".into()),
        ];
        let mut names: Vec<(std::ffi::OsString, bool)> = Vec::new();
        for de in rd {
            let de = tri!(reply, de);
            let is_dir = de.file_type().map(|t| t.is_dir()).unwrap_or(false);
            names.push((de.file_name(), is_dir));
        }
        names.sort();
        for (name, is_dir) in names {
            let i = s.ino_for(&rel.join(&name));
            let kind = if is_dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            entries.push((i, kind, name));
        }
        for (k, (i, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(i), (k + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.delay();
        let mut s = self.shared.lock();
        let rel = tri!(reply, s.path(ino));
        tri!(
            reply,
            File::open(s.root.join(&rel)).and_then(|d| d.sync_all())
        );
        s.journal.dir_synced(ino.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.shared.lock();
        let rel = tri!(reply, s.child(parent, name));
        let abs = s.root.join(&rel);
        let existed = abs.exists();
        let f = tri!(
            reply,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(mode & !umask & 0o7777)
                .open(&abs)
        );
        let ino = s.ino_for(&rel);
        if !existed {
            tri!(reply, s.journal.created(parent.0, &rel, Some(ino)));
        }
        let attr = tri!(reply, s.attr(&rel));
        let fh = s.new_handle(ino, f);
        reply.created(
            &TTL,
            &attr,
            Generation(0),
            FileHandle(fh),
            FopenFlags::FOPEN_DIRECT_IO,
        );
    }
}

fn libc_enotempty() -> i32 {
    nix::errno::Errno::ENOTEMPTY as i32
}

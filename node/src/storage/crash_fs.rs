//! `CrashFs`: an in-memory, deterministic [`Fs`] that models a POSIX disk losing power.
//!
//! What survives a [`CrashFs::crash`] is only what was made durable, with the freedom a
//! real disk has for the rest:
//! - a file's content is durable once `sync_data`/`sync_all` returns; writes and
//!   truncations since then are pending. At a crash a prefix of them (in order) reaches the
//!   disk, the first write not reached may be torn (a prefix of its bytes, or zeros: the
//!   size grew but the data never came), and later writes may still land where the file
//!   already had blocks (write-back of data pages without the size change that came
//!   before them). Anything else is lost.
//! - a directory's entries (a created file or directory, a rename, an unlink) are durable
//!   once that directory is synced ([`Fs::sync_dir`]); syncing a file does not make its
//!   name durable (the strict reading of POSIX: ext4 without `auto_da_alloc`, XFS). At a
//!   crash a prefix of each directory's pending changes survives.
//!
//! [`CrashFs::crash_losing_unsynced`] is the harshest outcome: nothing pending survives.
//! The power can also fail after a given number of operations
//! ([`CrashFs::power_off_after`]): every later call fails, as if the process died there,
//! and one-shot errors can be injected ([`CrashFs::fail_once`]). File handles and locks
//! from before a crash are dead afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;

use super::fs::{Fs, FsFile, FsLock, LockError, OpenMode};

type Ino = usize;
const ROOT: Ino = 0;

/// The kinds of operation [`CrashFs::fail_once`] can make fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// [`Fs::create_dir_all`].
    CreateDir,
    /// [`Fs::open`].
    Open,
    /// [`Fs::lock`].
    Lock,
    /// [`Fs::list_dir`].
    ListDir,
    /// [`Fs::read`].
    Read,
    /// [`Fs::rename`] (matched on the source path).
    Rename,
    /// [`Fs::remove_file`].
    Remove,
    /// [`Fs::sync_dir`].
    SyncDir,
    /// [`FsFile::read_to_end`].
    FileRead,
    /// [`FsFile::write_all`] (fails without writing anything).
    FileWrite,
    /// [`FsFile::set_len`].
    FileSetLen,
    /// [`FsFile::seek_to`].
    FileSeek,
    /// [`FsFile::sync_data`] and [`FsFile::sync_all`].
    FileSync,
}

#[derive(Clone, Debug)]
enum FileOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

impl FileOp {
    fn apply(&self, content: &mut Vec<u8>) {
        match self {
            FileOp::Write { offset, data } => {
                let start = *offset as usize;
                if content.len() < start + data.len() {
                    content.resize(start + data.len(), 0);
                }
                content[start..start + data.len()].copy_from_slice(data);
            }
            FileOp::SetLen(len) => content.resize(*len as usize, 0),
        }
    }
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(OsString, Ino),
    Unlink(OsString),
    Rename(OsString, OsString),
}

impl DirOp {
    fn apply(&self, entries: &mut BTreeMap<OsString, Ino>) {
        match self {
            DirOp::Link(name, ino) => {
                entries.insert(name.clone(), *ino);
            }
            DirOp::Unlink(name) => {
                entries.remove(name);
            }
            DirOp::Rename(from, to) => {
                if let Some(ino) = entries.remove(from) {
                    entries.insert(to.clone(), ino);
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct FileNode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Debug, Default)]
struct DirNode {
    durable: BTreeMap<OsString, Ino>,
    current: BTreeMap<OsString, Ino>,
    pending: Vec<DirOp>,
}

#[derive(Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug)]
struct Inner {
    nodes: Vec<Node>,
    /// Bumped by every crash: handles and locks of an older epoch are dead.
    epoch: u64,
    powered: bool,
    /// Operations left before the power fails (`None`: it does not).
    power_left: Option<u64>,
    fail: Vec<(Op, String)>,
    locks: BTreeSet<PathBuf>,
    ops: u64,
}

/// The simulated disk; clones share it (the test keeps one to crash the disk under the
/// storage that uses another).
#[derive(Clone, Debug)]
pub struct CrashFs {
    inner: Arc<Mutex<Inner>>,
}

fn err(kind: std::io::ErrorKind, msg: String) -> std::io::Error {
    std::io::Error::new(kind, msg)
}

fn not_found(path: &Path) -> std::io::Error {
    err(
        std::io::ErrorKind::NotFound,
        format!("{}: not found", path.display()),
    )
}

impl Inner {
    /// Counts an operation, failing it if the power is off (or goes off now) or an error
    /// was injected for it.
    fn begin(&mut self, op: Op, path: &Path) -> std::io::Result<()> {
        if !self.powered {
            return Err(err(std::io::ErrorKind::Other, "power is off".into()));
        }
        if let Some(left) = self.power_left.as_mut() {
            if *left == 0 {
                self.powered = false;
                return Err(err(std::io::ErrorKind::Other, "power failed".into()));
            }
            *left -= 1;
        }
        self.ops += 1;
        let p = path.to_string_lossy();
        if let Some(i) = self
            .fail
            .iter()
            .position(|(o, s)| *o == op && p.contains(s.as_str()))
        {
            self.fail.remove(i);
            return Err(err(
                std::io::ErrorKind::Other,
                format!("injected {op:?} failure on {p}"),
            ));
        }
        Ok(())
    }

    fn dir(&self, ino: Ino) -> Option<&DirNode> {
        match &self.nodes[ino] {
            Node::Dir(d) => Some(d),
            Node::File(_) => None,
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> &mut DirNode {
        match &mut self.nodes[ino] {
            Node::Dir(d) => d,
            Node::File(_) => unreachable!("inode {ino} is not a directory"),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> &mut FileNode {
        match &mut self.nodes[ino] {
            Node::File(f) => f,
            Node::Dir(_) => unreachable!("inode {ino} is not a file"),
        }
    }

    fn lookup(&self, path: &Path) -> Option<Ino> {
        let mut ino = None;
        for c in path.components() {
            ino = match c {
                Component::RootDir => Some(ROOT),
                Component::CurDir => ino,
                Component::Normal(name) => Some(*self.dir(ino?)?.current.get(name)?),
                Component::Prefix(_) | Component::ParentDir => return None,
            };
        }
        ino
    }

    /// The directory holding `path` and the name in it.
    fn parent(&self, path: &Path) -> std::io::Result<(Ino, OsString)> {
        let name = path.file_name().ok_or_else(|| not_found(path))?;
        let parent = path.parent().ok_or_else(|| not_found(path))?;
        let ino = self
            .lookup(parent)
            .filter(|&i| self.dir(i).is_some())
            .ok_or_else(|| not_found(parent))?;
        Ok((ino, name.to_os_string()))
    }

    fn dir_change(&mut self, dir: Ino, op: DirOp) {
        let d = self.dir_mut(dir);
        op.apply(&mut d.current);
        d.pending.push(op);
    }

    fn file_change(&mut self, ino: Ino, op: FileOp) {
        let f = self.file_mut(ino);
        op.apply(&mut f.current);
        f.pending.push(op);
    }

    fn create(&mut self, path: &Path, node: Node) -> std::io::Result<Ino> {
        let (dir, name) = self.parent(path)?;
        let ino = self.nodes.len();
        self.nodes.push(node);
        self.dir_change(dir, DirOp::Link(name, ino));
        Ok(ino)
    }

    fn file(&self, path: &Path) -> std::io::Result<Ino> {
        let ino = self.lookup(path).ok_or_else(|| not_found(path))?;
        match self.nodes[ino] {
            Node::File(_) => Ok(ino),
            Node::Dir(_) => Err(err(
                std::io::ErrorKind::Other,
                format!("{}: is a directory", path.display()),
            )),
        }
    }
}

/// How pending changes are resolved at a crash.
enum Outcome<'a, R: Rng> {
    LoseAll,
    Random(&'a mut R),
}

impl Default for CrashFs {
    fn default() -> Self {
        CrashFs::new()
    }
}

impl CrashFs {
    /// An empty disk holding only the root directory `/`.
    pub fn new() -> CrashFs {
        CrashFs {
            inner: Arc::new(Mutex::new(Inner {
                nodes: vec![Node::Dir(DirNode::default())],
                epoch: 0,
                powered: true,
                power_left: None,
                fail: Vec::new(),
                locks: BTreeSet::new(),
                ops: 0,
            })),
        }
    }

    fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not hide the disk from the failure report.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The power fails before operation number `n` from now (0: the next one); from then
    /// on every operation fails until [`CrashFs::crash`].
    pub fn power_off_after(&self, n: u64) {
        self.lock_inner().power_left = Some(n);
    }

    /// Whether the power has failed (since the last crash).
    pub fn is_powered_off(&self) -> bool {
        !self.lock_inner().powered
    }

    /// Operations performed so far (all epochs).
    pub fn ops(&self) -> u64 {
        self.lock_inner().ops
    }

    /// The next operation of kind `op` on a path containing `path_contains` fails (once).
    pub fn fail_once(&self, op: Op, path_contains: &str) {
        self.lock_inner().fail.push((op, path_contains.to_string()));
    }

    /// Whether `path` exists now (durable or not).
    pub fn exists(&self, path: &Path) -> bool {
        self.lock_inner().lookup(path).is_some()
    }

    /// For failure reports: every name of directory `dir` with its file's length.
    pub fn describe(&self, dir: &Path) -> String {
        let inner = self.lock_inner();
        let Some(d) = inner.lookup(dir).and_then(|i| inner.dir(i)) else {
            return format!("{}: absent", dir.display());
        };
        let mut out = String::new();
        for (name, &ino) in &d.current {
            let len = match &inner.nodes[ino] {
                Node::File(f) => f.current.len(),
                Node::Dir(_) => 0,
            };
            out.push_str(&format!("{}:{len} ", name.to_string_lossy()));
        }
        out
    }

    /// A power failure after which nothing that was not synced survives.
    pub fn crash_losing_unsynced(&self) {
        self.crash_as::<rand_chacha::ChaCha8Rng>(Outcome::LoseAll);
    }

    /// A power failure after which each file and directory keeps a random share of its
    /// pending changes, as described in the module documentation.
    pub fn crash(&self, rng: &mut impl Rng) {
        self.crash_as(Outcome::Random(rng));
    }

    fn crash_as<R: Rng>(&self, mut outcome: Outcome<'_, R>) {
        let mut inner = self.lock_inner();
        for node in inner.nodes.iter_mut() {
            match node {
                Node::File(f) => {
                    let mut content = std::mem::take(&mut f.durable);
                    let ops = std::mem::take(&mut f.pending);
                    if let Outcome::Random(rng) = &mut outcome {
                        resolve_file(&mut content, &ops, rng);
                    }
                    f.current = content.clone();
                    f.durable = content;
                }
                Node::Dir(d) => {
                    let mut entries = std::mem::take(&mut d.durable);
                    let ops = std::mem::take(&mut d.pending);
                    if let Outcome::Random(rng) = &mut outcome {
                        for op in &ops[..kept(ops.len(), rng)] {
                            op.apply(&mut entries);
                        }
                    }
                    d.current = entries.clone();
                    d.durable = entries;
                }
            }
        }
        inner.epoch += 1;
        inner.powered = true;
        inner.power_left = None;
        inner.fail.clear();
        inner.locks.clear();
    }
}

/// How many of `n` pending changes survive: none a third of the time (the harshest case
/// is the one that finds missing syncs), otherwise any number.
fn kept(n: usize, rng: &mut impl Rng) -> usize {
    if rng.gen_ratio(1, 3) {
        0
    } else {
        rng.gen_range(0..=n)
    }
}

fn resolve_file(content: &mut Vec<u8>, ops: &[FileOp], rng: &mut impl Rng) {
    let k = kept(ops.len(), rng);
    for op in &ops[..k] {
        op.apply(content);
    }
    let mut rest = k;
    if let Some(FileOp::Write { offset, data }) = ops.get(k) {
        rest += 1;
        if rng.gen_bool(0.5) {
            // Torn: part of the write arrived, or only the size grew (zero-filled).
            let keep = rng.gen_range(0..=data.len());
            let torn = if rng.gen_ratio(1, 4) {
                vec![0; keep]
            } else {
                data[..keep].to_vec()
            };
            FileOp::Write {
                offset: *offset,
                data: torn,
            }
            .apply(content);
        }
    }
    for op in &ops[rest..] {
        if let FileOp::Write { offset, data } = op {
            // Data pages written back onto blocks the file already has, without the size
            // or truncation changes that came before them.
            let start = *offset as usize;
            if start < content.len() && rng.gen_bool(0.5) {
                let end = content.len().min(start + data.len());
                content[start..end].copy_from_slice(&data[..end - start]);
            }
        }
    }
}

impl Fs for CrashFs {
    fn is_dir(&self, path: &Path) -> bool {
        let inner = self.lock_inner();
        inner.lookup(path).is_some_and(|i| inner.dir(i).is_some())
    }

    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        let mut inner = self.lock_inner();
        inner.begin(Op::CreateDir, path)?;
        let mut at = PathBuf::new();
        for c in path.components() {
            at.push(c);
            match inner.lookup(&at) {
                Some(i) if inner.dir(i).is_some() => {}
                Some(_) => {
                    return Err(err(
                        std::io::ErrorKind::AlreadyExists,
                        format!("{}: not a directory", at.display()),
                    ))
                }
                None => {
                    inner.create(&at, Node::Dir(DirNode::default()))?;
                }
            }
        }
        Ok(())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Box<dyn FsFile>> {
        let mut inner = self.lock_inner();
        inner.begin(Op::Open, path)?;
        let existing = inner.lookup(path);
        let ino = match (mode, existing) {
            (OpenMode::CreateNew, Some(_)) => {
                return Err(err(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{}: exists", path.display()),
                ))
            }
            (OpenMode::ReadOnly, None) => return Err(not_found(path)),
            (_, None) => inner.create(path, Node::File(FileNode::default()))?,
            (OpenMode::CreateTruncate, Some(_)) => {
                let ino = inner.file(path)?;
                inner.file_change(ino, FileOp::SetLen(0));
                ino
            }
            (_, Some(_)) => inner.file(path)?,
        };
        Ok(Box::new(CrashFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            ino,
            pos: 0,
            epoch: inner.epoch,
            writable: mode != OpenMode::ReadOnly,
        }))
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn FsLock>, LockError> {
        let mut inner = self.lock_inner();
        inner.begin(Op::Lock, path).map_err(LockError::Lock)?;
        if inner.lookup(path).is_none() {
            inner
                .create(path, Node::File(FileNode::default()))
                .map_err(LockError::Open)?;
        }
        if !inner.locks.insert(path.to_path_buf()) {
            return Err(LockError::WouldBlock);
        }
        Ok(Box::new(CrashLock {
            fs: self.clone(),
            path: path.to_path_buf(),
            epoch: inner.epoch,
        }))
    }

    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<OsString>> {
        let mut inner = self.lock_inner();
        inner.begin(Op::ListDir, path)?;
        let ino = inner.lookup(path).ok_or_else(|| not_found(path))?;
        let d = inner.dir(ino).ok_or_else(|| not_found(path))?;
        Ok(d.current.keys().cloned().collect())
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let mut inner = self.lock_inner();
        inner.begin(Op::Read, path)?;
        let ino = inner.file(path)?;
        Ok(inner.file_mut(ino).current.clone())
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let mut inner = self.lock_inner();
        inner.begin(Op::Rename, from)?;
        inner.file(from)?;
        let (dir, from_name) = inner.parent(from)?;
        let (to_dir, to_name) = inner.parent(to)?;
        if dir != to_dir {
            return Err(err(
                std::io::ErrorKind::Unsupported,
                "rename across directories is not modelled".into(),
            ));
        }
        inner.dir_change(dir, DirOp::Rename(from_name, to_name));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        let mut inner = self.lock_inner();
        inner.begin(Op::Remove, path)?;
        inner.file(path)?;
        let (dir, name) = inner.parent(path)?;
        inner.dir_change(dir, DirOp::Unlink(name));
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        let mut inner = self.lock_inner();
        inner.begin(Op::SyncDir, path)?;
        let ino = inner.lookup(path).ok_or_else(|| not_found(path))?;
        if inner.dir(ino).is_none() {
            return Err(not_found(path));
        }
        let d = inner.dir_mut(ino);
        d.durable = d.current.clone();
        d.pending.clear();
        Ok(())
    }
}

/// An open file of a [`CrashFs`].
#[derive(Debug)]
struct CrashFile {
    fs: CrashFs,
    path: PathBuf,
    ino: Ino,
    pos: u64,
    epoch: u64,
    writable: bool,
}

impl CrashFile {
    /// Runs `f` on the disk if this handle is still alive and the operation may proceed.
    fn with<T>(
        &mut self,
        op: Op,
        f: impl FnOnce(&mut Inner, Ino, &mut u64) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let mut inner = self.fs.lock_inner();
        if inner.epoch != self.epoch {
            return Err(err(
                std::io::ErrorKind::Other,
                format!("{}: handle from before a crash", self.path.display()),
            ));
        }
        inner.begin(op, &self.path)?;
        f(&mut inner, self.ino, &mut self.pos)
    }

    fn check_writable(&self) -> std::io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(err(
                std::io::ErrorKind::PermissionDenied,
                format!("{}: opened read-only", self.path.display()),
            ))
        }
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.with(Op::FileSync, |inner, ino, _| {
            let f = inner.file_mut(ino);
            f.durable = f.current.clone();
            f.pending.clear();
            Ok(())
        })
    }
}

impl FsFile for CrashFile {
    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        self.with(Op::FileRead, |inner, ino, pos| {
            let content = &inner.file_mut(ino).current;
            let start = (*pos as usize).min(content.len());
            buf.extend_from_slice(&content[start..]);
            *pos = content.len().max(start) as u64;
            Ok(content.len() - start)
        })
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.check_writable()?;
        self.with(Op::FileWrite, |inner, ino, pos| {
            let op = FileOp::Write {
                offset: *pos,
                data: buf.to_vec(),
            };
            inner.file_change(ino, op);
            *pos += buf.len() as u64;
            Ok(())
        })
    }

    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.check_writable()?;
        self.with(Op::FileSetLen, |inner, ino, _| {
            inner.file_change(ino, FileOp::SetLen(len));
            Ok(())
        })
    }

    fn seek_to(&mut self, to: u64) -> std::io::Result<()> {
        self.with(Op::FileSeek, |_, _, pos| {
            *pos = to;
            Ok(())
        })
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        self.sync()
    }

    fn sync_all(&mut self) -> std::io::Result<()> {
        self.sync()
    }
}

/// A lock of a [`CrashFs`]; a crash releases it (the process holding it is gone).
#[derive(Debug)]
struct CrashLock {
    fs: CrashFs,
    path: PathBuf,
    epoch: u64,
}

impl FsLock for CrashLock {}

impl Drop for CrashLock {
    fn drop(&mut self) {
        let mut inner = self.fs.lock_inner();
        if inner.epoch == self.epoch {
            inner.locks.remove(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn write_file(fs: &CrashFs, path: &str, data: &[u8], sync: bool) -> Box<dyn FsFile> {
        let mut f = fs.open(Path::new(path), OpenMode::ReadWrite).unwrap();
        f.write_all(data).unwrap();
        if sync {
            f.sync_data().unwrap();
        }
        f
    }

    fn content(fs: &CrashFs, path: &str) -> Option<Vec<u8>> {
        fs.read(Path::new(path)).ok()
    }

    #[test]
    fn a_new_file_needs_its_directory_synced() {
        let fs = CrashFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        write_file(&fs, "/d/a", b"x", true);
        fs.crash_losing_unsynced();
        assert!(fs.is_dir(Path::new("/d")));
        assert_eq!(content(&fs, "/d/a"), None);
        write_file(&fs, "/d/a", b"x", true);
        fs.sync_dir(Path::new("/d")).unwrap();
        fs.crash_losing_unsynced();
        assert_eq!(content(&fs, "/d/a").unwrap(), b"x");
    }

    #[test]
    fn unsynced_writes_are_lost_and_synced_ones_kept() {
        let fs = CrashFs::new();
        let mut f = write_file(&fs, "/a", b"durable", true);
        fs.sync_dir(Path::new("/")).unwrap();
        f.write_all(b"+pending").unwrap();
        assert_eq!(content(&fs, "/a").unwrap(), b"durable+pending");
        fs.crash_losing_unsynced();
        assert_eq!(content(&fs, "/a").unwrap(), b"durable");
        assert!(
            f.write_all(b"late").is_err(),
            "a handle dies with the crash"
        );
    }

    #[test]
    fn renames_and_unlinks_need_the_directory_synced() {
        let fs = CrashFs::new();
        write_file(&fs, "/a", b"1", true);
        write_file(&fs, "/b", b"2", true);
        fs.sync_dir(Path::new("/")).unwrap();
        fs.rename(Path::new("/a"), Path::new("/c")).unwrap();
        fs.remove_file(Path::new("/b")).unwrap();
        assert_eq!(fs.list_dir(Path::new("/")).unwrap(), vec!["c"]);
        fs.crash_losing_unsynced();
        assert_eq!(fs.list_dir(Path::new("/")).unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn random_crashes_keep_an_ordered_prefix_possibly_torn() {
        // Seeded; the seed is in the failure message.
        let mut outcomes = BTreeSet::new();
        for seed in 0..200u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let fs = CrashFs::new();
            let mut f = write_file(&fs, "/a", b"base", true);
            fs.sync_dir(Path::new("/")).unwrap();
            f.write_all(b"-one").unwrap();
            f.write_all(b"-two").unwrap();
            fs.crash(&mut rng);
            let got = content(&fs, "/a").unwrap();
            let full = b"base-one-two";
            let ok = got.len() <= full.len()
                && got.starts_with(b"base")
                && got
                    .iter()
                    .zip(full)
                    .all(|(g, w)| g == w || (*g == 0 && got.len() > 4));
            assert!(ok, "seed {seed}: {got:?}");
            outcomes.insert(got);
        }
        assert!(outcomes.contains(b"base".as_slice()));
        assert!(outcomes.contains(b"base-one-two".as_slice()));
        assert!(outcomes.len() > 5, "tears happen: {outcomes:?}");
    }

    #[test]
    fn a_write_after_an_unsynced_truncation_can_land_on_old_blocks() {
        let mut seen = false;
        for seed in 0..100u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let fs = CrashFs::new();
            let mut f = write_file(&fs, "/a", b"goodGARBAGE", true);
            fs.sync_dir(Path::new("/")).unwrap();
            f.set_len(4).unwrap();
            f.seek_to(4).unwrap();
            f.write_all(b"new").unwrap();
            fs.crash(&mut rng);
            let got = content(&fs, "/a").unwrap();
            seen |= got == b"goodnewBAGE";
        }
        assert!(seen, "the write-back reordering is part of the model");
    }

    #[test]
    fn power_failure_stops_every_operation_until_the_crash() {
        let fs = CrashFs::new();
        fs.power_off_after(1);
        let mut f = fs.open(Path::new("/a"), OpenMode::CreateNew).unwrap();
        assert!(f.write_all(b"x").is_err());
        assert!(fs.is_powered_off());
        assert!(fs.list_dir(Path::new("/")).is_err());
        fs.crash_losing_unsynced();
        assert!(!fs.is_powered_off());
        assert_eq!(fs.list_dir(Path::new("/")).unwrap(), Vec::<OsString>::new());
    }

    #[test]
    fn locks_exclude_until_dropped_or_crashed() {
        let fs = CrashFs::new();
        let l = fs.lock(Path::new("/LOCK")).unwrap();
        assert!(matches!(
            fs.lock(Path::new("/LOCK")),
            Err(LockError::WouldBlock)
        ));
        drop(l);
        let _l = fs.lock(Path::new("/LOCK")).unwrap();
        fs.crash_losing_unsynced();
        fs.lock(Path::new("/LOCK")).unwrap();
    }

    #[test]
    fn injected_failures_fire_once() {
        let fs = CrashFs::new();
        fs.fail_once(Op::Open, ".tmp");
        assert!(fs.open(Path::new("/x.tmp"), OpenMode::CreateNew).is_err());
        assert!(fs.open(Path::new("/x.tmp"), OpenMode::CreateNew).is_ok());
    }
}

//! The durability model: what has been written through to the backing directory but is not
//! yet durable, and how to take it back at a power loss.
//!
//! Design (write-through with an undo journal): every operation is applied to the backing
//! directory at once, so reads need no overlay; what is not yet durable is remembered here as
//! the way to undo it. A power loss undoes it all, leaving the backing directory holding
//! exactly what was durable.
//! - File data: per file, the length it had when it was last durable and the old bytes of
//!   every durable region a later write or truncate overwrote. `fsync`/`fdatasync` of the file
//!   forgets them (the data is durable).
//! - Directory entries: one ordered log of creates, removals and renames. An `fsync` of a
//!   directory makes durable every logged change up to and including the last one that touched
//!   that directory (a journaling filesystem commits its metadata in order, as ext4 does), so
//!   what stays pending is always a suffix of the log, and undoing it newest first is always
//!   consistent. Removed files and renamed-over targets are kept in a trash directory (outside
//!   the backing directory) until the removal is durable, so it can be undone.
//! - Not modelled: hard links and symlinks (refused by the filesystem), attribute changes
//!   (mode, times: applied and kept).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rand::Rng;

/// What a power loss discarded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discarded {
    /// Files whose unsynced data was dropped (backing paths relative to the root, as they
    /// were when last written; a file removed since is still counted).
    pub files: Vec<String>,
    /// Bytes of unsynced writes dropped (a torn prefix kept is not counted).
    pub bytes: u64,
    /// Directory changes (creates, removals, renames) undone.
    pub entries: u64,
    /// Bytes kept of a torn last write, over all files.
    pub torn_bytes_kept: u64,
}

/// Undo state of one file's data since it was last durable.
struct FileUndo {
    /// A handle to the backing file, independent of its name (renames and removals).
    file: File,
    /// Its name when last written, for the report.
    name: String,
    durable_len: u64,
    /// Old bytes of durable regions overwritten since, oldest first.
    saved: Vec<(u64, Vec<u8>)>,
    last_write: Option<(u64, Vec<u8>)>,
    pending_bytes: u64,
}

/// A directory change not yet durable. Paths are relative to the backing root.
#[derive(Debug)]
enum DirOp {
    Created {
        parent: u64,
        path: PathBuf,
    },
    Removed {
        parent: u64,
        path: PathBuf,
        trash: PathBuf,
    },
    Renamed {
        from_parent: u64,
        to_parent: u64,
        from: PathBuf,
        to: PathBuf,
        replaced: Option<PathBuf>,
    },
}

impl DirOp {
    fn touches(&self, dir: u64) -> bool {
        match self {
            DirOp::Created { parent, .. } | DirOp::Removed { parent, .. } => *parent == dir,
            DirOp::Renamed {
                from_parent,
                to_parent,
                ..
            } => *from_parent == dir || *to_parent == dir,
        }
    }
}

/// Path-table updates a power loss asks of the filesystem (newest first, as undone).
#[derive(Debug, PartialEq, Eq)]
pub enum Undone {
    /// This path (and anything below it) no longer exists.
    Gone(PathBuf),
    /// This path was moved back: from `from` (where it was) to `to`.
    Moved { from: PathBuf, to: PathBuf },
}

/// The undo journal of one backing directory. Not thread-safe by itself: the filesystem
/// holds it under its lock.
pub struct Journal {
    root: PathBuf,
    trash: PathBuf,
    trash_seq: u64,
    files: HashMap<u64, FileUndo>,
    log: Vec<DirOp>,
}

impl Journal {
    /// A journal for `root` (the backing directory) keeping removed files in `trash` (created
    /// if missing, emptied: whatever is in it belongs to a previous session whose removals
    /// were never undone, so it is not part of the durable state).
    pub fn new(root: &Path, trash: &Path) -> io::Result<Journal> {
        if trash.exists() {
            std::fs::remove_dir_all(trash)?;
        }
        std::fs::create_dir_all(trash)?;
        Ok(Journal {
            root: root.to_path_buf(),
            trash: trash.to_path_buf(),
            trash_seq: 0,
            files: HashMap::new(),
            log: Vec::new(),
        })
    }

    fn abs(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    fn undo_for(&mut self, ino: u64, rel: &Path) -> io::Result<&mut FileUndo> {
        if !self.files.contains_key(&ino) {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.root.join(rel))?;
            // Nothing tracked means everything the file holds now is durable.
            let durable_len = file.metadata()?.len();
            self.files.insert(
                ino,
                FileUndo {
                    file,
                    name: rel.display().to_string(),
                    durable_len,
                    saved: Vec::new(),
                    last_write: None,
                    pending_bytes: 0,
                },
            );
        }
        let u = self.files.get_mut(&ino).expect("inserted above");
        u.name = rel.display().to_string();
        Ok(u)
    }

    /// Records a write of `data` at `offset` to file `ino` (backing path `rel`) that is about
    /// to be made; must be called before the write reaches the backing file.
    pub fn before_write(
        &mut self,
        ino: u64,
        rel: &Path,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        let u = self.undo_for(ino, rel)?;
        let end = offset + data.len() as u64;
        if offset < u.durable_len {
            let upto = end.min(u.durable_len);
            let mut old = vec![0; (upto - offset) as usize];
            let n = read_full(&u.file, &mut old, offset)?;
            old.truncate(n);
            u.saved.push((offset, old));
        }
        u.last_write = Some((offset, data.to_vec()));
        u.pending_bytes += data.len() as u64;
        Ok(())
    }

    /// Records a truncate (or extension) of file `ino` to `size`, before it is made.
    pub fn before_truncate(&mut self, ino: u64, rel: &Path, size: u64) -> io::Result<()> {
        let u = self.undo_for(ino, rel)?;
        if size < u.durable_len {
            let mut old = vec![0; (u.durable_len - size) as usize];
            let n = read_full(&u.file, &mut old, size)?;
            old.truncate(n);
            u.pending_bytes += n as u64;
            u.saved.push((size, old));
        }
        u.last_write = None;
        Ok(())
    }

    /// The file's data is durable (after `fsync`/`fdatasync` of it reached the backing file).
    pub fn file_synced(&mut self, ino: u64) {
        self.files.remove(&ino);
    }

    /// A file or directory `rel` was created in directory `parent`; its content starts empty
    /// (nothing of it is durable).
    pub fn created(&mut self, parent: u64, rel: &Path, ino: Option<u64>) -> io::Result<()> {
        if let Some(ino) = ino {
            self.undo_for(ino, rel)?.durable_len = 0;
        }
        self.log.push(DirOp::Created {
            parent,
            path: rel.to_path_buf(),
        });
        Ok(())
    }

    fn next_trash(&mut self) -> PathBuf {
        self.trash_seq += 1;
        self.trash.join(format!("{}", self.trash_seq))
    }

    /// Removes `rel` (a file or an empty directory) from directory `parent`, keeping it in the
    /// trash until the removal is durable.
    pub fn remove(&mut self, parent: u64, rel: &Path) -> io::Result<()> {
        let trash = self.next_trash();
        std::fs::rename(self.abs(rel), &trash)?;
        self.log.push(DirOp::Removed {
            parent,
            path: rel.to_path_buf(),
            trash,
        });
        Ok(())
    }

    /// Renames `from` (in directory `from_parent`) to `to` (in `to_parent`), keeping a
    /// replaced target in the trash until the rename is durable.
    pub fn rename(
        &mut self,
        from_parent: u64,
        from: &Path,
        to_parent: u64,
        to: &Path,
    ) -> io::Result<()> {
        let replaced = if std::fs::symlink_metadata(self.abs(to)).is_ok() {
            let trash = self.next_trash();
            std::fs::rename(self.abs(to), &trash)?;
            Some(trash)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(self.abs(from), self.abs(to)) {
            if let Some(t) = &replaced {
                let _ = std::fs::rename(t, self.abs(to));
            }
            return Err(e);
        }
        self.log.push(DirOp::Renamed {
            from_parent,
            to_parent,
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            replaced,
        });
        Ok(())
    }

    /// Directory `dir` was fsynced: every logged change up to the last one touching it is
    /// durable (removed files leave the trash for good).
    pub fn dir_synced(&mut self, dir: u64) {
        let Some(last) = self.log.iter().rposition(|op| op.touches(dir)) else {
            return;
        };
        for op in self.log.drain(..=last) {
            let trash = match op {
                DirOp::Removed { trash, .. } => Some(trash),
                DirOp::Renamed { replaced, .. } => replaced,
                DirOp::Created { .. } => None,
            };
            if let Some(t) = trash {
                let _ = remove_any(&t);
            }
        }
    }

    /// Whether anything is pending (data or entries).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.log.is_empty()
    }

    /// Power loss: undoes everything not durable. With `tear`, the last pending write of each
    /// file keeps a random strict prefix (possibly empty), as a write torn by the power cut.
    /// Returns what was discarded and the path changes, newest first.
    pub fn power_loss(
        &mut self,
        mut tear: Option<&mut dyn rand::RngCore>,
    ) -> io::Result<(Discarded, Vec<Undone>)> {
        let mut d = Discarded::default();
        let mut files: Vec<FileUndo> = self.files.drain().map(|(_, u)| u).collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        for u in files {
            for (off, old) in u.saved.iter().rev() {
                u.file.write_all_at(old, *off)?;
            }
            u.file.set_len(u.durable_len)?;
            let mut kept = 0;
            if let (Some(rng), Some((off, data))) = (tear.as_mut(), &u.last_write) {
                if !data.is_empty() {
                    let k = rng.gen_range(0..data.len());
                    u.file.write_all_at(&data[..k], *off)?;
                    kept = k as u64;
                }
            }
            d.bytes += u.pending_bytes.saturating_sub(kept);
            d.torn_bytes_kept += kept;
            // A file opened or created but not written lost nothing of its data.
            if u.pending_bytes > 0 {
                d.files.push(u.name);
            }
        }
        let mut undone = Vec::new();
        while let Some(op) = self.log.pop() {
            d.entries += 1;
            match op {
                DirOp::Created { path, .. } => {
                    remove_any(&self.abs(&path))?;
                    undone.push(Undone::Gone(path));
                }
                DirOp::Removed { path, trash, .. } => {
                    std::fs::rename(&trash, self.abs(&path))?;
                }
                DirOp::Renamed {
                    from, to, replaced, ..
                } => {
                    std::fs::rename(self.abs(&to), self.abs(&from))?;
                    undone.push(Undone::Moved {
                        from: to.clone(),
                        to: from,
                    });
                    if let Some(t) = replaced {
                        std::fs::rename(&t, self.abs(&to))?;
                    }
                }
            }
        }
        Ok((d, undone))
    }
}

fn read_full(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn remove_any(p: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn setup() -> (tempfile::TempDir, PathBuf, Journal) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let j = Journal::new(&root, &t.path().join("trash")).unwrap();
        (t, root, j)
    }

    fn write(j: &mut Journal, root: &Path, ino: u64, name: &str, off: u64, data: &[u8]) {
        j.before_write(ino, Path::new(name), off, data).unwrap();
        let f = OpenOptions::new()
            .write(true)
            .open(root.join(name))
            .unwrap();
        f.write_all_at(data, off).unwrap();
    }

    #[test]
    fn synced_data_survives_unsynced_is_dropped() {
        let (_t, root, mut j) = setup();
        std::fs::write(root.join("a"), b"").unwrap();
        write(&mut j, &root, 2, "a", 0, b"hello");
        j.file_synced(2);
        write(&mut j, &root, 2, "a", 5, b" world");
        write(&mut j, &root, 2, "a", 0, b"J");
        let (d, _) = j.power_loss(None).unwrap();
        assert_eq!(std::fs::read(root.join("a")).unwrap(), b"hello");
        assert_eq!(d.bytes, 7);
        assert_eq!(d.files, vec!["a".to_string()]);
    }

    #[test]
    fn create_without_dir_fsync_is_undone_with_it() {
        let (_t, root, mut j) = setup();
        std::fs::write(root.join("new"), b"").unwrap();
        j.created(1, Path::new("new"), Some(2)).unwrap();
        write(&mut j, &root, 2, "new", 0, b"data");
        j.file_synced(2);
        let (d, undone) = j.power_loss(None).unwrap();
        assert!(!root.join("new").exists());
        assert_eq!(d.entries, 1);
        assert_eq!(undone, vec![Undone::Gone(PathBuf::from("new"))]);
    }

    #[test]
    fn rename_without_dir_fsync_is_undone_and_replaced_target_back() {
        let (_t, root, mut j) = setup();
        std::fs::write(root.join("state"), b"old").unwrap();
        std::fs::write(root.join("state.tmp"), b"new").unwrap();
        j.rename(1, Path::new("state.tmp"), 1, Path::new("state"))
            .unwrap();
        assert_eq!(std::fs::read(root.join("state")).unwrap(), b"new");
        j.power_loss(None).unwrap();
        assert_eq!(std::fs::read(root.join("state")).unwrap(), b"old");
        assert_eq!(std::fs::read(root.join("state.tmp")).unwrap(), b"new");
    }

    #[test]
    fn dir_fsync_makes_the_prefix_durable() {
        let (_t, root, mut j) = setup();
        std::fs::create_dir(root.join("d")).unwrap();
        j.created(1, Path::new("d"), None).unwrap();
        std::fs::write(root.join("d/x"), b"").unwrap();
        j.created(5, Path::new("d/x"), Some(6)).unwrap();
        std::fs::write(root.join("y"), b"").unwrap();
        j.created(1, Path::new("y"), Some(7)).unwrap();
        j.dir_synced(5); // covers the mkdir of d (earlier) and d/x, not y
        j.remove(1, Path::new("d/x")).unwrap_or(());
        let (d, _) = j.power_loss(None).unwrap();
        assert!(root.join("d/x").exists(), "removal undone, create durable");
        assert!(!root.join("y").exists());
        assert_eq!(d.entries, 2);
    }

    #[test]
    fn removal_is_undone_until_dir_fsync() {
        let (_t, root, mut j) = setup();
        std::fs::write(root.join("seg"), b"abc").unwrap();
        j.remove(1, Path::new("seg")).unwrap();
        assert!(!root.join("seg").exists());
        j.power_loss(None).unwrap();
        assert_eq!(std::fs::read(root.join("seg")).unwrap(), b"abc");
        j.remove(1, Path::new("seg")).unwrap();
        j.dir_synced(1);
        j.power_loss(None).unwrap();
        assert!(!root.join("seg").exists());
    }

    #[test]
    fn torn_write_keeps_a_strict_prefix() {
        for seed in 0..20u64 {
            let (_t, root, mut j) = setup();
            std::fs::write(root.join("log"), b"").unwrap();
            write(&mut j, &root, 2, "log", 0, b"durable|");
            j.file_synced(2);
            write(&mut j, &root, 2, "log", 8, b"first|");
            write(&mut j, &root, 2, "log", 14, b"0123456789");
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (d, _) = j.power_loss(Some(&mut rng)).unwrap();
            let got = std::fs::read(root.join("log")).unwrap();
            assert!(got.starts_with(b"durable|"), "seed {seed}: {got:?}");
            let tail = &got[8..];
            // The bytes between the durable end and the torn write read as zeros (a hole).
            let expect_prefix = &b"0123456789"[..d.torn_bytes_kept as usize];
            if d.torn_bytes_kept > 0 {
                assert_eq!(&tail[..6], &[0u8; 6], "seed {seed}");
                assert_eq!(&tail[6..], expect_prefix, "seed {seed}");
            } else {
                assert!(tail.is_empty(), "seed {seed}");
            }
            assert!(d.torn_bytes_kept < 10, "seed {seed}");
        }
    }

    #[test]
    fn truncate_of_durable_data_is_undone() {
        let (_t, root, mut j) = setup();
        std::fs::write(root.join("f"), b"0123456789").unwrap();
        j.before_truncate(2, Path::new("f"), 3).unwrap();
        OpenOptions::new()
            .write(true)
            .open(root.join("f"))
            .unwrap()
            .set_len(3)
            .unwrap();
        write(&mut j, &root, 2, "f", 3, b"xyz");
        j.power_loss(None).unwrap();
        assert_eq!(std::fs::read(root.join("f")).unwrap(), b"0123456789");
    }
}

//! Errors of durable storage.

use std::path::PathBuf;

/// Why a storage operation failed. Every variant names what it is about so that the node's
/// fatal error message is enough to find the problem on disk.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system call failed on `path`.
    #[error("{op} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        /// What was being done (`"open"`, `"fsync"`, ...).
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The log holds a damaged record that is not its last one (or a sequence of records no
    /// correct writer produces). The node must not start: data that was acknowledged may be
    /// behind the damage, and skipping it would silently lose it.
    #[error("write-ahead log {} is corrupt at byte offset {offset}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        /// Byte offset of the start of the offending record.
        offset: u64,
        reason: String,
    },
    /// A snapshot file is damaged (bad magic, length or checksum). The node must not start:
    /// the log it covers was deleted, so nothing could replace it.
    #[error("snapshot {} is corrupt: {reason}", path.display())]
    CorruptSnapshot { path: PathBuf, reason: String },
    /// Another process (or another `Storage` in this one) holds the log open.
    #[error("write-ahead log {} is locked by another process", path.display())]
    Locked { path: PathBuf },
    /// The caller asked to append entries that would leave a gap or are not consecutive.
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// The caller asked to save a hard state that goes back in term or changes the vote
    /// within a term: persisting it could let this node vote twice in one term.
    #[error("invalid hard state: {0}")]
    HardStateRegression(String),
    /// A record could not be encoded (too large).
    #[error("cannot encode record: {0}")]
    Encode(#[from] super::record::EncodeError),
    /// An earlier write or fsync failed; after a failed fsync the kernel may have dropped
    /// the dirty pages, so nothing written since the last successful sync can be trusted.
    /// The process must restart and recover from the file.
    #[error("storage {} is unusable after an earlier write or fsync failure; restart to recover", path.display())]
    Poisoned { path: PathBuf },
}

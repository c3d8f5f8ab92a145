//! Snapshot files: the state machine at some index, its metadata, and where the log that
//! follows it starts. Written atomically (temp file, fsync, rename, fsync the directory) and
//! checksummed, so a reader sees either a whole valid snapshot or detects damage.
//!
//! ```text
//! offset 0   8 bytes  magic "RAFTSNP1"
//! offset 8   u64 LE   body length
//! offset 16  u32 LE   CRC32 of the body
//! offset 20  ...      body: bincode of `SnapshotBody`
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::raft::{LogIndex, SnapshotMeta};

/// The first bytes of every snapshot file.
pub const MAGIC: &[u8; 8] = b"RAFTSNP1";
const HEADER: usize = 20;

/// What a snapshot file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotBody {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The first WAL segment whose entries follow the snapshot; entries of older segments
    /// are covered by it (their hard-state records still count).
    pub first_segment: u64,
    /// The state machine's bytes.
    pub data: Vec<u8>,
}

/// The file name of the snapshot at `index`.
pub fn file_name(index: LogIndex) -> String {
    format!("snap-{index:020}.snap")
}

/// The index a snapshot file name stands for, if it is one.
pub fn parse_name(name: &str) -> Option<LogIndex> {
    name.strip_prefix("snap-")?
        .strip_suffix(".snap")?
        .parse()
        .ok()
}

/// The path of the temporary file a snapshot is written to before its rename.
pub fn temp_path(dir: &Path, index: LogIndex) -> PathBuf {
    dir.join(format!("{}.tmp", file_name(index)))
}

/// Encodes a snapshot file.
pub fn encode(body: &SnapshotBody) -> Result<Vec<u8>, String> {
    let payload = bincode::serialize(body).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes a snapshot file, checking magic, length and checksum; Err says what is wrong.
pub fn decode(bytes: &[u8]) -> Result<SnapshotBody, String> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err("not a snapshot file (bad magic or too short)".into());
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len {
        return Err(format!(
            "body is {} bytes but the header says {len}",
            payload.len()
        ));
    }
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".into());
    }
    bincode::deserialize(payload).map_err(|e| format!("undecodable body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_byte_is_detected() {
        let body = SnapshotBody {
            meta: SnapshotMeta {
                index: 7,
                term: 2,
                config: crate::raft::ClusterConfig::simple([1, 2, 3]),
            },
            first_segment: 3,
            data: vec![1, 2, 3, 4, 5],
        };
        let bytes = encode(&body).unwrap();
        assert_eq!(decode(&bytes).unwrap(), body);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode(&b).is_err(), "flip at byte {i} undetected");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name("wal-1.log"), None);
    }
}

//! The on-disk record format of the write-ahead log, and the scan that splits a log file's
//! bytes into records, telling a torn tail (cut it) from corruption (refuse to start).
//!
//! A record is a 12-byte header followed by its payload:
//!
//! ```text
//! offset 0  u32 LE  payload length
//! offset 4  u32 LE  CRC32 of the payload
//! offset 8  u32 LE  CRC32 of header bytes 0..8 (length and payload checksum)
//! offset 12 ...     payload: bincode (fixed-width integers, little endian) of a `Record`
//! ```
//!
//! The header has its own checksum so that a corrupted length can never be mistaken for a
//! record that runs past the end of the file (which would look like a harmless torn tail and
//! silently drop every later record).

use bincode::Options;
use serde::{Deserialize, Serialize};

use crate::raft::{Entry, HardState};

/// Bytes in a record header.
pub const HEADER_BYTES: usize = 12;

/// The largest payload a record may have. Entries carry client commands, which arrive in
/// frames of at most 4 MiB, so this leaves ample room; a larger length in a header whose
/// checksum is valid means the file was not written by this code.
pub const MAX_PAYLOAD_BYTES: u32 = 64 << 20;

/// What one record of the write-ahead log holds. New kinds may only be added at the end, so
/// that existing files keep decoding (bincode numbers variants in declaration order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// A log entry. On replay, an entry whose index is at or below the last index replaces
    /// that index and everything after it (conflict truncation, made durable append-only).
    Entry(Entry),
    /// The hard state; the last one in the file wins.
    HardState(HardState),
}

/// A borrowed [`Record`] for writing without copying entries. Serializes to exactly the
/// bytes of the corresponding `Record` (bincode encodes a reference like its target and an
/// enum by variant position), so it must keep the same variants in the same order.
#[derive(Clone, Copy, Debug, Serialize)]
pub enum RecordRef<'a> {
    Entry(&'a Entry),
    HardState(&'a HardState),
}

/// The bincode configuration of record payloads: fixed-width little-endian integers so the
/// format does not depend on bincode's defaults, and a size limit so that a decoded length
/// prefix can never make us allocate more than the payload could hold.
fn codec() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(u64::from(MAX_PAYLOAD_BYTES))
}

/// Why a record could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The payload would exceed [`MAX_PAYLOAD_BYTES`].
    #[error("record payload of {len} bytes exceeds the maximum of {MAX_PAYLOAD_BYTES} bytes")]
    TooLarge { len: usize },
    /// bincode refused the value (cannot happen for the types above, but is not assumed).
    #[error("cannot encode record: {0}")]
    Bincode(String),
}

/// Appends the encoding of `record` (header and payload) to `out` and returns how many bytes
/// were appended. On error `out` is unchanged.
pub fn encode_record(record: RecordRef<'_>, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    let payload = codec()
        .serialize(&record)
        .map_err(|e| EncodeError::Bincode(e.to_string()))?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_PAYLOAD_BYTES)
        .ok_or(EncodeError::TooLarge { len: payload.len() })?;
    out.reserve(HEADER_BYTES + payload.len());
    out.extend_from_slice(&header(len, crc32fast::hash(&payload)));
    out.extend_from_slice(&payload);
    Ok(HEADER_BYTES + payload.len())
}

impl Record {
    /// The borrowed form, for [`encode_record`].
    pub fn as_ref(&self) -> RecordRef<'_> {
        match self {
            Record::Entry(e) => RecordRef::Entry(e),
            Record::HardState(h) => RecordRef::HardState(h),
        }
    }
}

/// Builds a header for a payload of `len` bytes with checksum `payload_crc`.
fn header(len: u32, payload_crc: u32) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[4..8].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&h[0..8]);
    h[8..12].copy_from_slice(&header_crc.to_le_bytes());
    h
}

/// A damaged record that is not at the end of the file: the log cannot be trusted past it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptAt {
    /// Byte offset of the start of the damaged record.
    pub offset: u64,
    /// What is wrong with it, for people.
    pub reason: String,
}

/// An incomplete or damaged last record, safe to cut because nothing valid follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Byte offset where the torn record starts (= end of the last good record).
    pub offset: u64,
    /// What was found there, for the log line.
    pub reason: &'static str,
}

/// The result of scanning a whole log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scanned {
    /// Bytes from the start of the file up to the end of the last good record.
    pub valid_len: u64,
    /// Set when bytes after `valid_len` are a torn tail to cut.
    pub torn: Option<TornTail>,
}

/// Splits `bytes` (a whole log file) into records, calling `on_record(offset, record)` for
/// each good record in order; stops at the first error `on_record` returns.
///
/// The first bad spot decides the outcome. It is a torn tail (returned in
/// [`Scanned::torn`]) when it is: an incomplete header; a valid header whose payload runs
/// past the end of the file; a valid header whose payload checksum fails and after which
/// there is nothing but zeros (the very last record); or a header whose checksum fails
/// followed only by zeros (an unwritten, zero-filled tail). Anything else - a bad header
/// or payload followed by other data, or a payload that passes its checksum but does not
/// decode - is [`CorruptAt`] the start of that record. A bad header checksum with data
/// after it is always corruption because its length cannot be trusted to tell whether this
/// was the last record.
pub fn scan<F>(bytes: &[u8], mut on_record: F) -> Result<Scanned, CorruptAt>
where
    F: FnMut(u64, Record) -> Result<(), CorruptAt>,
{
    let mut pos = 0usize;
    // Each iteration consumes at least HEADER_BYTES or returns, so the loop is bounded by
    // bytes.len() / HEADER_BYTES iterations.
    while pos < bytes.len() {
        let offset = pos as u64;
        let torn = |reason| {
            Ok(Scanned {
                valid_len: offset,
                torn: Some(TornTail { offset, reason }),
            })
        };
        let corrupt = |reason: String| Err(CorruptAt { offset, reason });
        let rest = &bytes[pos..];
        if rest.len() < HEADER_BYTES {
            return torn("incomplete record header");
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let payload_crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let header_crc = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if crc32fast::hash(&rest[0..8]) != header_crc {
            if all_zero(&rest[HEADER_BYTES..]) {
                return torn("zero-filled or partly written header at the end of the file");
            }
            return corrupt(format!(
                "record header checksum mismatch (stored {header_crc:#010x}) with {} more bytes after it",
                rest.len() - HEADER_BYTES
            ));
        }
        if len > MAX_PAYLOAD_BYTES {
            return corrupt(format!(
                "record length {len} exceeds the maximum of {MAX_PAYLOAD_BYTES}"
            ));
        }
        let end = HEADER_BYTES + len as usize;
        if rest.len() < end {
            return torn("record payload runs past the end of the file");
        }
        let payload = &rest[HEADER_BYTES..end];
        if crc32fast::hash(payload) != payload_crc {
            if all_zero(&rest[end..]) {
                return torn("payload checksum mismatch in the last record");
            }
            return corrupt(format!(
                "record payload checksum mismatch ({len}-byte payload) with {} more bytes after it",
                rest.len() - end
            ));
        }
        let record: Record = match codec().deserialize(payload) {
            Ok(r) => r,
            Err(e) => {
                return corrupt(format!(
                    "record passes its checksum but does not decode: {e}"
                ))
            }
        };
        on_record(offset, record)?;
        pos += end;
    }
    Ok(Scanned {
        valid_len: pos as u64,
        torn: None,
    })
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryPayload;

    fn entry(index: u64, term: u64) -> Record {
        Record::Entry(Entry {
            term,
            index,
            payload: EntryPayload::Command(vec![index as u8; 5]),
        })
    }

    fn collect(bytes: &[u8]) -> Result<(Vec<(u64, Record)>, Scanned), CorruptAt> {
        let mut out = Vec::new();
        let s = scan(bytes, |o, r| {
            out.push((o, r));
            Ok(())
        })?;
        Ok((out, s))
    }

    #[test]
    fn round_trip_of_records() {
        let recs = vec![
            entry(1, 1),
            Record::HardState(HardState {
                term: 2,
                voted_for: Some(3),
                commit: 1,
            }),
            Record::Entry(Entry {
                term: 2,
                index: 2,
                payload: EntryPayload::Noop,
            }),
        ];
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for r in &recs {
            offsets.push(buf.len() as u64);
            encode_record(r.as_ref(), &mut buf).unwrap();
        }
        let (got, s) = collect(&buf).unwrap();
        assert_eq!(s.valid_len, buf.len() as u64);
        assert_eq!(s.torn, None);
        assert_eq!(got.iter().map(|(o, _)| *o).collect::<Vec<_>>(), offsets);
        assert_eq!(got.into_iter().map(|(_, r)| r).collect::<Vec<_>>(), recs);
    }

    #[test]
    fn empty_file_is_empty_log() {
        let (got, s) = collect(&[]).unwrap();
        assert!(got.is_empty());
        assert_eq!(s.valid_len, 0);
        assert_eq!(s.torn, None);
    }

    #[test]
    fn zero_tail_after_good_records_is_torn() {
        let mut buf = Vec::new();
        encode_record(entry(1, 1).as_ref(), &mut buf).unwrap();
        let good = buf.len() as u64;
        buf.extend_from_slice(&[0u8; 4096]);
        let (got, s) = collect(&buf).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(s.valid_len, good);
        assert_eq!(s.torn.unwrap().offset, good);
    }

    #[test]
    fn last_record_with_zeroed_payload_is_torn() {
        let mut buf = Vec::new();
        encode_record(entry(1, 1).as_ref(), &mut buf).unwrap();
        let good = buf.len();
        encode_record(entry(2, 1).as_ref(), &mut buf).unwrap();
        for b in &mut buf[good + HEADER_BYTES..] {
            *b = 0;
        }
        let (_, s) = collect(&buf).unwrap();
        assert_eq!(s.valid_len, good as u64);
    }

    #[test]
    fn corrupted_length_is_not_mistaken_for_a_torn_tail() {
        let mut buf = Vec::new();
        encode_record(entry(1, 1).as_ref(), &mut buf).unwrap();
        let second = buf.len();
        encode_record(entry(2, 1).as_ref(), &mut buf).unwrap();
        encode_record(entry(3, 1).as_ref(), &mut buf).unwrap();
        // A length far past the end of the file would read as "payload runs past the end"
        // without the header checksum.
        buf[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = collect(&buf).unwrap_err();
        assert_eq!(err.offset, second as u64);
        assert!(err.reason.contains("header checksum"), "{}", err.reason);
    }

    #[test]
    fn valid_checksum_but_undecodable_payload_is_corrupt() {
        let payload = [0xffu8; 8];
        let mut buf = header(payload.len() as u32, crc32fast::hash(&payload)).to_vec();
        buf.extend_from_slice(&payload);
        let err = collect(&buf).unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(err.reason.contains("does not decode"), "{}", err.reason);
    }

    #[test]
    fn oversized_length_with_valid_header_is_corrupt() {
        let mut buf = header(MAX_PAYLOAD_BYTES + 1, 0).to_vec();
        buf.extend_from_slice(&[1u8; 64]);
        let err = collect(&buf).unwrap_err();
        assert!(err.reason.contains("exceeds"), "{}", err.reason);
    }

    #[test]
    fn callback_error_stops_the_scan() {
        let mut buf = Vec::new();
        encode_record(entry(1, 1).as_ref(), &mut buf).unwrap();
        encode_record(entry(2, 1).as_ref(), &mut buf).unwrap();
        let mut seen = 0;
        let err = scan(&buf, |o, _| {
            seen += 1;
            Err(CorruptAt {
                offset: o,
                reason: "no".into(),
            })
        })
        .unwrap_err();
        assert_eq!((seen, err.offset), (1, 0));
    }
}

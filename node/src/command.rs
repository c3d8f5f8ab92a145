//! The write commands, defined once: [`Put`], [`Cas`] and [`Add`], each with the
//! [`WriteId`] that makes a retry apply at most once.
//!
//! Both places a write travels carry these same structs: the client request
//! ([`protocol::Operation`](crate::protocol::Operation), JSON) and the log entry
//! ([`kv::Command`](crate::kv::Command), bincode). Each enum wraps a command in a
//! newtype variant of the command's name, which serializes exactly as the struct variant
//! with these fields did before: in the internally tagged JSON the fields sit next to
//! `"type"`, and bincode writes the variant index followed by the fields in order. So the
//! field names, their order and their types here are part of both formats: never rename,
//! reorder or retype them (the golden tests `request_json_is_stable` in `protocol.rs` and
//! `command_encoding_is_stable` in `kv.rs` hold them to it).

use serde::{Deserialize, Serialize};

/// Identifies a client write for de-duplication: a retry with the same `client` and `seq` is
/// applied at most once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WriteId {
    /// The client's id, unique among the clients of a run.
    pub client: u64,
    /// The client's sequence number for this request; a retry reuses it.
    pub seq: u64,
}

/// Set `key` to the integer `value`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    /// The key written.
    pub key: String,
    /// The value it holds afterwards.
    pub value: i64,
    /// The write's identity for de-duplication.
    pub write_id: WriteId,
}

/// Set `key` to `new` if its value is `expected` (`None`: the key has no value); otherwise
/// change nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cas {
    /// The key compared and maybe written.
    pub key: String,
    /// The value the key must hold for the swap (`None`: no value).
    pub expected: Option<i64>,
    /// The value it holds afterwards if the swap happened.
    pub new: i64,
    /// The write's identity for de-duplication.
    pub write_id: WriteId,
}

/// Add `element` to the set stored at `key` (creating the set; the set workload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Add {
    /// The key of the set.
    pub key: String,
    /// The element added.
    pub element: i64,
    /// The write's identity for de-duplication.
    pub write_id: WriteId,
}

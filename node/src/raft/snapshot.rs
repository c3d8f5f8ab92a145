//! Snapshots in the core: compaction of the log behind a durable snapshot, and
//! InstallSnapshot (the leader sends a snapshot in chunks, one chunk in flight and no
//! appends meanwhile; the follower assembles it in memory and adopts it only when complete).
//!
//! Rules enforced here (`docs/raft-pitfalls.md` #20 and the ones it builds on):
//! - compaction only up to an applied index, after the current snapshot, with metadata
//!   (term, configuration) that matches the log there;
//! - a received snapshot replaces nothing until its last chunk arrived and it passed the
//!   [`SnapshotCheck`]; one at or below the commit index changes nothing; one whose last
//!   entry this log already holds only advances the commit index;
//! - a snapshot being received is bounded in size (`MAX_SNAPSHOT_BYTES`) and lives in memory
//!   only, so a crash mid-receive leaves the old state.

use super::core::{append_ok, Raft};
use super::message::MessageBody;
use super::progress::ProgressState;
use super::ready::{CompactError, Role};
use super::types::{LogIndex, NodeId, Snapshot, SnapshotMeta};
use std::sync::Arc;
use tracing::{debug, error, info};

/// A snapshot being received may not grow beyond this many bytes (memory bound against a
/// misbehaving peer).
const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

/// Says whether snapshot bytes describe a state the state machine can load at the given
/// index; see [`Raft::set_snapshot_check`]. A plain function so that the core stays free of
/// captured state.
pub type SnapshotCheck = fn(&[u8], LogIndex) -> Result<(), String>;

impl Raft {
    /// Installs the check a complete snapshot from a leader must pass before this node
    /// adopts it. One that fails is dropped with an error log: the log, commit index and
    /// state machine stay as they were, it is neither handed out in a Ready nor
    /// acknowledged, and the leader sends it again later. Without a check every complete
    /// snapshot is adopted.
    pub fn set_snapshot_check(&mut self, check: SnapshotCheck) {
        self.snapshot_check = Some(check);
    }

    /// The newest snapshot this node holds.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The metadata a snapshot of the state machine at `index` must carry: the term there
    /// and the configuration in effect there. None unless `index` is applied and not below
    /// the current snapshot.
    pub fn snapshot_meta(&self, index: LogIndex) -> Option<SnapshotMeta> {
        if index > self.log.applied() || index < self.log.snapshot_index() {
            return None;
        }
        Some(SnapshotMeta {
            index,
            term: self.log.term(index)?,
            config: self.log.config_at(index).clone(),
        })
    }

    /// Discards the log up to the snapshot's index, after the runtime made the snapshot
    /// durable. The snapshot is kept to send to followers that need discarded entries.
    /// Refused (nothing changes) unless the index is applied and after the current snapshot
    /// and the metadata matches [`Raft::snapshot_meta`].
    pub fn compact(&mut self, snapshot: Snapshot) -> Result<(), CompactError> {
        let index = snapshot.meta.index;
        let bad = CompactError::BadIndex {
            index,
            applied: self.log.applied(),
            snapshot_index: self.log.snapshot_index(),
        };
        if index <= self.log.snapshot_index() {
            return Err(bad);
        }
        match self.snapshot_meta(index) {
            None => return Err(bad),
            Some(m) if m != snapshot.meta => return Err(CompactError::Mismatch(index)),
            Some(_) => {}
        }
        if !self.log.compact_to(index) {
            return Err(bad);
        }
        debug!(index, "log compacted");
        self.snapshot = Some(snapshot);
        Ok(())
    }

    /// Follower: one chunk of the leader's snapshot. Chunks must arrive in order; the
    /// answer names the offset wanted next. The log and state machine are replaced only
    /// when the last chunk arrived.
    pub(super) fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        data: Vec<u8>,
        done: bool,
    ) {
        let committed = self.log.committed();
        if meta.index <= committed {
            // Nothing to learn: everything up to our commit index matches the leader.
            self.incoming_snapshot = None;
            self.send(from, append_ok(committed));
            return;
        }
        let index = meta.index;
        if offset == 0 {
            self.incoming_snapshot = Some((meta, Vec::new()));
        }
        // Two snapshots of one (committed) index hold the same state, so the index alone
        // identifies the snapshot being assembled.
        let have = match &self.incoming_snapshot {
            Some((m, buf)) if m.index == index => Some(buf.len() as u64),
            _ => None,
        };
        if have != Some(offset) {
            self.send(
                from,
                MessageBody::SnapshotResponse {
                    index,
                    next_offset: have.unwrap_or(0),
                },
            );
            return;
        }
        let Some((_, buf)) = self.incoming_snapshot.as_mut() else {
            return;
        };
        if buf.len().saturating_add(data.len()) > MAX_SNAPSHOT_BYTES {
            error!(
                from,
                index, "snapshot larger than {MAX_SNAPSHOT_BYTES} bytes; dropped"
            );
            self.incoming_snapshot = None;
            return;
        }
        buf.extend_from_slice(&data);
        let next_offset = buf.len() as u64;
        if !done {
            self.send(from, MessageBody::SnapshotResponse { index, next_offset });
            return;
        }
        let Some((meta, buf)) = self.incoming_snapshot.take() else {
            return;
        };
        // Checked before anything changes: once adopted, the log no longer holds what the
        // snapshot replaces, so a snapshot the runtime cannot load would leave it stuck.
        if let Some(Err(reason)) = self.snapshot_check.map(|check| check(&buf, meta.index)) {
            error!(
                from,
                index = meta.index,
                bytes = buf.len(),
                %reason,
                "snapshot from the leader cannot be loaded; dropped"
            );
            return;
        }
        if self.log.term(meta.index) == Some(meta.term) {
            // This log already holds the snapshot's last entry, so (log matching) everything
            // before it too: keep the log and its suffix, just learn the commit.
            self.log.commit_to(meta.index);
        } else {
            info!(
                index = meta.index,
                term = meta.term,
                bytes = buf.len(),
                "installing snapshot from leader"
            );
            self.log.restore(&meta);
            let snap = Snapshot {
                meta,
                data: Arc::new(buf),
            };
            self.snapshot = Some(snap.clone());
            self.pending_snapshot = Some(snap);
        }
        self.send(from, append_ok(index));
    }

    /// Leader: the follower has the snapshot's bytes up to `next_offset`; send the next chunk.
    pub(super) fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        index: LogIndex,
        next_offset: u64,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if pr.state != ProgressState::Snapshot || pr.snapshot_index != index {
            return;
        }
        pr.snapshot_offset = next_offset;
        pr.snapshot_sent = false;
        self.send_snapshot_chunk(from);
    }

    /// Leader: sends the next chunk of the current snapshot to a follower in snapshot state
    /// (restarting from the first byte if the leader's snapshot changed meanwhile).
    pub(super) fn send_snapshot_chunk(&mut self, to: NodeId) -> bool {
        let Some(snap) = self.snapshot.as_ref() else {
            error!(to, "follower needs a snapshot but none is held");
            return false;
        };
        let (meta, data) = (snap.meta.clone(), snap.data.clone());
        let chunk = self.cfg.max_snapshot_chunk as u64;
        let Some(pr) = self.progress.get_mut(&to) else {
            return false;
        };
        if pr.snapshot_index != meta.index {
            pr.become_snapshot(meta.index);
        }
        if pr.snapshot_sent {
            return false;
        }
        let len = data.len() as u64;
        let start = pr.snapshot_offset.min(len);
        let end = start.saturating_add(chunk).min(len);
        pr.snapshot_sent = true;
        self.send(
            to,
            MessageBody::InstallSnapshot {
                meta,
                offset: start,
                data: data[start as usize..end as usize].to_vec(),
                done: end == len,
            },
        );
        true
    }
}

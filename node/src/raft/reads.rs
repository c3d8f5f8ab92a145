//! The read paths of the core: read index (on the leader, and forwarded by followers), the
//! leader's lease, and the follower's half of that lease (refusing votes while a live leader
//! was heard recently). Like etcd-raft's `read_only.go`.
//!
//! Rules enforced here (numbers are `docs/raft-pitfalls.md` items):
//! - #1: no read index and no lease until an entry of the leader's term is committed;
//! - #2: a read index is the commit index when the read was registered, released only once
//!   a majority acknowledged a heartbeat round started after that; round ids are unique and
//!   increasing for the life of the node, and an acknowledgement counts for its own round and
//!   older ones only;
//! - #4, #7: the lease runs from the creation tick of the newest majority-acknowledged round
//!   for [`Config::lease_ticks`](super::Config::lease_ticks), and followers refuse votes for
//!   `election_ticks_min` of their own ticks after hearing a leader (or after a restart);
//! - pending reads of a leader that loses leadership are failed (own) or left to time out
//!   (followers'), never answered.

use super::core::Raft;
use super::message::MessageBody;
use super::ready::{ReadError, ReadState, Role};
use super::types::{LogIndex, NodeId};

/// A read request waiting for its heartbeat round to be acknowledged by a majority.
#[derive(Clone, Debug)]
pub(super) struct PendingRead {
    /// Who asked: this node, or a follower to answer with a message.
    from: NodeId,
    ctx: u64,
    index: LogIndex,
    round: u64,
}

impl Raft {
    /// Requests a linearizable read index for request `ctx`. The answer comes in a later
    /// Ready as a [`ReadState`] (or in `failed_reads`). On the leader it is the commit index
    /// at the time of the call, released after a heartbeat round started after the call is
    /// acknowledged by a majority; concurrent requests share a round. A follower forwards the
    /// request to the leader; if the leader never answers, the caller must time out.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ReadError> {
        if self.role != Role::Leader {
            let leader = self.leader.ok_or(ReadError::NoLeader)?;
            self.send(leader, MessageBody::ReadIndexRequest { ctx });
            return Ok(());
        }
        if !self.committed_in_term() {
            return Err(ReadError::LeaderNotReady);
        }
        let me = self.cfg.id;
        self.leader_read(me, ctx);
        Ok(())
    }

    /// True while this leader's lease holds: a majority acknowledged a heartbeat round
    /// created at tick t, now < t + [`Config::lease_ticks`](super::Config::lease_ticks)
    /// (floor((election_ticks_min − 1) × (1 − max_clock_drift))), and an entry of this term
    /// is committed. Followers do not vote for others until `election_ticks_min` of their own
    /// ticks after they heard that heartbeat (leader stickiness), which is more than
    /// `election_ticks_min − 1` of their ticks, so no other leader can exist while the lease
    /// holds provided no follower's clock runs more than
    /// [`Config::lease_rate_bound`](super::Config::lease_rate_bound) (≥ 1 / (1 −
    /// max_clock_drift)) times as fast as this node's. Always false without check-quorum,
    /// which stickiness depends on.
    pub fn lease_read_ok(&self) -> bool {
        self.lease()
            .is_some_and(|(start, ticks)| self.now < start + ticks)
    }

    /// The lease [`Raft::lease_read_ok`] judges, as (the tick at which the majority-acked
    /// round was created, the ticks the lease lasts from it), while this node is a leader
    /// with check-quorum and an entry of its term committed; None otherwise. For a runtime
    /// that measures the lease on another clock (the deliberate bug `lease-wall-clock`).
    pub fn lease(&self) -> Option<(u64, u64)> {
        if self.role == Role::Leader && self.cfg.check_quorum && self.committed_in_term() {
            self.lease_start
                .map(|start| (start, self.cfg.lease_ticks()))
        } else {
            None
        }
    }

    /// Leader: registers a read for `from` (itself or a follower) at the current commit index.
    fn leader_read(&mut self, from: NodeId, ctx: u64) {
        let index = self.log.committed();
        if self.cfg.bugs.read_index_no_confirm || self.quorum.is_only(self.cfg.id) {
            self.deliver_read(from, ctx, index);
            return;
        }
        let round = match self.open_round {
            Some(r) => r,
            None => self.bcast_heartbeat(),
        };
        self.pending_reads.push(PendingRead {
            from,
            ctx,
            index,
            round,
        });
    }

    fn deliver_read(&mut self, from: NodeId, ctx: u64, index: LogIndex) {
        if from == self.cfg.id {
            self.read_states.push(ReadState { ctx, index });
        } else {
            self.send(
                from,
                MessageBody::ReadIndexResponse {
                    ctx,
                    index: Some(index),
                },
            );
        }
    }

    /// Leader: releases reads and extends the lease up to the newest round a majority acked.
    pub(super) fn confirm_rounds(&mut self) {
        let me = self.cfg.id;
        let own = self.next_round - 1;
        let progress = &self.progress;
        let confirmed = self.quorum.committed_index(|v| {
            if v == me {
                own
            } else {
                progress.get(&v).map_or(0, |p| p.acked_round)
            }
        });
        if confirmed == 0 {
            return;
        }
        if let Some(&t) = self.round_sent_at.get(&confirmed) {
            self.lease_start = Some(self.lease_start.map_or(t, |s| s.max(t)));
        }
        self.round_sent_at = self.round_sent_at.split_off(&confirmed);
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_reads)
            .into_iter()
            .partition(|r| r.round <= confirmed);
        self.pending_reads = waiting;
        for r in ready {
            self.deliver_read(r.from, r.ctx, r.index);
        }
    }

    /// Drops pending reads when leadership ends: own ones are reported failed, followers'
    /// ones time out on the follower.
    pub(super) fn fail_pending_reads(&mut self) {
        let me = self.cfg.id;
        for r in std::mem::take(&mut self.pending_reads) {
            if r.from == me {
                self.failed_reads.push(r.ctx);
            }
        }
    }

    /// Whether this node must ignore (pre-)vote requests because it heard from a live leader
    /// (or restarted) less than a minimum election timeout ago: fewer than
    /// `election_ticks_min` of its own ticks since. The leader's lease is sized against this
    /// rule in [`Config::lease_ticks`](super::Config::lease_ticks); change them together.
    pub(super) fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && !self.cfg.bugs.lease_no_margin
            && (self.leader.is_some() || self.restart_guard)
            && self.election_elapsed < self.cfg.election_ticks_min
    }

    /// Leader: a follower forwards a read. Registered like a local read once an entry of
    /// this term is committed; refused (`index: None`) otherwise, or if this node is not the
    /// leader.
    pub(super) fn handle_read_index_request(&mut self, from: NodeId, ctx: u64) {
        if self.role == Role::Leader && self.committed_in_term() {
            self.leader_read(from, ctx);
        } else {
            self.send(from, MessageBody::ReadIndexResponse { ctx, index: None });
        }
    }

    /// Follower: the leader's answer to a forwarded read, handed out in the next Ready as a
    /// read state (or a failed read). Ignored by a leader.
    pub(super) fn handle_read_index_response(&mut self, ctx: u64, index: Option<LogIndex>) {
        if self.role != Role::Leader {
            match index {
                Some(index) => self.read_states.push(ReadState { ctx, index }),
                None => self.failed_reads.push(ctx),
            }
        }
    }
}

//! The Raft state machine: `step` (a message), `tick` (a clock tick) and `propose` go in;
//! [`Ready`] comes out. Structure and naming follow etcd-raft: `become_*` changes role,
//! `handle_*` processes one message kind, `maybe_*` may change state and says whether it did.
//!
//! This file holds the state ([`Raft`]), construction, ticks, elections, replication and
//! commit, and the `ready` / `advance` interface. Concerns with rules of their own live in
//! sibling files, each an `impl Raft` block on the same struct (its fields are `pub(super)`:
//! visible to the `raft` module tree, not outside it): the read paths and leases in
//! [`reads`](super::reads), membership changes in [`membership`](super::membership),
//! snapshots and compaction in [`snapshot`](super::snapshot).

use super::config::Config;
use super::log::RaftLog;
use super::membership::PendingChange;
use super::message::{Message, MessageBody};
use super::progress::{Progress, ProgressState};
use super::quorum::{JointConfig, VoteResult};
use super::reads::PendingRead;
use super::ready::{ProposeError, RaftStatus, ReadState, Ready, Role};
use super::snapshot::SnapshotCheck;
use super::types::{
    ClusterConfig, Entry, EntryPayload, HardState, LogIndex, NodeId, Snapshot, SnapshotMeta, Term,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use tracing::{debug, error, info, warn};

/// At most this many committed entries are handed out in one Ready, to bound memory.
const MAX_COMMITTED_PER_READY: usize = 4096;
/// At most this many heartbeat rounds are remembered for lease accounting.
const MAX_TRACKED_ROUNDS: usize = 1024;

/// The seed of node `id`'s random generator (its election timeouts) in a run seeded with
/// `run_seed`: splitmix64 of the run seed, XOR the id, mixed again by splitmix64.
///
/// Guarantees: for one run seed, different ids give different seeds (both steps are
/// bijections), so no two nodes of a cluster draw the same timeouts; the same run seed and
/// id always give the same seed, so a run can be replayed. [`Raft::restore`] applies it to
/// the seed it is given, and it is the only place a node's seed is derived, so callers pass
/// the run's seed unchanged to every node.
pub fn node_seed(run_seed: u64, id: NodeId) -> u64 {
    splitmix64(splitmix64(run_seed) ^ id)
}

/// One step of splitmix64 (Steele, Lea and Flood): a bijection on u64 whose output bits all
/// depend on every input bit, so nearby inputs (ids 1, 2, 3) give unrelated outputs.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One Raft node's protocol state. Deterministic: the same construction, seed and sequence of
/// calls always produce the same outputs.
pub struct Raft {
    pub(super) cfg: Config,
    /// The voters of the configuration in effect (the last one in the log).
    pub(super) quorum: JointConfig,
    pub(super) term: Term,
    pub(super) voted_for: Option<NodeId>,
    pub(super) role: Role,
    pub(super) leader: Option<NodeId>,
    pub(super) log: RaftLog,
    /// Leader only: one entry per other voter (this node's own match is `log.stabled()`).
    pub(super) progress: BTreeMap<NodeId, Progress>,
    /// (Pre-)candidate only: votes received in the current campaign.
    pub(super) votes: BTreeMap<NodeId, bool>,
    pub(super) election_elapsed: u32,
    pub(super) heartbeat_elapsed: u32,
    pub(super) randomized_timeout: u32,
    /// Set at construction: refuse votes until one minimum election timeout has passed, as
    /// this node may have acknowledged a lease just before it crashed (`docs/raft-pitfalls.md`
    /// #7: followers keep their half of the lease across a restart).
    pub(super) restart_guard: bool,
    pub(super) rng: ChaCha8Rng,
    pub(super) msgs: Vec<Message>,
    /// The hard state last handed out in a Ready and acknowledged by `advance`.
    pub(super) persisted_hs: HardState,
    /// Ticks since construction: the logical clock for leases.
    pub(super) now: u64,
    /// Next heartbeat round id: unique and increasing for the lifetime of this node.
    pub(super) next_round: u64,
    /// Leader only: the tick at which each recent heartbeat round was created.
    pub(super) round_sent_at: BTreeMap<u64, u64>,
    /// The round whose heartbeats are not yet handed out in a Ready, which new reads may join.
    pub(super) open_round: Option<u64>,
    pub(super) pending_reads: Vec<PendingRead>,
    /// Leader only: creation tick of the newest round a majority acknowledged.
    pub(super) lease_start: Option<u64>,
    pub(super) read_states: Vec<ReadState>,
    pub(super) failed_reads: Vec<u64>,
    /// The newest snapshot this node holds (taken locally or installed), sent to followers
    /// that need compacted entries.
    pub(super) snapshot: Option<Snapshot>,
    /// A snapshot installed from the leader, to hand out in the next Ready.
    pub(super) pending_snapshot: Option<Snapshot>,
    /// Chunks of a snapshot being received: its metadata and the bytes so far. Memory only,
    /// so a crash mid-receive leaves the old state as it was.
    pub(super) incoming_snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// Leader only: an accepted membership change waiting for its learners.
    pub(super) pending_change: Option<PendingChange>,
    /// Refuses snapshots from a leader that the state machine could not load.
    pub(super) snapshot_check: Option<SnapshotCheck>,
}

impl Raft {
    /// A node recovered from storage: `hard_state` and `entries` are what storage holds
    /// (entries contiguous from index 1). Starts as a follower. Committed entries from index 1
    /// are handed out again for applying (the state machine is in memory). An invalid config
    /// is repaired (see [`Config::validate`]); recovered entries that are not contiguous are
    /// dropped from the first gap on, with an error log. `seed` is the run's seed, the same
    /// for every node: the node's own seed is [`node_seed`]`(seed, config.id)`.
    pub fn new(config: Config, hard_state: HardState, entries: Vec<Entry>, seed: u64) -> Raft {
        Raft::restore(config, hard_state, None, entries, seed)
    }

    /// A node recovered from storage that holds a snapshot: the state machine was loaded
    /// from `snapshot` and `entries` are the persisted entries after it (contiguous from
    /// the snapshot's index + 1). Otherwise as [`Raft::new`]; the configuration in effect is
    /// the last one in `entries`, else the snapshot's, else `config.voters`.
    pub fn restore(
        config: Config,
        hard_state: HardState,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
        seed: u64,
    ) -> Raft {
        if let Err(e) = config.validate() {
            warn!("invalid raft config ({e}); using repaired values");
        }
        let cfg = config.repaired();
        let (mut log, dropped) = RaftLog::recover_from(
            snapshot.as_ref().map(|s| &s.meta),
            ClusterConfig::simple(cfg.voters.iter().copied()),
            entries,
            hard_state.commit,
        );
        log.set_overwrite_committed(cfg.bugs.vote_ignores_log);
        if dropped > 0 {
            error!(
                dropped,
                "recovered log is not contiguous from index 1; dropped its tail"
            );
        }
        // Every node of a run is handed the same run seed; mixing in the id here (and nowhere
        // else) is what keeps their election timers apart.
        let rng = ChaCha8Rng::seed_from_u64(node_seed(seed, cfg.id));
        let mut r = Raft {
            quorum: JointConfig::new(
                log.config().voters.iter().copied(),
                log.config().outgoing.iter().copied(),
            ),
            term: hard_state.term,
            voted_for: hard_state.voted_for,
            role: Role::Follower,
            leader: None,
            log,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: cfg.election_ticks_min,
            restart_guard: true,
            rng,
            msgs: Vec::new(),
            persisted_hs: hard_state,
            now: 0,
            next_round: 1,
            round_sent_at: BTreeMap::new(),
            open_round: None,
            pending_reads: Vec::new(),
            lease_start: None,
            read_states: Vec::new(),
            failed_reads: Vec::new(),
            snapshot,
            pending_snapshot: None,
            incoming_snapshot: None,
            pending_change: None,
            snapshot_check: None,
            cfg,
        };
        r.randomize_timeout();
        info!(
            term = r.term,
            last_index = r.log.last_index(),
            commit = r.log.committed(),
            "raft node starts as follower"
        );
        r
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The leader known in the current term.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The configuration in use (after repair).
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Status for admin requests.
    pub fn status(&self) -> RaftStatus {
        RaftStatus {
            id: self.cfg.id,
            role: self.role,
            term: self.term,
            leader: self.leader,
            commit: self.log.committed(),
            applied: self.log.applied(),
            last_index: self.log.last_index(),
            voted_for: self.voted_for,
            snapshot_index: self.log.snapshot_index(),
        }
    }

    /// The in-memory log, for diagnostics and tests (read-only).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
            commit: self.log.committed(),
        }
    }

    // ---------------------------------------------------------------- runtime interface

    /// Advances the logical clock by one tick: followers and candidates may start an
    /// election; a leader sends heartbeats and checks that a majority is still reachable.
    pub fn tick(&mut self) {
        self.now += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.election_elapsed >= self.cfg.election_ticks_min {
            self.restart_guard = false;
        }
        if self.election_elapsed >= self.randomized_timeout && self.promotable() {
            self.election_elapsed = 0;
            self.campaign(self.cfg.pre_vote);
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        self.maybe_abandon_change();
        if self.election_elapsed >= self.cfg.election_ticks_min {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let me = self.cfg.id;
                let progress = &self.progress;
                let active = self
                    .quorum
                    .has_quorum(|v| v == me || progress.get(&v).is_some_and(|p| p.recent_active));
                if !active {
                    warn!(
                        term = self.term,
                        "leader lost contact with a majority; stepping down"
                    );
                    self.become_follower(self.term, None);
                    return;
                }
                for p in self.progress.values_mut() {
                    p.recent_active = false;
                }
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
        }
    }

    /// Proposes a command. On success the entry is in the leader's log at the returned
    /// index and term; it is committed only if a later Ready hands it out in `committed`
    /// with that same term.
    pub fn propose(&mut self, payload: Vec<u8>) -> Result<(LogIndex, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        let index = self.log.push(self.term, EntryPayload::Command(payload));
        self.bcast_append();
        Ok((index, self.term))
    }

    /// Whether [`Raft::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        self.pending_snapshot.is_some()
            || self.hard_state() != self.persisted_hs
            || self.log.has_unstable()
            || !self.msgs.is_empty()
            || self.log.has_next_committed()
            || !self.read_states.is_empty()
            || !self.failed_reads.is_empty()
    }

    /// Everything the runtime must do now; see [`Ready`] for the order. Call
    /// [`Raft::advance`] with it once done, before the next call to `ready` (steps and ticks
    /// in between are fine: an entry replaced meanwhile is not marked persisted). Messages, read states and failed reads are
    /// handed out once; entries, hard state and committed entries are handed out again
    /// until acknowledged by `advance`.
    pub fn ready(&mut self) -> Ready {
        let hs = self.hard_state();
        self.open_round = None;
        Ready {
            snapshot: self.pending_snapshot.take(),
            hard_state: (hs != self.persisted_hs).then_some(hs),
            entries: self.log.take_unstable(),
            messages: std::mem::take(&mut self.msgs),
            committed: self.log.next_committed(MAX_COMMITTED_PER_READY),
            read_states: std::mem::take(&mut self.read_states),
            failed_reads: std::mem::take(&mut self.failed_reads),
        }
    }

    /// Acknowledges that `ready` was carried out: its hard state and entries are durable and
    /// its committed entries applied. The leader may then count its own copy of the entries.
    pub fn advance(&mut self, ready: &Ready) {
        if let Some(hs) = ready.hard_state {
            self.persisted_hs = hs;
        }
        if let Some(last) = ready.entries.last() {
            self.log.stable_to(last.index, last.term);
        }
        if let Some(last) = ready.committed.last() {
            self.log.applied_to(last.index);
        }
        if self.role == Role::Leader && self.maybe_commit() {
            self.bcast_append();
        }
        self.maybe_advance_change();
    }

    /// Ticks delivered since this core was constructed (its logical clock).
    pub fn ticks(&self) -> u64 {
        self.now
    }

    /// Whether an entry of this node's term is committed: a leader serves no read and
    /// accepts no membership change before (`docs/raft-pitfalls.md` #1, #13).
    pub(super) fn committed_in_term(&self) -> bool {
        self.log.term(self.log.committed()) == Some(self.term)
    }

    // ---------------------------------------------------------------- role changes

    fn randomize_timeout(&mut self) {
        self.randomized_timeout = self
            .rng
            .gen_range(self.cfg.election_ticks_min..self.cfg.election_ticks_max);
    }

    /// Resets per-term volatile state, moving to `term` (forgetting the vote if it changes).
    fn reset(&mut self, term: Term) {
        if term != self.term {
            self.term = term;
            self.voted_for = None;
        }
        self.leader = None;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomize_timeout();
        self.votes.clear();
        self.progress.clear();
        self.fail_pending_reads();
        self.round_sent_at.clear();
        self.open_round = None;
        self.lease_start = None;
        self.pending_change = None;
    }

    /// Becomes a follower in `term` of `leader` (None: not known yet), resetting per-term
    /// state.
    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let before = (self.role, self.term, self.leader);
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
        if before != (self.role, self.term, self.leader) {
            info!(term, leader = ?leader, from_role = before.0.as_str(), "became follower");
        }
    }

    /// Starts a (pre-)election. A pre-campaign asks for votes in `term + 1` without
    /// changing this node's term or vote.
    fn campaign(&mut self, pre: bool) {
        let msg_term = if pre {
            self.role = Role::PreCandidate;
            self.leader = None;
            self.votes.clear();
            self.election_elapsed = 0;
            self.randomize_timeout();
            info!(term = self.term, "became pre-candidate");
            self.term.saturating_add(1)
        } else {
            self.reset(self.term.saturating_add(1));
            self.role = Role::Candidate;
            self.voted_for = Some(self.cfg.id);
            info!(term = self.term, "became candidate");
            self.term
        };
        self.votes.insert(self.cfg.id, true);
        if self.tally() {
            return;
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let others: Vec<NodeId> = self
            .quorum
            .voters()
            .into_iter()
            .filter(|&v| v != self.cfg.id)
            .collect();
        for v in others {
            self.send_with_term(
                v,
                msg_term,
                MessageBody::RequestVote {
                    pre_vote: pre,
                    last_index,
                    last_term,
                },
            );
        }
    }

    /// Acts on the votes so far. Returns true if the campaign ended.
    fn tally(&mut self) -> bool {
        match self.quorum.vote_result(&self.votes) {
            VoteResult::Won => {
                if self.role == Role::PreCandidate {
                    self.campaign(false);
                } else {
                    self.become_leader();
                }
                true
            }
            VoteResult::Lost => {
                self.become_follower(self.term, None);
                true
            }
            VoteResult::Pending => false,
        }
    }

    fn become_leader(&mut self) {
        self.reset(self.term);
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        let next = self.log.last_index() + 1;
        // The followers: the voters, and while the latest configuration is not committed
        // the voters of the one before (as `prune_progress` keeps them). A node that C_new
        // removes must still receive C_new from a leader that inherited it uncommitted, or
        // it keeps the configuration in which it votes and campaigns forever.
        let mut followers = self.quorum.voters();
        let ci = self.log.config_index();
        if ci > self.log.committed() && ci > self.log.snapshot_index() {
            followers.extend(self.log.config_at(ci - 1).all_voters());
        }
        for v in followers.into_iter().filter(|&v| v != self.cfg.id) {
            self.progress
                .insert(v, Progress::new(next, self.cfg.max_inflight_msgs));
        }
        // An entry of the new term: committing it commits every earlier entry (Figure 8) and
        // lets reads be served. An implementation that commits by counting replicas (the
        // deliberate bug) sees no need for it, and so leaves earlier entries to be committed
        // by count alone.
        if !self.cfg.bugs.commit_by_count {
            self.log.push(self.term, EntryPayload::Noop);
        }
        info!(
            term = self.term,
            last_index = self.log.last_index(),
            "became leader"
        );
        self.bcast_append();
    }

    // ---------------------------------------------------------------- messages in

    /// Processes one message. Never panics: a message that does not fit (wrong receiver,
    /// unknown sender, impossible indexes) is dropped with a debug log.
    pub fn step(&mut self, m: Message) {
        self.step_inner(m);
        // A config entry takes effect as soon as it is in the log (or leaves with it).
        self.refresh_config();
        self.maybe_advance_change();
    }

    /// Messages from nodes outside the configuration are accepted: a joining node hears
    /// from a leader it does not know yet, and a node whose log lags may not know a newer
    /// voter. Votes and acknowledgements from non-members are never counted
    /// (`docs/raft-pitfalls.md` #14: hear non-members, never count them).
    fn step_inner(&mut self, m: Message) {
        if m.to != self.cfg.id || m.from == self.cfg.id || m.from == 0 {
            debug!(
                from = m.from,
                to = m.to,
                "dropping message not meant for this node"
            );
            return;
        }
        if let MessageBody::RequestVote {
            last_index,
            last_term,
            ..
        } = &m.body
        {
            if self.role == Role::Leader
                && !self.quorum.contains(m.from)
                && !self.progress.contains_key(&m.from)
                && self.log.term(*last_index) == Some(*last_term)
            {
                // A node outside the configuration campaigns: it missed that the entry
                // removing it committed. Its log matches ours up to its last entry (log
                // matching), so it may learn our commit index up to there; that ends its
                // campaign for good. Its vote request itself is ignored.
                debug!(
                    from = m.from,
                    "removed node campaigns; telling it the commit index"
                );
                let commit = self.log.committed().min(*last_index);
                self.send(m.from, MessageBody::Heartbeat { commit, round: 0 });
                return;
            }
        }
        if m.term > self.term {
            match &m.body {
                MessageBody::RequestVote { pre_vote, .. } => {
                    if self.in_lease() {
                        debug!(
                            from = m.from,
                            term = m.term,
                            "ignoring vote request: leader stickiness"
                        );
                        return;
                    }
                    if !pre_vote {
                        self.become_follower(m.term, None);
                    }
                }
                // A granted pre-vote carries the term the pre-candidate would campaign in.
                MessageBody::VoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {}
                body if body.is_from_leader() => self.become_follower(m.term, Some(m.from)),
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            match &m.body {
                // Answer a stale leader with our term so that it steps down: otherwise a node
                // stuck at a higher term (e.g. after an election it lost) would never be heard
                // (`docs/raft-pitfalls.md` #12).
                MessageBody::AppendEntries { .. } | MessageBody::Heartbeat { .. }
                    if self.cfg.check_quorum || self.cfg.pre_vote =>
                {
                    self.send(
                        m.from,
                        MessageBody::AppendResponse {
                            success: false,
                            index: 0,
                            hint_term: 0,
                            hint_index: 0,
                        },
                    );
                }
                MessageBody::RequestVote { pre_vote, .. } => {
                    let pre_vote = *pre_vote;
                    self.send(
                        m.from,
                        MessageBody::VoteResponse {
                            pre_vote,
                            granted: false,
                        },
                    );
                }
                _ => debug!(from = m.from, term = m.term, "dropping stale message"),
            }
            return;
        }
        let from = m.from;
        match m.body {
            MessageBody::RequestVote {
                pre_vote,
                last_index,
                last_term,
            } => self.handle_vote_request(from, m.term, pre_vote, last_index, last_term),
            MessageBody::VoteResponse { pre_vote, granted } => {
                self.handle_vote_response(from, m.term, pre_vote, granted)
            }
            MessageBody::AppendEntries {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                if self.accept_leader(from) {
                    self.handle_append(from, prev_index, prev_term, &entries, commit);
                }
            }
            MessageBody::Heartbeat { commit, round } => {
                if self.accept_leader(from) {
                    self.log.commit_to(commit);
                    self.send(from, MessageBody::HeartbeatResponse { round });
                }
            }
            MessageBody::AppendResponse {
                success,
                index,
                hint_term,
                hint_index,
            } => self.handle_append_response(from, success, index, hint_term, hint_index),
            MessageBody::HeartbeatResponse { round } => self.handle_heartbeat_response(from, round),
            MessageBody::ReadIndexRequest { ctx } => self.handle_read_index_request(from, ctx),
            MessageBody::ReadIndexResponse { ctx, index } => {
                self.handle_read_index_response(ctx, index)
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                data,
                done,
            } => {
                if self.accept_leader(from) {
                    self.handle_snapshot_chunk(from, meta, offset, data, done);
                }
            }
            MessageBody::SnapshotResponse { index, next_offset } => {
                self.handle_snapshot_response(from, index, next_offset)
            }
        }
    }

    /// A leader message of the current term arrived: follow its sender. Returns false if this
    /// node is itself leader of the term (impossible unless a rule was broken).
    fn accept_leader(&mut self, from: NodeId) -> bool {
        match self.role {
            Role::Leader => {
                error!(
                    term = self.term,
                    other = from,
                    "two leaders in one term; ignoring"
                );
                false
            }
            Role::Follower => {
                if self.leader != Some(from) {
                    info!(term = self.term, leader = from, "following leader");
                    self.leader = Some(from);
                }
                self.election_elapsed = 0;
                true
            }
            Role::PreCandidate | Role::Candidate => {
                self.become_follower(self.term, Some(from));
                true
            }
        }
    }

    fn handle_vote_request(
        &mut self,
        from: NodeId,
        msg_term: Term,
        pre: bool,
        last_index: LogIndex,
        last_term: Term,
    ) {
        let can_vote = self.voted_for == Some(from)
            || (self.voted_for.is_none() && self.leader.is_none())
            || (pre && msg_term > self.term);
        let up_to_date =
            self.cfg.bugs.vote_ignores_log || self.log.is_up_to_date(last_index, last_term);
        let granted = can_vote && up_to_date;
        debug!(from, pre, granted, msg_term, "vote request");
        if granted {
            if !pre {
                self.voted_for = Some(from);
                self.election_elapsed = 0;
            }
            self.send_with_term(
                from,
                msg_term,
                MessageBody::VoteResponse {
                    pre_vote: pre,
                    granted,
                },
            );
        } else {
            self.send(
                from,
                MessageBody::VoteResponse {
                    pre_vote: pre,
                    granted,
                },
            );
        }
    }

    fn handle_vote_response(&mut self, from: NodeId, msg_term: Term, pre: bool, granted: bool) {
        let current = match self.role {
            // A granted pre-vote must be for the term this pre-campaign asks for, not an
            // earlier one.
            Role::PreCandidate => pre && (!granted || msg_term == self.term.saturating_add(1)),
            Role::Candidate => !pre && msg_term == self.term,
            _ => false,
        };
        if current {
            self.votes.insert(from, granted);
            self.tally();
        }
    }

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: LogIndex,
        prev_term: Term,
        entries: &[Entry],
        commit: LogIndex,
    ) {
        let committed = self.log.committed();
        // (With the deliberate bug `vote-ignores-log` the follower trusts any leader, even
        // one whose log is behind its commit index.)
        if prev_index < committed && !self.cfg.bugs.vote_ignores_log {
            // Everything up to our commit index matches the leader; say so.
            self.send(from, append_ok(committed));
            return;
        }
        if self.log.term(prev_index) != Some(prev_term) {
            let (hint_term, hint_index) = self.log.conflict_hint(prev_index);
            self.send(
                from,
                MessageBody::AppendResponse {
                    success: false,
                    index: prev_index,
                    hint_term,
                    hint_index,
                },
            );
            return;
        }
        match self
            .log
            .append_after(prev_index, entries, self.cfg.bugs.no_conflict_truncate)
        {
            Ok(last_new) => {
                self.log.commit_to(commit.min(last_new));
                self.send(from, append_ok(last_new));
            }
            Err(e) => error!(from, "refusing append: {e}"),
        }
    }

    fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        index: LogIndex,
        hint_term: Term,
        hint_index: LogIndex,
    ) {
        if self.role != Role::Leader || index > self.log.last_index() {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if !success {
            // Fast backtracking: skip the follower's whole conflicting term at once.
            let hint_next = if hint_term == 0 {
                hint_index
            } else {
                self.log
                    .last_index_of_term(hint_term, index)
                    .map_or(hint_index, |i| i + 1)
            };
            if pr.maybe_decrease_to(index, hint_next) {
                debug!(
                    to = from,
                    next = pr.next_index,
                    "follower rejected append; probing"
                );
                self.send_append(from, true);
            }
            return;
        }
        let was_paused = pr.is_paused();
        // A probe answered at the index already matched (say an empty log, or a new leader
        // whose log ends where the follower's does) also ends probing, as in etcd.
        let probe_confirmed = pr.state == ProgressState::Probe && pr.match_index == index;
        if !pr.maybe_update(index) && !probe_confirmed {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot if pr.match_index >= pr.snapshot_index => {
                debug!(to = from, index, "follower installed the snapshot");
                pr.become_replicate();
            }
            ProgressState::Snapshot => return,
            ProgressState::Replicate => {}
        }
        if self.maybe_commit() {
            self.bcast_append();
        } else if was_paused {
            self.send_append(from, false);
        }
        // Keep the pipeline full; bounded by the in-flight window.
        for _ in 0..self.cfg.max_inflight_msgs {
            if !self.send_append(from, false) {
                break;
            }
        }
    }

    fn handle_heartbeat_response(&mut self, from: NodeId, round: u64) {
        if self.role != Role::Leader || round >= self.next_round {
            return;
        }
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        pr.acked_round = pr.acked_round.max(round);
        // The follower is alive: un-stick a probe whose message or answer was lost, and a
        // replicate window whose acknowledgements were lost.
        pr.probe_sent = false;
        pr.snapshot_sent = false;
        if pr.state == ProgressState::Replicate && pr.inflights.full() {
            pr.inflights.free_first();
        }
        if pr.match_index < last {
            self.send_append(from, true);
        }
        self.confirm_rounds();
    }

    // ---------------------------------------------------------------- messages out

    /// Commits the highest index a majority persisted, if the Figure 8 rule allows.
    fn maybe_commit(&mut self) -> bool {
        let me = self.cfg.id;
        let own = self.log.stabled();
        let progress = &self.progress;
        let index = self.quorum.committed_index(|v| {
            if v == me {
                own
            } else {
                progress.get(&v).map_or(0, |p| p.match_index)
            }
        });
        let grew = self
            .log
            .maybe_commit(index, self.term, self.cfg.bugs.commit_by_count);
        if grew {
            debug!(commit = self.log.committed(), "commit index advanced");
        }
        grew
    }

    /// Sends the next AppendEntries to `to` unless its progress is paused. With
    /// `send_if_empty`, sends even without entries (to carry the commit index or to probe).
    /// Returns whether a message was sent.
    pub(super) fn send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&to) else {
            return false;
        };
        if pr.state == ProgressState::Snapshot {
            return self.send_snapshot_chunk(to);
        }
        if pr.is_paused() {
            return false;
        }
        pr.next_index = pr.next_index.clamp(pr.match_index + 1, last + 1);
        let prev_index = pr.next_index - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            // The follower needs entries compacted into the snapshot.
            let index = self.log.snapshot_index();
            debug!(to, prev_index, index, "follower needs a snapshot");
            pr.become_snapshot(index);
            return self.send_snapshot_chunk(to);
        };
        let hi = prev_index.saturating_add(self.cfg.max_entries_per_msg as LogIndex);
        let entries = self
            .log
            .slice_bounded(prev_index + 1, hi, self.cfg.max_bytes_per_msg);
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        pr.sent(entries.last().map(|e| e.index));
        let commit = self.log.committed();
        self.send(
            to,
            MessageBody::AppendEntries {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
        true
    }

    /// Leader: sends every follower whatever AppendEntries (or snapshot chunk) it is due.
    pub(super) fn bcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for p in peers {
            self.send_append(p, true);
        }
    }

    /// Starts a heartbeat round and sends it to every follower. Returns the round id.
    pub(super) fn bcast_heartbeat(&mut self) -> u64 {
        let round = self.next_round;
        self.next_round += 1;
        self.open_round = Some(round);
        self.round_sent_at.insert(round, self.now);
        while self.round_sent_at.len() > MAX_TRACKED_ROUNDS {
            self.round_sent_at.pop_first();
        }
        let commit = self.log.committed();
        let targets: Vec<(NodeId, LogIndex)> = self
            .progress
            .iter()
            .map(|(&id, p)| (id, p.match_index.min(commit)))
            .collect();
        for (to, commit) in targets {
            self.send(to, MessageBody::Heartbeat { commit, round });
        }
        round
    }

    /// Queues a message of the current term for the next Ready.
    pub(super) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_with_term(to, self.term, body);
    }

    fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        self.msgs.push(Message {
            from: self.cfg.id,
            to,
            term,
            body,
        });
    }
}

/// A successful AppendResponse saying the sender's log matches the leader's up to `index`.
pub(super) fn append_ok(index: LogIndex) -> MessageBody {
    MessageBody::AppendResponse {
        success: true,
        index,
        hint_term: 0,
        hint_index: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The first `n` election timeouts (in ticks) node `id` draws when started with `run_seed`,
    /// using the node's default timeouts (300..600 ms in 10 ms ticks).
    fn timeouts(run_seed: u64, id: NodeId, n: usize) -> Vec<u32> {
        let mut cfg = Config::new(id, (1..=7).collect());
        cfg.election_ticks_min = 30;
        cfg.election_ticks_max = 60;
        let mut r = Raft::new(cfg, HardState::default(), Vec::new(), run_seed);
        let mut out = vec![r.randomized_timeout];
        while out.len() < n {
            r.randomize_timeout();
            out.push(r.randomized_timeout);
        }
        out
    }

    #[test]
    fn nodes_given_one_run_seed_draw_different_election_timeouts() {
        for run_seed in [0, 1, 42, 0x9E37_79B9_7F4A_7C15, u64::MAX] {
            let seqs: Vec<Vec<u32>> = (1..=7).map(|id| timeouts(run_seed, id, 5)).collect();
            for i in 0..seqs.len() {
                for j in i + 1..seqs.len() {
                    assert_ne!(
                        seqs[i],
                        seqs[j],
                        "run seed {run_seed}: nodes {} and {} draw the same timeouts",
                        i + 1,
                        j + 1
                    );
                }
            }
            // Replayable: the same run seed gives the same sequence again.
            assert_eq!(seqs[0], timeouts(run_seed, 1, 5), "run seed {run_seed}");
        }
    }

    #[test]
    fn node_seed_is_injective_in_the_id() {
        for run_seed in [0, 7, u64::MAX] {
            let seeds: BTreeSet<u64> = (0..10_000).map(|id| node_seed(run_seed, id)).collect();
            assert_eq!(seeds.len(), 10_000, "run seed {run_seed}");
        }
    }
}

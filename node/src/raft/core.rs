//! The Raft state machine: `step` (a message), `tick` (a clock tick) and `propose` go in;
//! [`Ready`] comes out. Structure and naming follow etcd-raft: `become_*` changes role,
//! `handle_*` processes one message kind, `maybe_*` may change state and says whether it did.

use super::config::Config;
use super::log::RaftLog;
use super::message::{Message, MessageBody};
use super::progress::{Progress, ProgressState};
use super::quorum::{JointConfig, VoteResult};
use super::ready::{CompactError, ProposeError, RaftStatus, ReadError, ReadState, Ready, Role};
use super::types::{
    ClusterConfig, Entry, EntryPayload, HardState, LogIndex, NodeId, Snapshot, SnapshotMeta, Term,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tracing::{debug, error, info, warn};

/// At most this many committed entries are handed out in one Ready, to bound memory.
const MAX_COMMITTED_PER_READY: usize = 4096;
/// A snapshot being received may not grow beyond this many bytes (memory bound against a
/// misbehaving peer).
const MAX_SNAPSHOT_BYTES: usize = 1 << 30;
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

/// A read request waiting for its heartbeat round to be acknowledged by a majority.
#[derive(Clone, Debug)]
struct PendingRead {
    /// Who asked: this node, or a follower to answer with a message.
    from: NodeId,
    ctx: u64,
    index: LogIndex,
    round: u64,
}

/// A membership change the leader accepted whose new voters are still catching up as
/// learners; the joint configuration is appended once they have.
#[derive(Clone, Debug)]
struct PendingChange {
    voters: BTreeSet<NodeId>,
    context: Vec<u8>,
    /// The learners count as caught up once they hold everything committed at request time.
    catch_up_to: LogIndex,
    /// The tick at which the change was accepted; it is abandoned after
    /// [`LEARNER_CATCH_UP_TIMEOUTS`] maximum election timeouts.
    started: u64,
}

/// A membership change whose learners have not caught up within this many maximum election
/// timeouts is abandoned (the learner is probably down), so that the cluster does not refuse
/// every later change.
const LEARNER_CATCH_UP_TIMEOUTS: u64 = 20;

/// Says whether snapshot bytes describe a state the state machine can load at the given
/// index; see [`Raft::set_snapshot_check`]. A plain function so that the core stays free of
/// captured state.
pub type SnapshotCheck = fn(&[u8], LogIndex) -> Result<(), String>;

/// One Raft node's protocol state. Deterministic: the same construction, seed and sequence of
/// calls always produce the same outputs.
pub struct Raft {
    cfg: Config,
    /// The voters of the configuration in effect (the last one in the log).
    quorum: JointConfig,
    term: Term,
    voted_for: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,
    /// Leader only: one entry per other voter (this node's own match is `log.stabled()`).
    progress: BTreeMap<NodeId, Progress>,
    /// (Pre-)candidate only: votes received in the current campaign.
    votes: BTreeMap<NodeId, bool>,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_timeout: u32,
    /// Set at construction: refuse votes until one minimum election timeout has passed, as
    /// this node may have acknowledged a lease just before it crashed (`docs/raft-pitfalls.md`
    /// #7: followers keep their half of the lease across a restart).
    restart_guard: bool,
    rng: ChaCha8Rng,
    msgs: Vec<Message>,
    /// The hard state last handed out in a Ready and acknowledged by `advance`.
    persisted_hs: HardState,
    /// Ticks since construction: the logical clock for leases.
    now: u64,
    /// Next heartbeat round id: unique and increasing for the lifetime of this node.
    next_round: u64,
    /// Leader only: the tick at which each recent heartbeat round was created.
    round_sent_at: BTreeMap<u64, u64>,
    /// The round whose heartbeats are not yet handed out in a Ready, which new reads may join.
    open_round: Option<u64>,
    pending_reads: Vec<PendingRead>,
    /// Leader only: creation tick of the newest round a majority acknowledged.
    lease_start: Option<u64>,
    read_states: Vec<ReadState>,
    failed_reads: Vec<u64>,
    /// The newest snapshot this node holds (taken locally or installed), sent to followers
    /// that need compacted entries.
    snapshot: Option<Snapshot>,
    /// A snapshot installed from the leader, to hand out in the next Ready.
    pending_snapshot: Option<Snapshot>,
    /// Chunks of a snapshot being received: its metadata and the bytes so far. Memory only,
    /// so a crash mid-receive leaves the old state as it was.
    incoming_snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// Leader only: an accepted membership change waiting for its learners.
    pending_change: Option<PendingChange>,
    /// Refuses snapshots from a leader that the state machine could not load.
    snapshot_check: Option<SnapshotCheck>,
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

    /// The cluster configuration in effect on this node (the last one in its log).
    pub fn cluster_config(&self) -> &ClusterConfig {
        self.log.config()
    }

    /// Leader only: the voters of an accepted change whose learners are still catching up.
    pub fn pending_change(&self) -> Option<&BTreeSet<NodeId>> {
        self.pending_change.as_ref().map(|p| &p.voters)
    }

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
        let limit = LEARNER_CATCH_UP_TIMEOUTS * u64::from(self.cfg.election_ticks_max);
        if self
            .pending_change
            .as_ref()
            .is_some_and(|p| self.now.saturating_sub(p.started) > limit)
        {
            warn!("learners did not catch up in time; membership change abandoned");
            self.pending_change = None;
            self.prune_progress();
        }
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

    /// Asks the leader to move the cluster to the voters `voters` by joint consensus:
    /// new voters first catch up as learners, then the leader appends C_old,new and, once
    /// that commits, C_new. `context` travels in the config entries for the runtime (the
    /// members' addresses). The change is complete when a Ready hands out, committed, a
    /// non-joint config entry with these voters. One change at a time.
    pub fn propose_membership(
        &mut self,
        voters: BTreeSet<NodeId>,
        context: Vec<u8>,
    ) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if voters.is_empty() {
            return Err(ProposeError::NoVoters);
        }
        if !self.committed_in_term() {
            return Err(ProposeError::LeaderNotReady);
        }
        if self.pending_change.is_some()
            || self.log.config().is_joint()
            || self.log.config_index() > self.log.committed()
        {
            return Err(ProposeError::ChangeInProgress);
        }
        let next = self.log.last_index() + 1;
        let current = self.log.config().all_voters();
        let me = self.cfg.id;
        let learners: Vec<NodeId> = voters
            .iter()
            .copied()
            .filter(|v| *v != me && !current.contains(v))
            .collect();
        for &l in &learners {
            self.progress
                .entry(l)
                .or_insert_with(|| Progress::new(next, self.cfg.max_inflight_msgs));
        }
        info!(?voters, ?learners, "membership change accepted");
        self.pending_change = Some(PendingChange {
            voters,
            context,
            catch_up_to: self.log.committed(),
            started: self.now,
        });
        for l in learners {
            self.send_append(l, true);
        }
        self.maybe_advance_change();
        Ok(())
    }

    /// Leader: moves an accepted change along (learners caught up: append C_old,new; joint
    /// config committed: append C_new; C_new committed without this node: step down).
    fn maybe_advance_change(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let me = self.cfg.id;
        if let Some(pc) = &self.pending_change {
            let current = self.log.config().all_voters();
            let caught_up = pc.voters.iter().all(|v| {
                *v == me
                    || current.contains(v)
                    || self
                        .progress
                        .get(v)
                        .is_some_and(|p| p.match_index >= pc.catch_up_to)
            });
            if caught_up {
                let pc = self.pending_change.take().expect("checked above");
                let old = self.log.config().voters.clone();
                let outgoing = if old == pc.voters {
                    BTreeSet::new()
                } else {
                    old
                };
                self.append_config(ClusterConfig {
                    voters: pc.voters,
                    outgoing,
                    context: pc.context,
                });
            }
            return;
        }
        if self.log.config_index() > self.log.committed() {
            return;
        }
        let cfg = self.log.config();
        if cfg.is_joint() {
            let next = ClusterConfig {
                voters: cfg.voters.clone(),
                outgoing: BTreeSet::new(),
                context: cfg.context.clone(),
            };
            self.append_config(next);
            return;
        }
        let member = cfg.voters.contains(&me);
        if self.progress.len() + usize::from(member) > cfg.voters.len() {
            // The config is committed: stop replicating to the nodes it removed.
            self.prune_progress();
        }
        if !member {
            info!(
                term = self.term,
                "removed from the configuration; stepping down"
            );
            self.become_follower(self.term, None);
        }
    }

    fn append_config(&mut self, cfg: ClusterConfig) {
        info!(voters = ?cfg.voters, outgoing = ?cfg.outgoing, "appending configuration");
        self.log.push(self.term, EntryPayload::Config(cfg));
        self.refresh_config();
        self.bcast_append();
    }

    /// Makes the configuration in the log the one in effect: the quorum, and on a leader
    /// the set of followers it replicates to.
    fn refresh_config(&mut self) {
        let cfg = self.log.config();
        if self.quorum.is(&cfg.voters, &cfg.outgoing) {
            return;
        }
        let want = JointConfig::new(cfg.voters.iter().copied(), cfg.outgoing.iter().copied());
        info!(voters = ?cfg.voters, outgoing = ?cfg.outgoing, "configuration changed");
        self.quorum = want;
        if self.role == Role::Leader {
            let me = self.cfg.id;
            let next = self.log.last_index() + 1;
            let members = self.quorum.voters();
            for &v in members.iter().filter(|&&v| v != me) {
                self.progress
                    .entry(v)
                    .or_insert_with(|| Progress::new(next, self.cfg.max_inflight_msgs));
            }
            self.prune_progress();
        }
    }

    /// Leader: forgets followers that are neither members, nor learners of the pending
    /// change, nor members of the previous configuration while the current one is not
    /// committed. Once it is committed, a removed node is forgotten only after it holds the
    /// entry that removes it (and is told the commit index), so that it stops campaigning.
    fn prune_progress(&mut self) {
        let mut keep = self.quorum.voters();
        if let Some(pc) = &self.pending_change {
            keep.extend(pc.voters.iter().copied());
        }
        let ci = self.log.config_index();
        let committed = self.log.committed();
        if ci > committed && ci > self.log.snapshot_index() {
            keep.extend(self.log.config_at(ci - 1).all_voters());
        }
        let gone: Vec<(NodeId, LogIndex, bool)> = self
            .progress
            .iter()
            .filter(|(id, _)| !keep.contains(id))
            .map(|(&id, p)| (id, p.match_index, p.recent_active))
            .collect();
        for (id, matched, active) in gone {
            // A removed node that went quiet is dropped too (if it comes back and
            // campaigns, the vote-request path tells it the commit index).
            if ci > committed || matched >= ci || !active {
                if ci <= committed {
                    // A last word: the removal is committed.
                    self.send(
                        id,
                        MessageBody::Heartbeat {
                            commit: committed.min(matched),
                            round: 0,
                        },
                    );
                }
                self.progress.remove(&id);
            }
        }
    }

    /// Whether this node may campaign: it votes in its latest configuration, or that
    /// configuration is not known committed and it voted in the one before (otherwise nodes
    /// that hold an uncommitted C_new removing them, and only they, could never elect the
    /// leader that must commit it).
    fn promotable(&self) -> bool {
        let me = self.cfg.id;
        if self.quorum.contains(me) {
            return true;
        }
        let ci = self.log.config_index();
        ci > self.log.committed()
            && ci > self.log.snapshot_index()
            && self.log.config_at(ci - 1).is_voter(me)
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

    // ---------------------------------------------------------------- reads

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
    /// created at tick t, now < t + [`Config::lease_ticks`] (floor((election_ticks_min − 1) ×
    /// (1 − max_clock_drift))), and an entry of this term is committed. Followers do not vote
    /// for others until `election_ticks_min` of their own ticks after they heard that
    /// heartbeat (leader stickiness), which is more than `election_ticks_min − 1` of their
    /// ticks, so no other leader can exist while the lease holds provided no follower's
    /// clock runs more than [`Config::lease_rate_bound`] (≥ 1 / (1 − max_clock_drift)) times
    /// as fast as this node's. Always false without check-quorum, which stickiness depends
    /// on.
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

    /// Ticks delivered since this core was constructed (its logical clock).
    pub fn ticks(&self) -> u64 {
        self.now
    }

    fn committed_in_term(&self) -> bool {
        self.log.term(self.log.committed()) == Some(self.term)
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
    fn confirm_rounds(&mut self) {
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
    fn fail_pending_reads(&mut self) {
        let me = self.cfg.id;
        for r in std::mem::take(&mut self.pending_reads) {
            if r.from == me {
                self.failed_reads.push(r.ctx);
            }
        }
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

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
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
            MessageBody::ReadIndexRequest { ctx } => {
                if self.role == Role::Leader && self.committed_in_term() {
                    self.leader_read(from, ctx);
                } else {
                    self.send(from, MessageBody::ReadIndexResponse { ctx, index: None });
                }
            }
            MessageBody::ReadIndexResponse { ctx, index } => {
                if self.role != Role::Leader {
                    match index {
                        Some(index) => self.read_states.push(ReadState { ctx, index }),
                        None => self.failed_reads.push(ctx),
                    }
                }
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

    /// Follower: one chunk of the leader's snapshot. Chunks must arrive in order; the
    /// answer names the offset wanted next. The log and state machine are replaced only
    /// when the last chunk arrived.
    fn handle_snapshot_chunk(
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
    fn handle_snapshot_response(&mut self, from: NodeId, index: LogIndex, next_offset: u64) {
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
    fn send_snapshot_chunk(&mut self, to: NodeId) -> bool {
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

    /// Whether this node must ignore (pre-)vote requests because it heard from a live leader
    /// (or restarted) less than a minimum election timeout ago: fewer than
    /// `election_ticks_min` of its own ticks since. The leader's lease is sized against this
    /// rule in [`Config::lease_ticks`]; change them together.
    fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && !self.cfg.bugs.lease_no_margin
            && (self.leader.is_some() || self.restart_guard)
            && self.election_elapsed < self.cfg.election_ticks_min
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
    fn send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
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

    fn bcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for p in peers {
            self.send_append(p, true);
        }
    }

    /// Starts a heartbeat round and sends it to every follower. Returns the round id.
    fn bcast_heartbeat(&mut self) -> u64 {
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

    fn send(&mut self, to: NodeId, body: MessageBody) {
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

fn append_ok(index: LogIndex) -> MessageBody {
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

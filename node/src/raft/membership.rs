//! Membership changes by joint consensus, like etcd-raft's `confchange/`: learners catch
//! up first, then the leader appends C_old,new and, once that commits, C_new; the
//! configuration in effect is always the last one in the log, and followers the leader
//! replicates to follow it.
//!
//! Rules enforced here (numbers are `docs/raft-pitfalls.md` items):
//! - #13: one change at a time, accepted only once an entry of the leader's term committed
//!   and no configuration entry is uncommitted;
//! - #14: nodes outside the configuration are still replicated to (learners, and the
//!   previous voters while the latest configuration is uncommitted) but never counted;
//! - #15: a committed joint configuration is always followed by C_new, a change whose learners
//!   do not catch up in time is abandoned, and a leader that C_new removes steps down.

use super::core::Raft;
use super::message::MessageBody;
use super::progress::Progress;
use super::quorum::JointConfig;
use super::ready::{ProposeError, Role};
use super::types::{ClusterConfig, EntryPayload, LogIndex, NodeId};
use std::collections::BTreeSet;
use tracing::{info, warn};

/// A membership change the leader accepted whose new voters are still catching up as
/// learners; the joint configuration is appended once they have.
#[derive(Clone, Debug)]
pub(super) struct PendingChange {
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

impl Raft {
    /// Leader: abandons an accepted change whose learners did not catch up within
    /// [`LEARNER_CATCH_UP_TIMEOUTS`] maximum election timeouts (the learner is probably
    /// down), so that later changes are not refused for ever.
    pub(super) fn maybe_abandon_change(&mut self) {
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
    }

    /// The cluster configuration in effect on this node (the last one in its log).
    pub fn cluster_config(&self) -> &ClusterConfig {
        self.log.config()
    }

    /// Leader only: the voters of an accepted change whose learners are still catching up.
    pub fn pending_change(&self) -> Option<&BTreeSet<NodeId>> {
        self.pending_change.as_ref().map(|p| &p.voters)
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
    pub(super) fn maybe_advance_change(&mut self) {
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
    pub(super) fn refresh_config(&mut self) {
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
    pub(super) fn promotable(&self) -> bool {
        let me = self.cfg.id;
        if self.quorum.contains(me) {
            return true;
        }
        let ci = self.log.config_index();
        ci > self.log.committed()
            && ci > self.log.snapshot_index()
            && self.log.config_at(ci - 1).is_voter(me)
    }
}

//! Safety invariants of Raft (paper Figure 3), checked after every simulation step:
//! election safety, log matching, leader completeness, state machine safety, and that a
//! committed entry never changes on any node.

use crate::raft::{Entry, LogIndex, NodeId, Raft, Role, Term};
use std::collections::BTreeMap;

/// The checker's memory across steps.
#[derive(Default)]
pub struct Invariants {
    /// The leader of each term ever observed.
    leaders: BTreeMap<Term, NodeId>,
    /// Each committed entry and the term of the leader that first committed it.
    committed: BTreeMap<LogIndex, (Entry, Term)>,
    /// The entry applied at each index by any node.
    applied: BTreeMap<LogIndex, Entry>,
    /// Per node: the last index applied since its start.
    last_applied: BTreeMap<NodeId, LogIndex>,
    /// Per node: its committed prefix up to this index has been compared.
    checked_commit: BTreeMap<NodeId, LogIndex>,
    /// Per (leader, term): committed entries up to this index were found in its log.
    completeness: BTreeMap<(NodeId, Term), LogIndex>,
    /// First violation seen while applying (reported by the next `check`).
    apply_violation: Option<String>,
}

impl Invariants {
    /// Forgets per-run cursors of a node that restarts.
    pub fn on_restart(&mut self, id: NodeId) {
        self.last_applied.insert(id, 0);
        self.checked_commit.insert(id, 0);
    }

    /// State machine safety: every node applies the same entry at an index, in order.
    pub fn on_apply(&mut self, id: NodeId, e: &Entry) {
        let last = self.last_applied.entry(id).or_insert(0);
        if e.index != *last + 1 && self.apply_violation.is_none() {
            self.apply_violation =
                Some(format!("node {id} applied index {} after {last}", e.index));
        }
        *last = e.index;
        match self.applied.get(&e.index) {
            Some(prev) if prev != e => {
                if self.apply_violation.is_none() {
                    self.apply_violation = Some(format!(
                        "state machine safety: node {id} applied {e:?} but {prev:?} was applied at that index"
                    ));
                }
            }
            Some(_) => {}
            None => {
                self.applied.insert(e.index, e.clone());
            }
        }
    }

    /// Whether anything was ever applied at `index`, and what.
    pub fn applied_at(&self, index: LogIndex) -> Option<&Entry> {
        self.applied.get(&index)
    }

    /// Checks every invariant over the live nodes; Err describes the first violation.
    pub fn check(&mut self, nodes: &[(NodeId, Option<&Raft>)]) -> Result<(), String> {
        if let Some(v) = self.apply_violation.take() {
            return Err(v);
        }
        let live: Vec<&Raft> = nodes.iter().filter_map(|(_, r)| *r).collect();
        // Election safety, and record what leaders commit.
        for r in &live {
            if r.role() != Role::Leader {
                continue;
            }
            let (id, term) = (r.id(), r.term());
            if let Some(&other) = self.leaders.get(&term) {
                if other != id {
                    return Err(format!("two leaders in term {term}: {other} and {id}"));
                }
            }
            self.leaders.insert(term, id);
            let from = self.committed.keys().next_back().map_or(1, |i| i + 1);
            for idx in from..=r.log().committed() {
                if let Some(e) = r.log().entry(idx) {
                    self.committed.insert(idx, (e.clone(), term));
                }
            }
        }
        // Committed entries never change on any node.
        for r in &live {
            let id = r.id();
            let start = self.checked_commit.get(&id).copied().unwrap_or(0) + 1;
            let upto = r.log().committed();
            for idx in start..=upto {
                if let (Some((want, _)), Some(have)) =
                    (self.committed.get(&idx), r.log().entry(idx))
                {
                    if want != have {
                        return Err(format!(
                            "node {id} holds {have:?} at committed index {idx}, but {want:?} was committed"
                        ));
                    }
                }
            }
            self.checked_commit.insert(id, upto.max(start - 1));
        }
        // Leader completeness: a leader of term T holds every entry committed before T.
        for r in &live {
            if r.role() != Role::Leader {
                continue;
            }
            let key = (r.id(), r.term());
            let start = self.completeness.get(&key).copied().unwrap_or(0);
            for (&idx, (e, ct)) in self.committed.range(start + 1..) {
                if *ct < r.term() && idx > r.log().snapshot_index() && r.log().entry(idx) != Some(e)
                {
                    return Err(format!(
                        "leader completeness: leader {} of term {} lacks committed {e:?}",
                        r.id(),
                        r.term()
                    ));
                }
            }
            let end = self.committed.keys().next_back().copied().unwrap_or(0);
            self.completeness.insert(key, end.max(start));
        }
        // Terms never decrease along a log (each leader appends in its own, newer term).
        for r in &live {
            let e = r.log().entries();
            if let Some(w) = e.windows(2).find(|w| w[1].term < w[0].term) {
                return Err(format!(
                    "log of node {} has term {} after term {} at index {}",
                    r.id(),
                    w[1].term,
                    w[0].term,
                    w[1].index
                ));
            }
        }
        // Log matching: if two logs hold an entry with the same index and term, they are
        // identical up to it. One pass per pair over the indexes both hold (below that,
        // compacted entries were applied and are checked by state machine safety): after
        // the first difference, no index may hold equal terms.
        for (i, a) in live.iter().enumerate() {
            for b in &live[i + 1..] {
                let (la, lb) = (a.log(), b.log());
                let lo = la.first_index().max(lb.first_index());
                let hi = la.last_index().min(lb.last_index());
                let mut diverged = false;
                for k in lo..=hi {
                    let (Some(ea), Some(eb)) = (la.entry(k), lb.entry(k)) else {
                        continue;
                    };
                    if !diverged {
                        if ea != eb {
                            if ea.term == eb.term {
                                return Err(format!(
                                    "log matching: nodes {} and {} differ at index {k} with equal term",
                                    a.id(),
                                    b.id(),
                                ));
                            }
                            diverged = true;
                        }
                    } else if ea.term == eb.term {
                        return Err(format!(
                            "log matching: nodes {} and {} agree on term at index {k} after diverging",
                            a.id(),
                            b.id(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

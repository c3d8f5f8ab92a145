//! The Wing & Gong / Lowe linearizability search (as in Porcupine) for one key's register
//! sub-history.
//!
//! The history is a doubly linked list of call and return entries in real-time order. The
//! search repeatedly takes the first call entry (of an operation that could go next) that the
//! register model accepts, removes ("lifts") it and its return entry from the list, and pushes
//! it on a stack; reaching a return entry means the operation it ends cannot be placed, so the
//! last choice is undone ("unlift") and the next candidate tried. A cache of visited
//! (linearized set, state) pairs prunes repeated work. Operations whose outcome is unknown
//! (`info`, never completed) have no return entry to reach: they may be linearized any time
//! after their call, or never, so the search succeeds once every *completed* operation is
//! linearized.
//!
//! Three shortcuts, each of which keeps the verdict exact (tests compare against the plain
//! definition): a read that could go now and agrees with the state goes at once, without
//! trying alternatives; a completed write that nobody reads is never tried on its own but
//! placed just before the next write (or at the latest moment, or at the end); and a value
//! that only one operation produces is not overwritten while a completed read or cas still
//! has to observe it. Together they make histories with 50 concurrent clients on one key
//! (where the plain search runs out of memory) take milliseconds.
//!
//! The search is resumable: [`Search::run`] works until a time-slice ends and can be called
//! again, so many keys can be raced on a few threads.

use super::cache::Cache;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// Interned register value; [`NULL`] is the absent value.
pub(crate) type Val = u32;
/// The interned absent value (`null`): the register's initial state.
pub(crate) const NULL: Val = 0;

/// What an operation does to the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A read that returned `a`.
    Read,
    /// A write of `a`.
    Write,
    /// A compare-and-set from `a` to `b` that succeeded (or may have).
    Cas,
}

/// One operation of a sub-history, as the model sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ROp {
    pub kind: Kind,
    pub a: Val,
    pub b: Val,
    /// The operation completed (`ok`), so it must be linearized; `false` for `info` and
    /// never-completed operations, which may also never take effect.
    pub required: bool,
    /// A completed write whose value no read or cas of the sub-history observed. After it the
    /// register holds a value nobody saw, so the next state-changing operation must be a
    /// blind write (or nothing): the search never tries it on its own but places it
    /// immediately before the next write it linearizes ("absorbs" it), or at the end. This
    /// removes the factorial choice among concurrent unread writes.
    pub absorbable: bool,
}

/// The sequential register: `Some(next state)` if `op` may run in `state`.
#[inline]
pub(crate) fn step(state: Val, op: &ROp) -> Option<Val> {
    match op.kind {
        Kind::Read => (state == op.a).then_some(state),
        Kind::Write => Some(op.a),
        Kind::Cas => (state == op.a).then_some(op.b),
    }
}

/// One entry of the list, given to [`Search::new`] in real-time order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ent {
    /// Index into the ops.
    pub op: u32,
    /// A call (invocation) entry, else a return entry.
    pub call: bool,
}

/// Shared memory accounting for all searches of one check.
#[derive(Debug)]
pub(crate) struct MemBudget {
    used: AtomicUsize,
    limit: usize,
}

impl MemBudget {
    pub(crate) fn new(limit: usize) -> Self {
        MemBudget {
            used: AtomicUsize::new(0),
            limit,
        }
    }
}

/// How a call to [`Search::run`] ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Every completed operation was linearized.
    Valid,
    /// No linearization exists; the longest linearizable prefix found, as op indexes in
    /// linearization order.
    Invalid { prefix: Vec<u32> },
    /// The time slice ended; call `run` again.
    Paused,
    /// The search gave up (deadline, memory budget, or cancelled); the reason.
    GaveUp(String),
}

const NIL: u32 = u32::MAX;
/// Report cache growth to the shared budget in chunks of this many bytes.
const MEM_CHUNK: usize = 1 << 20;

/// A resumable search over one sub-history.
pub(crate) struct Search {
    ops: Vec<ROp>,
    ent_op: Vec<u32>,
    ent_call: Vec<bool>,
    /// For a call entry, its return entry (or `NIL` if it has none); unused for returns.
    ent_match: Vec<u32>,
    /// For a return entry, its call entry; unused for calls.
    ret_call: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
    head: u32,
    bits: Vec<u64>,
    /// First word of `bits` that is not all ones.
    low: usize,
    /// One past the last nonzero word of `bits`.
    high: usize,
    state: Val,
    /// Choices made: the chosen call entry, the state before it, and `lin.len()` before it.
    stack: Vec<(u32, Val, u32)>,
    /// Linearized call entries in order (chosen ones and the writes they absorbed).
    lin: Vec<u32>,
    cursor: u32,
    /// The current configuration was just entered: look for a read to place greedily first.
    fresh: bool,
    /// Completed operations not yet linearized.
    required_left: usize,
    /// Apply the unique-source pruning (off only to find a more natural explanation).
    prune: bool,
    /// Per value: is exactly one thing ever the source of it (one op writing it, or for
    /// `null` no op at all: the initial state)?
    unique_source: Vec<bool>,
    /// Per value: completed reads of it and completed cas expecting it, not yet linearized.
    pending_obs: Vec<u32>,
    cache: Cache,
    best: Vec<u32>,
    /// `best[..common] == lin[..common]` (entry ids).
    common: usize,
    mem_reported: usize,
    /// Loop iterations so far (for statistics).
    pub(crate) steps: u64,
}

impl Search {
    /// Builds the search. `ents` lists every call entry and the return entry of every
    /// required op, in real-time order; each op has exactly one call entry.
    pub(crate) fn new(ops: Vec<ROp>, ents: &[Ent]) -> Search {
        let n = ents.len();
        let head = n as u32;
        let mut next = vec![NIL; n + 1];
        let mut prev = vec![NIL; n + 1];
        let mut last = head;
        for i in 0..n as u32 {
            next[last as usize] = i;
            prev[i as usize] = last;
            last = i;
        }
        let mut ent_match = vec![NIL; n];
        let mut ret_call = vec![NIL; n];
        let mut call_of = vec![NIL; ops.len()];
        for (i, e) in ents.iter().enumerate() {
            if e.call {
                call_of[e.op as usize] = i as u32;
            } else if let Some(&c) = call_of.get(e.op as usize) {
                if c != NIL {
                    ent_match[c as usize] = i as u32;
                    ret_call[i] = c;
                }
            }
        }
        let required_left = ops.iter().filter(|o| o.required && !o.absorbable).count();
        let cursor = next[head as usize];
        let n_vals = ops
            .iter()
            .map(|o| o.a.max(o.b) as usize + 1)
            .max()
            .unwrap_or(1);
        let mut sources = vec![0u32; n_vals];
        sources[NULL as usize] = 1;
        let mut pending_obs = vec![0u32; n_vals];
        for o in &ops {
            match o.kind {
                Kind::Write => sources[o.a as usize] += 1,
                Kind::Cas => sources[o.b as usize] += 1,
                Kind::Read => {}
            }
            if o.required && matches!(o.kind, Kind::Read | Kind::Cas) {
                pending_obs[o.a as usize] += 1;
            }
        }
        let unique_source = sources.iter().map(|&c| c == 1).collect();
        let words = ops.len().div_ceil(64);
        Search {
            ent_op: ents.iter().map(|e| e.op).collect(),
            ent_call: ents.iter().map(|e| e.call).collect(),
            ent_match,
            ret_call,
            next,
            prev,
            head,
            bits: vec![0; words],
            low: 0,
            high: 0,
            state: NULL,
            stack: Vec::new(),
            lin: Vec::new(),
            cursor,
            fresh: true,
            required_left,
            unique_source,
            pending_obs,
            prune: true,
            cache: Cache::default(),
            best: Vec::new(),
            common: 0,
            mem_reported: 0,
            steps: 0,
            ops,
        }
    }

    /// Pairs in the visited cache.
    pub(crate) fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Turns off the pruning that refuses to change a value some completed read or cas still
    /// has to observe when nothing else can produce it. The verdict is the same either way;
    /// without it the search is slower but its longest prefix stops at the operation that
    /// is actually inconsistent (a read) rather than at the write that would hide a value.
    pub(crate) fn without_pruning(mut self) -> Self {
        self.prune = false;
        self
    }

    fn set_bit(&mut self, op: u32) {
        let w = (op / 64) as usize;
        self.bits[w] |= 1u64 << (op % 64);
        if w + 1 > self.high {
            self.high = w + 1;
        }
        while self.low < self.bits.len() && self.bits[self.low] == u64::MAX {
            self.low += 1;
        }
    }

    fn clear_bit(&mut self, op: u32) {
        let w = (op / 64) as usize;
        self.bits[w] &= !(1u64 << (op % 64));
        if w < self.low {
            self.low = w;
        }
        while self.high > 0 && self.bits[self.high - 1] == 0 {
            self.high -= 1;
        }
    }

    fn unlink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    fn relink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = e;
        if n != NIL {
            self.prev[n as usize] = e;
        }
    }

    fn lift(&mut self, call: u32) {
        self.unlink(call);
        let ret = self.ent_match[call as usize];
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Undoes `lift`; lifts must be undone in reverse order (the stack guarantees it).
    fn unlift(&mut self, call: u32) {
        let ret = self.ent_match[call as usize];
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(call);
    }

    fn release(&mut self, mem: &MemBudget) {
        mem.used.fetch_sub(self.mem_reported, Ordering::Relaxed);
        self.mem_reported = 0;
    }

    /// Frees the cache and returns its memory to the budget (call once the search is over).
    pub(crate) fn finish(&mut self, mem: &MemBudget) {
        self.release(mem);
        self.cache = Cache::default();
    }

    /// Searches until decided, or until `slice_end` (then `Paused`), `deadline`, `cancel`
    /// or the memory budget (then `GaveUp`).
    pub(crate) fn run(
        &mut self,
        slice_end: Instant,
        deadline: Instant,
        cancel: &AtomicBool,
        mem: &MemBudget,
    ) -> Outcome {
        let mut tick: u32 = 0;
        loop {
            if self.required_left == 0 {
                return Outcome::Valid;
            }
            tick = tick.wrapping_add(1);
            if tick.is_multiple_of(1024) {
                if cancel.load(Ordering::Relaxed) {
                    return Outcome::GaveUp(super::race::CANCELLED.into());
                }
                let now = Instant::now();
                if now >= deadline {
                    return Outcome::GaveUp("time budget (--check-timeout) exhausted".into());
                }
                let bytes = self.cache.bytes();
                if bytes > self.mem_reported + MEM_CHUNK {
                    let add = bytes - self.mem_reported;
                    let used = mem.used.fetch_add(add, Ordering::Relaxed) + add;
                    self.mem_reported = bytes;
                    if used > mem.limit {
                        return Outcome::GaveUp(format!(
                            "memory budget of {} MiB exhausted ({} cached states for this key)",
                            mem.limit >> 20,
                            self.cache.len()
                        ));
                    }
                }
                if now >= slice_end {
                    return Outcome::Paused;
                }
            }
            self.steps += 1;
            if self.fresh {
                self.fresh = false;
                if let Some(r) = self.matching_read() {
                    // A read that could go now and agrees with the state may always go first
                    // (moving it to the front of any linearization keeps it valid), so it is
                    // placed without trying alternatives; if that configuration was already
                    // seen (and failed), so does this one.
                    if !self.try_linearize(r) && !self.backtrack() {
                        return self.invalid();
                    }
                    continue;
                }
            }
            let e = self.cursor;
            if e == NIL {
                // Only possible if required ops have no return entry: treat like a return.
                if !self.backtrack() {
                    return self.invalid();
                }
                continue;
            }
            if self.ent_call[e as usize] {
                let opi = self.ent_op[e as usize];
                if self.ops[opi as usize].absorbable || !self.try_linearize(e) {
                    self.cursor = self.next[e as usize];
                }
            } else {
                // The scan reached the return of an op that is not linearized. An unread write
                // can still go here (the latest moment it can); anything else cannot.
                let opi = self.ent_op[e as usize];
                let call = self.ret_call[e as usize];
                let forced =
                    self.ops[opi as usize].absorbable && call != NIL && self.try_linearize(call);
                if !forced && !self.backtrack() {
                    return self.invalid();
                }
            }
        }
    }

    /// Linearizes the op of call entry `e` next if the model allows it and the resulting
    /// (set, state) is new: lifts it (with the unread writes it absorbs), records the choice,
    /// restarts the scan. Returns whether it did.
    fn try_linearize(&mut self, e: u32) -> bool {
        let opi = self.ent_op[e as usize];
        let op = self.ops[opi as usize];
        let Some(ns) = step(self.state, &op) else {
            return false;
        };
        let consumes = op.required && matches!(op.kind, Kind::Read | Kind::Cas);
        if self.prune && ns != self.state && self.unique_source[self.state as usize] {
            // The current value can never come back: whoever still has to observe it must
            // do so before it changes.
            let waiting = self.pending_obs[self.state as usize] - u32::from(consumes);
            if waiting > 0 {
                return false;
            }
        }
        let lin_before = self.lin.len();
        self.set_bit(opi);
        if op.kind == Kind::Write {
            self.collect_absorbed(e);
        }
        let hi = self.high.max(self.low);
        if !self
            .cache
            .insert(self.low as u32, &self.bits[self.low..hi], ns)
        {
            for i in lin_before..self.lin.len() {
                let a = self.ent_op[self.lin[i] as usize];
                self.clear_bit(a);
            }
            self.lin.truncate(lin_before);
            self.clear_bit(opi);
            return false;
        }
        if consumes {
            self.pending_obs[op.a as usize] -= 1;
        }
        self.stack.push((e, self.state, lin_before as u32));
        self.state = ns;
        if op.required && !op.absorbable {
            self.required_left -= 1;
        }
        self.lift(e);
        for i in lin_before..self.lin.len() {
            let a = self.lin[i];
            self.lift(a);
        }
        self.lin.push(e);
        self.cursor = self.next[self.head as usize];
        self.fresh = true;
        if self.lin.len() > self.best.len() {
            self.best.truncate(self.common);
            let c = self.common;
            self.best.extend_from_slice(&self.lin[c..]);
            self.common = self.lin.len();
        }
        true
    }

    /// The first read that could go now (its call entry comes before the first return entry)
    /// and returns the current state.
    fn matching_read(&self) -> Option<u32> {
        let mut e = self.next[self.head as usize];
        while e != NIL && self.ent_call[e as usize] {
            let op = &self.ops[self.ent_op[e as usize] as usize];
            if op.kind == Kind::Read && op.a == self.state {
                return Some(e);
            }
            e = self.next[e as usize];
        }
        None
    }

    /// Appends to `lin` (and marks linearized) every absorbable write that could go right
    /// now, i.e. whose call entry comes before the first return entry, other than `except`.
    fn collect_absorbed(&mut self, except: u32) {
        let mut e = self.next[self.head as usize];
        while e != NIL && self.ent_call[e as usize] {
            let opi = self.ent_op[e as usize];
            if e != except && self.ops[opi as usize].absorbable {
                self.lin.push(e);
                self.set_bit(opi);
            }
            e = self.next[e as usize];
        }
    }

    /// Undoes the last linearization step and moves past it; `false` if there is none.
    fn backtrack(&mut self) -> bool {
        loop {
            let Some(e) = self.undo() else {
                return false;
            };
            // An unread write is only ever placed when the scan reaches its return, and a
            // read only greedily (see `run`): once undone, there is nothing else to try in
            // that configuration, so undo further.
            let op = &self.ops[self.ent_op[e as usize] as usize];
            if !op.absorbable && op.kind != Kind::Read {
                self.cursor = self.next[e as usize];
                self.fresh = false;
                return true;
            }
        }
    }

    /// Undoes the last choice; returns its call entry.
    fn undo(&mut self) -> Option<u32> {
        let (e, prev_state, lin_before) = self.stack.pop()?;
        let lin_before = lin_before as usize;
        // `lin` ends with the absorbed writes then `e`: undo in reverse order of lifting.
        let chosen = self.lin.pop();
        debug_assert_eq!(chosen, Some(e));
        while self.lin.len() > lin_before {
            if let Some(a) = self.lin.pop() {
                self.clear_bit(self.ent_op[a as usize]);
                self.unlift(a);
            }
        }
        if self.lin.len() < self.common {
            self.common = self.lin.len();
        }
        let opi = self.ent_op[e as usize];
        let op = self.ops[opi as usize];
        if op.required && !op.absorbable {
            self.required_left += 1;
        }
        if op.required && matches!(op.kind, Kind::Read | Kind::Cas) {
            self.pending_obs[op.a as usize] += 1;
        }
        self.state = prev_state;
        self.clear_bit(opi);
        self.unlift(e);
        Some(e)
    }

    fn invalid(&self) -> Outcome {
        Outcome::Invalid {
            prefix: self.best.iter().map(|&e| self.ent_op[e as usize]).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Builds a search from (call position, return position or None, op).
    fn search(ops: &[(u32, Option<u32>, ROp)]) -> Search {
        let mut pts: Vec<(u32, Ent)> = Vec::new();
        for (i, (c, r, _)) in ops.iter().enumerate() {
            pts.push((
                *c,
                Ent {
                    op: i as u32,
                    call: true,
                },
            ));
            if let Some(r) = r {
                pts.push((
                    *r,
                    Ent {
                        op: i as u32,
                        call: false,
                    },
                ));
            }
        }
        pts.sort_by_key(|p| p.0);
        let ents: Vec<Ent> = pts.into_iter().map(|p| p.1).collect();
        Search::new(ops.iter().map(|o| o.2).collect(), &ents)
    }

    fn w(a: Val, required: bool) -> ROp {
        ROp {
            kind: Kind::Write,
            a,
            b: 0,
            required,
            absorbable: false,
        }
    }
    fn r(a: Val) -> ROp {
        ROp {
            kind: Kind::Read,
            a,
            b: 0,
            required: true,
            absorbable: false,
        }
    }
    fn cas(a: Val, b: Val, required: bool) -> ROp {
        ROp {
            kind: Kind::Cas,
            a,
            b,
            required,
            absorbable: false,
        }
    }

    fn run(mut s: Search) -> Outcome {
        let far = Instant::now() + Duration::from_secs(10);
        let mem = MemBudget::new(1 << 30);
        s.run(far, far, &AtomicBool::new(false), &mem)
    }

    #[test]
    fn sequential_history_is_valid() {
        let s = search(&[
            (0, Some(1), w(1, true)),
            (2, Some(3), r(1)),
            (4, Some(5), cas(1, 2, true)),
            (6, Some(7), r(2)),
        ]);
        assert!(matches!(run(s), Outcome::Valid));
    }

    #[test]
    fn initial_null_read_is_valid_and_stale_read_is_not() {
        let s = search(&[(0, Some(1), r(NULL))]);
        assert!(matches!(run(s), Outcome::Valid));
        let s = search(&[
            (0, Some(1), w(1, true)),
            (2, Some(3), w(2, true)),
            (4, Some(5), r(1)),
        ]);
        match run(s) {
            Outcome::Invalid { prefix } => assert_eq!(prefix, vec![0]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn concurrent_ops_may_reorder() {
        // write 1 overlaps read 1 that was invoked first.
        let s = search(&[(1, Some(4), w(1, true)), (0, Some(3), r(1))]);
        assert!(matches!(run(s), Outcome::Valid));
    }

    #[test]
    fn info_write_may_take_effect_late_or_never() {
        // info write 1 invoked first; read sees 1 much later: valid.
        let s = search(&[
            (0, None, w(1, false)),
            (1, Some(2), r(NULL)),
            (3, Some(4), r(1)),
        ]);
        assert!(matches!(run(s), Outcome::Valid));
        // info cas that cannot apply never has to.
        let s = search(&[(0, None, cas(5, 6, false)), (1, Some(2), r(NULL))]);
        assert!(matches!(run(s), Outcome::Valid));
    }

    #[test]
    fn info_write_cannot_take_effect_before_its_call() {
        let s = search(&[(0, Some(1), r(1)), (2, None, w(1, false))]);
        assert!(matches!(run(s), Outcome::Invalid { .. }));
    }

    fn unread_w(a: Val) -> ROp {
        ROp {
            absorbable: true,
            ..w(a, true)
        }
    }

    #[test]
    fn unread_writes_are_placed_before_a_later_write_or_at_the_end() {
        // unread write 9 overlaps write 1; read 1 follows: 9 must go right before 1.
        let s = search(&[
            (0, Some(3), unread_w(9)),
            (1, Some(2), w(1, true)),
            (4, Some(5), r(1)),
        ]);
        assert!(matches!(run(s), Outcome::Valid));
        // unread write 9 last of all.
        let s = search(&[(0, Some(1), w(1, true)), (2, Some(3), unread_w(9))]);
        assert!(matches!(run(s), Outcome::Valid));
    }

    #[test]
    fn unread_write_cannot_hide_between_write_and_read() {
        // write 1 ends, unread write 9 runs alone, then read 1: 9 would be current.
        let s = search(&[
            (0, Some(1), w(1, true)),
            (2, Some(3), unread_w(9)),
            (4, Some(5), r(1)),
        ]);
        match run(s) {
            Outcome::Invalid { prefix } => assert_eq!(prefix, vec![0]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gives_up_when_cancelled() {
        // Long enough to reach the periodic cancel check.
        let mut ops = Vec::new();
        for i in 0..3000u32 {
            ops.push((2 * i, Some(2 * i + 1), w(i + 1, true)));
        }
        let mut s = search(&ops);
        let far = Instant::now() + Duration::from_secs(10);
        let mem = MemBudget::new(1 << 30);
        let out = s.run(far, far, &AtomicBool::new(true), &mem);
        assert!(matches!(out, Outcome::GaveUp(_)), "{out:?}");
    }
}

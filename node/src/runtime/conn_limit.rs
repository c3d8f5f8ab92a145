//! A cap on the number of open connections of one port.
//!
//! At the cap, a new connection is admitted and the port's *longest-idle* connection (the
//! one whose last complete frame, or acceptance when it sent none, is oldest) is closed.
//! Refusing the new connection instead would let anyone who holds the cap's worth of idle
//! connections lock out everybody else for good, including a peer that restarted or whose
//! old connection went half-dead (idle connections never time out: a client may idle, and
//! so may a peer connection that carries only election traffic). Evicting the longest-idle
//! one keeps active connections (a leader's heartbeats, a busy client) and lets a newcomer
//! in; a legitimate connection evicted by a flood reconnects (peer senders do so on their
//! own, and Raft tolerates the messages lost meanwhile).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use super::frames::FrameBudget;

/// What limits one port's connections: the cap, the node's frame budget (shared with the
/// other port) and the frame timeout. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PortLimits {
    /// The port's open connections.
    pub conns: ConnLimiter,
    /// Buffer for unfinished frames, shared by both ports.
    pub budget: FrameBudget,
    /// How long a frame may take from its first byte to its last.
    pub frame_timeout: std::time::Duration,
}

/// The open connections of one port, at most `cap` of them. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ConnLimiter {
    port: &'static str,
    cap: usize,
    epoch: Instant,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Arc<Slot>>,
}

#[derive(Debug)]
struct Slot {
    /// Nanoseconds since the limiter's epoch at the last complete frame (or acceptance).
    last_active: AtomicU64,
    /// Notified once when the connection is evicted.
    evict: Notify,
    remote: Option<SocketAddr>,
}

impl ConnLimiter {
    /// A limiter for the port named `port` (for log lines) admitting `cap` (at least 1)
    /// connections at a time.
    pub fn new(port: &'static str, cap: usize) -> ConnLimiter {
        ConnLimiter {
            port,
            cap: cap.max(1),
            epoch: Instant::now(),
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The critical sections cannot leave the map inconsistent, so a poisoned lock is fine.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Registers a new connection from `remote`; if that makes more than the cap, evicts the
    /// longest-idle other connection (whose [`ConnGuard::evicted`] then completes) and logs
    /// it. The connection counts until its guard is dropped.
    pub fn admit(&self, remote: Option<SocketAddr>) -> ConnGuard {
        let slot = Arc::new(Slot {
            last_active: AtomicU64::new(self.now()),
            evict: Notify::new(),
            remote,
        });
        let mut inner = self.lock();
        if inner.conns.len() >= self.cap {
            let oldest = inner
                .conns
                .iter()
                .min_by_key(|(id, s)| (s.last_active.load(Ordering::Relaxed), **id))
                .map(|(id, _)| *id);
            if let Some(old) = oldest.and_then(|id| inner.conns.remove(&id)) {
                let idle_ms = (self.now() - old.last_active.load(Ordering::Relaxed)) / 1_000_000;
                tracing::warn!(
                    port = self.port,
                    cap = self.cap,
                    evicted = ?old.remote,
                    idle_ms,
                    new = ?remote,
                    "connection cap reached; closing the longest-idle connection"
                );
                old.evict.notify_one();
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.conns.insert(id, slot.clone());
        ConnGuard {
            id,
            slot,
            limiter: self.clone(),
        }
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        self.lock().conns.len()
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnGuard {
    id: u64,
    slot: Arc<Slot>,
    limiter: ConnLimiter,
}

impl ConnGuard {
    /// Records activity (a complete frame): the connection is not idle now.
    pub fn touch(&self) {
        self.slot
            .last_active
            .store(self.limiter.now(), Ordering::Relaxed);
    }

    /// Completes once the limiter evicted this connection, which must then be closed.
    /// Cancel safe.
    pub async fn evicted(&self) {
        self.slot.evict.notified().await
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.limiter.lock().conns.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_is_evicted() {
        let limiter = ConnLimiter::new("test", 3);
        let a = limiter.admit(None);
        let b = limiter.admit(None);
        let c = limiter.admit(None);
        std::thread::sleep(Duration::from_millis(2));
        a.touch();
        // b is now the longest idle.
        let d = limiter.admit(None);
        assert_eq!(limiter.open(), 3);
        let quick = Duration::from_millis(50);
        assert!(tokio::time::timeout(quick, b.evicted()).await.is_ok());
        assert!(tokio::time::timeout(quick, a.evicted()).await.is_err());
        assert!(tokio::time::timeout(quick, c.evicted()).await.is_err());
        // Dropping the evicted guard does not free another's place.
        drop(b);
        assert_eq!(limiter.open(), 3);
        drop(c);
        assert_eq!(limiter.open(), 2);
        let _e = limiter.admit(None);
        assert!(tokio::time::timeout(quick, a.evicted()).await.is_err());
        assert!(tokio::time::timeout(quick, d.evicted()).await.is_err());
    }
}

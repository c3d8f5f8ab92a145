//! Reading length-prefixed frames (see [`crate::protocol`]) from untrusted connections,
//! with bounded memory and time.
//!
//! `tokio_util`'s `LengthDelimitedCodec` reserves the whole claimed length as soon as it
//! has read a frame's header, and waits for the rest of the frame forever. A peer (or
//! anyone reaching the port) could thus make the node hold up to [`MAX_FRAME_BYTES`] per
//! connection indefinitely. [`FrameReader`] instead:
//! - grows its buffer with the bytes that actually arrive, at most [`READ_AHEAD`] beyond
//!   them, never by the claimed length;
//! - draws every byte buffered beyond [`READ_AHEAD`] for an unfinished frame from a
//!   [`FrameBudget`] shared by all connections of the node, and waits (reads nothing more)
//!   while the budget is used up, so all partial frames together stay under a fixed size;
//! - requires a frame to be complete within the frame timeout once its first byte arrived
//!   (waiting for budget counts), so a stalled or trickling sender cannot hold a connection,
//!   its buffer or its budget for long. Between frames a connection may idle for ever.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::protocol::MAX_FRAME_BYTES;

/// How far a reader's buffer may run ahead of the bytes received, and how much each
/// connection may buffer for an unfinished frame without drawing on the [`FrameBudget`]: so
/// that ordinary (small) frames never wait for budget.
pub const READ_AHEAD: usize = 64 * 1024;

/// Room made for each read at least, so that small pipelined frames arrive many per read.
const MIN_READ: usize = 8 * 1024;

/// The length prefix of every frame.
const HEADER: usize = 4;

/// The budget counts in units of this many bytes (a semaphore holds at most `u32` permits).
const UNIT: usize = 1024;

/// Why a connection's frames ended badly. Each closes the connection: the next frame cannot
/// be found (or the sender is too slow).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES}")]
    TooLong(usize),
    /// The frame's first byte arrived more than the frame timeout ago and it is incomplete.
    #[error("frame not complete within {0:?} of its first byte")]
    Timeout(Duration),
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Bytes that partial frames may occupy beyond each connection's [`READ_AHEAD`], shared by
/// all connections of a node (both ports). Cheap to clone.
#[derive(Clone, Debug)]
pub struct FrameBudget {
    units: Arc<Semaphore>,
}

impl FrameBudget {
    /// A budget of `bytes` (rounded down to KiB, at least one frame's worth so that a single
    /// maximal frame can always be read).
    pub fn new(bytes: usize) -> FrameBudget {
        let most = Semaphore::MAX_PERMITS.min(u32::MAX as usize);
        let units = (bytes / UNIT).clamp(MAX_FRAME_BYTES / UNIT, most);
        FrameBudget {
            units: Arc::new(Semaphore::new(units)),
        }
    }

    /// Bytes of the budget not in use (for tests).
    pub fn available(&self) -> usize {
        self.units.available_permits() * UNIT
    }
}

/// Reads frames from `R`; see the module documentation for the limits it enforces.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    budget: FrameBudget,
    /// Budget held for the unfinished frame; released when it completes.
    held: Option<OwnedSemaphorePermit>,
    timeout: Duration,
    /// When the first byte of the unfinished frame arrived (`None`: no frame started).
    started: Option<Instant>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader over `inner` whose frames must complete within `timeout` of their first
    /// byte and whose large partial frames draw on `budget`.
    pub fn new(inner: R, budget: FrameBudget, timeout: Duration) -> FrameReader<R> {
        FrameReader {
            inner,
            buf: BytesMut::new(),
            budget,
            held: None,
            timeout,
            started: None,
        }
    }

    /// The next frame's payload; `Ok(None)` when the connection ended between frames.
    ///
    /// Cancel safe: dropping the future loses no bytes (the next call resumes), so it may
    /// be raced against other events in `select!`.
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            // How many more bytes the frame in progress needs.
            let needed = if self.buf.len() < HEADER {
                HEADER - self.buf.len()
            } else {
                let len =
                    u32::from_be_bytes(self.buf[..HEADER].try_into().expect("4 bytes")) as usize;
                if len > MAX_FRAME_BYTES {
                    return Err(FrameError::TooLong(len));
                }
                if self.buf.len() >= HEADER + len {
                    self.buf.advance(HEADER);
                    let frame = self.buf.split_to(len).freeze();
                    self.held = None;
                    // Bytes of the next frame already here start its clock now.
                    self.started = (!self.buf.is_empty()).then(Instant::now);
                    return Ok(Some(frame));
                }
                HEADER + len - self.buf.len()
            };
            let want = needed.clamp(MIN_READ, READ_AHEAD);
            let deadline = self.started.map(|t| t + self.timeout);
            self.reserve_budget(self.buf.len() + want, deadline).await?;
            if self.buf.capacity() - self.buf.len() < want {
                self.buf.reserve(want);
            }
            let read = match deadline {
                None => self.inner.read_buf(&mut self.buf).await,
                Some(d) => {
                    match tokio::time::timeout_at(d, self.inner.read_buf(&mut self.buf)).await {
                        Ok(r) => r,
                        Err(_) => return Err(FrameError::Timeout(self.timeout)),
                    }
                }
            };
            match read? {
                0 if self.buf.is_empty() => return Ok(None),
                0 => return Err(FrameError::Truncated),
                _ => {
                    if self.started.is_none() {
                        self.started = Some(Instant::now());
                    }
                }
            }
        }
    }

    /// Makes sure the budget covers a buffer of `bytes` (beyond [`READ_AHEAD`]), waiting
    /// for it until `deadline`.
    async fn reserve_budget(
        &mut self,
        bytes: usize,
        deadline: Option<Instant>,
    ) -> Result<(), FrameError> {
        let units = bytes.saturating_sub(READ_AHEAD).div_ceil(UNIT);
        let have = self.held.as_ref().map_or(0, |p| p.num_permits());
        if units <= have {
            return Ok(());
        }
        let more = (units - have) as u32;
        let acquire = self.budget.units.clone().acquire_many_owned(more);
        let permit = match deadline {
            None => acquire.await,
            Some(d) => match tokio::time::timeout_at(d, acquire).await {
                Ok(p) => p,
                Err(_) => return Err(FrameError::Timeout(self.timeout)),
            },
        }
        .map_err(|_| std::io::Error::other("frame budget closed"))?;
        match self.held.as_mut() {
            Some(h) => h.merge(permit),
            None => self.held = Some(permit),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[tokio::test]
    async fn reads_frames_of_every_size_split_anywhere() {
        let (mut w, r) = tokio::io::duplex(1024);
        let payloads: Vec<Vec<u8>> = vec![vec![], b"a".to_vec(), vec![7; 200_000], vec![1; 3]];
        let bytes: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(777) {
                w.write_all(chunk).await.unwrap();
            }
        });
        let budget = FrameBudget::new(0);
        let mut reader = FrameReader::new(r, budget.clone(), Duration::from_secs(5));
        for p in &payloads {
            assert_eq!(&reader.next_frame().await.unwrap().unwrap()[..], &p[..]);
        }
        writer.await.unwrap();
        assert!(reader.next_frame().await.unwrap().is_none());
        assert_eq!(budget.available(), MAX_FRAME_BYTES, "budget released");
    }

    #[tokio::test]
    async fn the_buffer_grows_with_the_bytes_received_not_the_claimed_length() {
        let (mut w, r) = tokio::io::duplex(1 << 20);
        let mut bytes = (MAX_FRAME_BYTES as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 100]);
        w.write_all(&bytes).await.unwrap();
        let mut reader = FrameReader::new(r, FrameBudget::new(0), Duration::from_secs(60));
        // Nothing more comes: the read waits; by then the header and body are buffered.
        let pending = tokio::time::timeout(Duration::from_millis(100), reader.next_frame()).await;
        assert!(pending.is_err());
        assert_eq!(reader.buf.len(), 104);
        assert!(
            reader.buf.capacity() <= 2 * READ_AHEAD,
            "capacity {} for 104 bytes received",
            reader.buf.capacity()
        );
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_at_once() {
        let (mut w, r) = tokio::io::duplex(64);
        w.write_all(&(MAX_FRAME_BYTES as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        let mut reader = FrameReader::new(r, FrameBudget::new(0), Duration::from_secs(60));
        assert!(matches!(
            reader.next_frame().await,
            Err(FrameError::TooLong(n)) if n == MAX_FRAME_BYTES + 1
        ));
    }

    #[tokio::test]
    async fn a_started_frame_times_out_even_if_bytes_trickle_in() {
        let (mut w, r) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(r, FrameBudget::new(0), Duration::from_millis(500));
        // Idle with no frame started: no timeout.
        let idle = tokio::time::timeout(Duration::from_millis(1500), reader.next_frame()).await;
        assert!(idle.is_err(), "an idle connection must not time out");
        w.write_all(&100u32.to_be_bytes()).await.unwrap();
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                if w.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let start = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(5), reader.next_frame()).await;
        assert!(matches!(r, Ok(Err(FrameError::Timeout(_)))), "{r:?}");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(450), "{took:?}");
        drop(reader);
        trickle.await.unwrap();
    }

    #[tokio::test]
    async fn partial_frames_beyond_the_budget_wait_then_time_out() {
        let budget = FrameBudget::new(MAX_FRAME_BYTES);
        let mut big = (MAX_FRAME_BYTES as u32).to_be_bytes().to_vec();
        big.resize(HEADER + MAX_FRAME_BYTES - 1, 0);
        // The first takes the whole budget and stalls one byte short.
        let (mut w1, r1) = tokio::io::duplex(8 << 20);
        w1.write_all(&big).await.unwrap();
        let mut first = FrameReader::new(r1, budget.clone(), Duration::from_secs(60));
        let stalled = tokio::time::timeout(Duration::from_millis(500), first.next_frame()).await;
        assert!(stalled.is_err());
        assert_eq!(first.buf.len(), big.len());
        let left = budget.available();
        // The second can buffer no more than READ_AHEAD and what is left, and times out.
        let (mut w2, r2) = tokio::io::duplex(8 << 20);
        let second_writer = tokio::spawn(async move {
            let _ = w2.write_all(&big).await;
        });
        let mut second = FrameReader::new(r2, budget.clone(), Duration::from_millis(300));
        let r = tokio::time::timeout(Duration::from_secs(5), second.next_frame()).await;
        assert!(matches!(r, Ok(Err(FrameError::Timeout(_)))), "{r:?}");
        assert!(
            second.buf.len() <= READ_AHEAD + left,
            "{} > {READ_AHEAD} + {left}",
            second.buf.len()
        );
        drop(second);
        second_writer.await.unwrap();
        // Once the first frame completes, its budget is back.
        w1.write_all(&[0]).await.unwrap();
        assert_eq!(
            first.next_frame().await.unwrap().unwrap().len(),
            MAX_FRAME_BYTES
        );
        assert_eq!(budget.available(), MAX_FRAME_BYTES);
    }
}

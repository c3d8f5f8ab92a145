//! The runtime: drives the pure Raft core with real sockets, real files and the node's clock.
//!
//! Threads and tasks:
//! - the *Raft loop* ([`raft_loop`]) is one OS thread that owns the core, the write-ahead log
//!   and the key-value store. It blocks on fsync, which is what makes group commit work:
//!   while one batch is being made durable, new proposals queue up and go into the next.
//! - tokio tasks ([`peer_net`], [`client_server`]) move frames between sockets and the loop,
//!   through the loop's [`input::Handle`].

pub mod client_server;
pub mod config;
pub mod conn_limit;
pub mod frames;
pub mod input;
pub mod peer_net;
pub mod raft_loop;
pub mod wall_lease;

use std::sync::Arc;

use anyhow::Context;
use tracing::Instrument;

pub use config::{ConnLimits, NodeConfig};

use crate::clock::Clock;
use crate::raft::node_name;

/// Starts the node and serves until the process is killed (or a fatal error occurs, such as a
/// corrupt write-ahead log: then it returns the error).
pub fn run(config: NodeConfig) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let clock = Arc::new(Clock::new());
    let span = tracing::info_span!("node", id = %node_name(config.id));
    let _enter = span.enter();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;

    // Bind both listeners before opening storage so that a taken port fails fast.
    let (peer_listener, client_listener) = rt.block_on(async {
        let p = tokio::net::TcpListener::bind(&config.peer_listen)
            .await
            .with_context(|| format!("binding peer address {}", config.peer_listen))?;
        let c = tokio::net::TcpListener::bind(&config.client_listen)
            .await
            .with_context(|| format!("binding client address {}", config.client_listen))?;
        anyhow::Ok((p, c))
    })?;

    // Every failpoint off until the harness configures one (admin request `failpoint`).
    let failpoints = Arc::new(crate::failpoints::Failpoints::new());
    let (handle, raft_thread) = raft_loop::start(
        config.clone(),
        clock.clone(),
        failpoints.clone(),
        rt.handle().clone(),
    )?;

    // One budget for the partial frames of both ports: it bounds the node's memory.
    let budget = frames::FrameBudget::new(config.limits.frame_buffer_bytes);
    let limits = &config.limits;
    rt.spawn(
        peer_net::serve(
            peer_listener,
            config.id,
            handle.clone(),
            conn_limit::PortLimits {
                conns: conn_limit::ConnLimiter::new("peer", limits.max_peer_connections),
                budget: budget.clone(),
                frame_timeout: limits.frame_timeout,
            },
        )
        .instrument(span.clone()),
    );
    rt.spawn(
        client_server::serve(
            client_listener,
            handle.clone(),
            clock.clone(),
            failpoints,
            std::time::Duration::from_millis(config.request_timeout_ms),
            conn_limit::PortLimits {
                conns: conn_limit::ConnLimiter::new("client", limits.max_client_connections),
                budget,
                frame_timeout: limits.frame_timeout,
            },
        )
        .instrument(span.clone()),
    );
    tracing::info!(
        peer = %config.peer_listen,
        client = %config.client_listen,
        "node started"
    );

    // The Raft thread only ends on a fatal error (storage failure); the process ends with it.
    let result = raft_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the Raft thread panicked"))?;
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

//! `node`: a Raft-replicated key-value store, the system under test of the harness.
//!
//! - [`raft`]: the pure Raft core (messages and ticks in, actions out).
//! - [`storage`]: the durable write-ahead log and hard state.
//! - [`command`]: the write commands (put, cas, add), shared by requests and log entries.
//! - [`kv`]: the deterministic key-value state machine with client de-duplication.
//! - [`client`]: the one client of the client port (connections, requests, admin calls).
//! - [`protocol`]: client/admin requests and responses, and the frame codec used on every
//!   TCP connection (client and peer).
//! - [`clock`]: the skewable clock through which the runtime reads all time.
//! - [`failpoints`]: named places in the runtime where the harness delays or crashes the node.
//! - [`loopback`]: free loopback ports for processes started later (tests, the harness).
//! - [`runtime`]: drives the core with sockets, files and the clock (the `node` binary).

pub mod bugs;
pub mod cli;
pub mod client;
pub mod clock;
pub mod command;
pub mod failpoints;
pub mod kv;
pub mod loopback;
pub mod protocol;
pub mod raft;
pub mod runtime;

pub mod storage;

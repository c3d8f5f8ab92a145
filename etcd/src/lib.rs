//! etcd as a second system under test: [`launcher`] starts and hurts `n` etcd members on
//! loopback, [`client`] talks to them through etcd's v3 JSON gateway, and [`kv`] adapts that
//! client to the workloads' [`workloads::client::KvClient`], so the same generators, checkers
//! and reports apply.

pub mod client;
pub mod kv;
pub mod launcher;

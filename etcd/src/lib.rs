//! etcd as a second system under test: [`launcher`] starts and hurts `n` etcd members on
//! loopback, [`client`] talks to them through etcd's v3 JSON gateway, and [`kv`] adapts that
//! client to the workloads' [`workloads::client::KvClient`], so the same generators, checkers
//! and reports apply.

pub mod client;
pub mod kv;
pub mod launcher;

// Wiring `harness test --system etcd` (for the integrator):
// - ports: two free loopback ports per member (client, peer) into `launcher::EtcdConfig`;
// - `EtcdCluster::start`, then `wait_for_leader`; faults map to `kill`, `pause`/`resume`,
//   `restart`; membership to `EtcdClient::member_remove` + `EtcdCluster::kill`, then
//   `member_add_learner` + `EtcdCluster::rejoin_fresh` + `member_promote` (retried);
// - workloads: `workloads::driver::run_workload_on(&cfg, &kv::EtcdSystem::new(config.members()),
//   ...)` and `final_set_reads_on`; refuse `--read-mode lease` with `kv::supports`;
// - observation: `EtcdClient::status` per member, ids named by `EtcdClient::member_ids`.

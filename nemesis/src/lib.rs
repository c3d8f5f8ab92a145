//! Faults: a TCP proxy for every directed pair of nodes, process control, clock skew,
//! membership changes, and the seeded schedule that applies and heals them.

pub mod proxy;

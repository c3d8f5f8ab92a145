//! The `node` binary: one member of a Raft key-value cluster.

fn main() {
    eprintln!("node: runtime not built yet");
    std::process::exit(255);
}

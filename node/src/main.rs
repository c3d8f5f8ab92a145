//! The `node` binary: one member of a Raft key-value cluster. See `node --help`.

fn main() -> std::process::ExitCode {
    node::cli::main_with_args(std::env::args_os())
}

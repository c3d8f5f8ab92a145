//! `harness`: runs Jepsen-style tests against a cluster of real `node` processes, checks
//! histories and writes reports. See `docs/spec/cli.md` for the contract this follows.

use std::process::ExitCode;

use clap::Parser;

use harness::cli::{Cli, Command};
use harness::{check_cmd, exit, report, run_dir, test};

fn main() -> ExitCode {
    // `harness node ...` is the node itself: hand it the raw arguments before clap sees them.
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if raw.get(1).is_some_and(|a| a == "node") {
        let mut node_args = vec![std::ffi::OsString::from("node")];
        node_args.extend(raw.into_iter().skip(2));
        return node::cli::main_with_args(node_args);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::BAD_USAGE } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match cli.command {
        Command::Test(args) => test::run(&args),
        Command::Check(args) => check_cmd::run(&args).clamp(0, 255) as u8,
        Command::Report { run_dir } => match report::build_run_report(&run_dir) {
            Ok(warnings) => {
                for w in warnings {
                    eprintln!("harness report: warning: {w}");
                }
                println!("{}", run_dir.join("index.html").display());
                exit::VALID
            }
            Err(e) => {
                eprintln!("harness report: {e:#}");
                exit::HARNESS_FAILED
            }
        },
        Command::Compare { run_dirs, out } => {
            let out = out.unwrap_or_else(|| {
                std::path::PathBuf::from("results")
                    .join("compare")
                    .join(run_dir::timestamp())
            });
            match report::compare(&run_dirs, &out) {
                Ok(page) => {
                    println!("{}", page.display());
                    exit::VALID
                }
                Err(e) => {
                    eprintln!("harness compare: {e:#}");
                    exit::HARNESS_FAILED
                }
            }
        }
        Command::Soak(args) => harness::soak::run(&args),
        Command::SoakMerge(args) => harness::soak::merge::run(&args),
        Command::Selftest(args) => harness::selftest::run(&args),
        Command::BenchDisk(args) => harness::bench_disk::run(&args),
        Command::Node { .. } => unreachable!("handled before parsing"),
    };
    ExitCode::from(code)
}

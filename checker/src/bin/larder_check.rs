//! `larder-check`: judges a recorded history and prints a JSON report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use larder_checker::report::{CheckInputs, check_all, read_apply_records, read_kv_state};
use larder_checker::{History, LinearizabilityLimits};

/// Exit code when an input cannot be read or the history is malformed.
const EXIT_BAD_INPUT: u8 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "larder-check",
    about = "Checks a recorded fault-test history (JSON Lines) and prints a JSON report.",
    after_help = "Exit codes: 0 every verdict passed; 1 a violation was found; \
                  2 bad command line; 3 no violation but something undecided (timeout, \
                  missing final reads or dumps); 4 unreadable or malformed input."
)]
struct Args {
    /// The history: JSON Lines of events.
    history: PathBuf,
    /// Apply records collected from the nodes (JSON Lines: object, key, request_id, version).
    #[arg(long)]
    apply_records: Option<PathBuf>,
    /// KV state after the run (JSON: replicas, snapshots, convergence_bound_ms).
    #[arg(long)]
    kv: Option<PathBuf>,
    /// Time for the linearizability search, all keys together.
    #[arg(long, default_value_t = 60_000)]
    time_limit_ms: u64,
    /// Model steps per key before the search gives up (undecided).
    #[arg(long, default_value_t = LinearizabilityLimits::default().steps_max)]
    steps_max: u64,
    /// Memory for remembered search configurations per key before the search gives up
    /// (undecided).
    #[arg(long, default_value_t = LinearizabilityLimits::default().cache_bytes_max)]
    cache_bytes_max: usize,
    /// Write the report here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Indent the report.
    #[arg(long)]
    pretty: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("larder-check: {err:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<u8> {
    let history = History::read_file(&args.history)?;
    let inputs = CheckInputs {
        apply_records: match &args.apply_records {
            Some(path) => read_apply_records(path)?,
            None => Vec::new(),
        },
        kv: args.kv.as_deref().map(read_kv_state).transpose()?,
        limits: LinearizabilityLimits {
            time_max: Duration::from_millis(args.time_limit_ms),
            steps_max: args.steps_max,
            cache_bytes_max: args.cache_bytes_max,
        },
    };
    let report = check_all(&history, &inputs)?;
    let text = if args.pretty {
        serde_json::to_string_pretty(&report)?
    } else {
        serde_json::to_string(&report)?
    };
    match &args.output {
        Some(path) => std::fs::write(path, text + "\n")?,
        None => println!("{text}"),
    }
    Ok(report.exit_code())
}

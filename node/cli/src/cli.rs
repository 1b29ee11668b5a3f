//! The `larder` command line: the argument parser, the entry point and the dispatch of
//! each command to the module that runs it.
//!
//! Each command takes only the options it uses ([`crate::options`]): `--endpoint` and
//! `--json` belong to the commands that talk to a cluster, `--log-format` to `serve` and
//! `dev`. Scripts from when `--endpoint` and `--json` were global write them before the
//! command (`larder --endpoint HOST:PORT --json status`); [`Cli::try_parse_args`] still
//! accepts that position, for the commands that take them, and moves them onto the
//! command.

use std::ffi::OsString;

use anyhow::Context;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use larder_client::Client;

use crate::admin::{self, NodeCommand, RaftCommand, StatusArgs};
use crate::bench::{self, BenchArgs};
use crate::dev::{self, DevArgs};
use crate::kv::{self, KvCommand};
use crate::objects::{self, ObjectCommand};
use crate::options::{ClientArgs, ClientCommand, EndpointArg, LogFormat, OutputArg};
use crate::serve::{self, ServeArgs};

#[derive(Parser, Debug)]
#[command(
    name = "larder",
    version,
    about = "Larder: a self-hosted stateful edge store",
    after_help = "Commands that talk to a cluster take --endpoint HOST:PORT (default \
                  127.0.0.1:7070, or LARDER_ENDPOINT) and --json; `serve` and `dev` take \
                  --log-format."
)]
pub struct Cli {
    /// `--endpoint` of the command that follows, in the position older scripts use.
    #[arg(long = "endpoint", value_name = "HOST:PORT", hide = true)]
    leading_endpoint: Option<String>,
    /// `--json` of the command that follows, in the position older scripts use.
    #[arg(long = "json", hide = true)]
    leading_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node.
    Serve(Box<ServeArgs>),
    /// Run a complete local cluster in this process.
    Dev(DevArgs),
    /// Show the cluster: nodes, regions, liveness and the directory's Raft state.
    Status(StatusArgs),
    /// Nodes of the cluster.
    Node(ClientCommand<NodeCommand>),
    /// Membership of the directory's Raft group.
    Raft(ClientCommand<RaftCommand>),
    /// The replicated key-value store.
    Kv(ClientCommand<KvCommand>),
    /// Actor objects: storage calls, listing and inspection.
    Object(ClientCommand<ObjectCommand>),
    /// Load generator: throughput, latency and propagation figures.
    Bench(BenchArgs),
}

impl Cli {
    /// Parses a command line as `larder` does: clap's parse, then `--endpoint` and
    /// `--json` written before the command moved onto it. The error is clap's, to
    /// print and exit with (`--help` and `--version` are errors of that kind too).
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut command = Cli::command();
        let matches = command.try_get_matches_from_mut(args)?;
        let mut cli = Cli::from_arg_matches(&matches).map_err(|err| err.format(&mut command))?;
        cli.move_leading_flags(&matches)
            .map_err(|(kind, message)| command.error(kind, message))?;
        Ok(cli)
    }

    /// Moves `larder --endpoint … --json <command>` onto the command, which must take
    /// them; an `--endpoint` given in both places is refused rather than one ignored.
    fn move_leading_flags(&mut self, matches: &ArgMatches) -> Result<(), (ErrorKind, String)> {
        let (path, leaf) = command_path(matches);
        let (endpoint, output) = self.command.client_options_mut();
        if let Some(value) = self.leading_endpoint.take() {
            let Some(endpoint) = endpoint else {
                return Err((
                    ErrorKind::UnknownArgument,
                    format!("`larder {path}` does not take --endpoint"),
                ));
            };
            if leaf.value_source("endpoint") == Some(ValueSource::CommandLine) {
                return Err((
                    ErrorKind::ArgumentConflict,
                    "--endpoint given both before and after the command".to_string(),
                ));
            }
            endpoint.endpoint = value;
        }
        if std::mem::take(&mut self.leading_json) {
            let Some(output) = output else {
                return Err((
                    ErrorKind::UnknownArgument,
                    format!("`larder {path}` does not take --json"),
                ));
            };
            output.json = true;
        }
        Ok(())
    }
}

impl Command {
    /// The command's `--endpoint` and `--json`, for the commands that take them.
    fn client_options_mut(&mut self) -> (Option<&mut EndpointArg>, Option<&mut OutputArg>) {
        let client = match self {
            Command::Serve(_) | Command::Dev(_) => return (None, None),
            Command::Bench(args) => return (args.command.endpoint_mut(), Some(&mut args.output)),
            Command::Status(args) => &mut args.client,
            Command::Node(group) => &mut group.client,
            Command::Raft(group) => &mut group.client,
            Command::Kv(group) => &mut group.client,
            Command::Object(group) => &mut group.client,
        };
        (Some(&mut client.connect), Some(&mut client.output))
    }
}

/// The names of the subcommands given (`kv get`), and the matches of the last one.
fn command_path(matches: &ArgMatches) -> (String, &ArgMatches) {
    let mut names = Vec::new();
    let mut leaf = matches;
    while let Some((name, sub)) = leaf.subcommand() {
        names.push(name);
        leaf = sub;
    }
    (names.join(" "), leaf)
}

/// Entry point of the binary. Returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let log_format = args.log.log_format;
            let config = (*args).into_config()?;
            init_tracing(log_format, "info,openraft=warn");
            serve::run(config).await
        }
        Command::Dev(args) => {
            // Quiet by default so the endpoint table stays readable; RUST_LOG overrides.
            init_tracing(args.log.log_format, "warn,openraft=error");
            dev::run(args).await
        }
        Command::Status(args) => {
            admin::status(
                &client(&args.client)?,
                args.client.json(),
                args.linearizable,
            )
            .await
        }
        Command::Node(group) => {
            admin::node(&client(&group.client)?, group.client.json(), group.command).await
        }
        Command::Raft(group) => {
            admin::raft(&client(&group.client)?, group.client.json(), group.command).await
        }
        Command::Kv(group) => {
            kv::run(&client(&group.client)?, group.client.json(), group.command).await
        }
        Command::Object(group) => {
            objects::run(&client(&group.client)?, group.client.json(), group.command).await
        }
        Command::Bench(args) => bench::run(args).await,
    }
}

fn client(options: &ClientArgs) -> anyhow::Result<Client> {
    let endpoint = options.endpoint();
    Client::connect_lazy(endpoint).with_context(|| format!("endpoint {endpoint}"))
}

/// The log of `serve` and `dev`: `RUST_LOG` (else `default_filter`) picks the events,
/// repeated warnings are limited (`crate::log_limit`). Needs the runtime (the limit's
/// reports run on it).
fn init_tracing(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let limit = crate::log_limit::RepeatLimit::default();
    let lines = tracing_subscriber::fmt::layer()
        // Colour only for a person at a terminal: a log file or journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let lines = if format == LogFormat::Json {
        lines.json().boxed()
    } else {
        lines.boxed()
    };
    tracing_subscriber::registry()
        .with(lines.with_filter(filter).with_filter(limit.clone()))
        .init();
    limit.spawn_reports();
}

#[cfg(test)]
mod tests;

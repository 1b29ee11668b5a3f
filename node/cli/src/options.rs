//! Options that several commands share. Each command flattens only the ones it uses, so
//! that no command accepts or lists a flag it would ignore:
//!
//! - [`ClientArgs`] (`--endpoint`, `--json`): every command that talks to a cluster;
//!   [`ClientCommand`] puts them on a command group (`larder kv …`), for all its
//!   subcommands;
//! - [`EndpointArg`] and [`OutputArg`] alone: `larder bench`, whose subcommands do not
//!   all connect to one node;
//! - [`LogArgs`] (`--log-format`): `serve` and `dev`, which run nodes in this process.

use clap::{Args, Subcommand, ValueEnum};

/// Default of `--endpoint`: the api listener of a node started with the default
/// `listen.api`.
pub const ENDPOINT_DEFAULT: &str = "127.0.0.1:7070";

/// Where `--endpoint` and `--json` come in a command's help: after its own options.
const CLIENT_OPTIONS_ORDER: usize = 900;

// No doc comments on the `Args` structs below: clap would take them for the help of
// the commands that flatten them.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct EndpointArg {
    /// Api address of the node to send the requests to.
    #[arg(
        long,
        global = true,
        display_order = CLIENT_OPTIONS_ORDER,
        value_name = "HOST:PORT",
        env = "LARDER_ENDPOINT",
        default_value = ENDPOINT_DEFAULT
    )]
    pub endpoint: String,
}

#[derive(Args, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputArg {
    /// Print machine-readable JSON instead of text and tables.
    #[arg(long, global = true, display_order = CLIENT_OPTIONS_ORDER + 1)]
    pub json: bool,
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ClientArgs {
    #[command(flatten)]
    pub connect: EndpointArg,
    #[command(flatten)]
    pub output: OutputArg,
}

impl ClientArgs {
    pub fn endpoint(&self) -> &str {
        &self.connect.endpoint
    }

    pub fn json(&self) -> bool {
        self.output.json
    }
}

/// A group of client commands (`larder kv …`) with the client options, which every
/// subcommand of the group accepts (they are `global` below the group only).
#[derive(Args, Debug)]
pub struct ClientCommand<C: Subcommand> {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: C,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
// Plain comments on the values: doc comments would turn `larder serve --help` into the
// long form, a paragraph per flag.
pub enum LogFormat {
    // One line of text per event, coloured at a terminal.
    #[default]
    Text,
    // One JSON object per event, for a log collector.
    Json,
}

#[derive(Args, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogArgs {
    /// Format of the log on standard error, one event per line (text is coloured at a
    /// terminal); RUST_LOG sets which events are logged.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

//! The `larder` command line: one binary for operators, workers' developers and benches.
//! It is a library as well so that the integration tests can build the same entry point
//! into their own binary (`larder-under-test`); `main.rs` only calls [`main`].
//!
//! Everything a command does to a cluster goes through `larder-client`; `larder-node`
//! is used only to run nodes in this process (`serve`, `dev`). Being the program's
//! `main`, the crate reports errors with `anyhow`, each with the command's context.
//!
//! Layout:
//! - [`cli`]: the argument parser, the entry point and the dispatch of every command;
//! - [`options`]: the options several commands share (`--endpoint`, `--json`,
//!   `--log-format`), each on the commands that use it;
//! - [`serve`]: `larder serve`, one node from a config file and flags, until a signal;
//! - [`dev`]: `larder dev`, a whole cluster in one process; [`log_limit`]: their log's
//!   limit on repeated warnings;
//! - [`admin`]: `larder status`, `larder node …` and `larder raft …`;
//! - [`kv`]: `larder kv …`, values and namespaces;
//! - [`objects`]: `larder object …`, storage calls, placement, alarms and events;
//! - [`bench`](mod@bench): `larder bench …`, the load generator (KV, propagation,
//!   objects, and etcd as a reference).

pub mod admin;
pub mod bench;
pub mod cli;
pub mod dev;
pub mod kv;
pub mod log_limit;
pub mod objects;
pub mod options;
pub mod serve;

pub use cli::main;

//! The `larder` command line: one binary for operators, workers' developers and benches.
//!
//! Layout:
//! - [`cli`]: the argument parser, the entry point ([`main`]) and the dispatch of
//!   `serve`, `dev` and the operator commands (`status`, `node`, `raft`);
//! - [`kv`]: `larder kv …`, KV reads, writes, listing, watch and namespaces;
//! - [`objects`]: `larder object …`, object storage calls, alarms, events and inspection;
//! - [`dev`]: `larder dev`, a whole cluster in one process;
//! - [`bench`]: `larder bench …`, the load generator, with [`bench_etcd`] its etcd
//!   reference.

pub mod bench;
pub mod bench_etcd;
pub mod cli;
pub mod dev;
pub mod kv;
pub mod objects;

pub use cli::main;

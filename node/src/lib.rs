//! The `larder` node: the composition root that wires the crates into a process.
//!
//! Layout:
//! - [`config`]: the TOML configuration, CLI overrides and validation;
//! - [`server`]: one node's listeners (api, peer, metrics), start and ordered shutdown;
//! - [`cluster_view`]: the KV's view of the cluster, kept in step with the directory;
//! - [`grpc`]: the api services and the one mapping of errors to gRPC statuses;
//! - [`metrics`]: the Prometheus endpoint;
//! - [`dev`]: `larder dev`, a whole cluster in one process;
//! - [`cli`]: the command line; [`bench`]: the load generator, with [`bench_etcd`] its
//!   etcd reference.

pub mod bench;
pub mod bench_etcd;
pub mod cli;
pub mod cli_kv;
pub mod cli_objects;
pub mod cluster_view;
pub mod config;
pub mod dev;
pub mod grpc;
pub mod metrics;
pub mod server;

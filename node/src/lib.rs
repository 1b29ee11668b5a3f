//! The Larder node as a library: the composition root that wires the crates into a
//! running server. The `larder` binary (`larder-cli`, in `node/cli`) starts it for
//! `serve` and `dev`; nothing else here knows about the command line.
//!
//! Layout:
//! - [`config`]: the TOML configuration and its validation;
//! - [`server`]: one node: start in dependency order, fail-stop on a storage failure,
//!   ordered shutdown;
//! - `listeners`: the api, peer and metrics listeners and the services each serves;
//! - [`cluster_view`]: the KV's view of the cluster, kept in step with the directory;
//! - [`grpc`]: the admin service, the pure checks of admin requests and the one mapping
//!   of errors to gRPC statuses;
//! - [`metrics`]: the Prometheus endpoint.

pub mod cluster_view;
pub mod config;
pub mod grpc;
pub mod health;
mod listeners;
pub mod metrics;
pub mod probe;
pub mod removal;
pub mod server;

//! Test harness shared by the integration tests: real `larder` processes on free loopback
//! ports, each with its own data directory and log file, killed when the harness is
//! dropped.
//!
//! Layout:
//! - [`TestCluster`]: start voters, add joiners, find the leader, wait for conditions;
//! - [`TestNode`]: one process (start, `kill -9`, SIGTERM, restart on the same data);
//! - [`wait_for`]: poll a condition until it holds or a deadline passes — no fixed sleeps;
//! - [`partition`]: nft rules between test hosts (cuts, one-way cuts, packet loss), each
//!   cluster on a block of loopback addresses of its own;
//! - [`cli`]: the `larder` command line against a test node;
//! - [`nemesis`]: the nemesis's faults, chosen by name and timed by a seeded RNG
//!   ([`rng`], which the simulations and workloads draw from too);
//! - [`members`]: its membership changes (demote, replace, rejoin) and client routes;
//! - [`kv_calls`]: KV puts, deletes and session reads recorded as a history;
//! - [`sim_net`], [`sim_faults`]: what the simulation tiers share (turmoil network,
//!   seeds, digests; crashes and cut links);
//! - [`syscall_trace`]: a node's writes and syncs under `strace`.

// Each test file uses its own subset of the harness.
#![allow(dead_code)]

pub mod cli;
mod cluster;
pub mod faketime;
pub mod kv_calls;
pub mod kv_dump;
pub mod members;
pub mod nemesis;
mod node;
pub mod objects_workload;
pub mod partition;
pub mod rng;
pub mod sim_faults;
pub mod sim_net;
pub mod syscall_trace;

pub use cluster::TestCluster;
pub use node::TestNode;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::bail;

/// A number from the environment (`None` when unset; a panic naming it when malformed).
pub fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// An override: `("kv.tombstone_grace_ms", "2000")`.
pub type Setting = (&'static str, &'static str);

/// Ports for test nodes, free when chosen and below the kernel's ephemeral range, so that
/// no outgoing connection (of this test or a neighbour) can take one as its source port
/// between the choice and the node's bind, nor while the node is down for a restart.
/// Ports handed out by this process are never handed out again in it.
pub fn free_ports(count: usize) -> Vec<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let (low, high) = unclaimed_range();
    let mut handed_out = HANDED_OUT.lock().expect("port registry");
    // Start somewhere that depends on the process, so concurrent test binaries spread out.
    let span = u32::from(high - low);
    let mut next = low + (std::process::id().wrapping_mul(7919) % span) as u16;
    let mut ports = Vec::with_capacity(count);
    for _ in 0..span {
        if ports.len() == count {
            break;
        }
        let port = next;
        next = if next + 1 >= high { low } else { next + 1 };
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), count, "free ports in {low}..{high}");
    ports
}

/// `[low, high)`: ports no kernel autobind uses — from 20000 up to the start of
/// `ip_local_port_range` (32768 by default).
fn unclaimed_range() -> (u16, u16) {
    const LOW: u16 = 20_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    assert!(
        ephemeral_start > LOW + 1_000,
        "ip_local_port_range starts at {ephemeral_start}: test ports need 1000 below it, from {LOW}"
    );
    (LOW, ephemeral_start)
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node binary under test.
pub fn larder_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_larder-under-test"))
}

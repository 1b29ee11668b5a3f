//! What the simulation tiers (`sim.rs`: directory and objects; `sim_kv.rs`: KV) share:
//! nodes serving tonic on turmoil's network and dialling through it, the history digest
//! that shows a seed replayed, and one process per seed.
//!
//! One process per seed: tokio numbers tasks with a process-wide counter, and the order
//! a crashed host's tasks are dropped in follows those numbers, so two simulations sharing
//! a process (or one following another) would not replay each other.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use larder_directory::{PeerChannels, PeerConnector, PeerIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::Channel;

use super::env_number;

/// Every peer and client connection dials through the simulated network.
pub fn connector() -> PeerConnector {
    Arc::new(|addr: String| {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as Box<dyn PeerIo>)
        })
    })
}

/// Peer channels of one simulated node (one cached channel per address).
pub fn peer_channels() -> PeerChannels {
    PeerChannels::new(Duration::from_secs(1), None).with_connector(Some(connector()))
}

/// A channel to a simulated address (a client's own, not a node's shared ones).
pub fn channel_to(addr: &str) -> Channel {
    peer_channels()
        .channel(addr)
        .expect("simulated peer address")
}

/// A simulated TCP connection as tonic's server takes it.
pub struct Accepted(turmoil::net::TcpStream);

impl tonic::transport::server::Connected for Accepted {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl AsyncRead for Accepted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The connections a simulated host accepts on `port`, for `serve_with_incoming`.
pub async fn incoming(
    port: u16,
) -> std::io::Result<impl Stream<Item = Result<Accepted, std::io::Error>>> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    Ok(futures::stream::unfold(listener, |listener| async move {
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                return Some((Ok::<_, std::io::Error>(Accepted(stream)), listener));
            }
        }
    }))
}

/// FNV-1a of a history: equal for two runs of one seed when the run is deterministic.
pub fn digest(events: &[larder_checker::Event]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for event in events {
        for byte in serde_json::to_vec(event)
            .expect("event")
            .iter()
            .chain(b"\n")
        {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Set in the process that runs one seed.
pub const CHILD_ENV: &str = "LARDER_SIM_CHILD";
/// The line a seed's process ends with when every checker passed.
pub const RESULT_PREFIX: &str = "sim-result";

/// Whether this process was started by [`run_in_child`] to run one seed.
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// In a seed's process (see [`run_in_child`]): its seed and the workload's length
/// (`SIM_SECS`, default `default_secs`), with the nodes' logs set up; None elsewhere.
pub fn child_seed(default_secs: u64) -> Option<(u64, Duration)> {
    if !is_child() {
        return None;
    }
    let seed = env_number("SIM_SEED").expect("SIM_SEED");
    init_log();
    Some((
        seed,
        Duration::from_secs(env_number("SIM_SECS").unwrap_or(default_secs)),
    ))
}

/// What a seed's process prints when every checker passed: its summary and faults, then
/// the result line (with the history's digest) the parent reads.
pub fn report_pass(
    seed: u64,
    started: std::time::Instant,
    summary: &str,
    faults: &[String],
    digest: u64,
) {
    println!(
        "seed {seed} passed in {:.1} s: {summary}\nfaults:\n{}",
        started.elapsed().as_secs_f64(),
        faults.join("\n")
    );
    println!("{RESULT_PREFIX} {digest:016x} {} faults", faults.len());
}

/// What one seed's process reported.
pub struct ChildOutcome {
    pub digest: String,
    pub output: String,
}

impl ChildOutcome {
    /// The child's `seed <seed> passed …` line.
    pub fn summary(&self, seed: u64) -> String {
        let passed = format!("seed {seed} passed");
        self.output
            .lines()
            .find_map(|line| line.find(&passed).map(|at| line[at..].to_string()))
            .unwrap_or_default()
    }
}

/// A seed is a reproduction: runs `seed` (or `SIM_SEED`) twice through the ignored test
/// `test`, each in a fresh process, and asserts the same history digest.
pub fn assert_seed_replays(test: &str, default_seed: u64, run_for: Duration) {
    let seed = env_number("SIM_SEED").unwrap_or(default_seed);
    let first = run_in_child(test, seed, run_for);
    let second = run_in_child(test, seed, run_for);
    assert_eq!(
        first.digest, second.digest,
        "seed {seed} gave two different histories: something in the nodes draws on \
         randomness or time the simulation does not control"
    );
}

/// Runs one seed in a fresh process of this test binary: its ignored test `test`, with
/// `SIM_SEED` and `SIM_SECS` set (see the module doc for why a process per seed).
/// Panics, with the seed and the child's output, unless the child reports a result.
pub fn run_in_child(test: &str, seed: u64, run_for: Duration) -> ChildOutcome {
    let exe = std::env::current_exe().expect("test binary");
    let child = std::process::Command::new(exe)
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("SIM_SEED", seed.to_string())
        .env("SIM_SECS", run_for.as_secs().to_string())
        .output()
        .expect("run the seed's process");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    let digest = output
        .lines()
        .find_map(|line| line.strip_prefix(RESULT_PREFIX))
        .map(|rest| rest.trim().to_string());
    match digest {
        Some(digest) if child.status.success() => ChildOutcome { digest, output },
        _ => panic!("seed {seed} failed (SIM_SEED={seed} replays it):\n{output}"),
    }
}

/// The seeds to run: `SIM_SEED` alone, else `SIM_SEEDS` (default `default_count`) drawn
/// from the time.
pub fn seeds(default_count: u64) -> Vec<u64> {
    if let Some(seed) = env_number("SIM_SEED") {
        return vec![seed];
    }
    let first = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut rng = super::rng::Rng::new(first);
    (0..env_number("SIM_SEEDS").unwrap_or(default_count))
        .map(|_| rng.next_u64())
        .collect()
}

/// `SIM_LOG=info,openraft=warn`: the nodes' logs of a replayed seed on stderr, each line
/// stamped with simulated time and the host (turmoil's span) it came from.
fn init_log() {
    if let Ok(filter) = std::env::var("SIM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_timer(SimTime)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
    }
}

/// Log lines stamped with the simulation's clock.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let at = turmoil::sim_elapsed().unwrap_or_default();
        write!(w, "{:>9.4}s", at.as_secs_f64())
    }
}

/// A simulated host's wall clock: turmoil's simulated time since the Unix epoch, so that
/// what a node stamps (alarm due times, published events) replays with the seed.
#[derive(Debug)]
pub struct SimWallClock;

impl larder_base::Clock for SimWallClock {
    fn now_ms(&self) -> u64 {
        turmoil::since_epoch()
            .expect("read on a simulated host")
            .as_millis() as u64
    }
}

//! [`TestNode`]: one `larder serve` process on its own ports, data directory and log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use larder_client::Client;
use larder_client::admin::StatusResponse;

use super::{Setting, larder_bin, wait_for};

/// Settings for tests (fast elections, liveness and anti-entropy on loopback), as
/// (section, key, value); overrides replace or add entries.
const TEST_SETTINGS: &[(&str, &str, &str)] = &[
    ("directory", "heartbeat_interval_ms", "100"),
    ("directory", "election_timeout_min_ms", "500"),
    ("directory", "election_timeout_max_ms", "1000"),
    ("directory", "node_down_after_ms", "1500"),
    ("directory", "liveness_check_interval_ms", "200"),
    ("directory", "peer_rpc_timeout_ms", "2000"),
    ("kv", "anti_entropy_interval_ms", "300"),
    ("kv", "collect_interval_ms", "500"),
    ("kv", "tombstone_grace_ms", "60000"),
    ("kv", "read_your_writes_wait_ms", "1000"),
    ("limits", "shutdown_grace_ms", "5000"),
    ("objects", "lease_ms", "300"),
];

fn test_config(overrides: &[Setting]) -> String {
    let mut sections: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, String>,
    > = Default::default();
    for (section, key, value) in TEST_SETTINGS {
        sections
            .entry(section.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }
    for (path, value) in overrides {
        let (section, key) = path.split_once('.').expect("override is section.key");
        sections
            .entry(section.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }
    let mut out = String::new();
    for (section, keys) in sections {
        out.push_str(&format!("[{section}]\n"));
        for (key, value) in keys {
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    out
}

/// One `larder serve` process.
pub struct TestNode {
    pub id: u64,
    pub region: String,
    pub api: String,
    pub peer: String,
    pub metrics: String,
    pub data_dir: PathBuf,
    args: Vec<String>,
    /// Extra environment of the process (from the next start on).
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub(super) starts: u32,
}

impl TestNode {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        id: u64,
        host: &str,
        region: &str,
        root: &Path,
        ports: &[u16],
        voters: &[String],
        join: Option<&str>,
        overrides: &[Setting],
    ) -> TestNode {
        let api = format!("{host}:{}", ports[0]);
        let peer = format!("{host}:{}", ports[1]);
        let metrics = format!("{host}:{}", ports[2]);
        let data_dir = root.join(format!("node-{id}"));
        std::fs::create_dir_all(&data_dir).expect("create node dir");
        let config = data_dir.join("larder.toml");
        // Extra `[directory]` settings go right after that section's header.
        let text = test_config(overrides);
        std::fs::write(&config, text).expect("write config");
        let mut args = vec![
            "serve".to_string(),
            "--config".into(),
            config.display().to_string(),
            "--node-id".into(),
            id.to_string(),
            "--region".into(),
            region.to_string(),
            // Jurisdiction from the region's first part, as `larder dev` does.
            "--jurisdiction".into(),
            region.split('-').next().unwrap_or(region).to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--api-listen".into(),
            api.clone(),
            "--peer-listen".into(),
            peer.clone(),
            "--metrics-listen".into(),
            metrics.clone(),
        ];
        for voter in voters {
            args.push("--initial-voter".into());
            args.push(voter.clone());
        }
        if let Some(join) = join {
            args.push("--join".into());
            args.push(join.to_string());
        }
        TestNode {
            id,
            region: region.to_string(),
            api,
            peer,
            metrics,
            data_dir,
            args,
            env: Vec::new(),
            child: None,
            starts: 0,
        }
    }

    /// Joins through `seed` (a peer address) from its next start on, as an operator
    /// restarts a node that was removed from the cluster.
    pub fn set_join(&mut self, seed: &str) {
        if let Some(at) = self.args.iter().position(|a| a == "--join") {
            self.args.drain(at..at + 2);
        }
        self.args.push("--join".into());
        self.args.push(seed.to_string());
    }

    /// Sets an environment variable of the process from its next start on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Starts the process (again, on the same data and ports after a stop).
    pub fn start(&mut self) -> anyhow::Result<()> {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        self.starts += 1;
        let log_path = self.data_dir.join(format!("node.{}.log", self.starts));
        let log = std::fs::File::create(&log_path).context("create log")?;
        let child = Command::new(larder_bin())
            .args(&self.args)
            // LARDER_TEST_LOG overrides the filter, e.g. to see debug lines of one crate.
            .env(
                "RUST_LOG",
                std::env::var("LARDER_TEST_LOG").unwrap_or_else(|_| "info,openraft=info".into()),
            )
            // Inert until `fail_flushes` creates the file.
            .env("LARDER_FAILPOINT_FLUSH", self.flush_failpoint())
            // Inert until `stall_writes` creates the file.
            .env("LARDER_FAILPOINT_STALL_WRITES", self.stall_failpoint())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn node {}", self.id))?;
        self.child = Some(child);
        Ok(())
    }

    fn flush_failpoint(&self) -> PathBuf {
        self.data_dir.join("fail-flushes")
    }

    /// From now on every flush of this node's store fails as if the disk returned EIO
    /// (until [`TestNode::heal_flushes`]).
    pub fn fail_flushes(&self) {
        std::fs::write(self.flush_failpoint(), b"").expect("arm the flush failpoint");
    }

    pub fn heal_flushes(&self) {
        let _ = std::fs::remove_file(self.flush_failpoint());
    }

    fn stall_failpoint(&self) -> PathBuf {
        self.data_dir.join("stall-writes")
    }

    /// From now on writes to this node's object copies wait before they apply (until
    /// [`TestNode::unstall_writes`]): a copy that falls behind its replicas.
    pub fn stall_writes(&self) {
        std::fs::write(self.stall_failpoint(), b"").expect("arm the stall failpoint");
    }

    pub fn unstall_writes(&self) {
        let _ = std::fs::remove_file(self.stall_failpoint());
    }

    /// The exit code once the process has exited by itself (it is then reaped).
    pub fn exited(&mut self) -> Option<Option<i32>> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status.code())
    }

    /// `kill -9`: no shutdown path runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited cleanly.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<bool> {
        let Some(mut child) = self.child.take() else {
            bail!("node {} is not running", self.id);
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).context("pid")?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .with_context(|| format!("SIGTERM to node {}", self.id))?;
        let exited = wait_for("the node to exit", timeout, || {
            let exited = child.try_wait().ok().flatten();
            async move { exited }
        })
        .await;
        match exited {
            Ok(status) => Ok(status.success()),
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(err)
            }
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|child| child.id())
    }

    /// SIGSTOP: the process stays alive but answers nothing, as if cut off.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGSTOP)
    }

    /// SIGCONT after [`TestNode::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGCONT)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("node is not running")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).context("pid")?);
        nix::sys::signal::kill(pid, signal).with_context(|| format!("{signal} to node {}", self.id))
    }

    /// The process as the kernel sees it, for failure messages: `R`/`S` running or
    /// waiting, `T` stopped, `Z` exited but not reaped (it died), `D` in an
    /// uninterruptible wait; or why that cannot be told.
    pub fn process_state(&self) -> String {
        let Some(child) = self.child.as_ref() else {
            return "not started".into();
        };
        let pid = child.id();
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // "pid (comm) state ...": the state follows the last ')'.
            Ok(stat) => match stat.rsplit_once(')') {
                Some((_, rest)) => format!(
                    "pid {pid} state {}",
                    rest.trim_start().chars().next().unwrap_or('?')
                ),
                None => format!("pid {pid} stat unreadable"),
            },
            Err(err) => format!("pid {pid} gone ({err})"),
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn client(&self) -> Client {
        let config = larder_client::ClientConfig {
            request_timeout: Duration::from_secs(3),
            attempts_max: 1,
            ..Default::default()
        };
        Client::new(&self.api, config).expect("valid endpoint")
    }

    pub async fn status(&self) -> Option<StatusResponse> {
        self.client().status(false).await.ok()
    }

    /// Writes this node's object copies applied (`objects_copy_writes`; 0 while the
    /// metrics endpoint does not answer): a replica taking a round shows here.
    pub fn copy_writes(&self) -> u64 {
        self.metric("objects_copy_writes").unwrap_or(0)
    }

    /// `GET path` on the node's metrics listener: the whole response, status line
    /// included (None if it does not answer).
    pub fn http_get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.metrics).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    }

    /// A counter or gauge from the node's Prometheus endpoint (`larder_` prefix omitted).
    pub fn metric(&self, name: &str) -> Option<u64> {
        let body = self.http_get("/metrics")?;
        let wanted = format!("larder_{name}");
        body.lines().find_map(|line| {
            let (metric, value) = line.split_once(' ')?;
            (metric == wanted || metric == format!("{wanted}_total"))
                .then(|| value.trim().parse().ok())
                .flatten()
        })
    }

    /// The last lines of this node's newest log, for failure messages.
    /// The last line of this run's log that reports an error or a panic.
    pub fn last_error(&self) -> Option<String> {
        let path = self.data_dir.join(format!("node.{}.log", self.starts));
        let text = std::fs::read_to_string(path).ok()?;
        text.lines()
            .rev()
            .find(|l| l.contains("ERROR") || l.contains("panicked") || l.starts_with("Error"))
            .map(str::to_string)
    }

    pub fn log_tail(&self) -> String {
        let path = self.data_dir.join(format!("node.{}.log", self.starts));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

//! A node's disk syscalls under `strace` (Debian's, installed by scripts/test), for the
//! durability proof: which file each write and sync went to, and when each began and
//! ended by the wall clock the client's timestamps use.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// Syscalls traced: every way the node writes a file or makes it durable.
const TRACED: &str =
    "trace=write,pwrite64,writev,pwritev,pwritev2,fdatasync,fsync,sync_file_range,syncfs";

/// Wall-clock seconds, as `strace -ttt` prints them.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs_f64()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Syscall {
    pub name: String,
    pub fd: i32,
    /// When the thread entered the call, and entered plus the time spent in it (the
    /// thread stays stopped until strace has logged the exit, so nothing the call
    /// enabled happened before `end`).
    pub start: f64,
    pub end: f64,
    pub ok: bool,
}

impl Syscall {
    pub fn is_write(&self) -> bool {
        matches!(
            self.name.as_str(),
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2"
        )
    }

    /// A sync that reaches the drive: `fdatasync` or `fsync`, never `sync_file_range`.
    pub fn is_full_sync(&self) -> bool {
        matches!(self.name.as_str(), "fdatasync" | "fsync")
    }
}

/// `strace` attached to every thread of one process.
pub struct Tracer {
    child: Child,
    out: PathBuf,
    pid: u32,
}

impl Tracer {
    /// Attaches to `pid` (and the threads it starts later); returns once attached.
    pub fn attach(pid: u32, out: &Path) -> anyhow::Result<Tracer> {
        let mut child = Command::new("strace")
            .args(["-f", "-ttt", "-T", "-s", "0", "-e", TRACED, "-o"])
            .arg(out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn strace (apt-get install strace; scripts/test installs it)")?;
        let stderr = child.stderr.take().context("strace stderr")?;
        let (attached_tx, attached) = std::sync::mpsc::channel();
        // Reads strace's stderr to its end: strace says more (a thread the node starts
        // later is "attached" too), and a closed pipe would kill it with SIGPIPE,
        // losing the tail of its trace.
        std::thread::spawn(move || {
            let mut said = Vec::new();
            let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
            for line in lines.by_ref() {
                if line.contains("attached") {
                    let _ = attached_tx.send(Ok(()));
                    lines.for_each(drop);
                    return;
                }
                said.push(line);
            }
            let _ = attached_tx.send(Err(said.join("\n")));
        });
        match attached.recv_timeout(ATTACH_TIMEOUT) {
            Ok(Ok(())) => Ok(Tracer {
                child,
                out: out.to_path_buf(),
                pid,
            }),
            Ok(Err(said)) => bail!("strace did not attach to {pid}: {said}"),
            Err(_) => {
                let _ = child.kill();
                bail!("strace did not attach to {pid} within {ATTACH_TIMEOUT:?}")
            }
        }
    }

    /// The files the traced process has open now, by descriptor.
    pub fn open_files(&self) -> anyhow::Result<HashMap<i32, PathBuf>> {
        let mut files = HashMap::new();
        for entry in std::fs::read_dir(format!("/proc/{}/fd", self.pid))? {
            let entry = entry?;
            let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Ok(path) = std::fs::read_link(entry.path()) {
                files.insert(fd, path);
            }
        }
        Ok(files)
    }

    /// Detaches (the process runs on untraced) and returns the calls traced.
    pub fn detach(mut self) -> anyhow::Result<Vec<Syscall>> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
        self.child.wait()?;
        parse(&std::fs::read_to_string(&self.out)?)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `strace -f -ttt -T` output: `TID SECONDS name(fd, ...) = RET <DURATION>`, or a
/// call split into `name(fd, ... <unfinished ...>` and `<... name resumed>...) = RET
/// <DURATION>`.
pub fn parse(text: &str) -> anyhow::Result<Vec<Syscall>> {
    let mut calls = Vec::new();
    let mut unfinished: HashMap<&str, (String, i32, f64)> = HashMap::new();
    for line in text.lines() {
        // strace pads the thread id: `6726  1796692609.327982 write(...`.
        let Some((tid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some((at, rest)) = rest.trim_start().split_once(' ') else {
            continue;
        };
        let Ok(at) = at.parse::<f64>() else { continue };
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let name = resumed.split(' ').next().unwrap_or_default();
            let Some((started_name, fd, start)) = unfinished.remove(tid) else {
                continue; // began before the trace did
            };
            if started_name != name {
                bail!("thread {tid} resumed {name} but began {started_name}: {line}");
            }
            calls.push(Syscall {
                name: started_name,
                fd,
                start,
                end: duration(rest).map_or(at, |d| start + d),
                ok: succeeded(rest),
            });
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else {
            continue; // signals, exits
        };
        let fd = args
            .split([',', ')', ' '])
            .next()
            .and_then(|fd| fd.parse().ok())
            .unwrap_or(-1);
        if rest.ends_with("<unfinished ...>") {
            unfinished.insert(tid, (name.to_string(), fd, at));
        } else {
            calls.push(Syscall {
                name: name.to_string(),
                fd,
                start: at,
                end: duration(rest).map_or(at, |d| at + d),
                ok: succeeded(rest),
            });
        }
    }
    Ok(calls)
}

fn succeeded(line: &str) -> bool {
    line.rsplit_once("= ")
        .is_some_and(|(_, ret)| !ret.trim_start().starts_with('-'))
}

/// The time spent in the call, which `-T` appends: `= 0 <0.000276>`.
fn duration(line: &str) -> Option<f64> {
    let (_, last) = line.trim_end().rsplit_once(" <")?;
    last.strip_suffix('>')?.parse().ok()
}

/// Whether, within (`after`, `before`), one of `fds` was written and then fully synced
/// (the sync began after the write ended, and ended before `before`).
pub fn written_then_synced(calls: &[Syscall], fds: &[i32], after: f64, before: f64) -> bool {
    fds.iter().any(|fd| {
        let writes = calls
            .iter()
            .filter(|c| c.fd == *fd && c.is_write() && c.ok && c.start >= after);
        writes.into_iter().any(|write| {
            calls.iter().any(|sync| {
                sync.fd == *fd
                    && sync.is_full_sync()
                    && sync.ok
                    && sync.start >= write.end
                    && sync.end <= before
            })
        })
    })
}

//! The failover's story from the nodes' logs (elections, liveness changes, reassignment,
//! each line with its time after the kill), printed for rounds slower than the target;
//! and the logs themselves, kept when a round fails.

use std::path::PathBuf;

use crate::support::TestCluster;

/// Where a node's newest log ended before the kill: (node, log file, length).
pub type LogMark = (u64, PathBuf, u64);

/// Where each node's newest log ends now.
pub fn log_marks(cluster: &TestCluster) -> Vec<LogMark> {
    cluster
        .nodes
        .iter()
        .filter_map(|node| {
            let newest = std::fs::read_dir(&node.data_dir)
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())?;
            let len = std::fs::metadata(&newest).ok()?.len();
            Some((node.id, newest, len))
        })
        .collect()
}

/// Log lines written since `marks` that tell the failover's story (liveness, elections,
/// reassignment, activation), in time order, each with its node and its ms after the kill
/// (log timestamps are wall-clock UTC, as is the kill's).
pub fn failover_story(marks: &[LogMark], killed_at_ms: u64) -> Vec<String> {
    const MARKERS: &[&str] = &[
        "election timeout expired",
        "becomes leader",
        "node liveness changed",
        "object failed over",
        "activation",
    ];
    let day_ms = |h: u64, m: u64, s: f64| (h * 3_600_000 + m * 60_000) as f64 + s * 1000.0;
    let kill_of_day = (killed_at_ms % 86_400_000) as f64;
    let mut lines = Vec::new();
    for (id, path, from) in marks {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes[(*from as usize).min(bytes.len())..]);
        for line in text.lines() {
            // Without ANSI colours: `2026-11-27T15:17:49.913642Z  INFO target: message`.
            let plain = strip_ansi(line);
            if !MARKERS.iter().any(|m| plain.contains(m)) {
                continue;
            }
            let at = plain.get(11..26).and_then(|t| {
                let h = t.get(0..2)?.parse().ok()?;
                let m = t.get(3..5)?.parse().ok()?;
                let s: f64 = t.get(6..)?.parse().ok()?;
                Some(day_ms(h, m, s) - kill_of_day)
            });
            let rest: String = plain
                .get(28..)
                .unwrap_or(&plain)
                .chars()
                .take(200)
                .collect();
            let shown = at.map_or("?".to_string(), |ms| format!("{ms:+.0} ms"));
            lines.push((at, format!("  node {id} {shown:>9}  {rest}")));
        }
    }
    lines.sort_by(|a, b| a.0.unwrap_or(f64::MAX).total_cmp(&b.0.unwrap_or(f64::MAX)));
    lines.into_iter().map(|(_, line)| line).collect()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the end of the escape sequence (a letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Copies every node's logs out of the cluster's temporary directory (removed when the
/// run ends) into Cargo's bench scratch directory; returns where, or why not.
pub fn keep_logs(cluster: &TestCluster, round: usize) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("failover-{}-round-{round}", std::process::id()));
    let copy = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        for node in &cluster.nodes {
            for entry in std::fs::read_dir(&node.data_dir)? {
                let path = entry?.path();
                if let Some(name) = path.file_name().and_then(|n| n.to_str())
                    && name.ends_with(".log")
                {
                    std::fs::copy(&path, dir.join(format!("node-{}-{name}", node.id)))?;
                }
            }
        }
        Ok(())
    };
    match copy() {
        Ok(()) => dir.display().to_string(),
        Err(err) => format!("not kept ({err})"),
    }
}

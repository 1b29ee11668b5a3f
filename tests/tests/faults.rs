//! Storage faults on real processes: a node whose flush fails stops (fail-stop) while the
//! cluster serves on; a node whose disk fills up refuses writes quickly, keeps serving
//! reads, and takes writes again once space is freed, without a restart; and, from
//! syscall traces, every acknowledged write waited for an `fdatasync` of its log.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use larder_client::ClientError;
use larder_client::kv::KvNamespace;
use larder_client::objects::ObjectHandle;
use support::syscall_trace::{self, Syscall, Tracer};
use support::{TestCluster, wait_for};
use tokio::task::JoinHandle;

const STEP: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_flush_fails_stops_and_the_cluster_serves_on() {
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    cluster.create_namespace("ff").await.expect("namespace");
    let at_three = cluster.node(3).client().kv("ff");
    at_three.put("before", "1").send().await.expect("put");

    cluster.node(3).fail_flushes();
    let err = at_three
        .put("during", "x")
        .send()
        .await
        .expect_err("a write whose flush failed is not acknowledged");
    assert!(!matches!(err, ClientError::InvalidArgument(_)), "{err}");
    let code = wait_for("node 3 to stop by itself", STEP, || {
        let code = cluster.node_mut(3).exited();
        async move { code }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.node(3).log_tail()));
    assert_eq!(code, Some(74), "exit code EX_IOERR");
    assert!(
        cluster.node(3).log_tail().contains("storage failed"),
        "{}",
        cluster.node(3).log_tail()
    );

    // The others go on taking writes.
    let at_one = cluster.node(1).client().kv("ff");
    at_one
        .put("after", "2")
        .send()
        .await
        .expect("put at node 1");
    // Back with a healthy disk, node 3 reopens its store and catches up.
    cluster.node(3).heal_flushes();
    cluster.node_mut(3).start().expect("restart");
    wait_for("node 3 to have the later write", STEP, || async {
        let value = cluster
            .node(3)
            .client()
            .kv("ff")
            .get("after")
            .await
            .ok()??;
        (value == b"2").then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.node(3).log_tail()));
    let before = at_three.get("before").await.expect("get").expect("kept");
    assert_eq!(before, b"1");
}

/// A tmpfs mounted for one test, lazily unmounted when dropped (also on failure).
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size_mb: u64) -> Mount {
        std::fs::create_dir_all(at).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (the disk-full test simulates a small disk)"
        );
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

fn is_exhausted<T: std::fmt::Debug>(result: &Result<T, ClientError>) -> bool {
    matches!(result, Err(ClientError::ResourceExhausted(m)) if m.contains("limits.disk_free_min_bytes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_quickly_keeps_reads_and_recovers_without_a_restart() {
    let reserve: u64 = 16 * 1024 * 1024;
    let mut cluster = TestCluster::start_with(3, &[("limits.disk_free_min_bytes", "16777216")])
        .await
        .expect("cluster");
    cluster.create_namespace("full").await.expect("namespace");
    // Node 2 is alone in us-east: it owns objects first used there, with no other copy.
    let counter = cluster.node(2).client().objects("full").by_name("c");
    assert_eq!(counter.add("n", 1).await.expect("add"), 1);
    let kv2 = cluster.node(2).client().kv("full");
    kv2.put("k", "v1").send().await.expect("put");

    // Move node 2's store onto a 64 MiB filesystem.
    assert!(
        cluster
            .node_mut(2)
            .terminate(STEP)
            .await
            .expect("terminate")
    );
    let store = cluster.node(2).data_dir.join("store");
    let old = cluster.node(2).data_dir.join("store.before");
    std::fs::rename(&store, &old).expect("move the store aside");
    let _mount = Mount::tmpfs(&store, 64);
    copy_dir(&old, &store);
    cluster
        .node_mut(2)
        .start()
        .expect("restart on the small disk");
    wait_for("node 2 serving again", STEP, || async {
        kv2.get("k").await.ok().flatten()
    })
    .await
    .expect("node 2 back");

    // Leave less than the reserve free.
    let free = nix::sys::statvfs::statvfs(&store).expect("statvfs");
    let free_bytes = free.blocks_available() * free.fragment_size();
    let filler = store.join("filler");
    let fill = free_bytes.saturating_sub(reserve / 2);
    let status = Command::new("fallocate")
        .args(["-l", &fill.to_string()])
        .arg(&filler)
        .status()
        .expect("fallocate");
    assert!(status.success(), "fill the disk");

    // Writes are refused at once, naming the limit; reads go on.
    let started = Instant::now();
    let refused = wait_for("a write refused for lack of space", STEP, || async {
        let result = kv2.put("k", "v2").send().await;
        is_exhausted(&result).then_some(())
    })
    .await;
    refused.unwrap_or_else(|e| panic!("{e}\n{}", cluster.node(2).log_tail()));
    let t = Instant::now();
    assert!(is_exhausted(&counter.add("n", 1).await));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "refusing took {:?}",
        t.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(kv2.get("k").await.expect("get").expect("value"), b"v1");
    assert_eq!(counter.get("n").await.expect("read"), Some(b"1".to_vec()));
    // A write elsewhere cannot land on node 2 yet.
    let kv1 = cluster.node(1).client().kv("full");
    kv1.put("elsewhere", "x")
        .send()
        .await
        .expect("put at node 1");

    // Space back: writes resume without a restart, and nothing was lost.
    std::fs::remove_file(&filler).expect("free the disk");
    let value = wait_for("writes accepted again", STEP, || async {
        counter.add("n", 1).await.ok()
    })
    .await
    .expect("writes resume");
    assert_eq!(value, 2, "the refused increments did not apply");
    kv2.put("k", "v3").send().await.expect("put");
    wait_for("node 2 to receive the write it refused", STEP, || async {
        kv2.get("elsewhere").await.ok().flatten()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.node(2).log_tail()));
    assert!(
        cluster.node_mut(2).exited().is_none(),
        "node 2 kept running"
    );
}

/// Puts unique keys until `stop`; the keys acknowledged.
fn spawn_kv_load(kv: KvNamespace, stop: Arc<AtomicBool>) -> JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let key = format!("k{i:06}");
            if kv.put(key.clone(), key.clone()).send().await.is_ok() {
                acked.push(key);
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        acked
    })
}

/// Adds 1 to `n` until `stop`; the adds acknowledged, and those of unknown outcome.
fn spawn_add_load(counter: ObjectHandle, stop: Arc<AtomicBool>) -> JoinHandle<(i64, i64)> {
    tokio::spawn(async move {
        let (mut acked, mut unknown) = (0i64, 0i64);
        while !stop.load(Ordering::Relaxed) {
            match counter.add("n", 1).await {
                Ok(_) => acked += 1,
                Err(_) => {
                    unknown += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        (acked, unknown)
    })
}

/// Kill -9 cycles under load: every write a node acknowledged before it was killed is
/// there after it restarts, and its store always reopens. `CRASH_CYCLES` sets the count
/// (default 12 in CI; the soak runs 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_restart_cycles_under_load_lose_no_acknowledged_write() {
    let cycles: u64 = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    cluster.create_namespace("crash").await.expect("namespace");
    // Node 1 owns the counter; node 3 holds its other copy.
    let counter = cluster.node(1).client().objects("crash").by_name("c");
    counter.add("n", 0).await.expect("place");

    let stop = Arc::new(AtomicBool::new(false));
    // KV writes at the node that keeps getting killed, with unique keys.
    let kv_load = spawn_kv_load(cluster.node(3).client().kv("crash"), stop.clone());
    // Increments of a counter replicated to the killed node.
    let add_load = spawn_add_load(counter.clone(), stop.clone());

    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut random = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    for cycle in 0..cycles {
        tokio::time::sleep(Duration::from_millis(50 + random(250))).await;
        cluster.node_mut(3).kill();
        tokio::time::sleep(Duration::from_millis(random(300))).await;
        cluster.node_mut(3).start().expect("restart");
        wait_for("the restarted node to serve", STEP, || async {
            cluster.node(3).client().kv("crash").get("probe").await.ok()
        })
        .await
        .unwrap_or_else(|e| panic!("cycle {cycle}: {e}\n{}", cluster.node(3).log_tail()));
    }
    stop.store(true, Ordering::Relaxed);
    let acked_keys = kv_load.await.expect("kv load");
    let (acked_adds, unknown_adds) = add_load.await.expect("add load");
    assert!(acked_keys.len() > cycles as usize, "the load made progress");

    // Every key node 3 acknowledged is there, at node 3 and everywhere else.
    for node in [3, 1, 2] {
        let kv = cluster.node(node).client().kv("crash");
        let missing = wait_for("every acknowledged key", STEP, || async {
            let mut missing = 0;
            for key in &acked_keys {
                if kv.get(key.clone()).await.ok()?.is_none() {
                    missing += 1;
                }
            }
            (missing == 0).then_some(())
        })
        .await;
        missing.unwrap_or_else(|e| panic!("node {node}: {e}"));
    }
    let value: i64 = wait_for("the counter", STEP, || async {
        let raw = counter.get("n").await.ok()??;
        String::from_utf8(raw).ok()?.parse().ok()
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}\n{}",
            futures::executor::block_on(counter.get("n")),
            cluster.logs()
        )
    });
    assert!(
        (acked_adds..=acked_adds + unknown_adds).contains(&value),
        "counter {value}: {acked_adds} acknowledged, {unknown_adds} unknown"
    );
}

/// An owner writes its own copy and the replicas at once, so a write can reach the
/// replicas and not the owner's copy, and the owner can crash right then (here its copy
/// stalls, then it is killed). Back in the same epoch, its next write would carry the lost
/// write's number, and the replicas would take it for the one they hold: acknowledged,
/// yet held by no replica. The restarted owner must take a new epoch and install its
/// copy first, so a later failover finds the acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_crashed_behind_its_replicas_loses_no_later_write() {
    // Failover only after 6 s away: the restarted owner comes back as owner.
    let mut cluster = TestCluster::start_with(5, &[("directory.node_down_after_ms", "6000")])
        .await
        .expect("cluster");
    cluster.create_namespace("rooms").await.expect("namespace");
    let room = cluster
        .node(1)
        .client()
        .objects("rooms")
        .by_name("crash-room");
    room.put("k", "a").await.expect("put a");
    let placed = room.inspect().await.expect("inspect");
    // Nodes 1, 3 and 5 are in eu-west: first used at node 1, it lives on them.
    assert_eq!((placed.owner, placed.epoch), (1, 1));
    assert_eq!(placed.replicas, vec![1, 3, 5]);
    let applied = |node: u64| cluster.node(node).copy_writes();
    let before = (applied(3), applied(5));

    cluster.node(1).stall_writes();
    let lost = tokio::spawn({
        let room = room.clone();
        async move { room.put("k", "b").await }
    });
    // One replica holding b is enough (the other may still be catching up on an
    // earlier write under load): it outranks the other in a failover.
    wait_for("a replica to hold write b", STEP, || async {
        (applied(3) > before.0 || applied(5) > before.1).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    cluster.node_mut(1).kill();
    lost.abort();
    cluster.node(1).unstall_writes();
    cluster.node_mut(1).start().expect("restart node 1");

    wait_for("node 1 to take write c", STEP, || async {
        room.put("k", "c").await.ok()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let restarted = room.inspect().await.expect("inspect");
    assert_eq!(
        restarted.owner, 1,
        "no failover may come first here (raise node_down_after_ms)"
    );
    assert_eq!(restarted.epoch, 2, "the restarted owner took a new epoch");

    // Only the replicas are left: whichever becomes owner must hold c.
    cluster.node_mut(1).kill();
    let via = cluster
        .node(3)
        .client()
        .objects("rooms")
        .by_name("crash-room");
    let value = wait_for("the object serving again", STEP, || async {
        via.get("k").await.ok()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert_eq!(
        value.as_deref(),
        Some(&b"c"[..]),
        "the acknowledged write c survived the failover"
    );
}

/// The durability proof: each node runs under `strace` for a burst of acknowledged KV
/// puts and object adds, and for every acknowledgement the trace shows, between the
/// request and its answer, a write to the node's write-ahead log and then an
/// `fdatasync` (or `fsync`) of that file — on the node that took the put, and on a
/// majority of the object's replicas. sled's own flush (`sync_file_range`) would not
/// count: it reaches neither the drive's cache nor the file's metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_waited_for_an_fdatasync_of_its_log() {
    const WRITES: usize = 20;
    let cluster = TestCluster::start(3).await.expect("cluster");
    cluster.create_namespace("dur").await.expect("namespace");
    let kv = cluster.node(1).client().kv("dur");
    let counter = cluster.node(1).client().objects("dur").by_name("counter");
    // Placement, streams and the first owner's start happen before the trace.
    kv.put("warm", "up").send().await.expect("put");
    counter.add("n", 1).await.expect("add");
    let placed = counter.inspect().await.expect("inspect");
    let quorum = placed.replicas.len() / 2 + 1;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut tracers = Vec::new();
    for id in 1..=3 {
        let pid = cluster.node(id).pid().expect("running");
        let out = dir.path().join(format!("node-{id}.strace"));
        tracers.push((id, Tracer::attach(pid, &out).expect("strace attaches")));
    }
    // Adds first: the puts' replication to the other nodes, which also writes and
    // syncs their logs, must not fall in an add's window and stand in for its copy.
    let mut adds = Vec::new();
    for _ in 0..WRITES {
        let sent = syscall_trace::now();
        counter.add("n", 1).await.expect("add");
        adds.push((sent, syscall_trace::now()));
    }
    let mut puts = Vec::new();
    for i in 0..WRITES {
        let sent = syscall_trace::now();
        kv.put(format!("k{i}"), format!("v{i}"))
            .send()
            .await
            .expect("put");
        puts.push((sent, syscall_trace::now()));
    }
    // Per node: its calls, and the descriptors of its write-ahead log segments.
    let mut nodes: Vec<(u64, Vec<Syscall>, Vec<i32>)> = Vec::new();
    for (id, tracer) in tracers {
        let logs: Vec<i32> = tracer
            .open_files()
            .expect("open files")
            .into_iter()
            .filter(|(_, path)| {
                path.starts_with(&cluster.node(id).data_dir)
                    && path.parent().is_some_and(|p| p.ends_with("wal"))
            })
            .map(|(fd, _)| fd)
            .collect();
        assert!(!logs.is_empty(), "node {id} has its write-ahead log open");
        nodes.push((id, tracer.detach().expect("trace"), logs));
    }

    // What a failure shows: a node's calls on its log during a request.
    let calls_during = |calls: &[Syscall], logs: &[i32], sent: f64, acked: f64| {
        calls
            .iter()
            .filter(|c| c.end >= sent && c.start <= acked && logs.contains(&c.fd))
            .map(|c| format!("{} fd {} {:.6}..{:.6}", c.name, c.fd, c.start, c.end))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (_, node_1, logs_1) = &nodes[0];
    for (i, (sent, acked)) in puts.iter().enumerate() {
        assert!(
            syscall_trace::written_then_synced(node_1, logs_1, *sent, *acked),
            "put {i} (sent {sent:.6}, acknowledged {acked:.6}) was acknowledged with no \
             fdatasync of node 1's log (descriptors {logs_1:?}) after its write; its calls \
             on the log meanwhile:\n{}\n({} calls traced; synced descriptors {:?})",
            calls_during(node_1, logs_1, *sent, *acked),
            node_1.len(),
            node_1
                .iter()
                .filter(|c| c.is_full_sync())
                .map(|c| c.fd)
                .collect::<std::collections::BTreeSet<_>>()
        );
    }
    for (i, (sent, acked)) in adds.iter().enumerate() {
        let synced: Vec<u64> = nodes
            .iter()
            .filter(|(id, calls, logs)| {
                placed.replicas.contains(id)
                    && syscall_trace::written_then_synced(calls, logs, *sent, *acked)
            })
            .map(|(id, _, _)| *id)
            .collect();
        assert!(
            synced.len() >= quorum && synced.contains(&placed.owner),
            "add {i} (sent {sent:.6}, acknowledged {acked:.6}) was acknowledged with the \
             log synced on {synced:?} only, not the owner {} and a majority of {:?}; each \
             node's calls on its log meanwhile:\n{}",
            placed.owner,
            placed.replicas,
            nodes
                .iter()
                .map(|(id, calls, logs)| format!(
                    "node {id} (log descriptors {logs:?}):\n{}",
                    calls_during(calls, logs, *sent, *acked)
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let count = counter.get("n").await.expect("get").expect("the counter");
    assert_eq!(count, (WRITES + 1).to_string().into_bytes());
}

#[test]
fn the_trace_reader_pairs_split_calls_and_tells_full_syncs() {
    let text = "\
101   1700000000.000100 pwrite64(12, \"\"..., 100, 16) = 100 <0.000010>
102 1700000000.000200 fdatasync(12 <unfinished ...>
101 1700000000.000250 pwrite64(9, \"\"..., 100, 16) = 100
101 1700000000.000300 sync_file_range(9, 0, 4096, 7) = 0
102 1700000000.000900 <... fdatasync resumed>) = 0 <0.000650>
103 1700000000.001000 fsync(3) = -1 EIO (Input/output error)
101 1700000000.002000 --- SIGINT {si_signo=SIGINT} ---
";
    let calls = syscall_trace::parse(text).expect("parse");
    assert_eq!(calls.len(), 5);
    let sync = calls
        .iter()
        .find(|c| c.name == "fdatasync")
        .expect("fdatasync");
    assert_eq!((sync.fd, sync.start), (12, 1_700_000_000.000_2));
    // Entered plus the time spent (`-T`), not the time the resumed line was printed.
    assert!(
        (sync.end - 1_700_000_000.000_85).abs() < 1e-6,
        "{}",
        sync.end
    );
    assert!(!calls.iter().find(|c| c.name == "fsync").expect("fsync").ok);
    let (from, to) = (1_700_000_000.0, 1_700_000_000.001);
    assert!(syscall_trace::written_then_synced(&calls, &[12], from, to));
    // The sync ended after the acknowledgement: no proof.
    assert!(!syscall_trace::written_then_synced(
        &calls,
        &[12],
        from,
        1_700_000_000.000_5
    ));
    // sync_file_range is no proof.
    assert!(!syscall_trace::written_then_synced(&calls, &[9], from, to));
}

//! Latency between chosen nodes, through the fault layer of Larder's own peer transport
//! (`LARDER_FAULT_PEER_DELAYS`: the kernel here has no netem). An object's write waits for
//! a majority of its replicas, so it goes at the speed of the nearest majority: a slow
//! link to one replica costs nothing, slow links to every other replica cost each write
//! their delay — and nothing fails or is lost either way.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{TestCluster, wait_for};

const STEP: Duration = Duration::from_secs(30);
const DELAY: Duration = Duration::from_millis(150);

/// Writes the delays of the links from node `from` (peer address, ms per line).
fn set_delays(cluster: &TestCluster, from: u64, to: &[u64]) {
    let lines: String = to
        .iter()
        .map(|id| format!("{} {}\n", cluster.node(*id).peer, DELAY.as_millis()))
        .collect();
    std::fs::write(delay_file(cluster, from), lines).expect("write the delay file");
}

fn delay_file(cluster: &TestCluster, id: u64) -> PathBuf {
    cluster.node(id).data_dir.join("peer-delays")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_writes_at_the_speed_of_its_nearest_majority() {
    let mut cluster = TestCluster::start(5).await.expect("cluster");
    // The fault layer is read at start: restart every node with it (no delays yet).
    for id in 1..=5 {
        let file = delay_file(&cluster, id).display().to_string();
        let node = cluster.node_mut(id);
        node.set_env("LARDER_FAULT_PEER_DELAYS", &file);
        node.kill();
        node.start().expect("restart");
    }
    cluster.wait_healthy(STEP).await.expect("healthy");
    cluster.create_namespace("rooms").await.expect("namespace");
    let room = cluster.node(1).client().objects("rooms").by_name("far");
    room.put("k", "0").await.expect("put");
    // Nodes 1, 3 and 5 are in eu-west: first used at node 1, it lives on them.
    let placed = room.inspect().await.expect("inspect");
    assert_eq!((placed.owner, placed.replicas.clone()), (1, vec![1, 3, 5]));

    // How long each of `count` writes takes, sorted.
    let timed_writes = |count: usize| {
        let room = room.clone();
        async move {
            let mut took = Vec::new();
            for i in 0..count {
                let started = Instant::now();
                room.put("k", i.to_string())
                    .await
                    .expect("write under delay");
                took.push(started.elapsed());
            }
            took.sort();
            took
        }
    };

    // Slow links to every other replica: the majority needs one of them.
    set_delays(&cluster, 1, &[3, 5]);
    wait_for("the delay to apply", STEP, || async {
        let started = Instant::now();
        room.put("k", "probe").await.ok()?;
        (started.elapsed() >= DELAY).then_some(())
    })
    .await
    .expect("delayed");
    let took = timed_writes(5).await;
    assert!(
        took[0] >= DELAY,
        "every write waited for a slow link: {took:?}"
    );
    assert!(took[4] < STEP, "{took:?}");

    // A slow link to one replica only: node 5 makes the majority with the owner.
    set_delays(&cluster, 1, &[3]);
    wait_for("the delay to lift", STEP, || async {
        let started = Instant::now();
        room.put("k", "probe").await.ok()?;
        (started.elapsed() < DELAY).then_some(())
    })
    .await
    .expect("lifted");
    let took = timed_writes(5).await;
    assert!(took[2] < DELAY, "the median write did not wait: {took:?}");

    std::fs::remove_file(delay_file(&cluster, 1)).expect("heal");
    assert_eq!(room.get("k").await.expect("get"), Some(b"4".to_vec()));
}

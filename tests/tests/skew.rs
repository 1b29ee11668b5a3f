//! Clock skew and clock jumps on one node (issue #5), with libfaketime moving only that
//! node's wall clock (see `support::faketime`). What Larder promises under skew:
//!
//! - KV versions are hybrid logical clock stamps: a node's own writes get increasing
//!   versions whatever its wall clock does (jumps back, restarts), and a write made after
//!   reading a newer stamp gets a greater one — so a session reads its own writes back and
//!   every replica keeps the same (last-writer-wins) entry;
//! - a peer's stamp further ahead than `kv.clock_forward_drift_max_ms` is stored (the
//!   replicas still converge) but not adopted: one node with a clock far in the future
//!   cannot drag every other clock along (and a write of the same key elsewhere loses to
//!   it until the real time catches up: read-your-writes does not hold for that key);
//! - an object alarm whose owner's clock is skewed still fires (at least once).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use larder_client::kv::{Session, Version};
use support::faketime::FakeClock;
use support::kv_dump::api_dump;
use support::{TestCluster, wait_for};

const STEP: Duration = Duration::from_secs(30);
const NS: &str = "skew";

fn real_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

fn stamp(v: &Version) -> (u64, u32, u64) {
    (v.physical_ms, v.logical, v.origin)
}

/// Restarts node `id` under libfaketime, `offset_ms` off the real clock, and waits until
/// the cluster is healthy again.
async fn skew(cluster: &mut TestCluster, id: u64, offset_ms: i64) -> FakeClock {
    let node = cluster.node_mut(id);
    node.kill();
    let clock = FakeClock::install(node, offset_ms).expect("libfaketime");
    node.start().expect("restart under libfaketime");
    cluster.wait_healthy(STEP).await.expect("healthy");
    clock
}

/// A put through `session` at node `id`; returns the version it was given.
async fn put(cluster: &TestCluster, id: u64, session: &Session, key: &str, value: &str) -> Version {
    let written = cluster
        .node(id)
        .client()
        .kv(NS)
        .with_session(session)
        .put(key, value)
        .send()
        .await
        .unwrap_or_else(|err| panic!("put {key} at node {id}: {err}"));
    written.versions.first().cloned().expect("one version")
}

/// A read through `session` at node `id`: the value and its version. A node that has not
/// caught up with the session within its bounded wait answers UNAVAILABLE; the read is
/// then tried again, as a client would.
async fn get(cluster: &TestCluster, id: u64, session: &Session, key: &str) -> (String, Version) {
    let kv = cluster.node(id).client().kv(NS).with_session(session);
    let found = wait_for(&format!("{key} at node {id}"), STEP, || async {
        kv.get_with_metadata(key).await.ok()
    })
    .await
    .unwrap_or_else(|err| panic!("{err}\n{}", cluster.logs()))
    .unwrap_or_else(|| panic!("{key} absent at node {id}"));
    let value = String::from_utf8(found.value).expect("text");
    (value, found.version.expect("version"))
}

/// Waits until every node holds the same KV contents.
async fn wait_converged(cluster: &TestCluster) {
    wait_for("identical contents everywhere", STEP, || async {
        let mut dumps = Vec::new();
        for node in cluster.running() {
            dumps.push(api_dump(node, &[NS]).await.ok()?);
        }
        let replicas = larder_checker::ReplicaSets::default();
        larder_checker::compare_dumps(&dumps, &replicas)
            .converged
            .then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}\n{}", cluster.logs()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_clock_lags_and_jumps_keeps_versions_increasing_and_sessions_whole() {
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    let mut clock = skew(&mut cluster, 2, -20_000).await;
    cluster.create_namespace(NS).await.expect("namespace");
    let session = Session::new();

    // Node 2, 20 s behind, reads node 1's write and then writes after it: its stamp
    // follows the one it read, not its own wall clock.
    let first = put(&cluster, 1, &session, "doc", "from 1").await;
    assert_eq!(get(&cluster, 2, &session, "doc").await.0, "from 1");
    let second = put(&cluster, 2, &session, "doc", "from 2").await;
    assert!(stamp(&second) > stamp(&first), "{second:?} after {first:?}");
    assert_eq!(get(&cluster, 1, &session, "doc").await.0, "from 2");

    // Node 2 sees a newer write of node 1, then restarts (kill -9): what it saw before
    // the crash still bounds its next stamp, so the session's next write there wins.
    let third = put(&cluster, 1, &session, "doc", "from 1 again").await;
    assert_eq!(get(&cluster, 2, &session, "doc").await.0, "from 1 again");
    cluster.node_mut(2).kill();
    cluster.node_mut(2).start().expect("restart");
    cluster.wait_healthy(STEP).await.expect("healthy");
    let fourth = put(&cluster, 2, &session, "doc", "from 2 after restart").await;
    assert!(
        stamp(&fourth) > stamp(&third),
        "node 2 stamped {fourth:?} after reading {third:?}"
    );
    let (value, version) = get(&cluster, 2, &session, "doc").await;
    assert_eq!(
        (value.as_str(), stamp(&version)),
        ("from 2 after restart", stamp(&fourth)),
        "read-your-writes at node 2"
    );

    // Jumps forward and back: node 2's own stamps only ever increase.
    let mut own = vec![fourth];
    for (offset_ms, key) in [(15_000, "a"), (-30_000, "b"), (0, "c"), (-5_000, "d")] {
        clock.set_offset_ms(offset_ms).expect("jump");
        own.push(put(&cluster, 2, &session, key, "jumping").await);
    }
    cluster.node_mut(2).kill();
    cluster.node_mut(2).start().expect("restart");
    cluster.wait_healthy(STEP).await.expect("healthy");
    own.push(put(&cluster, 2, &session, "e", "after the jumps").await);
    let stamps: Vec<_> = own.iter().map(stamp).collect();
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "node 2's own versions went back: {stamps:?}"
    );
    wait_converged(&cluster).await;
    for id in 1..=3 {
        assert_eq!(
            get(&cluster, id, &session, "doc").await.0,
            "from 2 after restart",
            "node {id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_beyond_the_drift_limit_is_stored_but_not_followed() {
    let settings = [("kv.clock_forward_drift_max_ms", "5000")];
    let mut cluster = TestCluster::start_with(3, &settings)
        .await
        .expect("cluster");
    let _clock = skew(&mut cluster, 2, 60_000).await;
    cluster.create_namespace(NS).await.expect("namespace");
    let session = Session::new();

    let ahead = put(&cluster, 2, &session, "future", "from 2").await;
    assert!(
        ahead.physical_ms > real_now_ms() + 50_000,
        "node 2 stamps a minute ahead: {ahead:?}"
    );
    // Node 1 stores node 2's write but does not adopt its clock: its own next stamp
    // stays near the real time.
    assert_eq!(get(&cluster, 1, &session, "future").await.0, "from 2");
    let before = real_now_ms();
    let near = put(&cluster, 1, &session, "present", "from 1").await;
    assert!(
        near.physical_ms >= before && near.physical_ms < before + 5_000,
        "node 1 followed node 2's clock: {near:?} (real time {before})"
    );
    // The price of not following it, by design (last writer wins on stamps): a write of
    // the same key at node 1 is acknowledged with an older stamp and loses at once,
    // until the real time passes node 2's stamp.
    let behind = put(&cluster, 1, &session, "future", "from 1").await;
    assert!(stamp(&behind) < stamp(&ahead), "{behind:?} vs {ahead:?}");
    wait_converged(&cluster).await;
    for id in 1..=3 {
        assert_eq!(get(&cluster, id, &session, "future").await.0, "from 2");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_fires_at_an_owner_whose_clock_is_skewed() {
    let mut cluster = TestCluster::start_in_regions(3, &[], &["eu-west"])
        .await
        .expect("cluster");
    let mut clock = skew(&mut cluster, 2, -4_000).await;
    cluster.create_namespace("rooms").await.expect("namespace");
    let room = cluster.node(1).client().objects("rooms").by_name("clocked");
    room.put("k", "v").await.expect("create");
    let info = room.move_to_node(2).await.expect("move to the skewed node");
    assert_eq!(info.owner, 2, "{info:?}");
    let mut events = Box::pin(room.subscribe(None).await.expect("subscribe"));

    // Behind by 4 s, then ahead by 4 s: each alarm, due 1 s from now by the real clock,
    // fires — late when the owner lags, early when it runs ahead (its clock decides).
    for (offset_ms, name) in [(-4_000, "lagging"), (4_000, "leading")] {
        clock.set_offset_ms(offset_ms).expect("jump");
        let due_ms = real_now_ms() + 1_000;
        room.set_alarm(name, UNIX_EPOCH + Duration::from_millis(due_ms), "")
            .await
            .expect("alarm");
        let fired = tokio::time::timeout(STEP, async {
            while let Some(event) = events.next().await {
                let event = event.expect("event");
                if let Some(larder_client::objects::object_event::Kind::AlarmFired(a)) = &event.kind
                    && a.name == name
                {
                    return real_now_ms();
                }
            }
            panic!("the subscription ended");
        })
        .await
        .unwrap_or_else(|_| panic!("alarm {name} never fired\n{}", cluster.logs()));
        println!(
            "alarm {name} (owner {offset_ms:+} ms): fired {:+} ms from its due time",
            fired as i64 - due_ms as i64
        );
    }
}

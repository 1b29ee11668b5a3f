//! The cluster foundation on real processes: bootstrap, join, leader failover,
//! restart from disk, membership changes, shutdown and config validation.

use std::time::Duration;

use larder_client::admin::{NodeStatus, RaftRole};
mod support;

use support::{TestCluster, larder_bin, wait_for};

const STEP: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_a_leader_and_a_fourth_node_joins() {
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    let leader = cluster.agreed_leader().await.expect("leader");
    assert!((1..=3).contains(&leader));

    let joiner = cluster.add_joiner(2).expect("start joiner");
    cluster
        .wait_healthy(STEP)
        .await
        .expect("healthy with the joiner");

    // The joiner follows the directory as a learner and answers status itself.
    let status = cluster.node(joiner).status().await.expect("joiner answers");
    let raft = status.raft.expect("raft status");
    assert_eq!(raft.voters, vec![1, 2, 3]);
    assert_eq!(raft.learners, vec![joiner]);
    assert_eq!(raft.leader_id, leader);
    let me = status
        .nodes
        .iter()
        .find(|n| n.id == joiner)
        .expect("joiner recorded");
    assert_eq!(me.role, RaftRole::Learner as i32);
    assert_eq!(me.region, "us-east");
    assert_eq!(me.api_addr, cluster.node(joiner).api);
    // Logs go to a file here: plain text, no colour codes.
    let log = cluster.node(1).log_tail();
    assert!(log.contains("INFO"), "node 1 logged: {log}");
    let coloured = log.lines().find(|line| line.contains('\u{1b}'));
    assert!(coloured.is_none(), "ANSI codes in a log file: {coloured:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_a_new_one_and_changes_continue() {
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    let old = cluster.agreed_leader().await.expect("leader");
    let old_term = cluster
        .node(old)
        .status()
        .await
        .expect("status")
        .raft
        .expect("raft")
        .term;

    cluster.node_mut(old).kill();
    let new = wait_for("a new leader", STEP, || async {
        cluster
            .agreed_leader()
            .await
            .filter(|leader| *leader != old)
    })
    .await
    .expect("new leader");
    let survivor = cluster.node(new);
    let term = survivor
        .status()
        .await
        .expect("status")
        .raft
        .expect("raft")
        .term;
    assert!(term > old_term, "term {term} must exceed {old_term}");

    // The new leader records the old one as down...
    wait_for("the old leader marked down", STEP, || async {
        let status = survivor.status().await?;
        let node = status.nodes.iter().find(|n| n.id == old)?;
        (node.status == NodeStatus::Down as i32).then_some(())
    })
    .await
    .expect("old leader down");

    // ...and accepts membership changes: a new node joins through a follower.
    let follower = cluster
        .running()
        .map(|n| n.id)
        .find(|id| *id != new)
        .expect("follower");
    let joiner = cluster.add_joiner(follower).expect("joiner");
    wait_for("the joiner registered everywhere", STEP, || async {
        for node in cluster.running() {
            let status = node.status().await?;
            let rec = status.nodes.iter().find(|n| n.id == joiner)?;
            if rec.status != NodeStatus::Up as i32 {
                return None;
            }
        }
        Some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}\n{}", cluster.logs()));

    // The old leader comes back as a follower and catches up.
    cluster.node_mut(old).start().expect("restart");
    let leader = cluster.wait_healthy(STEP).await.expect("healthy again");
    let status = cluster.node(old).status().await.expect("status");
    assert_eq!(status.raft.expect("raft").leader_id, leader);
    assert!(status.nodes.iter().any(|n| n.id == joiner));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_directory_state() {
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    let joiner = cluster.add_joiner(1).expect("joiner");
    cluster.wait_healthy(STEP).await.expect("healthy");
    let before = cluster.node(3).status().await.expect("status");
    let applied_before = before.raft.expect("raft").last_applied;

    // Stop every process without any shutdown path, then bring back node 3 alone: with
    // no quorum it cannot learn anything from the others, so what it shows is its disk.
    let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
    for id in &ids {
        cluster.node_mut(*id).kill();
    }
    cluster.node_mut(3).start().expect("restart node 3");
    let after = wait_for("node 3 to answer", STEP, || cluster.node(3).status())
        .await
        .expect("node 3 answers");
    let raft = after.raft.expect("raft");
    assert_eq!(raft.voters, vec![1, 2, 3]);
    assert_eq!(raft.learners, vec![joiner]);
    assert!(
        raft.last_applied >= applied_before,
        "applied {} < {applied_before}",
        raft.last_applied
    );
    let mut recorded: Vec<u64> = after.nodes.iter().map(|n| n.id).collect();
    recorded.sort_unstable();
    assert_eq!(recorded, ids);

    // With the others back the cluster is whole again.
    for id in [1, 2, joiner] {
        cluster.node_mut(id).start().expect("restart");
    }
    cluster
        .wait_healthy(STEP)
        .await
        .expect("healthy after full restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_work_from_any_node() {
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    let joiner = cluster.add_joiner(1).expect("joiner");
    cluster.wait_healthy(STEP).await.expect("healthy");
    let leader = cluster.agreed_leader().await.expect("leader");
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let client = cluster.node(follower).client();

    // Promote the learner, demote a voter, hand over leadership, remove a node.
    let resp = client.add_voter(joiner).await.expect("add voter");
    assert!(resp.voters.contains(&joiner));
    let resp = client.remove_voter(follower).await.expect("remove voter");
    assert!(!resp.voters.contains(&follower));
    assert!(resp.learners.contains(&follower));
    client
        .transfer_leader(joiner)
        .await
        .expect("transfer leader");
    let new_leader = wait_for("leadership at the joiner", STEP, || cluster.agreed_leader())
        .await
        .expect("leader");
    assert_eq!(new_leader, joiner);

    let resp = client
        .remove_node(follower, false)
        .await
        .expect("remove node");
    assert!(!resp.voters.contains(&follower) && !resp.learners.contains(&follower));
    // A linearizable read at any node reflects the committed removal at once.
    let observer = cluster.node(leader).client();
    let status = observer.status(true).await.expect("linearizable status");
    assert!(
        status.nodes.iter().all(|n| n.id != follower),
        "{:?}",
        status.nodes
    );

    // Refusals are clear statuses, not hangs (asked of a member: the removed node
    // refuses everything but status once it learns of its removal).
    let err = observer.add_voter(99).await.expect_err("unknown node");
    assert!(err.to_string().contains("not a learner"), "{err}");
    let err = observer.transfer_leader(0).await.expect_err("node id 0");
    assert!(
        matches!(err, larder_client::ClientError::InvalidArgument(_)),
        "{err}"
    );
}

/// A node removed from the cluster learns it and stops serving (every call but status
/// refused, saying so), stays removed across a restart, and is taken back only by an
/// explicit join. One that owns objects is refused until drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_stops_serving_until_it_joins_again() {
    use larder_client::ClientError;
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    cluster.create_namespace("rooms").await.expect("namespace");
    // An object owned by node 3 (it owns those first written through it).
    let rooms = cluster.node(3).client().objects("rooms");
    let mut owned = None;
    for i in 0..20 {
        let room = rooms.by_name(&format!("room-{i}"));
        room.put("k", "v").await.expect("put");
        if room.inspect().await.expect("inspect").owner == 3 {
            owned = Some(room);
            break;
        }
    }
    owned.expect("an object owned by node 3");
    let admin = cluster.node(1).client();
    match admin.remove_node(3, false).await {
        Err(ClientError::FailedPrecondition(message)) => {
            assert!(message.contains("drain"), "{message}")
        }
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }
    admin.drain_node(3).await.expect("drain");
    admin.remove_node(3, false).await.expect("remove");

    let refused = |node: &support::TestNode| {
        let client = node.client();
        async move {
            let status = client.status(false).await.ok()?;
            let call = client.kv("rooms").get("k").await;
            match call {
                Err(ClientError::FailedPrecondition(message))
                    if status.removed && message.contains("removed from the cluster") =>
                {
                    Some(())
                }
                _ => None,
            }
        }
    };
    wait_for("node 3 to know it was removed", STEP, || {
        refused(cluster.node(3))
    })
    .await
    .expect("removed");
    // Live, not ready, and says why.
    let node3 = cluster.node(3);
    let live = node3.http_get("/livez").expect("livez");
    assert!(live.starts_with("HTTP/1.0 200"), "{live}");
    let ready = node3.http_get("/readyz").expect("readyz");
    assert!(ready.starts_with("HTTP/1.0 503"), "{ready}");
    assert!(ready.contains("removed from the cluster"), "{ready}");
    // A restart (without --join) does not bring it back.
    let node = cluster.node_mut(3);
    node.terminate(STEP).await.expect("stop");
    node.start().expect("restart");
    wait_for("node 3 still removed", STEP, || refused(cluster.node(3)))
        .await
        .expect("still removed");
    // An explicit join does.
    let seed = cluster.node(1).peer.clone();
    let node = cluster.node_mut(3);
    node.terminate(STEP).await.expect("stop");
    node.set_join(&seed);
    node.start().expect("start with --join");
    wait_for("node 3 back", STEP, || async {
        let client = cluster.node(3).client();
        let status = client.status(false).await.ok()?;
        let served = client.kv("rooms").get("k").await.is_ok();
        (!status.removed && served).then_some(())
    })
    .await
    .expect("back");
}

/// Regression (nemesis `members`): the directory leader, removed from the cluster and
/// restarted with `--join` on its data, registers again and becomes a voter again. Its
/// persisted vote named it leader, so it sent its registration to itself, was refused
/// ("not the directory leader") and retried for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_leader_restarted_with_join_rejoins() {
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    let leader = cluster.agreed_leader().await.expect("leader");
    let other = (1..=3).find(|id| *id != leader).expect("another node");
    // The leader steps down as it removes itself: an answer may be lost; ask until the
    // removal shows.
    wait_for("the leader removed", STEP, || async {
        let client = cluster.node(other).client();
        let status = client.status(true).await.ok()?;
        if status.nodes.iter().all(|n| n.id != leader) && status.raft?.leader_id != leader {
            return Some(());
        }
        let _ = client.remove_node(leader, false).await;
        None
    })
    .await
    .expect("removed");
    let seed = cluster.node(other).peer.clone();
    let node = cluster.node_mut(leader);
    node.terminate(STEP).await.expect("stop the removed node");
    node.set_join(&seed);
    node.start().expect("restart");
    wait_for("the removed leader back as a learner", STEP, || async {
        let status = cluster.node(other).status().await?;
        let back = status
            .nodes
            .iter()
            .any(|n| n.id == leader && n.status == NodeStatus::Up as i32);
        (back && status.raft?.learners.contains(&leader)).then_some(())
    })
    .await
    .expect("registered again");
    let resp = cluster
        .node(other)
        .client()
        .add_voter(leader)
        .await
        .expect("voter again");
    assert!(resp.voters.contains(&leader), "{resp:?}");
    cluster.wait_healthy(STEP).await.expect("healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_listener_serves_health_and_both_reflections_and_names_its_size_limit() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let cluster = TestCluster::start(1).await.expect("cluster");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.node(1).api))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
    // gRPC health follows readiness (checked every second): serving once ready.
    let health = HealthClient::new(channel.clone());
    for service in ["", "larder.v1.Admin", "larder.v1.Kv"] {
        wait_for(&format!("{service:?} serving"), STEP, || {
            let mut health = health.clone();
            async move {
                let request = HealthCheckRequest {
                    service: service.into(),
                };
                let status = health.check(request).await.ok()?.into_inner().status;
                (status == ServingStatus::Serving as i32).then_some(())
            }
        })
        .await
        .expect("serving");
    }
    let ready = cluster.node(1).http_get("/readyz").expect("readyz");
    assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
    let live = cluster.node(1).http_get("/livez").expect("livez");
    assert!(live.starts_with("HTTP/1.0 200"), "{live}");
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("message")
        .expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"larder.v1.Admin".to_string())
            && names.contains(&"larder.v1.Kv".to_string()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("larder.peer")),
        "peer services must not be advertised: {names:?}"
    );

    // The older reflection protocol, which many tools still speak, answers too.
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as Alpha;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::ListServices(String::new())),
    };
    let response = Alpha::new(channel.clone())
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("v1alpha reflection")
        .into_inner()
        .message()
        .await
        .expect("message")
        .expect("one response");
    let Some(AlphaResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected v1alpha reflection answer");
    };
    assert!(list.service.iter().any(|s| s.name == "larder.v1.Kv"));

    // A request over the message limit (32 MiB by default) is RESOURCE_EXHAUSTED, naming
    // the setting, as every other limit is.
    let oversized = larder_proto::v1::PutRequest {
        namespace: "any".into(),
        key: b"k".to_vec(),
        value: vec![0; 33 * 1024 * 1024],
        ..Default::default()
    };
    let refused = larder_proto::v1::kv_client::KvClient::new(channel)
        .max_encoding_message_size(usize::MAX)
        .put(oversized)
        .await
        .expect_err("refused");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("limits.api_message_bytes_max"),
        "{}",
        refused.message()
    );
}

/// Status, asked to check peers, shows a paused or dead node unreachable at once, from
/// any node, before the directory marks it down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_paused_or_dead_peer_unreachable_at_once() {
    use larder_client::admin::{Reachability, StatusRequest};
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    let checked = StatusRequest {
        linearizable: false,
        check_peers: true,
    };
    let reachability = |status: &larder_client::admin::StatusResponse| -> Vec<(u64, i32)> {
        status.nodes.iter().map(|n| (n.id, n.reachable)).collect()
    };
    let status = cluster
        .node(2)
        .client()
        .status_with(checked)
        .await
        .expect("status");
    let (unknown, reachable, unreachable) = (
        Reachability::Unknown as i32,
        Reachability::Reachable as i32,
        Reachability::Unreachable as i32,
    );
    assert_eq!(
        reachability(&status),
        vec![(1, reachable), (2, unknown), (3, reachable)]
    );

    cluster.node(3).pause().expect("pause");
    let asked = std::time::Instant::now();
    let status = cluster
        .node(2)
        .client()
        .status_with(checked)
        .await
        .expect("status");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(
        reachability(&status),
        vec![(1, reachable), (2, unknown), (3, unreachable)]
    );
    cluster.node(3).resume().expect("resume");

    cluster.node_mut(1).kill();
    let status = cluster
        .node(3)
        .client()
        .status_with(checked)
        .await
        .expect("status");
    assert_eq!(
        reachability(&status),
        vec![(1, unreachable), (2, reachable), (3, unknown)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_a_node_down_cleanly() {
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    let clean = cluster
        .node_mut(2)
        .terminate(STEP)
        .await
        .expect("node exits after SIGTERM");
    assert!(clean, "exit status must be success");
    cluster.node_mut(2).start().expect("restart");
    cluster
        .wait_healthy(STEP)
        .await
        .expect("healthy after restart");
}

#[test]
fn an_invalid_config_is_rejected_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(larder_bin())
            .args(args)
            .output()
            .expect("run larder");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let data = dir.path().display().to_string();

    let (ok, stderr) = run(&[
        "serve",
        "--node-id",
        "1",
        "--region",
        "EU West",
        "--data-dir",
        &data,
        "--initial-voter",
        "1@127.0.0.1:7071",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("node.region") && stderr.contains("EU West"),
        "{stderr}"
    );

    let (ok, stderr) = run(&["serve", "--region", "eu-west", "--data-dir", &data]);
    assert!(!ok);
    assert!(stderr.contains("node.id"), "{stderr}");

    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[node]\nid = 1\nregoin = \"eu-west\"\n").expect("write");
    let (ok, stderr) = run(&["serve", "--config", &config.display().to_string()]);
    assert!(!ok);
    assert!(stderr.contains("regoin"), "{stderr}");

    let config = dir.path().join("timing.toml");
    std::fs::write(
        &config,
        "[node]\nid = 1\nregion = \"eu-west\"\n[cluster]\ninitial_voters = [\"1@127.0.0.1:7071\"]\n[directory]\nelection_timeout_min_ms = 50\n",
    )
    .expect("write");
    let (ok, stderr) = run(&["serve", "--config", &config.display().to_string()]);
    assert!(!ok);
    assert!(
        stderr.contains("directory.election_timeout_min_ms") && stderr.contains("50"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_catches_up_from_a_snapshot() {
    // Snapshot every 3 entries and keep no log behind it: a joiner can only get the
    // directory by snapshot installation over the peer network.
    let settings = [
        ("directory.snapshot_after_entries", "3"),
        ("directory.log_entries_kept_after_snapshot", "0"),
    ];
    let mut cluster = TestCluster::start_with(3, &settings)
        .await
        .expect("cluster");
    // More entries than one snapshot interval: the first joiner, then a restart of it.
    let first = cluster.add_joiner(1).expect("joiner");
    cluster.wait_healthy(STEP).await.expect("healthy");
    let second = cluster.add_joiner(2).expect("second joiner");
    cluster
        .wait_healthy(STEP)
        .await
        .expect("healthy with second joiner");
    let status = cluster.node(second).status().await.expect("status");
    let mut ids: Vec<u64> = status.nodes.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3, first, second]);
    let snapshot_log = std::fs::read_to_string(cluster.node(second).data_dir.join("node.1.log"))
        .expect("joiner log");
    assert!(
        snapshot_log.contains("directory snapshot installed"),
        "the joiner must have caught up by snapshot:\n{}",
        cluster.node(second).log_tail()
    );

    // A voter restarted on its data comes back from snapshot plus log.
    cluster.node_mut(3).kill();
    cluster.node_mut(3).start().expect("restart");
    cluster
        .wait_healthy(STEP)
        .await
        .expect("healthy after restart");
}

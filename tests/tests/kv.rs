//! The replicated KV on real processes: propagation, convergence, deletes, expiry,
//! catch-up after restart and after a cut, limits, residency, read-your-writes, watch.

mod support;

use std::time::Duration;

use futures::StreamExt;
use larder_client::ClientError;
use larder_client::kv::{PutItem, Session};
use support::{TestCluster, wait_for};

const STEP: Duration = Duration::from_secs(30);

async fn cluster_with_namespace(voters: usize, ns: &str) -> TestCluster {
    let cluster = TestCluster::start(voters).await.expect("cluster");
    cluster.create_namespace(ns).await.expect("namespace");
    cluster
}

/// Waits until every running node returns `expected` for `key`.
async fn wait_value(cluster: &TestCluster, ns: &str, key: &str, expected: Option<&[u8]>) {
    wait_for(
        &format!("{key} = {expected:?} everywhere"),
        STEP,
        || async {
            for node in cluster.running() {
                let got = node.client().kv(ns).get(key).await.ok()?;
                if got.as_deref() != expected {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .unwrap_or_else(|err| panic!("{err}\n{}", cluster.logs()));
}

/// All keys under `prefix` at one node, with their versions.
async fn contents(
    node: &support::TestNode,
    ns: &str,
) -> Option<Vec<(Vec<u8>, Option<larder_proto_version::V>)>> {
    let kv = node.client().kv(ns);
    let mut pages = std::pin::pin!(kv.list(Vec::new(), 0));
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        for entry in page.ok()?.keys {
            out.push((entry.key, entry.version.map(larder_proto_version::V::from)));
        }
    }
    Some(out)
}

/// Versions compared as tuples.
mod larder_proto_version {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct V(pub u64, pub u32, pub u64);
    impl From<larder_client::kv::Version> for V {
        fn from(v: larder_client::kv::Version) -> V {
            V(v.physical_ms, v.logical, v.origin)
        }
    }
}

async fn wait_identical(cluster: &TestCluster, ns: &str, expected_keys: usize) {
    wait_for("identical contents on every node", STEP, || async {
        let mut first = None;
        for node in cluster.running() {
            let c = contents(node, ns).await?;
            if c.len() != expected_keys {
                return None;
            }
            match &first {
                None => first = Some(c),
                Some(f) if *f == c => {}
                Some(_) => return None,
            }
        }
        Some(())
    })
    .await
    .unwrap_or_else(|err| {
        let counts = futures::executor::block_on(async {
            let mut all = Vec::new();
            for node in cluster.running() {
                all.push((node.id, contents(node, ns).await));
            }
            let first = all[0].1.clone().unwrap_or_default();
            all.iter()
                .map(|(id, c)| {
                    let c = c.clone().unwrap_or_default();
                    let diff = c.iter().zip(first.iter()).position(|(a, b)| a != b);
                    (*id, c.len(), diff.map(|i| (c[i].clone(), first[i].clone())))
                })
                .collect::<Vec<_>>()
        });
        panic!("{err}; keys per node: {counts:?}\n{}", cluster.logs())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_at_one_node_becomes_visible_at_all_others() {
    let mut cluster = cluster_with_namespace(3, "ns").await;
    // Data written before a node exists reaches it when it joins (a full copy).
    let early = (0..50)
        .map(|i| PutItem {
            key: format!("early{i:02}").into_bytes(),
            value: b"e".to_vec(),
            ..Default::default()
        })
        .collect();
    cluster
        .node(3)
        .client()
        .kv("ns")
        .put_many(early)
        .await
        .expect("put_many");
    cluster.add_joiner(1).expect("joiner");
    cluster.wait_healthy(STEP).await.expect("healthy");
    wait_identical(&cluster, "ns", 50).await;

    let kv = cluster.node(2).client().kv("ns");
    kv.put("greeting", "hello")
        .metadata(r#"{"lang":"en"}"#)
        .send()
        .await
        .expect("put");
    wait_value(&cluster, "ns", "greeting", Some(b"hello")).await;
    let joiner = cluster.nodes.last().expect("joiner").client().kv("ns");
    let value = joiner
        .get_with_metadata("greeting")
        .await
        .expect("get")
        .expect("found");
    assert_eq!(value.metadata, br#"{"lang":"en"}"#.to_vec());

    // A burst from two nodes converges to identical contents.
    let items = |from: usize| {
        (from..from + 100)
            .map(|i| PutItem {
                key: format!("k{i:04}").into_bytes(),
                value: vec![b'x'; 64],
                ..Default::default()
            })
            .collect()
    };
    cluster
        .node(1)
        .client()
        .kv("ns")
        .put_many(items(0))
        .await
        .expect("put_many");
    cluster
        .node(3)
        .client()
        .kv("ns")
        .put_many(items(100))
        .await
        .expect("put_many");
    wait_identical(&cluster, "ns", 251).await;

    // Replication health: node 1 reports how far behind each origin it is (caught up).
    let status = cluster
        .node(1)
        .client()
        .status(false)
        .await
        .expect("status");
    let lag: Vec<(u64, u64)> = status
        .kv_replication
        .iter()
        .map(|l| (l.origin_node_id, l.writes_behind))
        .collect();
    assert!(lag.contains(&(2, 0)) && lag.contains(&(3, 0)), "{lag:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conflicting_writes_converge_everywhere() {
    let cluster = cluster_with_namespace(3, "ns").await;
    let mut writers = Vec::new();
    for node in cluster.running() {
        let kv = node.client().kv("ns");
        let id = node.id;
        writers.push(tokio::spawn(async move {
            for round in 0..30 {
                kv.put("contested", format!("node{id}-round{round}"))
                    .send()
                    .await
                    .expect("put");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    wait_identical(&cluster, "ns", 1).await;
    let winner = cluster
        .node(1)
        .client()
        .kv("ns")
        .get("contested")
        .await
        .expect("get")
        .expect("found");
    wait_value(&cluster, "ns", "contested", Some(&winner)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_beats_an_older_put_and_the_key_never_comes_back() {
    let cluster = cluster_with_namespace(3, "ns").await;
    cluster
        .node(1)
        .client()
        .kv("ns")
        .put("k", "v1")
        .send()
        .await
        .expect("put");
    wait_value(&cluster, "ns", "k", Some(b"v1")).await;

    // Node 3 misses the delete while frozen, still holding the old put.
    cluster.node(3).pause().expect("pause");
    cluster
        .node(2)
        .client()
        .kv("ns")
        .delete("k")
        .await
        .expect("delete");
    cluster.node(3).resume().expect("resume");
    wait_value(&cluster, "ns", "k", None).await;

    // Several anti-entropy rounds later (300 ms each) nothing resurrects it: every node
    // has caught up with node 2's delete and still reads it as absent.
    let token = cluster
        .node(2)
        .client()
        .kv("ns")
        .delete("other")
        .await
        .expect("delete")
        .consistency_token;
    let session = Session::new();
    session.observe(&token);
    for node in cluster.running() {
        let kv = node.client().kv("ns").with_session(&session);
        assert_eq!(kv.get("k").await.expect("get"), None, "node {}", node.id);
    }
    assert!(
        contents(cluster.node(3), "ns")
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_entries_read_as_absent_everywhere() {
    let cluster = cluster_with_namespace(3, "ns").await;
    let kv = cluster.node(1).client().kv("ns");
    kv.put("short", "lived")
        .ttl(Duration::from_millis(1500))
        .send()
        .await
        .expect("put");
    kv.put("long", "lived")
        .ttl(Duration::from_secs(3600))
        .send()
        .await
        .expect("put");
    wait_value(&cluster, "ns", "short", Some(b"lived")).await;
    wait_value(&cluster, "ns", "short", None).await;
    wait_value(&cluster, "ns", "long", Some(b"lived")).await;
    let listed = contents(cluster.node(2), "ns").await.expect("list");
    assert_eq!(listed.len(), 1, "expired keys are not listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_during_a_write_load_catches_up_after_restart() {
    let mut cluster = cluster_with_namespace(3, "ns").await;
    cluster.node_mut(3).kill();
    for batch in 0..5 {
        let items = (0..60)
            .map(|i| PutItem {
                key: format!("b{batch}-{i:03}").into_bytes(),
                value: format!("{batch}:{i}").into_bytes(),
                ..Default::default()
            })
            .collect();
        let node = if batch % 2 == 0 { 1 } else { 2 };
        cluster
            .node(node)
            .client()
            .kv("ns")
            .put_many(items)
            .await
            .expect("put_many");
    }
    cluster.node_mut(3).start().expect("restart");
    wait_identical(&cluster, "ns", 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_its_peers_catches_up_after_the_cut_heals() {
    let cluster = cluster_with_namespace(3, "ns").await;
    cluster.node(3).pause().expect("cut off");
    for i in 0..100 {
        let node = 1 + (i % 2) as u64;
        cluster
            .node(node)
            .client()
            .kv("ns")
            .put(format!("c{i:03}"), "v")
            .send()
            .await
            .expect("put");
    }
    cluster
        .node(1)
        .client()
        .kv("ns")
        .delete("c000")
        .await
        .expect("delete");
    cluster.node(3).resume().expect("heal");
    wait_identical(&cluster, "ns", 99).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_a_limit_are_invalid_arguments() {
    let cluster = cluster_with_namespace(1, "ns").await;
    let kv = cluster.node(1).client().kv("ns");
    fn invalid<T>(result: Result<T, ClientError>, limit: &str) {
        match result {
            Err(ClientError::InvalidArgument(message)) => {
                assert!(message.contains(limit), "{message}")
            }
            Err(other) => panic!("expected INVALID_ARGUMENT naming {limit}, got {other}"),
            Ok(_) => panic!("expected INVALID_ARGUMENT naming {limit}"),
        }
    }
    invalid(
        kv.put(vec![b'k'; 513], "v").send().await,
        "kv.key_bytes_max",
    );
    invalid(
        kv.put("k", "v").metadata(vec![b'm'; 1025]).send().await,
        "kv.metadata_bytes_max",
    );
    invalid(
        kv.put("k", vec![0u8; 25 * 1024 * 1024 + 1]).send().await,
        "kv.value_bytes_max",
    );
    let keys: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    invalid(kv.get_many(&keys).await, "kv.get_many_keys_max");
    invalid(kv.list_page(b"", b"", 1001).await, "kv.list_page_max");
    invalid(kv.get("").await, "key must not be empty");
    // The largest value is accepted. Moving 25 MiB twice through a debug build on a busy
    // machine can take longer than the harness's 3 s per call.
    let patient = larder_client::Client::new(
        &cluster.node(1).api,
        larder_client::ClientConfig {
            request_timeout: Duration::from_secs(60),
            attempts_max: 1,
            ..Default::default()
        },
    )
    .expect("client")
    .kv("ns");
    patient
        .put("big", vec![7u8; 25 * 1024 * 1024])
        .send()
        .await
        .expect("25 MiB value");
    assert_eq!(
        patient.get("big").await.expect("get").map(|v| v.len()),
        Some(25 * 1024 * 1024)
    );
    match cluster.node(1).client().kv("missing").get("k").await {
        Err(ClientError::NotFound(message)) => assert!(message.contains("missing"), "{message}"),
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_restricted_namespace_is_never_stored_outside_its_region() {
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    cluster.add_joiner(1).expect("joiner");
    cluster.wait_healthy(STEP).await.expect("healthy");
    // Nodes 1 and 3 are in eu-west, 2 and 4 in us-east.
    let admin = cluster.node(2).client();
    admin
        .create_namespace("eu-data", vec!["eu-west".into()], None)
        .await
        .expect("create");
    admin
        .create_namespace("open", vec![], None)
        .await
        .expect("create");
    wait_for("namespaces everywhere", STEP, || async {
        for node in cluster.running() {
            if node.client().list_namespaces().await.ok()?.len() != 2 {
                return None;
            }
        }
        Some(())
    })
    .await
    .expect("namespaces");

    let eu = cluster.node(1).client().kv("eu-data");
    for i in 0..20 {
        eu.put(format!("secret{i}"), "eu only")
            .send()
            .await
            .expect("put");
    }
    cluster
        .node(1)
        .client()
        .kv("open")
        .put("public", "x")
        .send()
        .await
        .expect("put");
    wait_value(&cluster, "open", "public", Some(b"x")).await;
    wait_for("eu data at node 3", STEP, || async {
        let got = cluster
            .node(3)
            .client()
            .kv("eu-data")
            .get("secret19")
            .await
            .ok()?;
        got.is_some().then_some(())
    })
    .await
    .expect("replicated inside the region");
    // Outside the region the namespace is refused...
    match cluster.node(2).client().kv("eu-data").get("secret1").await {
        Err(ClientError::FailedPrecondition(message)) => {
            assert!(message.contains("eu-west"), "{message}")
        }
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }
    // ...and its data is not on their disks (checked after a few anti-entropy rounds).
    let token = cluster
        .node(1)
        .client()
        .kv("open")
        .put("marker", "m")
        .send()
        .await
        .expect("put")
        .consistency_token;
    let session = Session::new();
    session.observe(&token);
    for id in [2, 4] {
        let kv = cluster.node(id).client().kv("open").with_session(&session);
        assert_eq!(
            kv.get("marker").await.expect("get").as_deref(),
            Some(&b"m"[..])
        );
    }
    for id in [2, 4] {
        let node = cluster.node_mut(id);
        node.kill();
        let store = larder_store::Store::open(node.data_dir.join("store")).expect("open store");
        let keyspace = larder_kv::keyspace::Keyspace::open(store).expect("keyspace");
        let stored = keyspace.stored_namespaces().expect("namespaces");
        assert!(
            !stored.contains(&"eu-data".to_string()),
            "node {id} stores {stored:?}"
        );
        assert!(
            stored.contains(&"open".to_string()),
            "node {id} stores {stored:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_with_a_session_see_the_sessions_writes_at_any_node() {
    let cluster = cluster_with_namespace(3, "ns").await;
    let session = Session::new();
    for i in 0..20 {
        let writer = cluster
            .node(1 + i % 3)
            .client()
            .kv("ns")
            .with_session(&session);
        writer
            .put("cart", format!("v{i}"))
            .send()
            .await
            .expect("put");
        let reader = cluster
            .node(1 + (i + 1) % 3)
            .client()
            .kv("ns")
            .with_session(&session);
        assert_eq!(
            reader.get("cart").await.expect("get"),
            Some(format!("v{i}").into_bytes())
        );
    }
    // A token naming a write that never happens: bounded wait, then UNAVAILABLE naming
    // the origin to retry at.
    let future = larder_client::kv::test_token("ns", 1, 1_000_000);
    let impatient = larder_client::Client::new(
        &cluster.node(2).api,
        larder_client::ClientConfig {
            attempts_max: 1,
            ..Default::default()
        },
    )
    .expect("client");
    let started = std::time::Instant::now();
    match impatient
        .kv("ns")
        .with_session(&{
            let s = Session::new();
            s.observe(&future);
            s
        })
        .get("cart")
        .await
    {
        Err(ClientError::Unavailable { retry_at, .. }) => {
            assert_eq!(retry_at.as_deref(), Some(cluster.node(1).api.as_str()))
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumed_at_another_node_misses_nothing() {
    let cluster = cluster_with_namespace(3, "ns").await;
    let writer = cluster.node(2).client().kv("ns");
    let mut events = Box::pin(
        cluster
            .node(1)
            .client()
            .kv("ns")
            .watch(b"w/".to_vec(), Vec::new())
            .await
            .expect("watch"),
    );
    writer
        .put("other/x", "not watched")
        .send()
        .await
        .expect("put");
    for i in 0..5 {
        writer
            .put(format!("w/{i}"), format!("{i}"))
            .send()
            .await
            .expect("put");
    }
    let mut seen = Vec::new();
    let mut token = Vec::new();
    while seen.len() < 5 {
        let event = tokio::time::timeout(STEP, events.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event");
        assert!(event.key.starts_with(b"w/"));
        seen.push(String::from_utf8(event.key).expect("utf8"));
        token = event.resume_token;
    }
    assert_eq!(seen, vec!["w/0", "w/1", "w/2", "w/3", "w/4"]);
    drop(events);

    // While nobody watches: more changes, including a delete.
    for i in 5..10 {
        writer
            .put(format!("w/{i}"), format!("{i}"))
            .send()
            .await
            .expect("put");
    }
    writer.delete("w/0").await.expect("delete");
    let mut resumed = Box::pin(
        cluster
            .node(3)
            .client()
            .kv("ns")
            .watch(b"w/".to_vec(), token)
            .await
            .expect("resume"),
    );
    let mut missing: std::collections::BTreeSet<String> =
        (5..10).map(|i| format!("w/{i}")).collect();
    let mut saw_delete = false;
    while !missing.is_empty() || !saw_delete {
        let event = tokio::time::timeout(STEP, resumed.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event");
        let key = String::from_utf8(event.key).expect("utf8");
        if event.deleted && key == "w/0" {
            saw_delete = true;
        }
        missing.remove(&key);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_away_longer_than_the_tombstone_grace_resyncs_fully() {
    // Tombstones live 2 s here; node 3 is away for longer than that.
    let settings = [("kv.tombstone_grace_ms", "2000")];
    let mut cluster = TestCluster::start_with(3, &settings)
        .await
        .expect("cluster");
    cluster
        .node(1)
        .client()
        .create_namespace("ns", vec![], None)
        .await
        .expect("create");
    wait_for("namespace at node 3", STEP, || async {
        cluster
            .node(3)
            .client()
            .list_namespaces()
            .await
            .ok()?
            .iter()
            .find(|n| n.name == "ns")
            .map(|_| ())
    })
    .await
    .expect("namespace");
    let kv = cluster.node(1).client().kv("ns");
    kv.put("doomed", "v").send().await.expect("put");
    kv.put("kept", "v").send().await.expect("put");
    wait_value(&cluster, "ns", "doomed", Some(b"v")).await;
    wait_value(&cluster, "ns", "kept", Some(b"v")).await;

    cluster.node_mut(3).kill();
    // Delete only once node 3 is recorded down, so no push of the delete is queued for it.
    wait_for("node 3 recorded down", STEP, || async {
        let status = cluster.node(1).status().await?;
        let node = status.nodes.iter().find(|n| n.id == 3)?;
        (node.status == larder_client::admin::NodeStatus::Down as i32).then_some(())
    })
    .await
    .expect("node 3 down");
    kv.delete("doomed").await.expect("delete");
    // Nodes 1 and 2 collect the tombstone once it is older than the grace period: after
    // that the delete exists nowhere but in node 3's absence of it.
    wait_for("the tombstone collected on nodes 1 and 2", STEP, || async {
        let collected = |id| {
            cluster
                .node(id)
                .metric("kv_tombstones_collected")
                .unwrap_or(0)
        };
        (collected(1) >= 1 && collected(2) >= 1).then_some(())
    })
    .await
    .expect("tombstone collected");

    cluster.node_mut(3).start().expect("restart");
    wait_value(&cluster, "ns", "doomed", None).await;
    wait_identical(&cluster, "ns", 1).await;
    // It was the full re-sync (the tombstone no longer existed anywhere) that removed it.
    let log = std::fs::read_to_string(cluster.node(3).data_dir.join("node.2.log")).expect("log");
    assert!(
        log.contains("full re-sync dropped entries"),
        "{}",
        cluster.node(3).log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_puts_gets_lists_and_deletes() {
    use std::io::Write;
    let cluster = TestCluster::start(1).await.expect("cluster");
    let endpoint = cluster.node(1).api.clone();
    let larder = |args: &[&str], stdin: Option<&[u8]>| {
        let mut child = std::process::Command::new(support::larder_bin())
            .arg("--endpoint")
            .arg(&endpoint)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn larder");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            input.write_all(bytes).expect("write stdin");
        }
        drop(input);
        let out = child.wait_with_output().expect("run larder");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, _, err) = larder(&["kv", "namespace", "create", "cli"], None);
    assert_eq!(code, Some(0), "{err}");
    wait_for("namespace usable", STEP, || async {
        cluster
            .node(1)
            .client()
            .kv("cli")
            .get("x")
            .await
            .ok()
            .map(|_| ())
    })
    .await
    .expect("namespace");
    let (code, _, err) = larder(
        &[
            "kv",
            "put",
            "cli",
            "from-arg",
            "hello",
            "--ttl",
            "1h",
            "--metadata",
            r#"{"a":1}"#,
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = larder(&["kv", "put", "cli", "from-stdin"], Some(b"piped value"));
    assert_eq!(code, Some(0), "{err}");
    let (code, out, _) = larder(&["kv", "get", "cli", "from-stdin"], None);
    assert_eq!((code, out.as_str()), (Some(0), "piped value"));
    let (code, out, _) = larder(&["--json", "kv", "get", "cli", "from-arg"], None);
    assert_eq!(code, Some(0));
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["value"], "hello");
    assert_eq!(json["metadata"]["a"], 1);
    assert!(json["expires_at_ms"].as_u64().is_some());
    let (_, out, _) = larder(&["kv", "list", "cli"], None);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["from-arg", "from-stdin"]
    );
    let (code, _, _) = larder(&["kv", "delete", "cli", "from-arg"], None);
    assert_eq!(code, Some(0));
    let (code, _, err) = larder(&["kv", "get", "cli", "from-arg"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");
    let (code, _, err) = larder(
        &["kv", "put", "cli", "k", "v", "--metadata", "not json"],
        None,
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("--metadata must be JSON"), "{err}");
}

//! Many callers racing to place the same new object all get the one placement the log
//! kept first — on a real (single-voter) Raft group over the sled storage.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use larder_directory::{
    Command, Directory, DirectoryConfig, DirectoryRequest, Namespace, NamespaceSpec, NodeId,
    NodeSpec, ObjectKey, PeerNode, RegionId,
};
use larder_store::Store;

fn spec(id: u64) -> NodeSpec {
    NodeSpec {
        id: NodeId(id),
        region: RegionId("eu-west".into()),
        jurisdictions: BTreeSet::new(),
        api_addr: format!("127.0.0.1:{}", 10_000 + id),
        peer_addr: format!("127.0.0.1:{}", 20_000 + id),
    }
}

/// A single-voter directory (the leader) knowing three eligible nodes in `eu-west`
/// (records only: placement needs no traffic) and a namespace, and its store's folder.
async fn directory_of_three() -> (Directory, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let config = DirectoryConfig {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 150,
        election_timeout_max_ms: 300,
        ..DirectoryConfig::default()
    };
    let directory = Directory::start(spec(1), store, config, None)
        .await
        .expect("start");
    directory
        .bootstrap(BTreeMap::from([(
            NodeId(1),
            PeerNode {
                peer_addr: spec(1).peer_addr,
            },
        )]))
        .await
        .expect("bootstrap");
    directory
        .raft()
        .wait(Some(Duration::from_secs(10)))
        .current_leader(NodeId(1), "single voter leads")
        .await
        .expect("leader");
    for id in 1..=3 {
        let register = Command::RegisterNode {
            spec: spec(id),
            at_ms: 1,
        };
        directory
            .request(DirectoryRequest::Write(register))
            .await
            .expect("register");
    }
    let create = Command::CreateNamespace(NamespaceSpec {
        name: "rooms".into(),
        policy: Default::default(),
        created_at_ms: 1,
    });
    directory
        .request(DirectoryRequest::Write(create))
        .await
        .expect("create");
    (directory, dir)
}

/// Where the namespace's objects are placed: its current incarnation.
async fn rooms(directory: &Directory) -> Namespace {
    directory
        .read_local(|s| s.namespace("rooms").map(|r| r.stored_as()))
        .await
        .expect("created")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_placements_agree_on_one_winner() {
    let (directory, _dir) = directory_of_three().await;
    let key = ObjectKey {
        namespace: rooms(&directory).await,
        id: "room-1".into(),
    };
    let mut racers = Vec::new();
    for preferred in [1, 2, 3, 1, 2, 3] {
        let directory = directory.clone();
        let key = key.clone();
        racers.push(tokio::spawn(async move {
            directory
                .place_object(
                    key,
                    RegionId("eu-west".into()),
                    None,
                    2,
                    Some(NodeId(preferred)),
                )
                .await
                .expect("placed")
        }));
    }
    let mut winners = BTreeSet::new();
    for racer in racers {
        let placement = racer.await.expect("racer");
        winners.insert((placement.owner, placement.replicas.clone(), placement.epoch));
    }
    assert_eq!(
        winners.len(),
        1,
        "every racer sees the same placement: {winners:?}"
    );
    let stored = directory
        .local_state()
        .await
        .placement(&key)
        .cloned()
        .expect("recorded");
    let (owner, replicas, epoch) = winners.into_iter().next().expect("one");
    assert_eq!(
        (stored.owner, stored.replicas, stored.epoch),
        (owner, replicas, epoch)
    );
    directory.shutdown().await;
}

/// Concurrent first placements share log entries, and a batch counts the owners it chose
/// already: new objects spread evenly although every choice in a batch reads the same
/// directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_placements_share_entries_and_spread_owners() {
    const OBJECTS: u64 = 600;
    let (directory, _dir) = directory_of_three().await;
    let applied_before = directory.reader().applied_index().await;
    let namespace = rooms(&directory).await;
    let placers: Vec<_> = (0..OBJECTS)
        .map(|i| {
            let directory = directory.clone();
            let namespace = namespace.clone();
            tokio::spawn(async move {
                let key = ObjectKey {
                    namespace,
                    id: format!("cart-{i}"),
                };
                directory
                    .place_object(key, RegionId("eu-west".into()), None, 2, None)
                    .await
                    .expect("placed")
            })
        })
        .collect();
    let mut owned: BTreeMap<NodeId, u64> = BTreeMap::new();
    for placer in placers {
        *owned
            .entry(placer.await.expect("placer").owner)
            .or_default() += 1;
    }
    let entries = directory.reader().applied_index().await - applied_before;
    assert!(
        entries < OBJECTS / 4,
        "{OBJECTS} placements took {entries} log entries"
    );
    let (least, most) = (
        owned.values().min().copied().unwrap_or(0),
        owned.values().max().copied().unwrap_or(0),
    );
    assert_eq!(owned.len(), 3, "every node owns some: {owned:?}");
    assert!(most - least <= 1, "owners spread evenly: {owned:?}");
    directory.shutdown().await;
}

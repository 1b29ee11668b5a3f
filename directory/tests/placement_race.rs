//! Many callers racing to place the same new object all get the one placement the log
//! kept first — on a real (single-voter) Raft group over the sled storage.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use larder_directory::{
    Command, Directory, DirectoryConfig, DirectoryRequest, NodeId, NodeSpec, ObjectKey, PeerNode,
    RegionId,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_placements_agree_on_one_winner() {
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
    // Three eligible nodes in the region (records only: placement needs no traffic).
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
    let key = ObjectKey {
        namespace: "rooms".into(),
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

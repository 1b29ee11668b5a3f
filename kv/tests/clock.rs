//! The hybrid logical clock across a crash: a node whose wall clock lags a peer's stamps
//! a local write above every entry it stores, also after a restart. (Found by
//! `tests/tests/skew.rs`: after a kill -9 the clock resumed from the node's own last
//! write, below a stamp it had already stored, and an acknowledged write of a session
//! was superseded at once by an older one.)

use larder_base::Clock as _;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use larder_kv::peer_messages::{PushRequest, RelayedSegment};
use larder_kv::{
    ChannelFactory, ClusterView, Entry, Kv, KvConfig, KvEnv, NamespaceInfo, NodeId, PeerInfo,
    PutItem, Segment, Version,
};
use tokio::sync::watch;

const NS: &str = "ns";

fn single_node_view() -> ClusterView {
    let nodes = BTreeMap::from([(
        NodeId(1),
        PeerInfo {
            region: "eu-west".into(),
            api_addr: String::new(),
            peer_addr: String::new(),
            up: true,
        },
    )]);
    let namespaces = BTreeMap::from([(
        NS.into(),
        NamespaceInfo {
            allowed: BTreeSet::from([NodeId(1)]),
            policy: "everywhere".into(),
        },
    )]);
    ClusterView::new(NodeId(1), nodes, namespaces)
}

/// Starts a KV on `store`; the returned sender shuts its tasks down.
fn start(store: &larder_store::Store) -> (Kv, watch::Sender<bool>) {
    let (_view_tx, view) = watch::channel(Arc::new(single_node_view()));
    let channels: ChannelFactory = Arc::new(|addr: &str| {
        Err(larder_base::DialError {
            addr: addr.to_string(),
            reason: "no peers in this test".to_string(),
        })
    });
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (kv, _tasks) = Kv::start(
        store.clone(),
        KvConfig::default(),
        KvEnv::system(),
        view,
        channels,
        shutdown,
    )
    .expect("start");
    (kv, shutdown_tx)
}

fn item(value: &str) -> PutItem {
    PutItem {
        key: b"k".to_vec(),
        value: value.as_bytes().to_vec(),
        metadata: Vec::new(),
        expires_at_ms: 0,
        ttl_ms: 0,
    }
}

#[tokio::test]
async fn a_local_write_after_a_restart_supersedes_a_stored_stamp_from_a_faster_clock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = larder_store::Store::open(dir.path()).expect("store");
    let (kv, shutdown) = start(&store);
    kv.put(&NS.into(), vec![item("own, early")])
        .await
        .expect("put");
    // Node 2's clock runs 20 s ahead (inside the drift limit): its write is stored.
    let ahead = Version {
        physical_ms: larder_base::SystemClock.now_ms() + 20_000,
        logical: 3,
        origin: NodeId(2),
    };
    let remote = Entry {
        value: b"from node 2".to_vec(),
        metadata: Vec::new(),
        expires_at_ms: None,
        version: ahead,
        seq: 1,
        tombstone: false,
    };
    kv.apply_push(PushRequest {
        from: NodeId(2),
        segments: vec![RelayedSegment {
            segment: Segment {
                namespace: NS.into(),
                origin: NodeId(2),
                covered: Some((1, 1)),
                writes: vec![(b"k".to_vec(), remote)],
            },
            relay_to: Vec::new(),
        }],
    })
    .await
    .expect("push");

    // A crash: the in-memory clock is gone, the store stays.
    shutdown.send_replace(true);
    drop(kv);
    let (kv, _shutdown) = start(&store);
    let written = kv
        .put(&NS.into(), vec![item("own, after restart")])
        .await
        .expect("put");
    assert!(
        written.versions[0] > ahead,
        "stamped {} below the stored {ahead}",
        written.versions[0]
    );
    let read = kv.get(&NS.into(), b"k", &written.token).await.expect("get");
    assert_eq!(
        read.map(|e| e.value),
        Some(b"own, after restart".to_vec()),
        "the write just acknowledged is the one read back"
    );
}

//! The state machine's storage: per-placement records, earlier layouts moved over.

use super::*;
use crate::RegionId;

/// The leadership every entry of these tests was proposed by.
const LEADER: Leadership = Leadership {
    term: 1,
    leader: NodeId(1),
};

fn placement(id: &str) -> ObjectPlacement {
    ObjectPlacement {
        key: ObjectKey {
            namespace: "rooms".into(),
            id: id.into(),
        },
        region: RegionId("eu-west".into()),
        jurisdiction: None,
        owner: NodeId(1),
        replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
        epoch: crate::Epoch::FIRST,
        placed_at_ms: 7,
    }
}

fn with_placements(ids: &[&str]) -> AppliedState {
    let mut state = AppliedState {
        directory: crate::directory_state::with_namespace("rooms"),
        ..AppliedState::default()
    };
    for id in ids {
        state
            .directory
            .apply(&Command::PlaceObject(placement(id)), LEADER);
    }
    state
}

#[tokio::test]
async fn placements_are_records_of_their_own_and_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids: Vec<String> = (0..200).map(|i| format!("room-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut state = with_placements(&refs);
    {
        let store = Store::open(dir.path()).expect("store");
        let (sm, _) = SledStateMachine::open(store).expect("open");
        let keys: Vec<ObjectKey> = state.directory.placements().keys().cloned().collect();
        sm.persist(&state, &keys).await.expect("persist");
        // One more placement writes one record; the head does not hold placements.
        state
            .directory
            .apply(&Command::PlaceObject(placement("late")), LEADER);
        let late = placement("late").key;
        sm.persist(&state, [&late]).await.expect("persist");
        let head = sm.tree.get(APPLIED_KEY).expect("get").expect("head");
        assert!(head.len() < 200, "head is {} bytes", head.len());
    }
    let store = Store::open(dir.path()).expect("store");
    let (_, reader) = SledStateMachine::open(store).expect("reopen");
    assert_eq!(reader.snapshot().await, state.directory);
}

#[tokio::test]
async fn a_snapshot_stored_beside_the_state_moves_to_its_own_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stored = StoredSnapshot {
        meta: SnapshotMeta::default(),
        data: vec![7; 1024],
    };
    {
        let store = Store::open(dir.path()).expect("store");
        let tree = store.tree(SM_TREE).expect("tree");
        tree.insert(SNAPSHOT_KEY, codec::encode(&stored).expect("encode"))
            .expect("insert");
        store.flush_blocking().expect("flush");
    }
    for _ in 0..2 {
        let store = Store::open(dir.path()).expect("store");
        let (mut sm, _) = SledStateMachine::open(store).expect("open");
        assert!(sm.tree.get(SNAPSHOT_KEY).expect("get").is_none());
        let current = sm
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(current.snapshot, stored.data);
    }
}

fn rooms_then() -> BTreeMap<Namespace, NamespaceSpec> {
    let spec = NamespaceSpec {
        name: "rooms".into(),
        policy: Default::default(),
        created_at_ms: 0,
    };
    BTreeMap::from([("rooms".into(), spec)])
}

/// A directory of the placements of `state` as stored before generations.
fn directory_then(state: &AppliedState) -> DirectoryRecordsV1 {
    DirectoryRecordsV1 {
        nodes: BTreeMap::new(),
        namespaces: rooms_then(),
        deleted_namespaces: BTreeSet::from(["gone".into()]),
        placements: state.directory.placements().clone(),
    }
}

/// Stores `then` as the current snapshot, as the version before generations did,
/// and flushes.
fn store_snapshot_then(store: &Store, then: &DirectoryRecordsV1) {
    let snapshot = StoredSnapshot {
        meta: SnapshotMeta::default(),
        data: codec::encode(then).expect("encode"),
    };
    let snapshots = store.tree(SNAPSHOT_TREE).expect("tree");
    snapshots
        .insert(SNAPSHOT_KEY, codec::encode(&snapshot).expect("encode"))
        .expect("insert");
    store.flush_blocking().expect("flush");
}

/// Opens the state machine in `dir` twice (the upgrade, then today's layout) and
/// checks it holds `expected`, with an upgraded snapshot.
async fn reopens_as(dir: &std::path::Path, expected: &AppliedState) {
    for _ in 0..2 {
        let store = Store::open(dir).expect("store");
        let (mut sm, reader) = SledStateMachine::open(store).expect("open");
        assert_eq!(reader.snapshot().await, expected.directory);
        for old in [APPLIED_KEY_V1, APPLIED_KEY_V2] {
            assert!(sm.tree.get(old).expect("get").is_none());
        }
        assert_eq!(sm.tree.scan_prefix(PLACEMENT_PREFIX).count(), 2);
        let snapshot = sm
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("kept");
        let directory: DirectoryState = codec::decode(&snapshot.snapshot).expect("decode");
        assert_eq!(directory, expected.directory);
    }
}

#[tokio::test]
async fn a_directory_in_the_earlier_single_record_layout_is_moved_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = with_placements(&["a", "b"]);
    {
        let store = Store::open(dir.path()).expect("store");
        let tree = store.tree(SM_TREE).expect("tree");
        let then = AppliedStateV1 {
            last_applied: state.last_applied,
            last_membership: state.last_membership.clone(),
            directory: directory_then(&state),
        };
        tree.insert(APPLIED_KEY_V1, codec::encode(&then).expect("encode"))
            .expect("insert");
        store_snapshot_then(&store, &then.directory);
    }
    reopens_as(dir.path(), &state).await;
}

#[tokio::test]
async fn a_directory_from_before_namespace_generations_is_moved_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = with_placements(&["a", "b"]);
    {
        let store = Store::open(dir.path()).expect("store");
        let tree = store.tree(SM_TREE).expect("tree");
        let head = AppliedHeadV2 {
            last_applied: state.last_applied,
            last_membership: state.last_membership.clone(),
            nodes: BTreeMap::new(),
            namespaces: rooms_then(),
            deleted_namespaces: BTreeSet::from(["gone".into()]),
        };
        tree.insert(APPLIED_KEY_V2, codec::encode(&head).expect("encode"))
            .expect("insert");
        for (key, placement) in state.directory.placements() {
            let raw = codec::encode(placement).expect("encode");
            tree.insert(placement_key(key).expect("key"), raw)
                .expect("insert");
        }
        store_snapshot_then(&store, &directory_then(&state));
    }
    reopens_as(dir.path(), &state).await;
}

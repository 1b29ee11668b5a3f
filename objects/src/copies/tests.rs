//! The copy store on a real (sled) store: fencing, order, transfer, alarms, events.
use larder_base::Epoch;
use larder_directory::ObjectKey;
use larder_store::Store;

use super::*;
use crate::op::Op;
use crate::state::REQUEST_IDS_KEPT;
use crate::{Mutation, ObjectLimits, ObjectState};

fn key() -> ObjectKey {
    ObjectKey {
        namespace: "rooms".into(),
        id: "room-1".into(),
    }
}

/// The copy's answer to the owner's writes from `version` on, as the owner of `epoch`
/// sends them.
async fn offer(
    objects: &ObjectStore,
    epoch: Epoch,
    version: u64,
    writes: &[Vec<Mutation>],
) -> ApplyOutcome {
    objects
        .apply(&key(), epoch, version, writes)
        .await
        .expect("apply")
}

fn put(k: &str, v: &str) -> Vec<Vec<Mutation>> {
    vec![vec![Mutation::Put {
        key: k.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    }]]
}

#[tokio::test]
async fn writes_apply_in_order_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
        assert_eq!(
            offer(&objects, Epoch(1), 1, &put("a", "1")).await,
            ApplyOutcome::Applied { version: 1 }
        );
        assert_eq!(
            offer(&objects, Epoch(1), 3, &put("b", "3")).await,
            ApplyOutcome::Gap { have: 1 }
        );
        assert_eq!(
            offer(&objects, Epoch(1), 2, &put("b", "2")).await,
            ApplyOutcome::Applied { version: 2 }
        );
        // A retried write is acknowledged again, not applied twice.
        assert_eq!(
            offer(&objects, Epoch(1), 2, &put("b", "x")).await,
            ApplyOutcome::AlreadyApplied { version: 2 }
        );
    }
    let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
    let (meta, state) = objects.load(&key()).expect("cold start");
    assert_eq!((meta.epoch, meta.version), (Epoch(1), 2));
    let (reply, _) = state
        .execute(
            &Op::Get {
                keys: vec![b"a".to_vec(), b"b".to_vec()],
            },
            &ObjectLimits::default(),
        )
        .expect("get");
    assert_eq!(format!("{reply:?}").matches("version: ").count(), 2);
    assert_eq!(state.entries()[&b"b".to_vec()].value, b"2".to_vec());
}

#[tokio::test]
async fn request_ids_survive_reopen_and_state_transfer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
    let limits = ObjectLimits::default();
    let add = Op::Add {
        key: b"n".to_vec(),
        delta: 1,
    };
    let (_, mutations) = ObjectState::default()
        .execute_request(&add, Some("r1"), &limits)
        .expect("add");
    offer(&objects, Epoch(1), 1, &[mutations]).await;
    let (_, loaded) = objects.load(&key()).expect("load");
    assert_eq!(loaded.recent().len(), 1);
    let (_, again) = loaded
        .execute_request(&add, Some("r1"), &limits)
        .expect("retry");
    assert!(again.is_empty(), "a retry changes nothing");
    let other = ObjectKey {
        namespace: "rooms".into(),
        id: "copy".into(),
    };
    objects
        .install(&other, Epoch(2), &loaded)
        .await
        .expect("install");
    assert_eq!(objects.load(&other).expect("load").1.recent().len(), 1);
}

/// A move fences the copies at e+1 and installs its state there; the owner, refused,
/// reclaims e+1 through the directory and writes on. The mover's install, arriving
/// after those writes, must not roll the copy back to its older state.
#[tokio::test]
async fn an_install_behind_the_writes_of_its_own_epoch_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
    let mut moved = ObjectState::default();
    moved.apply(&put("a", "1")[0]);
    objects
        .fence(&key(), Epoch(2))
        .await
        .expect("the mover fences");
    // The owner reclaims epoch 2: its install, then a write.
    let installed = objects
        .install(&key(), Epoch(2), &moved)
        .await
        .expect("install");
    assert!(matches!(
        installed,
        ApplyOutcome::Installed { version: 1, .. }
    ));
    assert_eq!(
        offer(&objects, Epoch(2), 2, &put("a", "2")).await,
        ApplyOutcome::Applied { version: 2 }
    );
    // The mover's install of version 1 at epoch 2 comes late.
    assert_eq!(
        objects
            .install(&key(), Epoch(2), &moved)
            .await
            .expect("install"),
        ApplyOutcome::Fenced { epoch: Epoch(2) }
    );
    let (meta, state) = objects.load(&key()).expect("load");
    assert_eq!(meta.version, 2);
    assert_eq!(state.entries()[&b"a".to_vec()].value, b"2".to_vec());
    // A newer epoch's install still takes.
    assert!(matches!(
        objects
            .install(&key(), Epoch(3), &moved)
            .await
            .expect("install"),
        ApplyOutcome::Installed { .. }
    ));
}

#[tokio::test]
async fn an_older_epoch_is_fenced_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
    offer(&objects, Epoch(1), 1, &put("a", "old owner")).await;
    // A new owner (epoch 2) takes over and installs its state.
    let mut state = ObjectState::default();
    state.apply(&put("a", "new owner")[0]);
    objects.fence(&key(), Epoch(2)).await.expect("fence");
    // The deposed owner's next write is refused, before and after the install.
    assert_eq!(
        offer(&objects, Epoch(1), 2, &put("a", "late")).await,
        ApplyOutcome::Fenced { epoch: Epoch(2) }
    );
    // The copy accepted the old owner's write a moment ago: little quiet time to
    // credit. Installed again in the same epoch (a failover installs before the new
    // owner does), it still reports the time since the old owner, not since the
    // first install.
    for _ in 0..2 {
        assert!(matches!(
            objects.install(&key(), Epoch(2), &state).await.expect("install"),
            ApplyOutcome::Installed { version: 1, quiet_ms } if quiet_ms < 1000
        ));
    }
    // A copy that never held the object accepted nothing from anyone.
    let fresh = ObjectKey {
        namespace: "rooms".into(),
        id: "fresh".into(),
    };
    assert_eq!(
        objects
            .install(&fresh, Epoch(2), &state)
            .await
            .expect("install"),
        ApplyOutcome::Installed {
            version: 1,
            quiet_ms: u64::MAX
        }
    );
    assert_eq!(
        objects
            .install(&key(), Epoch(1), &state)
            .await
            .expect("install"),
        ApplyOutcome::Fenced { epoch: Epoch(2) }
    );
    assert_eq!(
        offer(&objects, Epoch(2), 2, &put("b", "next")).await,
        ApplyOutcome::Applied { version: 2 }
    );
    let (_, loaded) = objects.load(&key()).expect("load");
    assert_eq!(
        loaded.entries()[&b"a".to_vec()].value,
        b"new owner".to_vec()
    );
}

#[tokio::test]
async fn a_new_owners_first_write_needs_a_state_transfer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
    offer(&objects, Epoch(1), 1, &put("a", "1")).await;
    // Epoch 2 writes version 2 without installing first: the copy cannot tell whether
    // its version 1 is the new owner's version 1.
    assert_eq!(
        offer(&objects, Epoch(2), 2, &put("a", "2")).await,
        ApplyOutcome::Gap { have: 1 }
    );
    // Having seen epoch 2, the copy no longer accepts the old owner's writes.
    assert_eq!(
        offer(&objects, Epoch(1), 2, &put("a", "late")).await,
        ApplyOutcome::Fenced { epoch: Epoch(2) }
    );
    let mut state = ObjectState::default();
    state.apply(&put("a", "1")[0]);
    objects
        .install(&key(), Epoch(2), &state)
        .await
        .expect("install");
    let delete_all = vec![vec![Mutation::DeleteAll]];
    assert_eq!(
        offer(&objects, Epoch(2), 2, &delete_all).await,
        ApplyOutcome::Applied { version: 2 }
    );
    assert!(objects.load(&key()).expect("load").1.is_empty());
}

#[tokio::test]
async fn alarms_and_events_are_stored_indexed_and_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = ObjectLimits::default();
    let mut owner = ObjectState::default();
    let ops = [
        Op::SetAlarm {
            name: "soon".into(),
            at_ms: 50,
            payload: b"p".to_vec(),
        },
        Op::SetAlarm {
            name: "later".into(),
            at_ms: 90,
            payload: Vec::new(),
        },
        Op::Publish {
            payload: b"hello".to_vec(),
            at_ms: 1,
        },
        Op::FireAlarms { now_ms: 60 },
    ];
    {
        let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
        for (version, op) in (1..).zip(ops) {
            let (_, mutations) = owner.execute(&op, &limits).expect("execute");
            owner.apply(&mutations);
            offer(&objects, Epoch(1), version, &[mutations]).await;
        }
        assert_eq!(objects.alarm_index().due(100, 10), vec![key()]);
        assert_eq!(objects.alarm_index().next_due(), Some(90));
    }
    let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
    // The index is rebuilt from disk, and the stored copy equals the owner's state.
    assert_eq!(objects.alarm_index().next_due(), Some(90));
    assert!(objects.alarm_index().due(89, 10).is_empty());
    let (_, loaded) = objects.load(&key()).expect("load");
    assert_eq!(loaded, owner);
    assert_eq!(loaded.last_event_seq(), 2);
    // A replica that takes the state by transfer indexes it too; dropping forgets it.
    let other = ObjectKey {
        namespace: "rooms".into(),
        id: "copy".into(),
    };
    objects
        .install(&other, Epoch(2), &loaded)
        .await
        .expect("install");
    assert_eq!(objects.alarm_index().due(100, 10).len(), 2);
    objects.drop_copy(&other, Epoch(2)).await.expect("drop");
    objects.drop_copy(&key(), Epoch(1)).await.expect("drop");
    assert_eq!(objects.alarm_index().next_due(), None);
    assert!(!objects.holds(&key()).expect("holds"));
}

#[tokio::test]
async fn a_round_of_several_writes_applies_in_order_and_retries_skip_what_is_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
    let one = |k: &str, v: &str| put(k, v).remove(0);
    let round = vec![
        one("a", "1"),
        one("b", "2"),
        vec![Mutation::DeleteAll],
        one("c", "3"),
    ];
    assert_eq!(
        offer(&objects, Epoch(1), 1, &round[..2]).await,
        ApplyOutcome::Applied { version: 2 }
    );
    // The whole round again (a retry after a timeout): versions 1 and 2 are held.
    assert_eq!(
        offer(&objects, Epoch(1), 1, &round).await,
        ApplyOutcome::Applied { version: 4 }
    );
    let (meta, state) = objects.load(&key()).expect("load");
    assert_eq!(meta.version, 4);
    assert_eq!(
        state.entries().keys().cloned().collect::<Vec<_>>(),
        vec![b"c".to_vec()],
        "the delete-all of write 3 removed what writes 1 and 2 put"
    );
    // Pings: at the held version, acknowledged; ahead of it, a gap.
    assert_eq!(
        offer(&objects, Epoch(1), 4, &[]).await,
        ApplyOutcome::AlreadyApplied { version: 4 }
    );
    assert_eq!(
        offer(&objects, Epoch(1), 5, &[]).await,
        ApplyOutcome::Gap { have: 4 }
    );
}

#[tokio::test]
async fn remembered_request_ids_are_bounded_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
    let limits = ObjectLimits::default();
    let mut owner = ObjectState::default();
    let add = Op::Add {
        key: b"n".to_vec(),
        delta: 1,
    };
    for version in 1..=(REQUEST_IDS_KEPT as u64 + 100) {
        let id = format!("r{version}");
        let (_, mutations) = owner
            .execute_request(&add, Some(&id), &limits)
            .expect("add");
        owner.apply(&mutations);
        offer(&objects, Epoch(1), version, &[mutations]).await;
    }
    let (_, loaded) = objects.load(&key()).expect("load");
    assert_eq!(loaded.recent(), owner.recent());
    assert_eq!(loaded.recent().len(), REQUEST_IDS_KEPT);
    assert_eq!(
        objects
            .tree
            .scan_prefix(super::records::object_prefix(
                super::records::REMEMBERED,
                &key()
            ))
            .count(),
        REQUEST_IDS_KEPT
    );
}

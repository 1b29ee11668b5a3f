//! What survives the process: flushes, restarts and a flush that fails.

use larder_store::{Batch, StoreError};

use crate::{Engine, Pairs, Survivors, block_on, contents};

fn pairs(entries: &[(&[u8], &[u8])]) -> Pairs {
    entries
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// Both flush forms make every write issued before them durable, in every tree: a
/// restart that keeps no unflushed write still has them.
pub fn a_flush_makes_every_earlier_write_durable<E: Engine>() {
    let mut engine = E::new();
    {
        let store = engine.store();
        let (a, b) = (
            store.tree("a").expect("tree"),
            store.tree("b").expect("tree"),
        );
        a.insert(b"1", b"x").expect("insert");
        let mut batch = Batch::default();
        batch.insert(b"2", b"y");
        batch.insert(b"3", b"z");
        b.apply_batch(batch).expect("batch");
        store.flush_blocking().expect("blocking flush");
        a.remove(b"1").expect("remove");
        a.insert(b"4", b"w").expect("insert");
        block_on(store.flush()).expect("async flush");
    }
    engine.restart(0);
    let store = engine.store();
    assert_eq!(
        contents(&store.tree("a").expect("tree")),
        pairs(&[(b"4", b"w")])
    );
    assert_eq!(
        contents(&store.tree("b").expect("tree")),
        pairs(&[(b"2", b"y"), (b"3", b"z")])
    );
    // A flush with nothing to write is no error, and a second restart loses nothing.
    store.flush_blocking().expect("empty flush");
    drop(store);
    engine.restart(0);
    assert_eq!(engine.store().tree("b").expect("tree").len(), 2);
}

/// After a restart: everything flushed, then of the unflushed writes (a batch counts as
/// one) a prefix, never a later one without an earlier, never part of a batch. What a
/// restart kept is durable for the next one.
pub fn a_restart_keeps_flushed_writes_and_a_prefix_of_whole_batches<E: Engine>() {
    for kept in 0..=4 {
        let mut engine = E::new();
        {
            let store = engine.store();
            let tree = store.tree("t").expect("tree");
            tree.insert(b"a", b"1").expect("insert");
            store.flush_blocking().expect("flush");
            tree.insert(b"b", b"2").expect("insert");
            let mut batch = Batch::default();
            batch.insert(b"c", b"3");
            batch.remove(b"a");
            tree.apply_batch(batch).expect("batch");
            tree.insert(b"d", b"4").expect("insert");
        }
        // The contents after 0, 1, 2 and 3 of the unflushed writes.
        let prefixes = [
            pairs(&[(b"a", b"1")]),
            pairs(&[(b"a", b"1"), (b"b", b"2")]),
            pairs(&[(b"b", b"2"), (b"c", b"3")]),
            pairs(&[(b"b", b"2"), (b"c", b"3"), (b"d", b"4")]),
        ];
        let survivors = engine.restart(kept);
        let found = contents(&engine.store().tree("t").expect("tree"));
        match survivors {
            Survivors::Exactly(n) => {
                assert_eq!(n, kept.min(3));
                assert_eq!(found, prefixes[n], "keeping {kept}");
            }
            Survivors::SomePrefix => assert!(prefixes.contains(&found), "{found:?}"),
        }
        engine.restart(0);
        assert_eq!(
            contents(&engine.store().tree("t").expect("tree")),
            found,
            "kept by the first restart"
        );
    }
}

/// Concurrent flushes share work (group commit) and every caller returns.
pub fn flushes_from_many_tasks_complete<E: Engine>() {
    let engine = E::new();
    let store = engine.store();
    let tree = store.tree("t").expect("tree");
    block_on(async {
        let mut tasks = Vec::new();
        for i in 0u32..32 {
            let (store, tree) = (store.clone(), tree.clone());
            tasks.push(tokio::spawn(async move {
                tree.insert(i.to_be_bytes(), i.to_le_bytes())
                    .expect("insert");
                store.flush().await.expect("flush");
            }));
        }
        for task in tasks {
            tokio::time::timeout(std::time::Duration::from_secs(30), task)
                .await
                .expect("flush must not hang")
                .expect("task");
        }
    });
    assert_eq!(tree.len(), 32);
}

/// Fail-stop: a failed flush is announced on the health watch, and every later flush of
/// that store fails at once, even once the disk would take it again.
pub fn a_failed_flush_is_final_and_announced<E: Engine>() {
    let engine = E::new();
    let store = engine.store();
    let mut failure = store.health().failure();
    store
        .tree("t")
        .expect("tree")
        .insert(b"k", b"v")
        .expect("insert");
    block_on(store.flush()).expect("healthy flush");
    assert!(failure.borrow_and_update().is_none());

    engine.break_flushes();
    let err = block_on(store.flush()).expect_err("a broken disk");
    assert!(matches!(err, StoreError::Io(_)), "{err}");
    assert!(failure.has_changed().expect("sender alive"), "announced");
    let reason = failure.borrow_and_update().clone().expect("a reason");
    assert_eq!(reason, err.to_string());

    engine.heal_flushes();
    let err = block_on(store.flush()).expect_err("latched");
    assert!(
        matches!(&err, StoreError::Failed(latched) if *latched == reason),
        "{err}"
    );
}

//! Batches: several changes to one tree that apply together.

use larder_store::Batch;

use crate::{Engine, contents};

pub fn a_batch_applies_whole<E: Engine>() {
    let engine = E::new();
    let tree = engine.store().tree("t").expect("tree");
    tree.insert(b"gone", b"0").expect("insert");
    tree.insert(b"kept", b"0").expect("insert");
    let mut batch = Batch::default();
    for i in [3u64, 1, 2] {
        batch.insert(i.to_be_bytes(), i.to_string());
    }
    batch.remove(b"gone");
    batch.remove(b"never-there");
    tree.apply_batch(batch).expect("batch");
    let keys: Vec<Vec<u8>> = contents(&tree).into_iter().map(|(k, _)| k).collect();
    let mut expected: Vec<Vec<u8>> = [1u64, 2, 3].map(|i| i.to_be_bytes().to_vec()).into();
    expected.push(b"kept".to_vec());
    assert_eq!(keys, expected);
    assert_eq!(
        tree.get(3u64.to_be_bytes()).expect("get"),
        Some(b"3".to_vec())
    );

    tree.apply_batch(Batch::default())
        .expect("an empty batch changes nothing");
    assert_eq!(tree.len(), 4);
}

/// Changes to one key inside a batch apply in order: the last one stands.
pub fn later_changes_in_a_batch_win<E: Engine>() {
    let engine = E::new();
    let tree = engine.store().tree("t").expect("tree");
    tree.insert(b"revived", b"old").expect("insert");
    let mut batch = Batch::default();
    batch.insert(b"twice", b"first");
    batch.insert(b"twice", b"second");
    batch.insert(b"removed", b"v");
    batch.remove(b"removed");
    batch.remove(b"revived");
    batch.insert(b"revived", b"new");
    tree.apply_batch(batch).expect("batch");
    assert_eq!(
        contents(&tree),
        vec![
            (b"revived".to_vec(), b"new".to_vec()),
            (b"twice".to_vec(), b"second".to_vec()),
        ]
    );
}

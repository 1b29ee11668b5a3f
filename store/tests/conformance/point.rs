//! Key order and single-key reads and writes.

use crate::{Engine, contents};

/// Keys sort by their bytes, unsigned, shorter first on a common prefix: big-endian
/// integers sort as numbers.
pub fn keys_sort_by_bytes<E: Engine>() {
    let engine = E::new();
    let tree = engine.store().tree("t").expect("tree");
    let keys: [&[u8]; 7] = [b"\xff", b"b", b"\x00\x00", b"", b"\x00", b"ab", b"a"];
    for key in keys {
        tree.insert(key, b"v").expect("insert");
    }
    let stored: Vec<Vec<u8>> = contents(&tree).into_iter().map(|(k, _)| k).collect();
    let mut expected: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    expected.sort();
    assert_eq!(stored, expected);
    assert_eq!(stored[0], b"".to_vec(), "the empty key sorts first");

    let numbers = engine.store().tree("numbers").expect("tree");
    for n in [256u64, 1, 65_536, 0, 255] {
        numbers.insert(n.to_be_bytes(), b"").expect("insert");
    }
    let sorted: Vec<u64> = contents(&numbers)
        .into_iter()
        .map(|(k, _)| u64::from_be_bytes(k.try_into().expect("8 bytes")))
        .collect();
    assert_eq!(sorted, vec![0, 1, 255, 256, 65_536]);
}

pub fn get_insert_overwrite_and_remove<E: Engine>() {
    let engine = E::new();
    let tree = engine.store().tree("t").expect("tree");
    assert_eq!(tree.get(b"k").expect("get"), None);
    tree.insert(b"k", b"one").expect("insert");
    assert_eq!(tree.get(b"k").expect("get"), Some(b"one".to_vec()));
    tree.insert(b"k", b"two").expect("overwrite");
    assert_eq!(tree.get(b"k").expect("get"), Some(b"two".to_vec()));
    tree.insert(b"empty", b"").expect("an empty value");
    assert_eq!(tree.get(b"empty").expect("get"), Some(Vec::new()));
    let large = vec![7u8; 1 << 20];
    tree.insert(b"large", &large).expect("a MiB value");
    assert_eq!(tree.get(b"large").expect("get"), Some(large));

    tree.remove(b"k").expect("remove");
    assert_eq!(tree.get(b"k").expect("get"), None);
    tree.remove(b"never-there")
        .expect("removing an absent key is no error");
    // A handle opened later on the same tree sees the same contents.
    let again = engine.store().tree("t").expect("tree");
    assert_eq!(again.get(b"empty").expect("get"), Some(Vec::new()));
    assert_eq!(again.len(), 2);
}

pub fn first_last_len_and_clear<E: Engine>() {
    let engine = E::new();
    let tree = engine.store().tree("t").expect("tree");
    assert!(tree.is_empty());
    assert_eq!(tree.len(), 0);
    assert_eq!(tree.first().expect("first"), None);
    assert_eq!(tree.last().expect("last"), None);
    for (k, v) in [(b"m", b"2"), (b"a", b"1"), (b"z", b"3")] {
        tree.insert(k, v).expect("insert");
    }
    assert!(!tree.is_empty());
    assert_eq!(tree.len(), 3);
    assert_eq!(
        tree.first().expect("first"),
        Some((b"a".to_vec(), b"1".to_vec()))
    );
    assert_eq!(
        tree.last().expect("last"),
        Some((b"z".to_vec(), b"3".to_vec()))
    );

    tree.clear().expect("clear");
    assert!(tree.is_empty());
    assert_eq!(tree.first().expect("first"), None);
    assert_eq!(contents(&tree), Vec::new());
    tree.insert(b"b", b"after")
        .expect("a cleared tree takes writes");
    assert_eq!(tree.len(), 1);
}

/// The same key in two trees is two entries; reads, scans, `len` and `clear` see one tree.
pub fn trees_are_kept_apart<E: Engine>() {
    let engine = E::new();
    let store = engine.store();
    let (a, b) = (
        store.tree("a").expect("tree"),
        store.tree("b").expect("tree"),
    );
    a.insert(b"k", b"in a").expect("insert");
    b.insert(b"k", b"in b").expect("insert");
    b.insert(b"k2", b"only in b").expect("insert");
    assert_eq!(a.get(b"k").expect("get"), Some(b"in a".to_vec()));
    assert_eq!(b.get(b"k").expect("get"), Some(b"in b".to_vec()));
    assert_eq!(a.get(b"k2").expect("get"), None);
    assert_eq!((a.len(), b.len()), (1, 2));
    assert_eq!(crate::rows(a.scan_prefix(b"k")).len(), 1);
    assert_eq!(
        store.tree("c").expect("tree").len(),
        0,
        "a new tree starts empty"
    );

    a.remove(b"k").expect("remove");
    assert_eq!(b.get(b"k").expect("get"), Some(b"in b".to_vec()));
    a.insert(b"x", b"1").expect("insert");
    b.clear().expect("clear");
    assert_eq!(contents(&a), vec![(b"x".to_vec(), b"1".to_vec())]);
}

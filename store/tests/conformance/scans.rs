//! Range and prefix scans, in both directions.

use std::ops::Bound::{self, Excluded, Included, Unbounded};

use larder_store::Tree;

use crate::{Engine, Pairs, rows};

/// A tree holding `a`, `b`, `ba`, `bb`, `b\xff`, `b\xff\xff`, `c` (value: the key).
fn sample<E: Engine>(engine: &E) -> Tree {
    let tree = engine.store().tree("t").expect("tree");
    for key in [&b"c"[..], b"a", b"b\xff\xff", b"ba", b"b", b"bb", b"b\xff"] {
        tree.insert(key, key).expect("insert");
    }
    tree
}

fn keys(pairs: Pairs) -> Vec<Vec<u8>> {
    pairs.into_iter().map(|(k, _)| k).collect()
}

fn range(tree: &Tree, bounds: (Bound<&[u8]>, Bound<&[u8]>)) -> Vec<Vec<u8>> {
    keys(rows(tree.range::<&[u8], _>(bounds)))
}

fn prefix(tree: &Tree, prefix: &[u8]) -> Vec<Vec<u8>> {
    keys(rows(tree.scan_prefix(prefix)))
}

fn owned(keys: &[&[u8]]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| k.to_vec()).collect()
}

pub fn ranges_honour_every_kind_of_bound<E: Engine>() {
    let engine = E::new();
    let tree = sample(&engine);
    let (b, bb, c): (&[u8], &[u8], &[u8]) = (b"b", b"bb", b"c");
    assert_eq!(
        range(&tree, (Included(b), Included(bb))),
        owned(&[b"b", b"ba", b"bb"])
    );
    assert_eq!(range(&tree, (Excluded(b), Excluded(bb))), owned(&[b"ba"]));
    assert_eq!(
        range(&tree, (Included(bb), Unbounded)),
        owned(&[b"bb", b"b\xff", b"b\xff\xff", b"c"])
    );
    assert_eq!(range(&tree, (Unbounded, Excluded(b))), owned(&[b"a"]));
    assert_eq!(range(&tree, (Unbounded, Unbounded)).len(), 7);
    // Bounds need not be keys that exist.
    assert_eq!(
        range(
            &tree,
            (Included(&b"b\x00"[..]), Excluded(&b"b\xff\x00"[..]))
        ),
        owned(&[b"ba", b"bb", b"b\xff"])
    );
    // The `RangeBounds` forms callers write.
    assert_eq!(keys(rows(tree.range(c..))), owned(&[b"c"]));
    assert_eq!(keys(rows(tree.range(b..=b))), owned(&[b"b"]));
    assert_eq!(
        keys(rows(tree.range(2u64.to_be_bytes()..))).len(),
        7,
        "every key here sorts after [0, 0, 0, 0, 0, 0, 0, 2]"
    );
}

/// Start past end, or an empty half-open range: no rows (and no panic).
pub fn crossed_and_empty_ranges_are_empty<E: Engine>() {
    let engine = E::new();
    let tree = sample(&engine);
    let (a, b, c): (&[u8], &[u8], &[u8]) = (b"a", b"b", b"c");
    for bounds in [
        (Included(c), Included(a)),
        (Included(c), Excluded(a)),
        (Excluded(c), Included(a)),
        (Included(b), Excluded(b)),
        (Excluded(b), Included(b)),
        (Excluded(b), Excluded(b)),
    ] {
        assert_eq!(range(&tree, bounds), Vec::<Vec<u8>>::new(), "{bounds:?}");
        assert_eq!(
            tree.range::<&[u8], _>(bounds)
                .next_back()
                .map(|r| r.is_ok()),
            None,
            "{bounds:?} backwards"
        );
    }
    assert_eq!(range(&tree, (Included(b), Included(b))), owned(&[b"b"]));
    let empty = engine.store().tree("empty").expect("tree");
    assert_eq!(range(&empty, (Unbounded, Unbounded)), Vec::<Vec<u8>>::new());
    assert_eq!(prefix(&empty, b""), Vec::<Vec<u8>>::new());
}

pub fn prefix_scans_stop_at_the_prefix<E: Engine>() {
    let engine = E::new();
    let tree = sample(&engine);
    assert_eq!(
        prefix(&tree, b"b"),
        owned(&[b"b", b"ba", b"bb", b"b\xff", b"b\xff\xff"])
    );
    assert_eq!(
        prefix(&tree, b"b\xff"),
        owned(&[b"b\xff", b"b\xff\xff"]),
        "a prefix ending in 0xff"
    );
    assert_eq!(prefix(&tree, b"ba"), owned(&[b"ba"]));
    assert_eq!(prefix(&tree, b"bc"), Vec::<Vec<u8>>::new());
    assert_eq!(prefix(&tree, b"d"), Vec::<Vec<u8>>::new());
    assert_eq!(
        prefix(&tree, b"").len(),
        7,
        "the empty prefix is everything"
    );
    let pairs = rows(tree.scan_prefix(b"bb"));
    assert_eq!(
        pairs,
        vec![(b"bb".to_vec(), b"bb".to_vec())],
        "values come along"
    );
}

/// `rev()` gives the same rows in reverse; `next` and `next_back` on one iterator meet in
/// the middle without skipping or repeating a row.
pub fn scans_run_backwards_and_from_both_ends<E: Engine>() {
    let engine = E::new();
    let tree = sample(&engine);
    let (b, c): (&[u8], &[u8]) = (b"b", b"c");
    let mut forwards = range(&tree, (Included(b), Excluded(c)));
    forwards.reverse();
    assert_eq!(
        keys(rows(
            tree.range::<&[u8], _>((Included(b), Excluded(c))).rev()
        )),
        forwards
    );
    let mut by_prefix = prefix(&tree, b"b");
    by_prefix.reverse();
    assert_eq!(keys(rows(tree.scan_prefix(b"b").rev())), by_prefix);
    assert_eq!(
        tree.range::<&[u8], _>(..)
            .next_back()
            .expect("a row")
            .expect("row")
            .0,
        b"c".to_vec(),
        "next_back of everything is the last key"
    );

    let mut scan = tree.scan_prefix(b"b");
    let mut seen = Vec::new();
    let mut front = true;
    loop {
        let row = if front { scan.next() } else { scan.next_back() };
        let Some(row) = row else { break };
        seen.push(row.expect("row").0);
        front = !front;
    }
    assert_eq!(
        seen,
        owned(&[b"b", b"b\xff\xff", b"ba", b"b\xff", b"bb"]),
        "alternating ends"
    );
}

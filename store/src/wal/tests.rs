//! The log against the crashes it is for. A crash is staged by copying files: sled's as
//! of one moment, the log's as of a later one — what a power loss leaves when sled's
//! writes since its last checkpoint never reached the disk but the synced log did.

use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::{Batch, Store};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

fn value(tree: &crate::Tree, key: &str) -> Option<String> {
    tree.get(key)
        .expect("get")
        .map(|v| String::from_utf8(v).expect("utf-8"))
}

/// A store whose sled files hold `base` (durable: the store was closed) and whose log
/// holds what `then` wrote and synced afterwards, sled's copy of it lost.
fn crashed_after(
    base: impl FnOnce(&Store),
    then: impl FnOnce(&Store),
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    let crashed = dir.path().join("crashed");
    {
        let store = Store::open(&live).expect("open");
        base(&store);
        store.flush_blocking().expect("flush");
        checkpoint(&store);
    }
    copy_dir(&live, &crashed);
    {
        let store = Store::open(&live).expect("reopen");
        then(&store);
        store.flush_blocking().expect("flush");
        std::fs::remove_dir_all(crashed.join(DIR)).expect("drop the old log");
        copy_dir(&live.join(DIR), &crashed.join(DIR));
    }
    (dir, crashed)
}

/// Makes sled durable as it stands (the log before it is deleted).
fn checkpoint(store: &Store) {
    store
        .wal()
        .expect("a sled store")
        .checkpoint()
        .expect("checkpoint");
}

fn only_segment(store_dir: &Path) -> PathBuf {
    let segments = list_segments(&store_dir.join(DIR)).expect("list");
    assert_eq!(segments.len(), 1, "one segment: {segments:?}");
    segments[0].1.clone()
}

/// Where the records of a segment end (the zero-filled space follows).
fn records_end(segment: &[u8]) -> usize {
    let mut offset = SEGMENT_HEADER_LEN;
    let mut payload = Vec::new();
    loop {
        let mut rest = &segment[offset..];
        let remaining = rest.len() as u64;
        match read_record(&mut rest, remaining, &mut payload).expect("read") {
            Framed::Record(len) => offset += RECORD_HEADER_LEN + len,
            _ => return offset,
        }
    }
}

fn write_ten(store: &Store) {
    let tree = store.tree("t").expect("tree");
    for i in 0..10 {
        tree.insert(format!("k{i}"), format!("v{i}"))
            .expect("insert");
    }
}

#[test]
fn a_crash_keeps_every_synced_write_sled_had_not_made_durable() {
    let (_dir, crashed) = crashed_after(
        |store| {
            let tree = store.tree("a").expect("tree");
            tree.insert("old", "1").expect("insert");
            tree.insert("gone", "1").expect("insert");
        },
        |store| {
            let a = store.tree("a").expect("tree");
            a.insert("old", "2").expect("insert");
            a.remove("gone").expect("remove");
            let mut batch = Batch::default();
            batch.insert("x", "1");
            batch.insert("y", vec![7u8; 300_000]); // a value sled keeps as a blob file
            store
                .tree("b")
                .expect("tree")
                .apply_batch(batch)
                .expect("batch");
        },
    );
    let store = Store::open(&crashed).expect("open the crashed copy");
    let (a, b) = (store.tree("a").expect("a"), store.tree("b").expect("b"));
    assert_eq!(value(&a, "old").as_deref(), Some("2"));
    assert_eq!(value(&a, "gone"), None);
    assert_eq!(value(&b, "x").as_deref(), Some("1"));
    assert_eq!(b.get("y").expect("get"), Some(vec![7u8; 300_000]));
    // What was replayed is durable in sled now: the log starts afresh and a second
    // open finds the same.
    drop((a, b, store));
    let store = Store::open(&crashed).expect("open again");
    assert_eq!(
        value(&store.tree("a").expect("a"), "old").as_deref(),
        Some("2")
    );
}

#[test]
fn a_log_over_several_extensions_replays_whole() {
    let big = |i: u8| vec![i; 700_000];
    let (_dir, crashed) = crashed_after(
        |_| {},
        |store| {
            let tree = store.tree("t").expect("tree");
            for i in 0..5 {
                tree.insert([i], big(i)).expect("insert");
                store.flush_blocking().expect("flush");
            }
        },
    );
    let segment = std::fs::metadata(only_segment(&crashed))
        .expect("stat")
        .len();
    assert!(
        segment >= 4 * EXTEND_BYTES,
        "{segment} bytes: the segment grew in steps"
    );
    let store = Store::open(&crashed).expect("open");
    let tree = store.tree("t").expect("tree");
    for i in 0..5 {
        assert_eq!(tree.get([i]).expect("get"), Some(big(i)));
    }
}

#[test]
fn a_torn_last_record_is_dropped_and_the_records_before_it_kept() {
    for damage in ["truncate", "flip"] {
        let (_dir, crashed) = crashed_after(|_| {}, write_ten);
        let segment = only_segment(&crashed);
        let bytes = std::fs::read(&segment).expect("read");
        let end = records_end(&bytes);
        let torn = match damage {
            "truncate" => bytes[..end - 3].to_vec(),
            _ => {
                let mut flipped = bytes.clone();
                flipped[end - 2] ^= 0x40;
                flipped
            }
        };
        std::fs::write(&segment, torn).expect("tear");
        let store = Store::open(&crashed).expect("a torn tail opens");
        let tree = store.tree("t").expect("tree");
        for i in 0..9 {
            assert_eq!(
                value(&tree, &format!("k{i}")),
                Some(format!("v{i}")),
                "{damage}"
            );
        }
        assert_eq!(
            value(&tree, "k9"),
            None,
            "{damage}: the torn record is gone"
        );
    }
}

#[test]
fn damage_before_a_later_segment_refuses_to_open() {
    let (_dir, crashed) = crashed_after(|_| {}, write_ten);
    let segment = only_segment(&crashed);
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes[SEGMENT_HEADER_LEN + RECORD_HEADER_LEN + 1] ^= 0x01;
    std::fs::write(&segment, bytes).expect("damage");
    create_segment(&crashed.join(DIR), u64::MAX / 2).expect("a later segment");
    match Store::open(&crashed) {
        Err(StoreError::Corrupted(reason)) => {
            assert!(reason.contains("later segments follow"), "{reason}");
        }
        other => panic!("damaged synced records must refuse to open, got {other:?}"),
    }
}

#[test]
fn sled_ahead_of_a_lost_log_tail_keeps_sled() {
    // The power loss kept sled's pages but not the log's: the log ends before sled's mark.
    let dir = tempfile::tempdir().expect("tempdir");
    let (live, crashed) = (dir.path().join("live"), dir.path().join("crashed"));
    let cut_log = dir.path().join("cut-log");
    {
        let store = Store::open(&live).expect("open");
        write_ten(&store);
        store.flush_blocking().expect("flush");
        copy_dir(&live.join(DIR), &cut_log);
        let segment = only_segment(&live);
        let cut = cut_log.join(segment.file_name().expect("name"));
        let header = std::fs::read(&cut).expect("read")[..SEGMENT_HEADER_LEN].to_vec();
        std::fs::write(&cut, header).expect("cut the log");
        checkpoint(&store);
    }
    copy_dir(&live, &crashed);
    std::fs::remove_dir_all(crashed.join(DIR)).expect("drop the log");
    copy_dir(&cut_log, &crashed.join(DIR));
    let store = Store::open(&crashed).expect("open");
    let tree = store.tree("t").expect("tree");
    assert_eq!(value(&tree, "k9").as_deref(), Some("v9"));
    tree.insert("after", "1").expect("a write after recovery");
    store.flush_blocking().expect("flush");
    drop((tree, store));
    let store = Store::open(&crashed).expect("reopen");
    assert_eq!(
        value(&store.tree("t").expect("tree"), "after").as_deref(),
        Some("1")
    );
}

#[test]
fn a_checkpoint_deletes_the_log_before_it_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        write_ten(&store);
        store.flush_blocking().expect("flush");
        let old = only_segment(dir.path());
        checkpoint(&store);
        assert!(
            !old.exists(),
            "the segment before the checkpoint is deleted"
        );
        store
            .tree("t")
            .expect("tree")
            .insert("k10", "v10")
            .expect("insert");
        store.flush_blocking().expect("flush");
        only_segment(dir.path());
    }
    let store = Store::open(dir.path()).expect("reopen");
    let tree = store.tree("t").expect("tree");
    assert_eq!(tree.len(), 11);
    assert_eq!(value(&tree, "k10").as_deref(), Some("v10"));
}

/// A power loss after sled's disk got a record's intent and part of its changes, but
/// before the log got the record: the intent finishes it.
#[test]
fn a_record_cut_short_in_sled_is_finished_from_its_intent() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        write_ten(&store);
        store.flush_blocking().expect("flush");
        checkpoint(&store);
        let wal = store.wal().expect("a sled store");
        let number = wal.lock().next;
        let changes = vec![
            Change {
                key: b"k0",
                value: Some(b"new"),
            },
            Change {
                key: b"k1",
                value: None,
            },
            Change {
                key: b"k2",
                value: Some(b"new"),
            },
        ];
        let record = Record {
            number,
            tree: "t",
            op: Op::Batch(changes),
        };
        let payload = postcard::to_stdvec(&record).expect("encode");
        assert!(!set_position(&wal.positions, number, &payload).expect("intent"));
        wal.db
            .open_tree("t")
            .expect("tree")
            .insert("k0", "new")
            .expect("first change");
        wal.db.flush().expect("sled's disk has it");
    }
    let store = Store::open(dir.path()).expect("reopen");
    let tree = store.tree("t").expect("tree");
    assert_eq!(value(&tree, "k0").as_deref(), Some("new"));
    assert_eq!(
        value(&tree, "k1"),
        None,
        "the rest of the record is applied"
    );
    assert_eq!(value(&tree, "k2").as_deref(), Some("new"));
    assert_eq!(value(&tree, "k3").as_deref(), Some("v3"));
}

/// A write refused for lack of space starts a checkpoint: the log's segments are the
/// space the store can give back at once.
#[test]
fn a_write_refused_for_space_checkpoints_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let tree = store.tree("t").expect("tree");
    for i in 0u8..3 {
        tree.insert([i], vec![i; 700_000]).expect("insert");
    }
    store.flush_blocking().expect("flush");
    let logged = only_segment(dir.path());
    store.health().set_min_free_bytes(u64::MAX);
    assert!(
        store.health().check_space().is_err(),
        "no disk has that much free"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while logged.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    store.health().set_min_free_bytes(0);
    drop((tree, store));
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store.tree("t").expect("tree").get([2]).expect("get"),
        Some(vec![2; 700_000])
    );
}

#[test]
fn a_clear_survives_a_crash_whole() {
    let (_dir, crashed) = crashed_after(write_ten, |store| {
        store.tree("t").expect("tree").clear().expect("clear");
        store
            .tree("t")
            .expect("tree")
            .insert("fresh", "1")
            .expect("insert");
    });
    let store = Store::open(&crashed).expect("open");
    let tree = store.tree("t").expect("tree");
    assert_eq!(tree.len(), 1);
    assert_eq!(value(&tree, "fresh").as_deref(), Some("1"));
}

proptest! {
    #[test]
    fn records_read_back_as_written(
        changes in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..40),
             prop::option::of(prop::collection::vec(any::<u8>(), 0..200))),
            0..20,
        ),
        number in any::<u64>(),
        clear in any::<bool>(),
    ) {
        let op = if clear {
            Op::Clear
        } else {
            Op::Batch(changes.iter().map(|(k, v)| Change { key: k, value: v.as_deref() }).collect())
        };
        let record = Record { number, tree: "tree", op };
        let mut buffer = vec![9u8; 5]; // records follow whatever the buffer held
        let len = encode(&mut buffer, &record).expect("encode");
        prop_assert_eq!(len, buffer.len() - 5);
        let mut reader = &buffer[5..];
        let mut payload = Vec::new();
        let Framed::Record(_) = read_record(&mut reader, len as u64, &mut payload).expect("read") else {
            panic!("an intact record reads back");
        };
        let back: Record<'_> = postcard::from_bytes(&payload).expect("decode");
        prop_assert_eq!(back.number, number);
        prop_assert_eq!(back.tree, "tree");
        prop_assert_eq!(back.op, record.op);
    }
}

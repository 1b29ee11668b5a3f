//! Property tests: any sequence of writes, batches, flushes, clears and restarts on two
//! trees agrees with a model (a `BTreeMap` per tree, plus the writes not yet flushed) on
//! every read: point reads, ranges and prefix scans in both directions, first, last, len.
//!
//! Keys are short strings over {0x00, 0x01, 0x7f, 0xff}, so that bounds, prefixes and
//! the empty key meet often. `PROPTEST_CASES` overrides the number of cases.

use std::collections::BTreeMap;
use std::ops::Bound;

use larder_store::{Batch, Store, Tree};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::{Engine, Pairs, Survivors, contents, rows};

type Key = Vec<u8>;
type Changes = Vec<(Key, Option<Vec<u8>>)>;
type Map = BTreeMap<Key, Vec<u8>>;

const TREES: [&str; 2] = ["a", "b"];

#[derive(Clone, Debug)]
enum Step {
    /// One write (a lone insert or remove is a batch of one) to tree `0` or `1`.
    Write(usize, Changes),
    Flush,
    Clear(usize),
    /// The process restarts; a simulated crash keeps this many unflushed writes.
    Restart(usize),
    Read(usize, Read),
}

#[derive(Clone, Debug)]
enum Read {
    Get(Key),
    Range(Bound<Key>, Bound<Key>, bool),
    Prefix(Key, bool),
    First,
    Last,
    Len,
}

fn key() -> impl Strategy<Value = Key> {
    prop::collection::vec(prop::sample::select(vec![0x00u8, 0x01, 0x7f, 0xff]), 0..=3)
}

fn change() -> impl Strategy<Value = (Key, Option<Vec<u8>>)> {
    (
        key(),
        prop::option::weighted(0.7, prop::collection::vec(any::<u8>(), 0..4)),
    )
}

fn bound() -> impl Strategy<Value = Bound<Key>> {
    prop_oneof![
        key().prop_map(Bound::Included),
        key().prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

fn read() -> impl Strategy<Value = Read> {
    prop_oneof![
        3 => key().prop_map(Read::Get),
        3 => (bound(), bound(), any::<bool>()).prop_map(|(lo, hi, rev)| Read::Range(lo, hi, rev)),
        2 => (key(), any::<bool>()).prop_map(|(p, rev)| Read::Prefix(p, rev)),
        1 => Just(Read::First),
        1 => Just(Read::Last),
        1 => Just(Read::Len),
    ]
}

/// Steps without restarts (`restarts`: with them, and without clears, which sled does not
/// apply atomically).
fn steps(restarts: bool) -> impl Strategy<Value = Vec<Step>> {
    let tree = 0..TREES.len();
    let write = (tree.clone(), prop::collection::vec(change(), 1..5))
        .prop_map(|(t, changes)| Step::Write(t, changes));
    let read = (tree.clone(), read()).prop_map(|(t, r)| Step::Read(t, r));
    let step = if restarts {
        prop_oneof![
            6 => write,
            2 => Just(Step::Flush),
            1 => (0..4usize).prop_map(Step::Restart),
            4 => read,
        ]
        .boxed()
    } else {
        prop_oneof![
            6 => write,
            1 => Just(Step::Flush),
            1 => tree.prop_map(Step::Clear),
            4 => read,
        ]
        .boxed()
    };
    prop::collection::vec(step, 1..40)
}

/// What the store should hold: durable contents and the writes since the last flush.
#[derive(Default)]
struct Model {
    durable: [Map; 2],
    pending: Vec<(usize, Changes)>,
}

impl Model {
    fn apply(trees: &mut [Map; 2], (tree, changes): &(usize, Changes)) {
        for (key, value) in changes {
            match value {
                Some(value) => trees[*tree].insert(key.clone(), value.clone()),
                None => trees[*tree].remove(key),
            };
        }
    }

    /// The contents once the first `n` pending writes are applied.
    fn with_pending(&self, n: usize) -> [Map; 2] {
        let mut trees = self.durable.clone();
        self.pending[..n]
            .iter()
            .for_each(|write| Self::apply(&mut trees, write));
        trees
    }

    fn live(&self) -> [Map; 2] {
        self.with_pending(self.pending.len())
    }

    fn flush(&mut self) {
        self.durable = self.live();
        self.pending.clear();
    }

    /// The restart kept the first `n` pending writes.
    fn restart(&mut self, n: usize) {
        self.durable = self.with_pending(n);
        self.pending.clear();
    }
}

fn write(tree: &Tree, changes: &Changes) {
    let mut batch = Batch::default();
    for (key, value) in changes {
        match value {
            Some(value) => batch.insert(key, value),
            None => batch.remove(key),
        }
    }
    tree.apply_batch(batch).expect("batch");
}

fn pairs<'a>(entries: impl Iterator<Item = (&'a Key, &'a Vec<u8>)>) -> Pairs {
    entries.map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn ordered(mut pairs: Pairs, rev: bool) -> Pairs {
    if rev {
        pairs.reverse();
    }
    pairs
}

fn crossed(lo: &Bound<Key>, hi: &Bound<Key>) -> bool {
    match (lo, hi) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Included(h) | Bound::Excluded(h)) => {
            l >= h
        }
        _ => false,
    }
}

/// Checks one read against the model's live contents of that tree.
fn check(tree: &Tree, model: &Map, read: &Read) {
    match read {
        Read::Get(key) => assert_eq!(tree.get(key).expect("get"), model.get(key).cloned()),
        Read::Range(lo, hi, rev) => {
            let expected = if crossed(lo, hi) {
                Vec::new()
            } else {
                pairs(model.range::<Key, _>((lo.clone(), hi.clone())))
            };
            let iter = tree.range::<Key, _>((lo.clone(), hi.clone()));
            let found = if *rev { rows(iter.rev()) } else { rows(iter) };
            assert_eq!(found, ordered(expected, *rev), "{read:?}");
        }
        Read::Prefix(prefix, rev) => {
            let expected = pairs(model.iter().filter(|(k, _)| k.starts_with(prefix)));
            let iter = tree.scan_prefix(prefix);
            let found = if *rev { rows(iter.rev()) } else { rows(iter) };
            assert_eq!(found, ordered(expected, *rev), "{read:?}");
        }
        Read::First => assert_eq!(
            tree.first().expect("first"),
            pairs(model.iter()).first().cloned()
        ),
        Read::Last => assert_eq!(tree.last().expect("last"), pairs(model.iter()).pop()),
        Read::Len => {
            assert_eq!(tree.len(), model.len());
            assert_eq!(tree.is_empty(), model.is_empty());
        }
    }
}

fn check_all(store: &Store, model: &[Map; 2]) {
    for (name, expected) in TREES.iter().zip(model) {
        assert_eq!(
            contents(&store.tree(name).expect("tree")),
            pairs(expected.iter()),
            "tree {name}"
        );
    }
}

/// Runs `steps` on a fresh store of engine `E`, checking every read against the model.
fn run<E: Engine>(steps: &[Step]) {
    let mut engine = E::new();
    let mut model = Model::default();
    for step in steps {
        let store = engine.store();
        let tree = |t: usize| store.tree(TREES[t]).expect("tree");
        match step {
            Step::Write(t, changes) => {
                write(&tree(*t), changes);
                model.pending.push((*t, changes.clone()));
            }
            Step::Flush => {
                store.flush_blocking().expect("flush");
                model.flush();
            }
            Step::Clear(t) => {
                let keys = model.live()[*t].keys().map(|k| (k.clone(), None)).collect();
                tree(*t).clear().expect("clear");
                model.pending.push((*t, keys));
            }
            Step::Restart(keep) => {
                drop(store);
                let kept = match engine.restart(*keep) {
                    Survivors::Exactly(n) => n,
                    Survivors::SomePrefix => (0..=model.pending.len())
                        .find(|n| {
                            let store = engine.store();
                            TREES
                                .iter()
                                .zip(model.with_pending(*n))
                                .all(|(name, expected)| {
                                    contents(&store.tree(name).expect("tree"))
                                        == pairs(expected.iter())
                                })
                        })
                        .expect("the restart kept a prefix of the unflushed writes"),
                };
                model.restart(kept);
                check_all(&engine.store(), &model.live());
            }
            Step::Read(t, read) => check(&tree(*t), &model.live()[*t], read),
        }
    }
    check_all(&engine.store(), &model.live());
}

fn runner<E: Engine>() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(E::PROPTEST_CASES);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

pub fn reads_agree_with_a_btreemap<E: Engine>() {
    runner::<E>()
        .run(&steps(false), |steps| {
            run::<E>(&steps);
            Ok(())
        })
        .unwrap_or_else(|err| panic!("{err}"));
}

pub fn restarts_keep_flushed_writes_and_a_prefix_of_whole_batches<E: Engine>() {
    runner::<E>()
        .run(&steps(true), |steps| {
            run::<E>(&steps);
            Ok(())
        })
        .unwrap_or_else(|err| panic!("{err}"));
}

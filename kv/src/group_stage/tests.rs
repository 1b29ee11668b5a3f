//! Unit and property tests of [`GroupStage`] against a model of the KV tree.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::test_support::entry;
use crate::{NamespaceInfo, VersionVector};

const ME: NodeId = NodeId(1);

/// Node 1 holds `ns`; `eu` is restricted to node 2.
fn view() -> ClusterView {
    let ns = |allowed: &[u64]| NamespaceInfo {
        allowed: allowed.iter().map(|id| NodeId(*id)).collect(),
        policy: String::new(),
    };
    let namespaces = [
        (Namespace::from("ns"), ns(&[1, 2, 3])),
        (Namespace::from("eu"), ns(&[2])),
    ];
    ClusterView::new(ME, BTreeMap::new(), namespaces.into())
}

/// Entry rows by raw key, and origin index rows as (key, origin, seq).
type Contents = (BTreeMap<Vec<u8>, Entry>, BTreeSet<(Vec<u8>, NodeId, u64)>);

/// The KV tree as the writer's batches leave it.
#[derive(Default)]
struct Model {
    rows: BTreeMap<Vec<u8>, Vec<u8>>,
    progress: Progress,
    /// Keys whose read fails.
    unreadable: BTreeSet<Vec<u8>>,
}

impl Model {
    /// What the writer would read for `works`: the entries they touch, and every row of
    /// a namespace they drop (all rows are of namespace `ns` in these tests).
    fn reads(&self, works: &[Work]) -> GroupReads {
        let mut reads = GroupReads::default();
        for (namespace, key) in works.iter().flat_map(Work::reads) {
            let ekey = entry_key(namespace, key);
            let head = if self.unreadable.contains(key) {
                Err(KvError::Storage("unreadable".into()))
            } else {
                Ok(self.entry(namespace.as_str(), key).as_ref().map(Head::of))
            };
            reads.heads.insert(ekey, head);
        }
        for work in works {
            if let Work::DropNamespace { namespace, limit } = work {
                let rows = self.rows.keys().take(*limit).cloned().collect();
                reads.dropped_rows.insert(namespace.clone(), rows);
            }
        }
        reads
    }

    /// Stages `works` as one group at `now_ms` and applies its rows.
    fn commit(&mut self, hlc: &Hlc, now_ms: u64, works: Vec<Work>) -> (Vec<Answer>, StagedGroup) {
        let view = view();
        let reads = self.reads(&works);
        let mut stage = GroupStage::new(ME, hlc, &view, now_ms, self.progress.clone(), reads);
        let answers = works.into_iter().map(|w| stage.stage(w)).collect();
        let staged = stage.finish();
        for (key, value) in &staged.rows {
            match value {
                Some(value) => self.rows.insert(key.clone(), value.clone()),
                None => self.rows.remove(key),
            };
        }
        self.progress = staged.progress.clone();
        (answers, staged)
    }

    fn entry(&self, namespace: &str, key: &[u8]) -> Option<Entry> {
        let raw = self.rows.get(&entry_key(&namespace.into(), key))?;
        Some(codec::decode(raw).expect("entry"))
    }

    /// Every entry row, and every origin index row as (key, origin, seq) it names.
    fn contents(&self) -> Contents {
        let mut entries = BTreeMap::new();
        let mut index = BTreeSet::new();
        for (raw, value) in &self.rows {
            match raw[0] {
                b'e' => {
                    entries.insert(raw.clone(), codec::decode(value).expect("entry"));
                }
                b'o' => {
                    let tail = &raw[raw.len() - 16..];
                    let origin = u64::from_be_bytes(tail[..8].try_into().expect("8"));
                    let seq = u64::from_be_bytes(tail[8..].try_into().expect("8"));
                    index.insert((value.clone(), NodeId(origin), seq));
                }
                other => panic!("unexpected row tag {other}"),
            }
        }
        (entries, index)
    }
}

fn put(key: &str) -> Mutation {
    Mutation::Put {
        key: key.as_bytes().to_vec(),
        value: b"v".to_vec(),
        metadata: Vec::new(),
        expires_at_ms: None,
    }
}

fn local(mutations: Vec<Mutation>) -> Work {
    Work::Local {
        namespace: "ns".into(),
        mutations,
    }
}

fn remote(
    namespace: &str,
    origin: u64,
    covered: Option<(u64, u64)>,
    writes: &[(&str, Entry)],
) -> Work {
    Work::Remote {
        segments: vec![Segment {
            namespace: namespace.into(),
            origin: NodeId(origin),
            covered,
            writes: writes
                .iter()
                .map(|(k, e)| (k.as_bytes().to_vec(), e.clone()))
                .collect(),
        }],
    }
}

fn outcome(answer: &Answer) -> LocalOutcome {
    match answer {
        Answer::Local(Ok(outcome)) => outcome.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn local_writes_are_stamped_in_order_numbered_without_gaps_and_pushed() {
    let mut model = Model::default();
    let hlc = Hlc::new(ME, 60_000);
    let delete_a = Mutation::Delete { key: b"a".to_vec() };
    let (answers, staged) =
        model.commit(&hlc, 1000, vec![local(vec![put("a"), put("b"), delete_a])]);
    let first = outcome(&answers[0]);
    assert_eq!(first.last_seq, 3);
    assert!(
        first.versions.windows(2).all(|w| w[0] < w[1]),
        "{:?}",
        first.versions
    );
    assert!(model.entry("ns", b"a").expect("a").tombstone);
    let (entries, index) = model.contents();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        index,
        [(b"b".to_vec(), ME, 2), (b"a".to_vec(), ME, 3)].into(),
        "the index holds exactly the current entries"
    );
    assert_eq!(staged.outgoing.len(), 1);
    assert_eq!(staged.outgoing[0].covered, Some((1, 3)));
    assert_eq!(staged.outgoing[0].writes.len(), 3);
    assert_eq!(staged.changes.len(), 3);
    assert_eq!(staged.counts.local_writes, 3);

    let (answers, _) = model.commit(&hlc, 900, vec![local(vec![put("a")])]);
    let second = outcome(&answers[0]);
    assert_eq!(second.last_seq, 4, "the next job continues the numbering");
    assert!(
        second.versions[0] > first.versions[2],
        "the wall clock went back; stamps did not"
    );
    assert_eq!(model.progress.vector().get(&"ns".into(), ME), 4);
}

#[test]
fn an_older_replicated_write_loses_but_its_range_is_received() {
    let mut model = Model::default();
    let hlc = Hlc::new(ME, 60_000);
    model.commit(
        &hlc,
        0,
        vec![remote(
            "ns",
            2,
            Some((1, 1)),
            &[("k", entry(2, 1, 100, "new"))],
        )],
    );
    let (answers, staged) = model.commit(
        &hlc,
        0,
        vec![remote(
            "ns",
            3,
            Some((1, 1)),
            &[("k", entry(3, 1, 50, "old"))],
        )],
    );
    assert!(matches!(answers[0], Answer::Remote(Ok(()))));
    assert!(staged.rows.is_empty() && staged.changes.is_empty());
    assert_eq!(model.entry("ns", b"k").expect("k").value, b"new");
    assert_eq!(model.progress.vector().get(&"ns".into(), NodeId(3)), 1);
    assert_eq!(
        hlc.last().physical_ms,
        100,
        "observed stamps move the clock"
    );
}

#[test]
fn writes_of_a_namespace_this_node_may_not_hold_are_refused() {
    let mut model = Model::default();
    let hlc = Hlc::new(ME, 60_000);
    // The view is at generation 0: `unknown-yet@1` was created after it, `gone` (a
    // generation 0 name that is not current) was deleted.
    let (_, staged) = model.commit(
        &hlc,
        0,
        vec![
            remote("eu", 2, Some((1, 1)), &[("k", entry(2, 1, 10, "v"))]),
            remote(
                "unknown-yet@1",
                2,
                Some((1, 1)),
                &[("k", entry(2, 1, 10, "v"))],
            ),
            remote("gone", 2, Some((1, 1)), &[("k", entry(2, 1, 10, "v"))]),
        ],
    );
    assert!(model.entry("eu", b"k").is_none());
    assert_eq!(model.progress.vector().get(&"eu".into(), NodeId(2)), 0);
    assert!(
        model.entry("unknown-yet@1", b"k").is_some(),
        "a namespace not in the view yet is kept"
    );
    assert!(
        model.entry("gone", b"k").is_none(),
        "late writes of a deleted namespace are dropped"
    );
    assert_eq!(model.progress.vector().get(&"gone".into(), NodeId(2)), 0);
    assert_eq!(staged.counts.remote_writes, 3);
}

#[test]
fn a_segment_carrying_writes_it_does_not_cover_is_refused_whole() {
    let mut model = Model::default();
    let hlc = Hlc::new(ME, 60_000);
    let foreign = remote("ns", 2, Some((1, 1)), &[("k", entry(3, 1, 10, "v"))]);
    let outside = remote("ns", 2, Some((1, 1)), &[("k", entry(2, 2, 10, "v"))]);
    let empty = remote("ns", 2, Some((2, 1)), &[]);
    let (answers, staged) = model.commit(&hlc, 0, vec![foreign, outside, empty]);
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Answer::Remote(Err(KvError::InvalidArgument(_))))),
        "{answers:?}"
    );
    assert!(staged.rows.is_empty());
    assert_eq!(model.progress.vector(), &VersionVector::default());
}

#[test]
fn collection_removes_only_the_version_it_found() {
    let mut model = Model::default();
    let hlc = Hlc::new(ME, 60_000);
    let old = entry(2, 1, 10, "old");
    model.commit(
        &hlc,
        0,
        vec![remote(
            "ns",
            2,
            None,
            &[("a", old.clone()), ("b", old.clone())],
        )],
    );
    let collect = |key: &str| Work::Collect {
        namespace: "ns".into(),
        key: key.as_bytes().to_vec(),
        version: old.version,
    };
    let newer = remote("ns", 3, None, &[("b", entry(3, 1, 20, "newer"))]);
    let (_, staged) = model.commit(&hlc, 0, vec![collect("a"), newer, collect("b")]);
    assert!(model.entry("ns", b"a").is_none());
    assert_eq!(model.entry("ns", b"b").expect("b").value, b"newer");
    assert_eq!(model.contents().1, [(b"b".to_vec(), NodeId(3), 1)].into());
    assert_eq!(
        (
            staged.counts.expired_collected,
            staged.counts.tombstones_collected
        ),
        (1, 0)
    );
}

#[test]
fn a_buried_expired_entry_keeps_a_late_older_write_out() {
    let mut model = Model::default();
    let hlc = Hlc::new(ME, 60_000);
    let mut expiring = entry(2, 1, 20, "short-lived");
    expiring.expires_at_ms = Some(25);
    model.commit(
        &hlc,
        0,
        vec![remote("ns", 2, None, &[("k", expiring.clone())])],
    );
    let bury = Work::Bury {
        namespace: "ns".into(),
        key: b"k".to_vec(),
        version: expiring.version,
    };
    let (_, staged) = model.commit(&hlc, 30, vec![bury]);
    assert_eq!(staged.counts.expired_collected, 1);
    let buried = model.entry("ns", b"k").expect("a tombstone");
    assert!(buried.tombstone && buried.value.is_empty());
    assert_eq!(
        (buried.version, buried.seq),
        (expiring.version, expiring.seq)
    );
    assert_eq!(model.contents().1, [(b"k".to_vec(), NodeId(2), 1)].into());
    let late = remote("ns", 3, None, &[("k", entry(3, 1, 10, "older, late"))]);
    model.commit(&hlc, 40, vec![late]);
    assert!(
        model.entry("ns", b"k").expect("k").tombstone,
        "the older write stays out"
    );
}

#[test]
fn a_job_whose_read_failed_stages_nothing_and_the_others_go_on() {
    let mut model = Model::default();
    model.unreadable.insert(b"bad".to_vec());
    let hlc = Hlc::new(ME, 60_000);
    let (answers, staged) = model.commit(
        &hlc,
        1000,
        vec![
            local(vec![put("good"), put("bad")]),
            local(vec![put("other")]),
        ],
    );
    assert!(matches!(
        answers[0],
        Answer::Local(Err(KvError::Storage(_)))
    ));
    assert_eq!(
        outcome(&answers[1]).last_seq,
        1,
        "the refused job took no sequence number"
    );
    assert!(model.entry("ns", b"good").is_none());
    assert_eq!(staged.outgoing.len(), 1);
}

#[test]
fn a_finished_sync_adopts_progress_and_a_dropped_namespace_is_forgotten() {
    let mut model = Model::default();
    let hlc = Hlc::new(ME, 60_000);
    model.commit(&hlc, 0, vec![local(vec![put("k")])]);
    let sync = Work::SyncDone {
        namespace: "ns".into(),
        origins: [(NodeId(2), 7)].into(),
        at_ms: 55,
    };
    let (_, staged) = model.commit(&hlc, 0, vec![sync]);
    assert_eq!(staged.synced_at_ms, Some(55));
    assert_eq!(model.progress.vector().get(&"ns".into(), NodeId(2)), 7);
    let drop = Work::DropNamespace {
        namespace: "ns".into(),
        limit: 100,
    };
    model.commit(&hlc, 0, vec![drop]);
    assert!(model.rows.is_empty());
    assert_eq!(model.progress.vector(), &VersionVector::default());
}

/// Replicated writes: one version always names the same write (key, sequence number,
/// delete or put), as in the real system.
fn writes() -> impl Strategy<Value = Vec<(String, Entry)>> {
    proptest::collection::btree_map((0u64..6, 0u32..2, 2u64..5), 0usize..4, 1..25).prop_map(
        |by_version| {
            let mut seqs: BTreeMap<u64, u64> = BTreeMap::new();
            by_version
                .into_iter()
                .map(|((physical, logical, origin), key)| {
                    let seq = seqs.entry(origin).or_default();
                    *seq += 1;
                    let mut e = entry(
                        origin,
                        *seq,
                        physical,
                        &format!("{physical}.{logical}@{origin}"),
                    );
                    e.version.logical = logical;
                    e.tombstone = (physical + u64::from(logical)) % 3 == 0;
                    (format!("k{key}"), e)
                })
                .collect()
        },
    )
}

proptest! {
    /// Whatever the order and grouping of replicated writes: each key ends with its
    /// greatest version, and the origin index names exactly the current entries.
    #[test]
    fn any_delivery_order_and_grouping_leaves_the_same_store(
        writes in writes(),
        order in any::<u64>(),
        group in 1usize..6,
    ) {
        let deliver = |writes: &[(String, Entry)], group: usize| {
            let mut model = Model::default();
            let hlc = Hlc::new(ME, 60_000);
            for chunk in writes.chunks(group) {
                let works = chunk
                    .iter()
                    .map(|(k, e)| remote("ns", e.version.origin.0, None, &[(k.as_str(), e.clone())]))
                    .collect();
                model.commit(&hlc, 0, works);
            }
            model.contents()
        };
        let mut shuffled = writes.clone();
        let n = shuffled.len();
        for i in 0..n {
            let j = (order.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % n as u64) as usize;
            shuffled.swap(i, j);
        }
        let (entries, index) = deliver(&writes, writes.len());
        prop_assert_eq!(deliver(&shuffled, group), (entries.clone(), index.clone()));
        let mut greatest: BTreeMap<&str, &Entry> = BTreeMap::new();
        for (key, e) in &writes {
            if greatest.get(key.as_str()).is_none_or(|g| e.version > g.version) {
                greatest.insert(key, e);
            }
        }
        let expected: BTreeMap<Vec<u8>, Entry> = greatest
            .iter()
            .map(|(k, e)| (entry_key(&"ns".into(), k.as_bytes()), (*e).clone()))
            .collect();
        prop_assert_eq!(entries, expected);
        let named: BTreeSet<_> = greatest
            .iter()
            .map(|(k, e)| (k.as_bytes().to_vec(), e.version.origin, e.seq))
            .collect();
        prop_assert_eq!(index, named);
    }
}

//! Unit and property tests of [`SyncExchange`], with `SyncPager` answering from a real
//! keyspace in memory.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::keyspace::Keyspace;
use crate::sync_pager::{SyncPager, read_page};
use crate::test_support::{entry, keyspace, store_entry};
use crate::{NamespaceInfo, PeerInfo};

const ME: NodeId = NodeId(1);
const PARTNER: NodeId = NodeId(2);

/// Nodes 1 (me), 2 and 3; namespaces a, b, c on all of them, `mine` on 1 and 3 only.
fn view() -> ClusterView {
    let peer = PeerInfo {
        region: "r".into(),
        api_addr: String::new(),
        peer_addr: String::new(),
        up: true,
    };
    let everywhere = NamespaceInfo {
        allowed: [ME, PARTNER, NodeId(3)].into(),
        policy: "everywhere".into(),
    };
    let namespaces = ["a", "b", "c"]
        .into_iter()
        .map(|ns| (Namespace::from(ns), everywhere.clone()))
        .chain([(
            Namespace::from("mine"),
            NamespaceInfo {
                allowed: [ME, NodeId(3)].into(),
                policy: "not on 2".into(),
            },
        )])
        .collect();
    let nodes = [ME, PARTNER, NodeId(3)]
        .into_iter()
        .map(|id| (id, peer.clone()))
        .collect();
    ClusterView::new(ME, nodes, namespaces)
}

/// An exchange with the partner by a replica that holds nothing yet, begun at 100.
fn from_scratch(full: bool, limits: ExchangeLimits) -> SyncExchange {
    SyncExchange::plan(
        &view(),
        PARTNER,
        &VersionVector::default(),
        full,
        100,
        limits,
    )
    .expect("shared namespaces")
}

fn vector(entries: &[(&str, u64, u64)]) -> VersionVector {
    let mut v = VersionVector::default();
    for (ns, origin, seq) in entries {
        v.raise(&Namespace::from(*ns), NodeId(*origin), *seq);
    }
    v
}

fn segment(namespace: &str, writes: &[(&str, Entry)]) -> Segment {
    Segment {
        namespace: namespace.into(),
        origin: NodeId(2),
        covered: None,
        writes: writes
            .iter()
            .map(|(k, e)| (k.as_bytes().to_vec(), e.clone()))
            .collect(),
    }
}

#[test]
fn it_asks_for_shared_namespaces_above_what_it_holds_or_for_everything_when_full() {
    let mine = vector(&[("a", 1, 5), ("a", 2, 3), ("mine", 1, 9)]);
    let limits = ExchangeLimits::default();
    let exchange =
        SyncExchange::plan(&view(), PARTNER, &mine, false, 100, limits).expect("shared namespaces");
    let request = exchange.next_request().expect("a request");
    assert_eq!((request.from, request.cursor), (ME, None));
    assert_eq!(
        request.namespaces.keys().collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(request.namespaces["a"], mine.namespace(&"a".into()));
    assert!(request.namespaces["b"].is_empty());
    let full = SyncExchange::plan(&view(), PARTNER, &mine, true, 100, limits).expect("plan");
    let request = full.next_request().expect("a request");
    assert!(request.namespaces.values().all(BTreeMap::is_empty));
    let mut alone = view();
    alone.namespaces.retain(|ns, _| ns == "mine");
    assert!(SyncExchange::plan(&alone, PARTNER, &mine, false, 100, limits).is_none());
}

#[test]
fn pages_are_applied_in_turn_and_the_first_page_s_progress_is_adopted() {
    let limits = ExchangeLimits::default();
    let mut exchange = from_scratch(false, limits);
    let cursor = SyncCursor {
        namespace: "a".into(),
        origin: PARTNER,
        seq: 1,
    };
    let step = exchange.answer(SyncResponse {
        segments: vec![segment("a", &[("k1", entry(2, 1, 10, "v"))])],
        served: vector(&[("a", 2, 2)]).0,
        next: Some(cursor.clone()),
    });
    assert_eq!(step.apply.len(), 1);
    assert_eq!(exchange.next_request().expect("next").cursor, Some(cursor));
    exchange.answer(SyncResponse {
        segments: vec![segment("a", &[("k2", entry(2, 2, 11, "v"))])],
        served: BTreeMap::new(),
        next: None,
    });
    assert!(exchange.next_request().is_none());
    match exchange.ending() {
        Ending::Complete {
            served,
            deleted,
            synced_at_ms,
            received,
        } => {
            assert_eq!(served, vector(&[("a", 2, 2)]).0);
            assert!(deleted.is_none(), "not a full re-sync");
            assert_eq!((synced_at_ms, received), (100, 2));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_exchange_cut_short_by_the_page_limit_adopts_nothing() {
    let limits = ExchangeLimits {
        pages_max: 2,
        ..ExchangeLimits::default()
    };
    let mut exchange = from_scratch(false, limits);
    for seq in 1..=2 {
        exchange.answer(SyncResponse {
            segments: vec![segment("a", &[("k", entry(2, seq, seq, "v"))])],
            served: vector(&[("a", 2, 9)]).0,
            next: Some(SyncCursor {
                namespace: "a".into(),
                origin: PARTNER,
                seq,
            }),
        });
    }
    assert!(exchange.next_request().is_none(), "two pages at most");
    assert!(matches!(
        exchange.ending(),
        Ending::Unfinished { received: 2 }
    ));
}

#[test]
fn a_full_resync_drops_covered_entries_the_partner_did_not_send() {
    let mut exchange = from_scratch(true, ExchangeLimits::default());
    exchange.answer(SyncResponse {
        segments: vec![segment("a", &[("kept", entry(2, 3, 10, "v"))])],
        served: vector(&[("a", 2, 5)]).0,
        next: None,
    });
    let Ending::Complete {
        deleted: Some(deleted),
        ..
    } = exchange.ending()
    else {
        panic!("a complete full re-sync")
    };
    assert!(
        deleted.drops(&"a".into(), b"gone", &entry(2, 4, 9, "v")),
        "covered, not sent"
    );
    assert!(
        !deleted.drops(&"a".into(), b"kept", &entry(2, 3, 10, "v")),
        "sent"
    );
    assert!(
        !deleted.drops(&"a".into(), b"new", &entry(2, 6, 12, "v")),
        "newer than served"
    );
    assert!(
        !deleted.drops(&"a".into(), b"other", &entry(3, 1, 12, "v")),
        "origin not served"
    );
    assert!(
        !deleted.drops(&"b".into(), b"gone", &entry(2, 1, 9, "v")),
        "namespace not served"
    );
}

#[test]
fn a_full_resync_too_large_to_track_drops_nothing() {
    let limits = ExchangeLimits {
        full_resync_keys_max: 1,
        ..ExchangeLimits::default()
    };
    let mut exchange = from_scratch(true, limits);
    let writes = [("k1", entry(2, 1, 1, "v")), ("k2", entry(2, 2, 2, "v"))];
    let step = exchange.answer(SyncResponse {
        segments: vec![segment("a", &writes)],
        served: vector(&[("a", 2, 5)]).0,
        next: None,
    });
    assert_eq!(step.stopped_tracking_at, Some(2));
    assert!(matches!(
        exchange.ending(),
        Ending::Complete { deleted: None, .. }
    ));
}

/// Serves one page from the partner's `keyspace`, as `Kv::serve_sync` does.
fn serve(
    keyspace: &Keyspace,
    request: &SyncRequest,
    held: &VersionVector,
    budget: (usize, usize),
) -> SyncResponse {
    let pager = SyncPager::new(request, |_| true, held, budget.0, budget.1);
    read_page(keyspace, pager).expect("read")
}

fn written() -> impl Strategy<Value = BTreeSet<(usize, u64, u64)>> {
    proptest::collection::btree_set((0usize..3, 1u64..4, 1u64..25), 0..60)
}

proptest! {
    /// Whatever the writes, the caller's progress and the page budgets: every write
    /// above what the caller holds arrives exactly once, nothing at or below it is
    /// asked for or sent, and the exchange completes.
    #[test]
    fn paging_delivers_each_missing_write_exactly_once(
        writes in written(),
        floors in proptest::collection::vec(0u64..25, 9),
        full in any::<bool>(),
        writes_max in 1usize..12,
        bytes_max in 70usize..600,
    ) {
        let namespaces = ["a", "b", "c"].map(Namespace::from);
        let partner = keyspace();
        let mut held = VersionVector::default();
        for (ns, origin, seq) in &writes {
            let key = format!("{origin}-{seq}");
            store_entry(&partner, &namespaces[*ns], key.as_bytes(), &entry(*origin, *seq, *seq, "value"));
            held.raise(&namespaces[*ns], NodeId(*origin), *seq);
        }
        let mut mine = VersionVector::default();
        for (i, floor) in floors.iter().enumerate() {
            mine.raise(&namespaces[i / 3], NodeId(1 + (i % 3) as u64), *floor);
        }
        let limits = ExchangeLimits { pages_max: 10_000, ..ExchangeLimits::default() };
        let mut exchange = SyncExchange::plan(&view(), PARTNER, &mine, full, 7, limits).expect("plan");
        let mut delivered = Vec::new();
        while let Some(request) = exchange.next_request() {
            for (ns, asked) in &request.namespaces {
                let expected = if full { BTreeMap::new() } else { mine.namespace(ns) };
                prop_assert_eq!(asked, &expected, "asks with exactly what it holds");
            }
            let step = exchange.answer(serve(&partner, &request, &held, (writes_max, bytes_max)));
            for segment in step.apply {
                let ns = namespaces.iter().position(|n| *n == segment.namespace).expect("asked namespace");
                delivered.extend(segment.writes.iter().map(|(_, e)| (ns, e.version.origin.0, e.seq)));
            }
        }
        let floor = |ns: usize, origin: u64| if full { 0 } else { mine.get(&namespaces[ns], NodeId(origin)) };
        let missing: Vec<_> = writes.iter().copied().filter(|(ns, o, s)| *s > floor(*ns, *o)).collect();
        let unique: BTreeSet<_> = delivered.iter().copied().collect();
        prop_assert_eq!(unique.len(), delivered.len(), "a write arrived twice");
        prop_assert_eq!(unique.into_iter().collect::<Vec<_>>(), missing);
        let Ending::Complete { served, .. } = exchange.ending() else {
            panic!("the exchange did not complete");
        };
        // The partner's progress in every namespace asked, however early the first
        // page filled: else a namespace past it is never adopted, and a full
        // re-sync never drops its keys deleted elsewhere.
        let all: NamespaceProgress = namespaces.iter().map(|ns| (ns.clone(), held.namespace(ns))).collect();
        prop_assert_eq!(served, all);
    }
}

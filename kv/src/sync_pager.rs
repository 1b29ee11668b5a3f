//! The answering side of anti-entropy, as a plain state machine: which stored writes one
//! page of a [`SyncResponse`] carries, within the page's budget, and where the next page
//! resumes. `Kv::serve_sync` reads the origin index where [`SyncPager::next_read`] says
//! and hands each read back to [`SyncPager::take`].

use std::collections::{BTreeMap, VecDeque};

use crate::keyspace::{IndexedWrite, Keyspace};
use crate::peer_messages::{SyncCursor, SyncRequest, SyncResponse};
use crate::{Entry, KvError, Namespace, NodeId, Segment, VersionVector};

/// Writes one read of the origin index returns at most, so that a read never holds
/// far more than the page can take.
pub const READ_WRITES_MAX: usize = 256;
/// Bytes a write counts for besides its key and value (version, sequence, framing).
const WRITE_OVERHEAD_BYTES: usize = 64;

/// One read of the origin index: the current writes of `namespace` after `cursor`,
/// skipping each origin's writes at or below `floor`, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritesRead {
    pub namespace: Namespace,
    pub floor: BTreeMap<NodeId, u64>,
    pub cursor: Option<(NodeId, u64)>,
    pub limit: usize,
}

/// Builds one page of an answer to a [`SyncRequest`].
#[derive(Debug)]
pub struct SyncPager {
    /// Namespaces still to serve, in order, with the caller's progress in each.
    namespaces: VecDeque<(Namespace, BTreeMap<NodeId, u64>)>,
    /// Where the namespace at the front resumes.
    cursor: Option<(NodeId, u64)>,
    writes_left: usize,
    bytes_left: usize,
    response: SyncResponse,
    full: bool,
}

impl SyncPager {
    /// A pager for `request`, serving the namespaces `serves` accepts (both ends may hold
    /// them), with this replica's progress `mine`, within a page of `writes_max` writes
    /// and about `bytes_max` bytes.
    pub fn new(
        request: &SyncRequest,
        serves: impl Fn(&Namespace) -> bool,
        mine: &VersionVector,
        writes_max: usize,
        bytes_max: usize,
    ) -> SyncPager {
        assert!(
            writes_max > 0 && bytes_max > 0,
            "a sync page must have room for a write"
        );
        let start = request.cursor.as_ref();
        let mut pager = SyncPager {
            namespaces: VecDeque::new(),
            cursor: None,
            writes_left: writes_max,
            bytes_left: bytes_max,
            response: SyncResponse::default(),
            full: false,
        };
        for (namespace, theirs) in &request.namespaces {
            if start.is_some_and(|start| *namespace < start.namespace) || !serves(namespace) {
                continue;
            }
            if pager.namespaces.is_empty() {
                pager.cursor = start
                    .filter(|c| c.namespace == *namespace)
                    .map(|c| (c.origin, c.seq));
            }
            // The first page serves the progress of every namespace, also those it has
            // no room to reach: the caller adopts only what is served, and a full
            // re-sync drops deleted keys only there.
            if start.is_none() {
                pager
                    .response
                    .served
                    .insert(namespace.clone(), mine.namespace(namespace));
            }
            pager
                .namespaces
                .push_back((namespace.clone(), theirs.clone()));
        }
        pager
    }

    /// The next read of the origin index the page needs; None once the page is complete.
    pub fn next_read(&self) -> Option<WritesRead> {
        if self.full {
            return None;
        }
        let (namespace, floor) = self.namespaces.front()?;
        Some(WritesRead {
            namespace: namespace.clone(),
            floor: floor.clone(),
            cursor: self.cursor,
            limit: self.writes_left.min(READ_WRITES_MAX),
        })
    }

    /// Takes the answer to [`SyncPager::next_read`]: `writes` in (origin, seq) order and
    /// the cursor to continue from (None: the namespace has no more).
    pub fn take(&mut self, writes: Vec<IndexedWrite>, next: Option<(NodeId, u64)>) {
        let Some((namespace, _)) = self.namespaces.front() else {
            return;
        };
        let namespace = namespace.clone();
        let mut by_origin: BTreeMap<NodeId, Vec<(Vec<u8>, Entry)>> = BTreeMap::new();
        for write in writes {
            if let Some(cursor) = self.cursor {
                debug_assert!(
                    (write.origin, write.seq) > cursor,
                    "the origin index answers writes after the cursor only"
                );
            }
            let bytes = write.key.len() + write.entry.value.len() + WRITE_OVERHEAD_BYTES;
            self.writes_left = self.writes_left.saturating_sub(1);
            self.bytes_left = self.bytes_left.saturating_sub(bytes);
            self.cursor = Some((write.origin, write.seq));
            by_origin
                .entry(write.origin)
                .or_default()
                .push((write.key, write.entry));
            if self.writes_left == 0 || self.bytes_left == 0 {
                self.full = true;
                break;
            }
        }
        for (origin, writes) in by_origin {
            self.response.segments.push(Segment {
                namespace: namespace.clone(),
                origin,
                covered: None,
                writes,
            });
        }
        if self.full {
            self.response.next = self.cursor.map(|(origin, seq)| SyncCursor {
                namespace,
                origin,
                seq,
            });
        } else if next.is_none() {
            self.namespaces.pop_front();
            self.cursor = None;
        } else {
            self.cursor = next;
        }
    }

    /// The page: its writes, the progress served (first page only) and where the next
    /// page resumes (None: this was the last).
    pub fn finish(self) -> SyncResponse {
        self.response
    }
}

/// Answers `pager`'s reads from the origin index of `keyspace`: the page
/// `Kv::serve_sync` sends (here so that tests page through the same loop).
pub(crate) fn read_page(
    keyspace: &Keyspace,
    mut pager: SyncPager,
) -> Result<SyncResponse, KvError> {
    while let Some(read) = pager.next_read() {
        let (writes, next) =
            keyspace.writes_after(&read.namespace, &read.floor, read.cursor, read.limit)?;
        pager.take(writes, next);
    }
    Ok(pager.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{entry, keyspace, store_entry};

    /// A request from node 9 holding `theirs` in every namespace listed.
    fn request(
        namespaces: &[&str],
        theirs: &[(u64, u64)],
        cursor: Option<SyncCursor>,
    ) -> SyncRequest {
        let holds: BTreeMap<NodeId, u64> = theirs.iter().map(|(o, s)| (NodeId(*o), *s)).collect();
        SyncRequest {
            from: NodeId(9),
            namespaces: namespaces
                .iter()
                .map(|ns| (Namespace::from(*ns), holds.clone()))
                .collect(),
            cursor,
        }
    }

    /// Serves one page of `request` from `keyspace`, as `Kv::serve_sync` does.
    fn page(
        keyspace: &Keyspace,
        request: &SyncRequest,
        serves: impl Fn(&Namespace) -> bool,
        (writes_max, bytes_max): (usize, usize),
    ) -> SyncResponse {
        let held = VersionVector::default();
        let pager = SyncPager::new(request, serves, &held, writes_max, bytes_max);
        read_page(keyspace, pager).expect("read")
    }

    fn keys(response: &SyncResponse) -> Vec<String> {
        response
            .segments
            .iter()
            .flat_map(|s| {
                s.writes
                    .iter()
                    .map(|(k, _)| format!("{}/{}", s.namespace, String::from_utf8_lossy(k)))
            })
            .collect()
    }

    fn filled(namespaces: &[&str], writes_per_origin: u64) -> Keyspace {
        let keyspace = keyspace();
        for ns in namespaces {
            for origin in 1..=2 {
                for seq in 1..=writes_per_origin {
                    let key = format!("k{origin}-{seq}");
                    store_entry(
                        &keyspace,
                        &(*ns).into(),
                        key.as_bytes(),
                        &entry(origin, seq, seq, "v"),
                    );
                }
            }
        }
        keyspace
    }

    #[test]
    fn a_page_skips_what_the_caller_holds_and_stops_at_its_write_budget() {
        let keyspace = filled(&["a"], 3);
        let first = page(
            &keyspace,
            &request(&["a"], &[(1, 1)], None),
            |_| true,
            (3, 1 << 20),
        );
        assert_eq!(keys(&first), ["a/k1-2", "a/k1-3", "a/k2-1"]);
        let next = first.next.clone().expect("more to come");
        assert_eq!(
            (next.namespace.as_str(), next.origin, next.seq),
            ("a", NodeId(2), 1)
        );
        let second = page(
            &keyspace,
            &request(&["a"], &[(1, 1)], Some(next)),
            |_| true,
            (3, 1 << 20),
        );
        assert_eq!(keys(&second), ["a/k2-2", "a/k2-3"]);
        assert!(second.next.is_none());
        assert!(
            second.served.is_empty(),
            "progress is served on the first page only"
        );
    }

    #[test]
    fn a_large_write_fills_a_page_alone() {
        let keyspace = keyspace();
        store_entry(
            &keyspace,
            &"a".into(),
            b"big",
            &entry(1, 1, 1, &"x".repeat(500)),
        );
        store_entry(&keyspace, &"a".into(), b"small", &entry(1, 2, 2, "y"));
        let first = page(&keyspace, &request(&["a"], &[], None), |_| true, (100, 400));
        assert_eq!(keys(&first), ["a/big"]);
        assert!(first.next.is_some());
    }

    #[test]
    fn namespaces_not_shared_are_skipped_and_a_cursor_skips_earlier_ones() {
        let keyspace = filled(&["a", "b", "c"], 1);
        let shared = page(
            &keyspace,
            &request(&["a", "b", "c"], &[], None),
            |ns| *ns != "b",
            (100, 1 << 20),
        );
        assert_eq!(keys(&shared), ["a/k1-1", "a/k2-1", "c/k1-1", "c/k2-1"]);
        assert_eq!(shared.served.keys().collect::<Vec<_>>(), ["a", "c"]);
        let filled_early = page(
            &keyspace,
            &request(&["a", "b", "c"], &[], None),
            |_| true,
            (1, 1 << 20),
        );
        assert_eq!(keys(&filled_early), ["a/k1-1"]);
        assert_eq!(
            filled_early.served.keys().collect::<Vec<_>>(),
            ["a", "b", "c"],
            "served in full although the page filled in the first namespace"
        );
        let cursor = SyncCursor {
            namespace: "b".into(),
            origin: NodeId(1),
            seq: 1,
        };
        let resumed = page(
            &keyspace,
            &request(&["a", "b", "c"], &[], Some(cursor)),
            |_| true,
            (100, 1 << 20),
        );
        assert_eq!(keys(&resumed), ["b/k2-1", "c/k1-1", "c/k2-1"]);
    }
}

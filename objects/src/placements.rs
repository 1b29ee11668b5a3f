//! Where objects live, as this node sees it: the directory's placements, read in place,
//! and the placement of an object on its first write (reads never place).

use std::collections::BTreeMap;
use std::ops::Bound;

use larder_base::{Epoch, Namespace, NodeId};
use larder_directory::{
    Command, CommandOutcome, Directory, DirectoryRequest, DirectoryResponse, DirectoryState,
    Jurisdiction, NamespacePolicy, NodeStatus, ObjectKey, ObjectPlacement, RegionId,
};

use crate::ObjectError;

/// Placements a listing page looks at, at most, whatever its filters turn down.
pub const LIST_SCAN_BUDGET: usize = 10_000;

/// A page of a namespace's placements.
#[derive(Debug, Default)]
pub struct ListPage {
    pub placements: Vec<ObjectPlacement>,
    /// Where the next page starts (after this id); `None`: the listing is complete.
    pub next_start_after: Option<String>,
}

/// This node's view of object placement. Cheap to clone.
#[derive(Clone)]
pub struct Placements {
    directory: Directory,
    replication_factor: usize,
}

/// What the directory answered a reassignment.
#[derive(Debug)]
pub(crate) enum Reassigned {
    Placed(ObjectPlacement),
    /// Another reassignment came first: the placement is at another epoch now.
    Changed(ObjectPlacement),
    Refused(String),
}

impl Placements {
    pub fn new(directory: Directory, replication_factor: usize) -> Placements {
        Placements {
            directory,
            replication_factor,
        }
    }

    pub fn me(&self) -> NodeId {
        self.directory.me().id
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The object's placement as this node has applied it (may trail the leader).
    pub async fn known(&self, key: &ObjectKey) -> Option<ObjectPlacement> {
        self.directory
            .read_local(|s| s.placement(key).cloned())
            .await
    }

    /// The object's placement including every change committed before this call.
    pub async fn latest(&self, key: &ObjectKey) -> Result<Option<ObjectPlacement>, ObjectError> {
        Ok(self
            .directory
            .read_linearizable(|s| s.placement(key).cloned())
            .await?)
    }

    /// The object's placement, `None` when it was never placed (`NamespaceNotFound` when
    /// its namespace does not exist either). A placement this node has not applied yet —
    /// another node's first write a moment ago — is found through the leader, so a read
    /// after that write sees the object.
    pub async fn find(&self, key: &ObjectKey) -> Result<Option<ObjectPlacement>, ObjectError> {
        match self.known(key).await {
            Some(placement) => Ok(Some(placement)),
            None => self.from_leader(key).await,
        }
    }

    /// [`Placements::find`] without this node's view: what the leader says, for a
    /// caller that already found no placement here.
    pub async fn from_leader(
        &self,
        key: &ObjectKey,
    ) -> Result<Option<ObjectPlacement>, ObjectError> {
        let (placement, namespace_exists) = self
            .directory
            .read_linearizable(|s| {
                let namespace_exists = s.incarnation(&key.namespace).is_some();
                (s.placement(key).cloned(), namespace_exists)
            })
            .await?;
        if placement.is_none() && !namespace_exists {
            return Err(ObjectError::NamespaceNotFound(key.namespace.clone()));
        }
        Ok(placement)
    }

    /// The placement of an object this node owns; `Unavailable` naming the owner when
    /// another node owns it.
    pub async fn owned_here(&self, key: &ObjectKey) -> Result<ObjectPlacement, ObjectError> {
        let with_owner_api = |s: &DirectoryState| {
            let placement = s.placement(key).cloned()?;
            let owner_api = s.node(placement.owner).map(|n| n.spec.api_addr.clone());
            Some((placement, owner_api))
        };
        let found = match self.directory.read_local(with_owner_api).await {
            Some(found) => found,
            // Placed through the leader a moment ago: catch up with the log first.
            None => self
                .directory
                .read_linearizable(with_owner_api)
                .await?
                .ok_or_else(|| ObjectError::Unavailable {
                    reason: format!("{key} has no placement"),
                    retry_at: None,
                })?,
        };
        let (placement, owner_api) = found;
        if placement.owner != self.me() {
            return Err(ObjectError::Unavailable {
                reason: format!("{key} is now owned by node {}", placement.owner),
                retry_at: owner_api,
            });
        }
        Ok(placement)
    }

    /// The object's placement; places it (region from the hint, the namespace, or this
    /// node) when this call is the first to see it.
    pub async fn find_or_place(
        &self,
        key: &ObjectKey,
        location_hint: Option<&str>,
    ) -> Result<ObjectPlacement, ObjectError> {
        if let Some(placement) = self.known(key).await {
            return Ok(placement);
        }
        let me = self.directory.me().clone();
        let (region, jurisdiction) = self
            .directory
            .read_local(|state| {
                let namespace = state
                    .incarnation(&key.namespace)
                    .ok_or_else(|| ObjectError::NamespaceNotFound(key.namespace.clone()))?;
                let policy = &namespace.policy;
                let region =
                    choose_region(state, &key.namespace, policy, &me.region, location_hint)?;
                Ok::<_, ObjectError>((region, policy.jurisdiction.clone()))
            })
            .await?;
        let eligible_here = me.region == region
            && jurisdiction
                .as_ref()
                .is_none_or(|j| me.jurisdictions.contains(j));
        Ok(self
            .directory
            .place_object(
                key.clone(),
                region,
                jurisdiction,
                self.replication_factor,
                eligible_here.then_some(me.id),
            )
            .await?)
    }

    /// Hands the object at `expected_epoch` to `replicas` (the first owns it) at the next
    /// epoch, in `region` when it changes; ordered by the directory against any
    /// concurrent reassignment.
    pub(crate) async fn reassign(
        &self,
        key: &ObjectKey,
        expected_epoch: Epoch,
        replicas: Vec<NodeId>,
        region: Option<RegionId>,
    ) -> Result<Reassigned, ObjectError> {
        let command = Command::ReassignObject {
            key: key.clone(),
            expected_epoch,
            replicas,
            region,
        };
        let answer = self
            .directory
            .request(DirectoryRequest::Write(command))
            .await?;
        Ok(match answer {
            DirectoryResponse::Outcome {
                outcome: CommandOutcome::Placed(placed),
                ..
            } if placed.epoch > expected_epoch => Reassigned::Placed(*placed),
            DirectoryResponse::Outcome {
                outcome: CommandOutcome::Placed(placed),
                ..
            } => {
                // A directory bug: refuse the hand-over rather than stop the task (the
                // failover loop) that asked.
                debug_assert!(false, "a reassignment must raise the epoch");
                tracing::error!(object = %key, expected = %expected_epoch, placed = %placed.epoch, "a reassignment did not raise the epoch");
                Reassigned::Refused(format!(
                    "the directory placed {key} at epoch {} from {expected_epoch}",
                    placed.epoch
                ))
            }
            DirectoryResponse::Outcome {
                outcome: CommandOutcome::EpochMismatch(current),
                ..
            } => Reassigned::Changed(*current),
            other => Reassigned::Refused(format!("reassignment answered {other:?}")),
        })
    }

    /// A page of a namespace's placements, in id order (this node's directory copy):
    /// ids after `start_after` that start with `prefix` and pass `keep`, at most `limit`
    /// of them. It reads the prefix's range in place, starting at the later of
    /// `start_after` and `prefix`, and looks at no more than [`LIST_SCAN_BUDGET`]
    /// placements: a page that hit the budget (placements `keep` turned down) or the
    /// limit says where to continue, so a page costs O(page + budget + log N) however
    /// many objects the namespace holds.
    pub async fn list(
        &self,
        namespace: &Namespace,
        start_after: &str,
        prefix: &str,
        limit: usize,
        keep: impl Fn(&ObjectPlacement) -> bool,
    ) -> Result<ListPage, ObjectError> {
        self.directory
            .read_local(|state| {
                if state.incarnation(namespace).is_none() {
                    return Err(ObjectError::NamespaceNotFound(namespace.clone()));
                }
                let range = Range {
                    namespace,
                    start_after,
                    prefix,
                };
                Ok(page_of(
                    state.placements(),
                    &range,
                    limit,
                    LIST_SCAN_BUDGET,
                    keep,
                ))
            })
            .await
    }

    /// Up to `limit` of what `pick` makes of the placements it picks, in key order, read
    /// in place: a scan over every placement without a copy of the directory.
    pub async fn scan<T>(
        &self,
        limit: usize,
        pick: impl Fn(&DirectoryState, &ObjectPlacement) -> Option<T>,
    ) -> Vec<T> {
        self.directory
            .read_local(|state| {
                state
                    .placements()
                    .values()
                    .filter_map(|p| pick(state, p))
                    .take(limit)
                    .collect()
            })
            .await
    }

    /// `node`'s api address, for redirects.
    pub async fn api_addr(&self, node: NodeId) -> Option<String> {
        self.directory
            .read_local(|s| s.node(node).map(|n| n.spec.api_addr.clone()))
            .await
    }

    /// `node`'s peer address.
    pub async fn peer_addr(&self, node: NodeId) -> Option<String> {
        self.directory
            .read_local(|s| s.node(node).map(|n| n.spec.peer_addr.clone()))
            .await
    }

    /// Whether the namespace incarnation `namespace` is current (as this node has
    /// applied the directory).
    pub async fn namespace_exists(&self, namespace: &Namespace) -> bool {
        self.directory
            .read_local(|s| s.incarnation(namespace).is_some())
            .await
    }

    /// The incarnation the objects of the namespace clients call `name` are stored
    /// and placed under (see `Namespace::incarnation`): what every call resolves the
    /// client's name to, once, where it comes in. A namespace created a moment ago
    /// through another node is found through the leader.
    pub async fn resolve(&self, name: &Namespace) -> Result<Namespace, ObjectError> {
        let current = |s: &DirectoryState| s.namespace(name.as_str()).map(|r| r.stored_as());
        if let Some(found) = self.directory.read_local(current).await {
            return Ok(found);
        }
        self.directory
            .read_linearizable(current)
            .await?
            .ok_or_else(|| ObjectError::NamespaceNotFound(name.clone()))
    }
}

/// What a listing page covers: ids of `namespace` after `start_after` starting with
/// `prefix`.
struct Range<'a> {
    namespace: &'a Namespace,
    start_after: &'a str,
    prefix: &'a str,
}

/// A listing page (see [`Placements::list`]): seeks to the later of `start_after` and
/// `prefix`, looks at `budget` placements at the most, keeps `limit` at the most.
fn page_of(
    placements: &BTreeMap<ObjectKey, ObjectPlacement>,
    range: &Range<'_>,
    limit: usize,
    budget: usize,
    keep: impl Fn(&ObjectPlacement) -> bool,
) -> ListPage {
    debug_assert!(
        limit > 0 && budget > 0,
        "a page looks at and keeps something"
    );
    let key = |id: &str| ObjectKey {
        namespace: range.namespace.clone(),
        id: id.to_string(),
    };
    let from = if range.start_after < range.prefix {
        Bound::Included(key(range.prefix))
    } else {
        Bound::Excluded(key(range.start_after))
    };
    let mut in_range = placements
        .range((from, Bound::Unbounded))
        .map(|(_, p)| p)
        .take_while(|p| p.key.namespace == *range.namespace && p.key.id.starts_with(range.prefix));
    let mut page = ListPage::default();
    for looked in 1..=budget {
        let Some(placement) = in_range.next() else {
            break;
        };
        if keep(placement) {
            page.placements.push(placement.clone());
        }
        if page.placements.len() == limit || looked == budget {
            // More may follow: continue after the last one looked at.
            if in_range.next().is_some() {
                page.next_start_after = Some(placement.key.id.clone());
            }
            break;
        }
    }
    page
}

/// The region a new object of `namespace` goes to: the location hint when the namespace
/// allows it there, else this node's region when allowed, else the first allowed region
/// by name (the same for every node). A region may hold the object if the namespace
/// allows it and, for a namespace with a jurisdiction, some up node there carries it.
pub(crate) fn choose_region(
    state: &DirectoryState,
    namespace: &Namespace,
    policy: &NamespacePolicy,
    my_region: &RegionId,
    location_hint: Option<&str>,
) -> Result<RegionId, ObjectError> {
    let jurisdiction: Option<&Jurisdiction> = policy.jurisdiction.as_ref();
    let allowed = |region: &RegionId| {
        (policy.regions.is_empty() || policy.regions.contains(region))
            && jurisdiction.is_none_or(|j| {
                state.nodes.values().any(|n| {
                    n.status == NodeStatus::Up
                        && &n.spec.region == region
                        && n.spec.jurisdictions.contains(j)
                })
            })
    };
    match location_hint.filter(|h| !h.is_empty()) {
        Some(hint) => {
            let region = RegionId(hint.to_string());
            if !allowed(&region) {
                return Err(ObjectError::InvalidArgument(format!(
                    "location hint {hint:?} cannot hold objects of namespace {namespace:?} ({})",
                    policy.describe()
                )));
            }
            Ok(region)
        }
        None if allowed(my_region) => Ok(my_region.clone()),
        None => {
            let mut regions: Vec<&RegionId> =
                state.nodes.values().map(|n| &n.spec.region).collect();
            regions.sort();
            regions.dedup();
            regions
                .into_iter()
                .find(|r| allowed(r))
                .cloned()
                .ok_or_else(|| {
                    ObjectError::Placement(format!(
                        "no region can hold objects of namespace {namespace:?} ({})",
                        policy.describe()
                    ))
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use larder_directory::RegionId;

    use super::*;

    fn placements(namespace: &str, ids: &[&str], region: &str) -> Vec<ObjectPlacement> {
        ids.iter()
            .map(|id| ObjectPlacement {
                key: ObjectKey {
                    namespace: namespace.into(),
                    id: (*id).into(),
                },
                region: RegionId(region.into()),
                jurisdiction: None,
                owner: NodeId(1),
                replicas: vec![NodeId(1)],
                epoch: Epoch::FIRST,
                placed_at_ms: 0,
            })
            .collect()
    }

    fn ids(page: &ListPage) -> Vec<&str> {
        page.placements.iter().map(|p| p.key.id.as_str()).collect()
    }

    #[test]
    fn pages_seek_the_prefix_keep_to_the_namespace_and_stop_at_the_budget() {
        let all: BTreeMap<ObjectKey, ObjectPlacement> = [
            placements("a", &["x"], "eu"),
            placements("rooms", &["a-1", "b-1", "b-2", "b-3", "c-1"], "eu"),
            placements("rooms", &["b-4", "b-5"], "us"),
            placements("z", &["b-9"], "eu"),
        ]
        .into_iter()
        .flatten()
        .map(|p| (p.key.clone(), p))
        .collect();
        let rooms = Namespace::from("rooms".to_string());
        let range = |start_after: &'static str, prefix: &'static str| Range {
            namespace: &rooms,
            start_after,
            prefix,
        };
        let everything = |_: &ObjectPlacement| true;
        // The prefix's range only: nothing of other namespaces or other prefixes.
        let page = page_of(&all, &range("", "b-"), 10, 100, everything);
        assert_eq!(ids(&page), ["b-1", "b-2", "b-3", "b-4", "b-5"]);
        assert_eq!(page.next_start_after, None);
        // A full page says where the next starts; the next page starts there.
        let page = page_of(&all, &range("", "b-"), 2, 100, everything);
        assert_eq!(
            (ids(&page), page.next_start_after.as_deref()),
            (vec!["b-1", "b-2"], Some("b-2"))
        );
        let page = page_of(&all, &range("b-2", "b-"), 2, 100, everything);
        assert_eq!(ids(&page), ["b-3", "b-4"]);
        // A filter that turns most down: the budget ends the page, empty or not, with
        // the place to go on from; paging on finds each kept object once.
        let in_us = |p: &ObjectPlacement| p.region.0 == "us";
        let page = page_of(&all, &range("", ""), 10, 3, in_us);
        assert_eq!(
            (ids(&page).len(), page.next_start_after.as_deref()),
            (0, Some("b-2"))
        );
        let mut found = Vec::new();
        let mut after = String::new();
        loop {
            let page = page_of(&all, &range_owned(&rooms, &after), 10, 3, in_us);
            found.extend(page.placements.iter().map(|p| p.key.id.clone()));
            match page.next_start_after {
                Some(next) => after = next,
                None => break,
            }
        }
        assert_eq!(found, ["b-4", "b-5"]);
    }

    fn range_owned<'a>(namespace: &'a Namespace, start_after: &'a str) -> Range<'a> {
        Range {
            namespace,
            start_after,
            prefix: "",
        }
    }
}

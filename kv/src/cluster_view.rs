use std::collections::{BTreeMap, BTreeSet};

use crate::{Namespace, NodeId};

/// What the KV needs to know about the cluster, kept current by the node from the
/// directory: peers, their liveness, and which nodes may hold each namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub me: NodeId,
    pub nodes: BTreeMap<NodeId, PeerInfo>,
    /// The current namespaces, by the incarnation their data is stored and replicated
    /// under (see `Namespace::incarnation`).
    pub namespaces: BTreeMap<Namespace, NamespaceInfo>,
    /// The current incarnation of each namespace, by the name clients use.
    pub names: BTreeMap<Namespace, Namespace>,
    /// The last namespace generation the directory handed out; `None` until the view
    /// comes from the directory. Stored data of an incarnation up to it that is not
    /// current belongs to a deleted namespace.
    pub last_generation: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub region: String,
    pub api_addr: String,
    pub peer_addr: String,
    pub up: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Nodes allowed to store and receive the namespace's data.
    pub allowed: BTreeSet<NodeId>,
    /// The residency policy in words, for error messages.
    pub policy: String,
}

impl ClusterView {
    /// A view from the directory whose namespaces are all generation 0 (stored under
    /// the names clients use): for tests and tools that build a view by hand.
    pub fn new(
        me: NodeId,
        nodes: BTreeMap<NodeId, PeerInfo>,
        namespaces: BTreeMap<Namespace, NamespaceInfo>,
    ) -> ClusterView {
        ClusterView {
            me,
            nodes,
            names: namespaces
                .keys()
                .map(|ns| (ns.clone(), ns.clone()))
                .collect(),
            namespaces,
            last_generation: Some(0),
        }
    }

    pub fn my_region(&self) -> &str {
        self.nodes
            .get(&self.me)
            .map_or("", |peer| peer.region.as_str())
    }

    /// The incarnation the namespace clients call `name` is stored under, if it exists.
    pub fn resolve(&self, name: &str) -> Option<&Namespace> {
        self.names.get(name)
    }

    /// Whether data stored under `incarnation` is a deleted namespace's (garbage): an
    /// incarnation this view would know of, but not current. One newer than the view
    /// (a peer's write of a namespace created a moment ago) is not.
    pub fn is_deleted(&self, incarnation: &Namespace) -> bool {
        !self.namespaces.contains_key(incarnation)
            && self
                .last_generation
                .is_some_and(|last| incarnation.generation() <= last)
    }

    /// An up node that holds `namespace`, for a node that does not to send a client
    /// to: the first of this node's region, else the first of any.
    pub fn holder(&self, namespace: &Namespace) -> Option<&PeerInfo> {
        let allowed = &self.namespaces.get(namespace)?.allowed;
        let up = || {
            allowed
                .iter()
                .filter_map(|id| self.nodes.get(id))
                .filter(|peer| peer.up)
        };
        let mine = self.my_region();
        up().find(|peer| peer.region == mine)
            .or_else(|| up().next())
    }

    /// Whether `node` may hold `namespace`. Unknown namespaces are not allowed anywhere.
    pub fn allows(&self, namespace: &Namespace, node: NodeId) -> bool {
        self.namespaces
            .get(namespace)
            .is_some_and(|ns| ns.allowed.contains(&node))
    }

    /// Push targets for a write of this node in `namespace`: every allowed, up node of
    /// this node's region directly, and one relay per other region with the rest of that
    /// region for it to forward to. The relay is picked by origin (this node's id modulo
    /// the region's size) so that relaying load spreads over a region's nodes.
    pub fn push_plan(&self, namespace: &Namespace) -> Vec<(NodeId, Vec<NodeId>)> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        let mut by_region: BTreeMap<&str, Vec<NodeId>> = BTreeMap::new();
        for id in &ns.allowed {
            if *id == self.me {
                continue;
            }
            if let Some(peer) = self.nodes.get(id)
                && peer.up
            {
                by_region.entry(peer.region.as_str()).or_default().push(*id);
            }
        }
        let mine = self.my_region();
        let mut plan = Vec::new();
        for (region, mut ids) in by_region {
            ids.sort();
            if region == mine {
                plan.extend(ids.into_iter().map(|id| (id, Vec::new())));
            } else {
                let relay = ids.remove(self.me.0 as usize % ids.len());
                plan.push((relay, ids));
            }
        }
        plan
    }

    /// Up peers that share at least one namespace with this node: anti-entropy partners.
    pub fn sync_partners(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(id, peer)| **id != self.me && peer.up)
            .filter(|(id, _)| {
                self.namespaces
                    .values()
                    .any(|ns| ns.allowed.contains(&self.me) && ns.allowed.contains(id))
            })
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> ClusterView {
        let mut nodes = BTreeMap::new();
        for (id, region, up) in [
            (1, "eu", true),
            (2, "eu", true),
            (3, "us", true),
            (4, "us", true),
            (5, "us", false),
            (6, "ap", true),
        ] {
            nodes.insert(
                NodeId(id),
                PeerInfo {
                    region: region.into(),
                    api_addr: String::new(),
                    peer_addr: String::new(),
                    up,
                },
            );
        }
        let all: BTreeSet<NodeId> = nodes.keys().copied().collect();
        let namespaces = BTreeMap::from([
            (
                Namespace::from("all"),
                NamespaceInfo {
                    allowed: all,
                    policy: "everywhere".into(),
                },
            ),
            (
                Namespace::from("eu"),
                NamespaceInfo {
                    allowed: BTreeSet::from([NodeId(1), NodeId(2)]),
                    policy: "eu".into(),
                },
            ),
        ]);
        ClusterView::new(NodeId(1), nodes, namespaces)
    }

    #[test]
    fn push_plan_relays_once_per_remote_region() {
        let plan = view().push_plan(&"all".into());
        assert_eq!(
            plan,
            vec![
                (NodeId(6), vec![]),
                (NodeId(2), vec![]),
                (NodeId(4), vec![NodeId(3)]),
            ]
        );
        // Messages per write: one per other node; cross-region: one per other region.
        assert_eq!(
            plan.iter().map(|(_, relay)| 1 + relay.len()).sum::<usize>(),
            4
        );
    }

    #[test]
    fn data_of_an_incarnation_the_view_knows_but_not_as_current_is_deleted() {
        let mut v = view();
        let all = v.namespaces.remove("all").expect("all");
        v.namespaces.insert("all@7".into(), all);
        v.names.insert("all".into(), "all@7".into());
        v.last_generation = Some(7);
        assert_eq!(v.resolve("all"), Some(&"all@7".into()));
        assert_eq!(
            v.resolve("all@7"),
            None,
            "clients name namespaces, not incarnations"
        );
        assert!(!v.is_deleted(&"all@7".into()));
        assert!(v.is_deleted(&"all@6".into()));
        assert!(v.is_deleted(&"all".into()), "generation 0, not current");
        assert!(!v.is_deleted(&"all@8".into()), "created after this view");
        v.last_generation = None;
        assert!(
            !v.is_deleted(&"all@6".into()),
            "no view from the directory yet"
        );
    }

    #[test]
    fn restricted_namespaces_stay_inside() {
        let v = view();
        assert_eq!(v.push_plan(&"eu".into()), vec![(NodeId(2), vec![])]);
        assert!(v.push_plan(&"missing".into()).is_empty());
        assert!(!v.allows(&"eu".into(), NodeId(3)));
        assert_eq!(
            v.sync_partners(),
            vec![NodeId(2), NodeId(3), NodeId(4), NodeId(6)]
        );
    }
}

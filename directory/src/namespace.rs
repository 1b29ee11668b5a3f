use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{Jurisdiction, Namespace, NodeSpec, RegionId};

// The name rule lives in base beside `Namespace`; named here too for the directory's callers.
pub use larder_base::{NAMESPACE_NAME_BYTES_MAX, check_namespace_name};

/// Where a namespace's data may be stored and sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespacePolicy {
    /// Regions whose nodes hold the data; empty means every region.
    pub regions: BTreeSet<RegionId>,
    /// Only nodes carrying this jurisdiction tag hold the data.
    pub jurisdiction: Option<Jurisdiction>,
}

impl NamespacePolicy {
    /// Whether a node may store and receive this namespace's data.
    pub fn allows(&self, node: &NodeSpec) -> bool {
        (self.regions.is_empty() || self.regions.contains(&node.region))
            && self
                .jurisdiction
                .as_ref()
                .is_none_or(|j| node.jurisdictions.contains(j))
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.regions.is_empty() {
            let regions: Vec<&str> = self.regions.iter().map(|r| r.0.as_str()).collect();
            parts.push(format!("regions {}", regions.join(",")));
        }
        if let Some(j) = &self.jurisdiction {
            parts.push(format!("jurisdiction {j}"));
        }
        if parts.is_empty() {
            "everywhere".to_string()
        } else {
            parts.join(" and ")
        }
    }
}

/// A namespace as a client asks for it: what [`crate::Command::CreateNamespace`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceSpec {
    pub name: Namespace,
    pub policy: NamespacePolicy,
    pub created_at_ms: u64,
}

/// A namespace as recorded in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub name: Namespace,
    pub policy: NamespacePolicy,
    pub created_at_ms: u64,
    /// Which creation of this name it is, numbered by the directory (0: created before
    /// generations, as `CreateNamespaceV1`). Its data lives under
    /// [`NamespaceRecord::stored_as`].
    pub generation: u64,
}

impl NamespaceRecord {
    pub fn new(spec: &NamespaceSpec, generation: u64) -> NamespaceRecord {
        NamespaceRecord {
            name: spec.name.clone(),
            policy: spec.policy.clone(),
            created_at_ms: spec.created_at_ms,
            generation,
        }
    }

    /// The incarnation this record's KV entries, placements and object copies are
    /// stored and replicated under (see [`Namespace::incarnation`]).
    pub fn stored_as(&self) -> Namespace {
        self.name.incarnation(self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;

    fn node(region: &str, jurisdictions: &[&str]) -> NodeSpec {
        NodeSpec {
            id: NodeId(1),
            region: RegionId(region.into()),
            jurisdictions: jurisdictions
                .iter()
                .map(|j| Jurisdiction((*j).into()))
                .collect(),
            api_addr: String::new(),
            peer_addr: String::new(),
        }
    }

    #[test]
    fn policy_allows() {
        let everywhere = NamespacePolicy::default();
        assert!(everywhere.allows(&node("us-east", &[])));
        let eu_only = NamespacePolicy {
            regions: BTreeSet::new(),
            jurisdiction: Some(Jurisdiction("eu".into())),
        };
        assert!(eu_only.allows(&node("eu-west", &["eu"])));
        assert!(!eu_only.allows(&node("us-east", &["us"])));
        let west = NamespacePolicy {
            regions: BTreeSet::from([RegionId("eu-west".into())]),
            jurisdiction: None,
        };
        assert!(west.allows(&node("eu-west", &[])));
        assert!(!west.allows(&node("eu-central", &["eu"])));
    }
}

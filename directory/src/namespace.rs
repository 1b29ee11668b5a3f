use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{Jurisdiction, NodeSpec, RegionId};

/// Longest namespace name.
pub const NAMESPACE_NAME_BYTES_MAX: usize = 64;

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

/// A namespace as recorded in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub name: String,
    pub policy: NamespacePolicy,
    pub created_at_ms: u64,
}

/// Checks a namespace name: 1 to 64 bytes of `a-z A-Z 0-9 _ - .`, starting with a letter
/// or digit.
pub fn check_namespace_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > NAMESPACE_NAME_BYTES_MAX {
        return Err(format!(
            "must be 1 to {NAMESPACE_NAME_BYTES_MAX} bytes long, got {}",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or digit".to_string());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "contains {bad:?}; only letters, digits, '_', '-' and '.' are allowed"
        ));
    }
    Ok(())
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

    #[test]
    fn names() {
        assert!(check_namespace_name("sessions.v2_eu-1").is_ok());
        assert!(check_namespace_name("").is_err());
        assert!(check_namespace_name("-x").is_err());
        assert!(check_namespace_name("a/b").is_err());
        assert!(check_namespace_name(&"a".repeat(65)).is_err());
    }
}

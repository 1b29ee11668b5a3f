use std::fmt;

use serde::{Deserialize, Serialize};

/// Identity of a node, unique in its cluster and stable across restarts.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for NodeId {
    fn from(id: u64) -> Self {
        NodeId(id)
    }
}

/// An object's owner epoch: each hand-over of the object (failover, move, repair,
/// an owner's restart in a new epoch) takes the next one. A copy refuses anything tagged
/// with an epoch older than the highest it has seen (fencing); epoch 0 means "none yet".
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch of a new object's first placement.
    pub const FIRST: Epoch = Epoch(1);

    /// The epoch a hand-over of an object at this epoch takes.
    pub fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A region such as `eu-west`: a set of nearby nodes that objects are pinned to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RegionId(pub String);

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A jurisdiction tag such as `eu`: data restricted to it never leaves its nodes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Jurisdiction(pub String);

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a region or jurisdiction name: lower-case ASCII letters, digits and `-`,
/// 1 to 63 characters, starting with a letter. Returns why it is not valid.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > 63 {
        return Err(format!(
            "must be 1 to 63 characters long, got {}",
            label.len()
        ));
    }
    if !label.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lower-case letter".to_string());
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "contains {bad:?}; only a-z, 0-9 and '-' are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels() {
        assert!(super::check_label("eu-west-1").is_ok());
        assert!(super::check_label("").is_err());
        assert!(super::check_label("EU").is_err());
        assert!(super::check_label("1eu").is_err());
        assert!(super::check_label("eu west").is_err());
        assert!(super::check_label(&"a".repeat(64)).is_err());
    }
}

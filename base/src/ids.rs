use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

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

/// Longest namespace name.
pub const NAMESPACE_NAME_BYTES_MAX: usize = 64;

/// A namespace's name, such as `sessions.v2`: what KV entries and objects are grouped
/// by, and what residency policies apply to. Encoded exactly as a string, on disk and
/// on the wire.
///
/// Two ways in, on purpose:
/// - [`Namespace::parse`] (and `str::parse`) applies [`check_namespace_name`]: for a
///   name someone asks to create.
/// - `From<&str>` and `From<String>` do not check: for names read back from the
///   directory, the store or a peer (checked when the namespace was created), and for
///   names a request only looks up. A name that breaks the rule was never created, so
///   looking it up answers "not found", as it did when these were plain strings;
///   checking there would change which error a client sees.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Namespace(String);

impl Namespace {
    /// The namespace `name` names, if it follows the name rule; else why not.
    pub fn parse(name: &str) -> Result<Namespace, String> {
        check_namespace_name(name)?;
        Ok(Namespace(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The incarnation of this namespace that the directory created as `generation`:
    /// the name KV entries, placements and object copies of that incarnation are
    /// stored and replicated under. A namespace deleted and created again gets a new
    /// generation, so nothing the old one wrote can be read, replicated or placed into
    /// the new one, wherever it still lingers; it is only ever garbage. Generation 0
    /// (namespaces created before generations) is the bare name, as stored then.
    pub fn incarnation(&self, generation: u64) -> Namespace {
        if generation == 0 {
            Namespace(self.name().to_string())
        } else {
            Namespace(format!(
                "{}{INCARNATION_SEPARATOR}{generation}",
                self.name()
            ))
        }
    }

    /// The name a client knows this namespace by, without its generation.
    pub fn name(&self) -> &str {
        self.0
            .split_once(INCARNATION_SEPARATOR)
            .map_or(self.0.as_str(), |(name, _)| name)
    }

    /// The generation of this incarnation (0: a bare name).
    pub fn generation(&self) -> u64 {
        self.0
            .split_once(INCARNATION_SEPARATOR)
            .and_then(|(_, generation)| generation.parse().ok())
            .unwrap_or(0)
    }
}

/// Separates a namespace's name from its generation in an incarnation; outside the
/// name rule's alphabet, so no created name contains it.
const INCARNATION_SEPARATOR: char = '@';

/// The client's name (an incarnation shows without its generation): error messages
/// name the namespace a client asked for. `Debug` shows the whole stored name.
impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Written as the string itself (`"sessions"`), so that error messages and logs that
/// print a namespace with `{:?}` read as they did when it was a `String`.
impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl FromStr for Namespace {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Namespace::parse(name)
    }
}

impl From<&str> for Namespace {
    fn from(name: &str) -> Self {
        Namespace(name.to_string())
    }
}

impl From<String> for Namespace {
    fn from(name: String) -> Self {
        Namespace(name)
    }
}

impl From<Namespace> for String {
    fn from(namespace: Namespace) -> Self {
        namespace.0
    }
}

impl AsRef<str> for Namespace {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Maps and sets keyed by `Namespace` answer lookups by `&str` (ordering and hashing are
/// the string's).
impl Borrow<str> for Namespace {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Namespace {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Namespace {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<Namespace> for str {
    fn eq(&self, other: &Namespace) -> bool {
        self == other.0
    }
}

impl PartialEq<Namespace> for &str {
    fn eq(&self, other: &Namespace) -> bool {
        *self == other.0
    }
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
    use std::collections::{BTreeMap, HashSet};

    use larder_store::codec;

    use super::*;

    #[test]
    fn names() {
        assert!(check_namespace_name("sessions.v2_eu-1").is_ok());
        assert!(check_namespace_name("").is_err());
        assert!(check_namespace_name("-x").is_err());
        assert!(check_namespace_name("a/b").is_err());
        assert!(check_namespace_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn an_incarnation_keeps_its_name_and_generation_apart() {
        let sessions = Namespace::from("sessions.v2");
        assert_eq!(sessions.incarnation(0), sessions);
        let third = sessions.incarnation(3);
        assert_eq!(third.as_str(), "sessions.v2@3");
        assert_eq!((third.name(), third.generation()), ("sessions.v2", 3));
        assert_eq!(third.incarnation(4).as_str(), "sessions.v2@4");
        assert_eq!((sessions.name(), sessions.generation()), ("sessions.v2", 0));
        assert_eq!(third.to_string(), "sessions.v2");
        assert_eq!(format!("{third:?}"), "\"sessions.v2@3\"");
        // No created name holds the separator.
        assert!(Namespace::parse("a@1").is_err());
    }

    #[test]
    fn namespaces_parse_by_the_name_rule() {
        for good in ["a", "9lives", "sessions.v2_eu-1", "Rooms", &"a".repeat(64)] {
            let parsed = Namespace::parse(good).expect(good);
            assert_eq!(parsed.as_str(), good);
            assert_eq!(good.parse::<Namespace>(), Ok(parsed));
        }
        for bad in ["", "-x", ".x", "_x", "a/b", "a b", "é", &"a".repeat(65)] {
            let reason = Namespace::parse(bad).expect_err(bad);
            assert_eq!(Err(reason), check_namespace_name(bad), "{bad:?}");
            assert!(bad.parse::<Namespace>().is_err(), "{bad:?}");
        }
        // The unchecked conversion keeps what it is given, for lookups to refuse.
        assert_eq!(Namespace::from("a/b").as_str(), "a/b");
    }

    #[test]
    fn namespaces_encode_as_their_string() {
        let name = "sessions.v2";
        let namespace = Namespace::from(name);
        let as_string = name.to_string();
        assert_eq!(
            codec::encode(&namespace).expect("encodes"),
            codec::encode(&as_string).expect("encodes")
        );
        let decoded: Namespace =
            codec::decode(&codec::encode(&as_string).expect("encodes")).expect("decodes");
        assert_eq!(decoded, namespace);
        // As a map key too, in a self-describing format as well as the binary one.
        let keyed = BTreeMap::from([(namespace.clone(), 7u64)]);
        let string_keyed = BTreeMap::from([(as_string.clone(), 7u64)]);
        assert_eq!(
            codec::encode(&keyed).expect("encodes"),
            codec::encode(&string_keyed).expect("encodes")
        );
        assert_eq!(
            serde_json::to_string(&keyed).expect("encodes"),
            serde_json::to_string(&string_keyed).expect("encodes")
        );
        assert_eq!(
            serde_json::to_string(&namespace).expect("encodes"),
            "\"sessions.v2\""
        );
    }

    #[test]
    fn namespaces_read_as_strings() {
        let namespace = Namespace::from("rooms");
        assert_eq!(namespace.to_string(), "rooms");
        assert_eq!(format!("{namespace:?}"), format!("{:?}", "rooms"));
        assert_eq!(namespace, "rooms");
        assert_eq!("rooms", namespace);
        let set = HashSet::from([namespace.clone()]);
        assert!(set.contains("rooms"));
        let map = BTreeMap::from([(namespace.clone(), 1)]);
        assert_eq!(map.get("rooms"), Some(&1));
        assert_eq!(String::from(namespace), "rooms");
    }

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

use serde::{Deserialize, Serialize};

use crate::ObjectError;

/// Longest object id or name.
pub const OBJECT_ID_BYTES_MAX: usize = 256;

/// An object's id inside its namespace.
///
/// Named objects use their name as id (so listings and `inspect` show it as is); unique
/// objects get `u-` and 32 random hex digits. Either parses back from its string form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectId(String);

impl ObjectId {
    /// The id of the object called `name`: the same name always gives the same object.
    pub fn from_name(name: &str) -> Result<ObjectId, ObjectError> {
        Self::parse(name)
    }

    /// A new id no other object has.
    pub fn unique() -> ObjectId {
        let bits: u128 = rand::random();
        ObjectId(format!("u-{bits:032x}"))
    }

    /// Checks an id's string form: 1 to 256 bytes of printable ASCII without `/`.
    pub fn parse(text: &str) -> Result<ObjectId, ObjectError> {
        if text.is_empty() || text.len() > OBJECT_ID_BYTES_MAX {
            return Err(ObjectError::InvalidArgument(format!(
                "object name must be 1 to {OBJECT_ID_BYTES_MAX} bytes, got {}",
                text.len()
            )));
        }
        if let Some(bad) = text.chars().find(|c| !c.is_ascii_graphic() || *c == '/') {
            return Err(ObjectError::InvalidArgument(format!(
                "object name contains {bad:?}; printable ASCII other than '/' only"
            )));
        }
        Ok(ObjectId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(
            ObjectId::from_name("room-1").expect("ok").as_str(),
            "room-1"
        );
        let a = ObjectId::unique();
        assert_ne!(a, ObjectId::unique());
        assert_eq!(ObjectId::parse(a.as_str()).expect("round trip"), a);
        assert!(ObjectId::parse("").is_err());
        assert!(ObjectId::parse("a/b").is_err());
        assert!(ObjectId::parse("a b").is_err());
        assert!(ObjectId::parse(&"x".repeat(257)).is_err());
    }
}

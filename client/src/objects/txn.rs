//! Transactions on one object, built step by step.

use larder_proto::v1 as pb;

use super::{ObjectHandle, Precondition, TransactionWrite};
use crate::ClientError;

/// A transaction on one object: preconditions, then writes, applied all or none.
///
/// ```no_run
/// # async fn demo(room: larder_client::objects::ObjectHandle) -> Result<(), larder_client::ClientError> {
/// let result = room
///     .txn()
///     .if_absent("owner")
///     .put("owner", "alice")
///     .add("members", 1)
///     .commit()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a transaction does nothing until committed"]
pub struct Txn {
    object: ObjectHandle,
    preconditions: Vec<Precondition>,
    writes: Vec<TransactionWrite>,
}

impl Txn {
    pub(super) fn new(object: ObjectHandle) -> Txn {
        Txn {
            object,
            preconditions: Vec::new(),
            writes: Vec::new(),
        }
    }

    fn check(mut self, key: impl Into<Vec<u8>>, check: pb::precondition::Check) -> Txn {
        self.preconditions.push(Precondition {
            key: key.into(),
            check: Some(check),
        });
        self
    }

    fn write(mut self, key: impl Into<Vec<u8>>, write: pb::transaction_write::Write) -> Txn {
        self.writes.push(TransactionWrite {
            key: key.into(),
            write: Some(write),
        });
        self
    }

    /// The key's version is `version` (0: absent).
    pub fn if_version(self, key: impl Into<Vec<u8>>, version: u64) -> Txn {
        self.check(key, pb::precondition::Check::VersionEquals(version))
    }

    pub fn if_absent(self, key: impl Into<Vec<u8>>) -> Txn {
        self.check(key, pb::precondition::Check::Absent(true))
    }

    pub fn if_value(self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Txn {
        self.check(key, pb::precondition::Check::ValueEquals(value.into()))
    }

    pub fn put(self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Txn {
        self.write(key, pb::transaction_write::Write::Put(value.into()))
    }

    pub fn delete(self, key: impl Into<Vec<u8>>) -> Txn {
        self.write(key, pb::transaction_write::Write::Delete(true))
    }

    pub fn add(self, key: impl Into<Vec<u8>>, delta: i64) -> Txn {
        self.write(key, pb::transaction_write::Write::Add(delta))
    }

    /// Applies the writes if every precondition holds (`FAILED_PRECONDITION` naming
    /// the first that does not, otherwise); one result per write, in order.
    pub async fn commit(self) -> Result<pb::ObjectTransactionResponse, ClientError> {
        self.object
            .transaction(self.preconditions, self.writes)
            .await
    }
}

//! One attempt of each object call the workload makes, as an `Outcome`.

use larder_checker::{EventKind, Value};
use larder_proto::v1 as pb;
use larder_proto::v1::objects_client::ObjectsClient;
use tonic::transport::Channel;

use super::{CALL_TIMEOUT, COUNTER, NAMESPACE, REGISTER};

pub fn object_ref(name: &str) -> Option<pb::ObjectRef> {
    Some(pb::ObjectRef {
        namespace: NAMESPACE.into(),
        key: Some(pb::object_ref::Key::Name(name.into())),
        location_hint: String::new(),
    })
}

pub fn parse(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// What one call came to: its completion kind, result value, version, owner and epoch.
pub struct Outcome {
    pub kind: EventKind,
    pub value: Option<Value>,
    pub version: Option<u64>,
    pub owner_epoch: Option<(u64, u64)>,
    pub error: Option<String>,
}

impl Outcome {
    /// A write acknowledged by `owner` in `epoch`.
    fn acked(value: Option<Value>, version: u64, owner: u64, epoch: u64) -> Outcome {
        Outcome {
            kind: EventKind::Ok,
            value,
            version: Some(version),
            owner_epoch: Some((owner, epoch)),
            error: None,
        }
    }

    fn from_error(status: &tonic::Status, mutation: bool) -> Outcome {
        // A refused precondition or argument certainly changed nothing; any other error
        // of a write leaves its outcome unknown; a failed read changed nothing.
        let definite = matches!(
            status.code(),
            tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument
        );
        Outcome {
            kind: if definite || !mutation {
                EventKind::Fail
            } else {
                EventKind::Info
            },
            value: None,
            version: None,
            owner_epoch: None,
            error: Some(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

pub fn timed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

pub async fn read(client: &mut ObjectsClient<Channel>, (object, key): (&str, &str)) -> Outcome {
    let request = timed(pb::ObjectGetRequest {
        object: object_ref(object),
        keys: vec![key.as_bytes().to_vec()],
    });
    match client.get(request).await {
        Ok(response) => {
            let found = response.into_inner().values.pop();
            let value = found
                .as_ref()
                .filter(|v| v.found)
                .and_then(|v| parse(&v.value));
            Outcome {
                kind: EventKind::Ok,
                value: value.map(Value::Int),
                version: found.map(|v| v.version),
                owner_epoch: None,
                error: None,
            }
        }
        Err(status) => Outcome::from_error(&status, false),
    }
}

pub async fn write(client: &mut ObjectsClient<Channel>, value: i64, id: &str) -> Outcome {
    let request = timed(pb::ObjectPutRequest {
        object: object_ref(REGISTER.0),
        entries: vec![pb::ObjectEntry {
            key: REGISTER.1.as_bytes().to_vec(),
            value: value.to_string().into_bytes(),
        }],
        request_id: id.into(),
    });
    match client.put(request).await {
        Ok(response) => {
            let r = response.into_inner();
            Outcome::acked(None, r.version, r.owner, r.epoch)
        }
        Err(status) => Outcome::from_error(&status, true),
    }
}

pub async fn cas(
    client: &mut ObjectsClient<Channel>,
    expected: i64,
    new: i64,
    id: &str,
) -> Outcome {
    let key = REGISTER.1.as_bytes().to_vec();
    let request = timed(pb::ObjectTransactionRequest {
        object: object_ref(REGISTER.0),
        preconditions: vec![pb::Precondition {
            key: key.clone(),
            check: Some(pb::precondition::Check::ValueEquals(
                expected.to_string().into_bytes(),
            )),
        }],
        writes: vec![pb::TransactionWrite {
            key,
            write: Some(pb::transaction_write::Write::Put(
                new.to_string().into_bytes(),
            )),
        }],
        request_id: id.into(),
    });
    match client.transaction(request).await {
        Ok(response) => {
            let r = response.into_inner();
            Outcome::acked(None, r.version, r.owner, r.epoch)
        }
        Err(status) => Outcome::from_error(&status, true),
    }
}

pub async fn add(client: &mut ObjectsClient<Channel>, id: &str) -> Outcome {
    let request = timed(pb::ObjectAddRequest {
        object: object_ref(COUNTER.0),
        key: COUNTER.1.as_bytes().to_vec(),
        delta: 1,
        request_id: id.into(),
    });
    match client.add(request).await {
        Ok(response) => {
            let r = response.into_inner();
            Outcome::acked(Some(Value::Int(r.value)), r.version, r.owner, r.epoch)
        }
        Err(status) => Outcome::from_error(&status, true),
    }
}

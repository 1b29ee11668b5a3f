//! Client requests as `larder.v1.Objects` takes them: pure conversions from the protobuf
//! messages to the call each makes, with the checks that need no node (the object's
//! reference, the oneofs a request must set, the page limit of a listing). What the
//! owner checks when it runs the call (sizes, counts, request ids) is
//! [`crate::ObjectState::execute_request`]. The service and the `api_requests` fuzz
//! target both go through here.

use larder_proto::v1 as pb;
use tonic::Status;

use super::status::object_status;
use crate::handover::choice::MoveTarget;
use crate::op::{ListQuery, Op, Precondition, TxnWrite};
use crate::{Namespace, ObjectError, ObjectId, ObjectLimits};

/// One call on one object, as a request asks for it.
#[derive(Debug, Clone)]
pub struct ObjectCall {
    pub object: pb::ObjectRef,
    /// The namespace `object` names.
    pub namespace: Namespace,
    pub id: ObjectId,
    pub op: Op,
    /// Makes a retried write apply once; None when the request left it empty.
    pub request_id: Option<String>,
}

/// The namespace a request names, converted once at the edge. Not held to the name rule
/// here: a name that breaks it was never created, so finding or placing the object
/// answers "does not exist", as it did when namespaces were plain strings.
pub fn namespace(name: String) -> Namespace {
    Namespace::from(name)
}

/// The region to place the object in if a call creates it; None when not given.
pub fn location_hint(object: &pb::ObjectRef) -> Option<&str> {
    Some(object.location_hint.as_str()).filter(|hint| !hint.is_empty())
}

/// A subscription to one object's events.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub object: pb::ObjectRef,
    /// The namespace `object` names.
    pub namespace: Namespace,
    pub id: ObjectId,
    pub after_seq: Option<u64>,
}

/// The object a call names: its reference and its parsed id.
pub fn object_ref(object: Option<pb::ObjectRef>) -> Result<(pb::ObjectRef, ObjectId), Status> {
    let object = object.ok_or_else(|| Status::invalid_argument("object is required"))?;
    let id = match &object.key {
        Some(pb::object_ref::Key::Name(name)) => ObjectId::from_name(name),
        Some(pb::object_ref::Key::Id(id)) => ObjectId::parse(id),
        None => Err(ObjectError::InvalidArgument(
            "object needs a name or an id".into(),
        )),
    }
    .map_err(object_status)?;
    Ok((object, id))
}

/// `op` on the object `object` names; `request_id` may be empty.
pub fn call(
    object: Option<pb::ObjectRef>,
    op: Op,
    request_id: String,
) -> Result<ObjectCall, Status> {
    let (object, id) = object_ref(object)?;
    Ok(ObjectCall {
        namespace: namespace(object.namespace.clone()),
        object,
        id,
        op,
        request_id: Some(request_id).filter(|id| !id.is_empty()),
    })
}

pub fn get(req: pb::ObjectGetRequest) -> Result<ObjectCall, Status> {
    call(req.object, Op::Get { keys: req.keys }, String::new())
}

pub fn put(req: pb::ObjectPutRequest) -> Result<ObjectCall, Status> {
    let entries = req.entries.into_iter().map(|e| (e.key, e.value)).collect();
    call(req.object, Op::Put { entries }, req.request_id)
}

pub fn delete(req: pb::ObjectDeleteRequest) -> Result<ObjectCall, Status> {
    call(req.object, Op::Delete { keys: req.keys }, req.request_id)
}

pub fn list(req: pb::ObjectListRequest) -> Result<ObjectCall, Status> {
    let query = ListQuery {
        prefix: req.prefix,
        start: req.start,
        end: req.end,
        reverse: req.reverse,
        limit: req.limit,
    };
    call(req.object, Op::List(query), String::new())
}

pub fn delete_all(req: pb::ObjectDeleteAllRequest) -> Result<ObjectCall, Status> {
    call(req.object, Op::DeleteAll, req.request_id)
}

pub fn add(req: pb::ObjectAddRequest) -> Result<ObjectCall, Status> {
    let op = Op::Add {
        key: req.key,
        delta: req.delta,
    };
    call(req.object, op, req.request_id)
}

fn precondition(index: usize, p: pb::Precondition) -> Result<Precondition, Status> {
    match p.check {
        Some(pb::precondition::Check::VersionEquals(version)) => Ok(Precondition::VersionEquals {
            key: p.key,
            version,
        }),
        Some(pb::precondition::Check::Absent(_)) => Ok(Precondition::Absent { key: p.key }),
        Some(pb::precondition::Check::ValueEquals(value)) => {
            Ok(Precondition::ValueEquals { key: p.key, value })
        }
        None => Err(Status::invalid_argument(format!(
            "precondition {index} has no check"
        ))),
    }
}

fn txn_write(index: usize, w: pb::TransactionWrite) -> Result<TxnWrite, Status> {
    match w.write {
        Some(pb::transaction_write::Write::Put(value)) => Ok(TxnWrite::Put { key: w.key, value }),
        Some(pb::transaction_write::Write::Delete(_)) => Ok(TxnWrite::Delete { key: w.key }),
        Some(pb::transaction_write::Write::Add(delta)) => Ok(TxnWrite::Add { key: w.key, delta }),
        None => Err(Status::invalid_argument(format!(
            "write {index} has no operation"
        ))),
    }
}

pub fn transaction(req: pb::ObjectTransactionRequest) -> Result<ObjectCall, Status> {
    let preconditions = req
        .preconditions
        .into_iter()
        .enumerate()
        .map(|(i, p)| precondition(i, p))
        .collect::<Result<Vec<_>, _>>()?;
    let writes = req
        .writes
        .into_iter()
        .enumerate()
        .map(|(i, w)| txn_write(i, w))
        .collect::<Result<Vec<_>, _>>()?;
    let op = Op::Transaction {
        preconditions,
        writes,
    };
    call(req.object, op, req.request_id)
}

/// A `SetAlarm`; an `in_ms` alarm is due that long after `now_ms`.
pub fn set_alarm(req: pb::SetAlarmRequest, now_ms: u64) -> Result<ObjectCall, Status> {
    let at_ms = match req.when {
        Some(pb::set_alarm_request::When::AtUnixMs(at)) => at,
        Some(pb::set_alarm_request::When::InMs(after)) => now_ms.saturating_add(after),
        None => return Err(Status::invalid_argument("give at_unix_ms or in_ms")),
    };
    let op = Op::SetAlarm {
        name: req.name,
        at_ms,
        payload: req.payload,
    };
    call(req.object, op, req.request_id)
}

pub fn delete_alarm(req: pb::DeleteAlarmRequest) -> Result<ObjectCall, Status> {
    call(
        req.object,
        Op::DeleteAlarms { names: req.names },
        req.request_id,
    )
}

/// A `ListAlarms`, and the one alarm name it asks for (empty: all).
pub fn list_alarms(req: pb::ListAlarmsRequest) -> Result<(ObjectCall, String), Status> {
    Ok((call(req.object, Op::ListAlarms, String::new())?, req.name))
}

/// A `Publish` of a message sent at `now_ms`.
pub fn publish(req: pb::PublishRequest, now_ms: u64) -> Result<ObjectCall, Status> {
    let op = Op::Publish {
        payload: req.message,
        at_ms: now_ms,
    };
    call(req.object, op, req.request_id)
}

pub fn inspect(req: pb::InspectRequest) -> Result<ObjectCall, Status> {
    call(req.object, Op::Stats, String::new())
}

pub fn subscribe(req: pb::SubscribeRequest) -> Result<Subscription, Status> {
    let (object, id) = object_ref(req.object)?;
    Ok(Subscription {
        namespace: namespace(object.namespace.clone()),
        object,
        id,
        after_seq: req.after_seq,
    })
}

/// A `Move`: the object and where to.
pub fn move_object(req: pb::MoveRequest) -> Result<(pb::ObjectRef, ObjectId, MoveTarget), Status> {
    let (object, id) = object_ref(req.object)?;
    let target = match req.target {
        Some(pb::move_request::Target::ToNode(node)) => {
            MoveTarget::Node(larder_directory::NodeId(node))
        }
        Some(pb::move_request::Target::ToRegion(region)) => {
            MoveTarget::Region(larder_directory::RegionId(region))
        }
        None => return Err(Status::invalid_argument("give to_node or to_region")),
    };
    Ok((object, id, target))
}

/// The page size of a `ListObjects`.
pub fn list_objects_limit(
    req: &pb::ListObjectsRequest,
    limits: &ObjectLimits,
) -> Result<usize, Status> {
    limits.page(req.limit).map_err(object_status)
}

/// A rebalance as asked: the region (required), the namespace (`None`: any) and the
/// moves allowed in this call.
pub fn rebalance(
    request: pb::RebalanceRequest,
) -> Result<(larder_directory::RegionId, Option<Namespace>, usize), Status> {
    /// Moves a call makes when the request leaves the number to the server: each waits
    /// out a lease, four at a time, so 16 answer well within a client's timeout.
    const REBALANCE_MOVES_DEFAULT: usize = 16;
    let max = crate::handover::rebalance::REBALANCE_MOVES_MAX;
    if request.region.is_empty() {
        return Err(Status::invalid_argument(
            "a rebalance needs the region whose owners to even out",
        ));
    }
    let moves = match request.moves_max as usize {
        0 => REBALANCE_MOVES_DEFAULT,
        n if n > max => {
            return Err(Status::invalid_argument(format!(
                "moves_max {n} is over the limit of {max} per call"
            )));
        }
        n => n,
    };
    let namespace = (!request.namespace.is_empty()).then(|| namespace(request.namespace));
    Ok((larder_directory::RegionId(request.region), namespace, moves))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(region: &str, namespace: &str, moves_max: u32) -> pb::RebalanceRequest {
        pb::RebalanceRequest {
            region: region.into(),
            namespace: namespace.into(),
            moves_max,
        }
    }

    #[test]
    fn a_rebalance_request_names_its_region_and_stays_within_the_move_limit() {
        let no_region = rebalance(asked("", "carts", 4)).expect_err("no region");
        assert_eq!(no_region.code(), tonic::Code::InvalidArgument);
        let too_many = rebalance(asked("eu-west", "", 1_001)).expect_err("over the limit");
        assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
        assert!(
            too_many.message().contains("1000"),
            "{}",
            too_many.message()
        );
        let (region, namespace, moves) = rebalance(asked("eu-west", "", 0)).expect("defaults");
        assert_eq!((region.0.as_str(), namespace, moves), ("eu-west", None, 16));
        let (_, namespace, moves) = rebalance(asked("eu-west", "carts", 5)).expect("asked");
        assert_eq!(
            (namespace.map(|n| n.to_string()), moves),
            (Some("carts".into()), 5)
        );
    }
}

use std::pin::Pin;

use futures::{Stream, StreamExt};
use larder_proto::v1 as pb;
use larder_proto::v1::objects_server::Objects;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::status::object_status;
use crate::alarms::now_ms;
use crate::events::ObjectEventOut;
use crate::op::{Answer, EventKind, ListQuery, Op, Precondition, ReadValue, Reply, TxnWrite};
use crate::{ObjectError, ObjectHost, ObjectId};

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::ObjectEvent, Status>> + Send>>;

fn event_pb(out: ObjectEventOut) -> pb::ObjectEvent {
    match out {
        ObjectEventOut::Event { key, event } => pb::ObjectEvent {
            namespace: key.namespace,
            id: key.id,
            seq: event.seq,
            at_unix_ms: event.at_ms,
            kind: Some(match event.kind {
                EventKind::AlarmFired {
                    name,
                    scheduled_ms,
                    payload,
                } => pb::object_event::Kind::AlarmFired(pb::AlarmFired {
                    name,
                    scheduled_unix_ms: scheduled_ms,
                    payload,
                }),
                EventKind::Published { payload } => pb::object_event::Kind::Message(payload),
            }),
        },
        ObjectEventOut::Gap { key, from, until } => pb::ObjectEvent {
            namespace: key.namespace,
            id: key.id,
            seq: from,
            at_unix_ms: 0,
            kind: Some(pb::object_event::Kind::GapUntil(until)),
        },
    }
}

fn event_stream(
    rx: tokio::sync::mpsc::Receiver<Result<ObjectEventOut, ObjectError>>,
) -> Response<EventStream> {
    let stream = ReceiverStream::new(rx).map(|item| item.map(event_pb).map_err(object_status));
    Response::new(Box::pin(stream))
}

/// `larder.v1.Objects` on the api listener.
pub struct ObjectsService {
    host: ObjectHost,
}

impl ObjectsService {
    pub fn new(host: ObjectHost) -> ObjectsService {
        ObjectsService { host }
    }

    async fn call(
        &self,
        object: Option<pb::ObjectRef>,
        op: Op,
    ) -> Result<(ObjectId, Reply), Status> {
        let (id, answer) = self.call_with_id(object, op, String::new()).await?;
        Ok((id, answer.reply))
    }

    /// Runs `op`; `request_id` (may be empty) makes a retried write apply once.
    async fn call_with_id(
        &self,
        object: Option<pb::ObjectRef>,
        op: Op,
        request_id: String,
    ) -> Result<(ObjectId, Answer), Status> {
        let (object, id) = object_ref(object)?;
        let hint = Some(object.location_hint.as_str()).filter(|h| !h.is_empty());
        let request_id = Some(request_id).filter(|id| !id.is_empty());
        let reply = self
            .host
            .call(&object.namespace, &id, hint, op, request_id)
            .await
            .map_err(object_status)?;
        Ok((id, reply))
    }
}

/// The object a call names: its reference and its parsed id.
fn object_ref(object: Option<pb::ObjectRef>) -> Result<(pb::ObjectRef, ObjectId), Status> {
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

fn value_pb(v: ReadValue) -> pb::ObjectValue {
    pb::ObjectValue {
        key: v.key,
        found: v.value.is_some(),
        value: v.value.unwrap_or_default(),
        version: v.version,
    }
}

fn unexpected(reply: &Reply) -> Status {
    Status::internal(format!("unexpected object reply {reply:?}"))
}

fn written(id: ObjectId, answer: Answer) -> Result<Response<pb::ObjectWriteResponse>, Status> {
    match answer.reply {
        Reply::Written { version } => Ok(Response::new(pb::ObjectWriteResponse {
            version,
            id: id.to_string(),
            owner: answer.owner,
            epoch: answer.epoch,
        })),
        other => Err(unexpected(&other)),
    }
}

fn info(p: &larder_directory::ObjectPlacement) -> pb::ObjectInfo {
    pb::ObjectInfo {
        namespace: p.key.namespace.clone(),
        id: p.key.id.clone(),
        region: p.region.0.clone(),
        jurisdiction: p
            .jurisdiction
            .as_ref()
            .map(|j| j.0.clone())
            .unwrap_or_default(),
        owner: p.owner.0,
        replicas: p.replicas.iter().map(|r| r.0).collect(),
        epoch: p.epoch,
        version: 0,
        keys: 0,
        bytes: 0,
        alarms: Vec::new(),
        last_event_seq: 0,
    }
}

#[tonic::async_trait]
impl Objects for ObjectsService {
    async fn list_objects(
        &self,
        request: Request<pb::ListObjectsRequest>,
    ) -> Result<Response<pb::ListObjectsResponse>, Status> {
        let req = request.into_inner();
        let limit = self.host.limits().page(req.limit).map_err(object_status)?;
        let (placements, more) = self
            .host
            .placements(&req.namespace, &req.start_after, limit, |p| {
                p.key.id.starts_with(&req.prefix)
                    && (req.region.is_empty() || p.region.0 == req.region)
            })
            .await
            .map_err(object_status)?;
        let objects = placements.iter().map(info).collect();
        Ok(Response::new(pb::ListObjectsResponse { objects, more }))
    }

    async fn r#move(
        &self,
        request: Request<pb::MoveRequest>,
    ) -> Result<Response<pb::ObjectInfo>, Status> {
        let req = request.into_inner();
        let (object, id) = object_ref(req.object)?;
        let target = match req.target {
            Some(pb::move_request::Target::ToNode(node)) => {
                crate::mover::MoveTarget::Node(larder_directory::NodeId(node))
            }
            Some(pb::move_request::Target::ToRegion(region)) => {
                crate::mover::MoveTarget::Region(larder_directory::RegionId(region))
            }
            None => return Err(Status::invalid_argument("give to_node or to_region")),
        };
        let placement = self
            .host
            .placement_of(&object.namespace, &id)
            .await
            .map_err(object_status)?;
        let moved = crate::mover::move_object(&self.host, &placement, target)
            .await
            .map_err(object_status)?;
        Ok(Response::new(info(&moved)))
    }

    async fn drain(
        &self,
        request: Request<pb::DrainRequest>,
    ) -> Result<Response<pb::DrainResponse>, Status> {
        let node = larder_directory::NodeId(request.into_inner().node_id);
        let (moved, failed) = crate::mover::drain(&self.host, node).await;
        Ok(Response::new(pb::DrainResponse {
            moved: moved.iter().map(info).collect(),
            failed,
        }))
    }

    async fn inspect(
        &self,
        request: Request<pb::InspectRequest>,
    ) -> Result<Response<pb::ObjectInfo>, Status> {
        let object = request.into_inner().object;
        let (id, reply) = self.call(object.clone(), Op::Stats).await?;
        let namespace = object.map(|o| o.namespace).unwrap_or_default();
        let placement = self
            .host
            .placement_of(&namespace, &id)
            .await
            .map_err(object_status)?;
        let mut out = info(&placement);
        if let Reply::Stats(stats) = reply {
            out.keys = stats.keys;
            out.bytes = stats.bytes;
            out.version = stats.version;
            out.last_event_seq = stats.last_event_seq;
            out.alarms = stats
                .alarms
                .into_iter()
                .map(|(name, at_unix_ms)| pb::Alarm {
                    name,
                    at_unix_ms,
                    payload: Vec::new(),
                })
                .collect();
        }
        Ok(Response::new(out))
    }

    async fn get(
        &self,
        request: Request<pb::ObjectGetRequest>,
    ) -> Result<Response<pb::ObjectValues>, Status> {
        let req = request.into_inner();
        match self.call(req.object, Op::Get { keys: req.keys }).await? {
            (_, Reply::Values(values)) => Ok(Response::new(pb::ObjectValues {
                values: values.into_iter().map(value_pb).collect(),
            })),
            (_, other) => Err(unexpected(&other)),
        }
    }

    async fn put(
        &self,
        request: Request<pb::ObjectPutRequest>,
    ) -> Result<Response<pb::ObjectWriteResponse>, Status> {
        let req = request.into_inner();
        let entries = req.entries.into_iter().map(|e| (e.key, e.value)).collect();
        let (id, reply) = self
            .call_with_id(req.object, Op::Put { entries }, req.request_id)
            .await?;
        written(id, reply)
    }

    async fn delete(
        &self,
        request: Request<pb::ObjectDeleteRequest>,
    ) -> Result<Response<pb::ObjectWriteResponse>, Status> {
        let req = request.into_inner();
        let (id, reply) = self
            .call_with_id(req.object, Op::Delete { keys: req.keys }, req.request_id)
            .await?;
        written(id, reply)
    }

    async fn list(
        &self,
        request: Request<pb::ObjectListRequest>,
    ) -> Result<Response<pb::ObjectListResponse>, Status> {
        let req = request.into_inner();
        let query = ListQuery {
            prefix: req.prefix,
            start: req.start,
            end: req.end,
            reverse: req.reverse,
            limit: req.limit,
        };
        match self.call(req.object, Op::List(query)).await? {
            (_, Reply::List { entries, more }) => Ok(Response::new(pb::ObjectListResponse {
                entries: entries.into_iter().map(value_pb).collect(),
                more,
            })),
            (_, other) => Err(unexpected(&other)),
        }
    }

    async fn delete_all(
        &self,
        request: Request<pb::ObjectDeleteAllRequest>,
    ) -> Result<Response<pb::ObjectWriteResponse>, Status> {
        let req = request.into_inner();
        let (id, reply) = self
            .call_with_id(req.object, Op::DeleteAll, req.request_id)
            .await?;
        written(id, reply)
    }

    async fn add(
        &self,
        request: Request<pb::ObjectAddRequest>,
    ) -> Result<Response<pb::ObjectAddResponse>, Status> {
        let req = request.into_inner();
        let op = Op::Add {
            key: req.key,
            delta: req.delta,
        };
        let (_, answer) = self.call_with_id(req.object, op, req.request_id).await?;
        match answer.reply {
            Reply::Added { value, version } => Ok(Response::new(pb::ObjectAddResponse {
                value,
                version,
                owner: answer.owner,
                epoch: answer.epoch,
            })),
            other => Err(unexpected(&other)),
        }
    }

    async fn transaction(
        &self,
        request: Request<pb::ObjectTransactionRequest>,
    ) -> Result<Response<pb::ObjectTransactionResponse>, Status> {
        let req = request.into_inner();
        let preconditions = req
            .preconditions
            .into_iter()
            .enumerate()
            .map(|(i, p)| match p.check {
                Some(pb::precondition::Check::VersionEquals(version)) => {
                    Ok(Precondition::VersionEquals {
                        key: p.key,
                        version,
                    })
                }
                Some(pb::precondition::Check::Absent(_)) => Ok(Precondition::Absent { key: p.key }),
                Some(pb::precondition::Check::ValueEquals(value)) => {
                    Ok(Precondition::ValueEquals { key: p.key, value })
                }
                None => Err(Status::invalid_argument(format!(
                    "precondition {i} has no check"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let writes = req
            .writes
            .into_iter()
            .enumerate()
            .map(|(i, w)| match w.write {
                Some(pb::transaction_write::Write::Put(value)) => {
                    Ok(TxnWrite::Put { key: w.key, value })
                }
                Some(pb::transaction_write::Write::Delete(_)) => {
                    Ok(TxnWrite::Delete { key: w.key })
                }
                Some(pb::transaction_write::Write::Add(delta)) => {
                    Ok(TxnWrite::Add { key: w.key, delta })
                }
                None => Err(Status::invalid_argument(format!(
                    "write {i} has no operation"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let op = Op::Transaction {
            preconditions,
            writes,
        };
        let (_, answer) = self.call_with_id(req.object, op, req.request_id).await?;
        match answer.reply {
            Reply::Transaction { version, results } => {
                Ok(Response::new(pb::ObjectTransactionResponse {
                    version,
                    owner: answer.owner,
                    epoch: answer.epoch,
                    results: results
                        .into_iter()
                        .map(|r| pb::TransactionResult {
                            deleted: r.is_none(),
                            value: r.unwrap_or_default(),
                        })
                        .collect(),
                }))
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn set_alarm(
        &self,
        request: Request<pb::SetAlarmRequest>,
    ) -> Result<Response<pb::ObjectWriteResponse>, Status> {
        let req = request.into_inner();
        let at_ms = match req.when {
            Some(pb::set_alarm_request::When::AtUnixMs(at)) => at,
            Some(pb::set_alarm_request::When::InMs(after)) => now_ms().saturating_add(after),
            None => return Err(Status::invalid_argument("give at_unix_ms or in_ms")),
        };
        let op = Op::SetAlarm {
            name: req.name,
            at_ms,
            payload: req.payload,
        };
        let (id, reply) = self.call_with_id(req.object, op, req.request_id).await?;
        written(id, reply)
    }

    async fn delete_alarm(
        &self,
        request: Request<pb::DeleteAlarmRequest>,
    ) -> Result<Response<pb::ObjectWriteResponse>, Status> {
        let req = request.into_inner();
        let op = Op::DeleteAlarms { names: req.names };
        let (id, reply) = self.call_with_id(req.object, op, req.request_id).await?;
        written(id, reply)
    }

    async fn list_alarms(
        &self,
        request: Request<pb::ListAlarmsRequest>,
    ) -> Result<Response<pb::ListAlarmsResponse>, Status> {
        let req = request.into_inner();
        let alarms = match self.call(req.object, Op::ListAlarms).await? {
            (_, Reply::Alarms(alarms)) => alarms,
            (_, other) => return Err(unexpected(&other)),
        };
        let alarms: Vec<pb::Alarm> = alarms
            .into_iter()
            .filter(|(name, _)| req.name.is_empty() || *name == req.name)
            .map(|(name, alarm)| pb::Alarm {
                name,
                at_unix_ms: alarm.at_ms,
                payload: alarm.payload,
            })
            .collect();
        Ok(Response::new(pb::ListAlarmsResponse { alarms }))
    }

    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let req = request.into_inner();
        let op = Op::Publish {
            payload: req.message,
            at_ms: now_ms(),
        };
        let (id, answer) = self.call_with_id(req.object, op, req.request_id).await?;
        match answer.reply {
            Reply::Published { seq, version } => Ok(Response::new(pb::PublishResponse {
                seq,
                version,
                id: id.to_string(),
                owner: answer.owner,
                epoch: answer.epoch,
            })),
            other => Err(unexpected(&other)),
        }
    }

    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let req = request.into_inner();
        let (object, id) = object_ref(req.object)?;
        let hint = Some(object.location_hint).filter(|h| !h.is_empty());
        let rx = self
            .host
            .subscribe(&object.namespace, &id, hint, req.after_seq);
        Ok(event_stream(rx))
    }

    type SubscribeNamespaceStream = EventStream;

    async fn subscribe_namespace(
        &self,
        request: Request<pb::SubscribeNamespaceRequest>,
    ) -> Result<Response<Self::SubscribeNamespaceStream>, Status> {
        let req = request.into_inner();
        let rx = self
            .host
            .subscribe_namespace(&req.namespace, req.id_prefix)
            .await
            .map_err(object_status)?;
        Ok(event_stream(rx))
    }
}

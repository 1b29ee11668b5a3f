use std::pin::Pin;

use futures::{Stream, StreamExt};
use larder_proto::v1 as pb;
use larder_proto::v1::objects_server::Objects;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::requests::{self, ObjectCall};
use super::status::object_status;
use crate::events::ObjectEventOut;
use crate::op::{Answer, EventKind, ReadValue, Reply};
use crate::{Namespace, ObjectError, ObjectHost, ObjectId};

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::ObjectEvent, Status>> + Send>>;

fn event_pb(out: ObjectEventOut) -> pb::ObjectEvent {
    match out {
        ObjectEventOut::Event { key, event } => pb::ObjectEvent {
            namespace: key.namespace.name().to_string(),
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
            namespace: key.namespace.name().to_string(),
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

    /// The incarnation of the namespace a client named (see `Placements::resolve`).
    async fn resolve(&self, name: &Namespace) -> Result<Namespace, Status> {
        self.host
            .placements()
            .resolve(name)
            .await
            .map_err(object_status)
    }

    /// Runs a call on its object, wherever the object's owner is.
    async fn run(&self, call: ObjectCall) -> Result<(ObjectId, Answer), Status> {
        let ObjectCall {
            object,
            namespace,
            id,
            op,
            request_id,
        } = call;
        let hint = requests::location_hint(&object);
        let namespace = self.resolve(&namespace).await?;
        let answer = self
            .host
            .call(&namespace, &id, hint, op, request_id)
            .await
            .map_err(object_status)?;
        Ok((id, answer))
    }
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
        namespace: p.key.namespace.to_string(),
        id: p.key.id.clone(),
        region: p.region.0.clone(),
        jurisdiction: p
            .jurisdiction
            .as_ref()
            .map(|j| j.0.clone())
            .unwrap_or_default(),
        owner: p.owner.0,
        replicas: p.replicas.iter().map(|r| r.0).collect(),
        epoch: p.epoch.0,
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
        let limit = requests::list_objects_limit(&req, self.host.limits())?;
        let namespace = self
            .resolve(&requests::namespace(req.namespace.clone()))
            .await?;
        let page = self
            .host
            .placements()
            .list(&namespace, &req.start_after, &req.prefix, limit, |p| {
                req.region.is_empty() || p.region.0 == req.region
            })
            .await
            .map_err(object_status)?;
        Ok(Response::new(pb::ListObjectsResponse {
            objects: page.placements.iter().map(info).collect(),
            more: page.next_start_after.is_some(),
            next_start_after: page.next_start_after.unwrap_or_default(),
        }))
    }

    async fn r#move(
        &self,
        request: Request<pb::MoveRequest>,
    ) -> Result<Response<pb::ObjectInfo>, Status> {
        let (object, id, target) = requests::move_object(request.into_inner())?;
        let namespace = self.resolve(&requests::namespace(object.namespace)).await?;
        let placement = self
            .host
            .placement_of(&namespace, &id)
            .await
            .map_err(object_status)?;
        let moved = crate::handover::mover::move_object(&self.host, &placement, target)
            .await
            .map_err(object_status)?;
        Ok(Response::new(info(&moved)))
    }

    async fn drain(
        &self,
        request: Request<pb::DrainRequest>,
    ) -> Result<Response<pb::DrainResponse>, Status> {
        let node = larder_directory::NodeId(request.into_inner().node_id);
        let known = self
            .host
            .placements()
            .directory()
            .read_local(|s| s.nodes.contains_key(&node))
            .await;
        if !known {
            return Err(Status::not_found(format!(
                "node {node} is not a member of the cluster (larder status lists them)"
            )));
        }
        let (moved, failed) = crate::handover::mover::drain(&self.host, node).await;
        Ok(Response::new(pb::DrainResponse {
            moved: moved.iter().map(info).collect(),
            failed,
        }))
    }

    async fn rebalance(
        &self,
        request: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalanceResponse>, Status> {
        let (region, namespace, moves) = requests::rebalance(request.into_inner())?;
        let namespace = match namespace {
            Some(name) => Some(self.resolve(&name).await?),
            None => None,
        };
        let known = self
            .host
            .placements()
            .directory()
            .read_local(|s| s.nodes.values().any(|n| n.spec.region == region))
            .await;
        if !known {
            return Err(Status::not_found(format!("no node is in region {region}")));
        }
        // In a task of its own: a client that gives up must not cut a hand-over short.
        let (host, in_region) = (self.host.clone(), region.clone());
        let (moved, failed) = tokio::spawn(async move {
            crate::handover::rebalance::rebalance(&host, namespace.as_ref(), &in_region, moves)
                .await
        })
        .await
        .map_err(|err| Status::internal(format!("the rebalance stopped: {err}")))?;
        let owned = crate::handover::rebalance::owned_in(&self.host, &region).await;
        Ok(Response::new(pb::RebalanceResponse {
            moved: moved.iter().map(info).collect(),
            failed,
            owned: owned.into_iter().map(|(id, n)| (id.0, n as u64)).collect(),
        }))
    }

    async fn inspect(
        &self,
        request: Request<pb::InspectRequest>,
    ) -> Result<Response<pb::ObjectInfo>, Status> {
        let call = requests::inspect(request.into_inner())?;
        let namespace = self.resolve(&call.namespace).await?;
        let (id, answer) = self.run(call).await?;
        let reply = answer.reply;
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
        let call = requests::get(request.into_inner())?;
        match self.run(call).await?.1.reply {
            Reply::Values(values) => Ok(Response::new(pb::ObjectValues {
                values: values.into_iter().map(value_pb).collect(),
            })),
            other => Err(unexpected(&other)),
        }
    }

    async fn put(
        &self,
        request: Request<pb::ObjectPutRequest>,
    ) -> Result<Response<pb::ObjectWriteResponse>, Status> {
        let (id, answer) = self.run(requests::put(request.into_inner())?).await?;
        written(id, answer)
    }

    async fn delete(
        &self,
        request: Request<pb::ObjectDeleteRequest>,
    ) -> Result<Response<pb::ObjectWriteResponse>, Status> {
        let (id, answer) = self.run(requests::delete(request.into_inner())?).await?;
        written(id, answer)
    }

    async fn list(
        &self,
        request: Request<pb::ObjectListRequest>,
    ) -> Result<Response<pb::ObjectListResponse>, Status> {
        let call = requests::list(request.into_inner())?;
        match self.run(call).await?.1.reply {
            Reply::List { entries, more } => Ok(Response::new(pb::ObjectListResponse {
                entries: entries.into_iter().map(value_pb).collect(),
                more,
            })),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_all(
        &self,
        request: Request<pb::ObjectDeleteAllRequest>,
    ) -> Result<Response<pb::ObjectWriteResponse>, Status> {
        let call = requests::delete_all(request.into_inner())?;
        let (id, answer) = self.run(call).await?;
        written(id, answer)
    }

    async fn add(
        &self,
        request: Request<pb::ObjectAddRequest>,
    ) -> Result<Response<pb::ObjectAddResponse>, Status> {
        let (_, answer) = self.run(requests::add(request.into_inner())?).await?;
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
        let call = requests::transaction(request.into_inner())?;
        let (_, answer) = self.run(call).await?;
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
        let call = requests::set_alarm(request.into_inner(), self.host.clock().now_ms())?;
        let (id, answer) = self.run(call).await?;
        written(id, answer)
    }

    async fn delete_alarm(
        &self,
        request: Request<pb::DeleteAlarmRequest>,
    ) -> Result<Response<pb::ObjectWriteResponse>, Status> {
        let call = requests::delete_alarm(request.into_inner())?;
        let (id, answer) = self.run(call).await?;
        written(id, answer)
    }

    async fn list_alarms(
        &self,
        request: Request<pb::ListAlarmsRequest>,
    ) -> Result<Response<pb::ListAlarmsResponse>, Status> {
        let (call, name) = requests::list_alarms(request.into_inner())?;
        let alarms = match self.run(call).await?.1.reply {
            Reply::Alarms(alarms) => alarms,
            other => return Err(unexpected(&other)),
        };
        let alarms: Vec<pb::Alarm> = alarms
            .into_iter()
            .filter(|(alarm, _)| name.is_empty() || *alarm == name)
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
        let call = requests::publish(request.into_inner(), self.host.clock().now_ms())?;
        let (id, answer) = self.run(call).await?;
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
        let sub = requests::subscribe(request.into_inner())?;
        let namespace = self.resolve(&sub.namespace).await?;
        let rx = self.host.subscribe(&namespace, &sub.id, sub.after_seq);
        Ok(event_stream(rx))
    }

    type SubscribeNamespaceStream = EventStream;

    async fn subscribe_namespace(
        &self,
        request: Request<pb::SubscribeNamespaceRequest>,
    ) -> Result<Response<Self::SubscribeNamespaceStream>, Status> {
        let req = request.into_inner();
        let namespace = self.resolve(&requests::namespace(req.namespace)).await?;
        let rx = self
            .host
            .subscribe_namespace(&namespace, req.id_prefix)
            .await
            .map_err(object_status)?;
        Ok(event_stream(rx))
    }
}

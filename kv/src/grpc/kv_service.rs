use std::pin::Pin;

use futures::Stream;
use larder_proto::v1 as pb;
use larder_proto::v1::kv_server::Kv as KvRpc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert;
use super::status::kv_status;
use crate::{Kv, WriteOutcome, validate};

/// `larder.v1.Kv` on the api listener.
pub struct KvService {
    kv: Kv,
}

impl KvService {
    pub fn new(kv: Kv) -> KvService {
        KvService { kv }
    }
}

fn write_response(outcome: WriteOutcome) -> Response<pb::WriteResponse> {
    Response::new(pb::WriteResponse {
        versions: outcome.versions.iter().map(convert::version).collect(),
        consistency_token: outcome.token,
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl KvRpc for KvService {
    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let req = request.into_inner();
        let namespace = validate::namespace(req.namespace);
        let entry = self
            .kv
            .get(&namespace, &req.key, &req.consistency_token)
            .await
            .map_err(kv_status)?;
        Ok(Response::new(pb::GetResponse {
            found: entry.is_some(),
            value: entry.map(convert::value),
        }))
    }

    async fn get_many(
        &self,
        request: Request<pb::GetManyRequest>,
    ) -> Result<Response<pb::GetManyResponse>, Status> {
        let req = request.into_inner();
        let namespace = validate::namespace(req.namespace);
        let entries = self
            .kv
            .get_many(&namespace, &req.keys, &req.consistency_token)
            .await
            .map_err(kv_status)?;
        let entries = req
            .keys
            .into_iter()
            .zip(entries)
            .map(|(key, entry)| pb::KeyValue {
                key,
                found: entry.is_some(),
                value: entry.map(convert::value),
            })
            .collect();
        Ok(Response::new(pb::GetManyResponse { entries }))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let (namespace, item) = convert::put_request(request.into_inner());
        let outcome = self
            .kv
            .put(&namespace, vec![item])
            .await
            .map_err(kv_status)?;
        Ok(write_response(outcome))
    }

    async fn put_many(
        &self,
        request: Request<pb::PutManyRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let (namespace, items) = convert::put_many_request(request.into_inner());
        let outcome = self.kv.put(&namespace, items).await.map_err(kv_status)?;
        Ok(write_response(outcome))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let req = request.into_inner();
        let namespace = validate::namespace(req.namespace);
        let outcome = self
            .kv
            .delete(&namespace, vec![req.key])
            .await
            .map_err(kv_status)?;
        Ok(write_response(outcome))
    }

    async fn delete_many(
        &self,
        request: Request<pb::DeleteManyRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let req = request.into_inner();
        let namespace = validate::namespace(req.namespace);
        let outcome = self
            .kv
            .delete(&namespace, req.keys)
            .await
            .map_err(kv_status)?;
        Ok(write_response(outcome))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let req = request.into_inner();
        let namespace = validate::namespace(req.namespace);
        let page = self
            .kv
            .list(
                &namespace,
                &req.prefix,
                &req.cursor,
                req.limit,
                &req.consistency_token,
            )
            .await
            .map_err(kv_status)?;
        Ok(Response::new(pb::ListResponse {
            list_complete: page.cursor.is_none(),
            cursor: page.cursor.unwrap_or_default(),
            keys: page
                .entries
                .into_iter()
                .map(|(key, entry)| convert::list_entry(key, entry))
                .collect(),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let req = request.into_inner();
        let namespace = validate::namespace(req.namespace);
        let events = crate::watch::watch(&self.kv, &namespace, &req.prefix, &req.resume_token)
            .map_err(kv_status)?;
        let stream = ReceiverStream::new(events).map(|event| {
            let event = event.map_err(kv_status)?;
            let deleted = event.entry.tombstone;
            Ok(pb::WatchEvent {
                key: event.key,
                version: Some(convert::version(&event.entry.version)),
                deleted,
                value: (!deleted).then(|| convert::value(event.entry)),
                resume_token: event.resume_token,
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

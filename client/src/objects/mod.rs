//! Object calls (`larder.v1.Objects`): `client.objects("ns").by_name("room-1")`.
//!
//! Every write carries a fresh request id that its retries repeat, so a write retried
//! after a timeout or a failover applies at most once.

use futures_core::Stream;
use larder_proto::v1 as pb;
use larder_proto::v1::objects_client::ObjectsClient;
use tonic::transport::Channel;

pub use larder_proto::v1::{
    Alarm, ObjectEvent, ObjectInfo, ObjectValue, Precondition, TransactionWrite, object_event,
};

mod alarms;
mod txn;

pub use txn::Txn;

use crate::{Client, ClientError};

/// Objects of one namespace.
#[derive(Clone)]
pub struct ObjectNamespace {
    client: Client,
    namespace: String,
}

/// One object.
#[derive(Clone)]
pub struct ObjectHandle {
    client: Client,
    object: pb::ObjectRef,
}

impl Client {
    /// Moves every object `node` owns to another node of its region; returns what moved
    /// and what could not be (with why).
    pub async fn drain_node(&self, node: u64) -> Result<pb::DrainResponse, ClientError> {
        let req = pb::DrainRequest { node_id: node };
        self.with_retries(
            |ch| async move { Ok(ObjectsClient::new(ch).drain(req).await?.into_inner()) },
        )
        .await
    }

    /// Moves up to `moves_max` objects (0: the server's default, 16) from the
    /// most-loaded owners of `region` to the least-loaded — only objects of `namespace`
    /// when given; returns what moved, what could not, and each node's count after.
    /// Each move waits out a lease: keep `moves_max` small enough for the request
    /// timeout and call again while something moves.
    pub async fn rebalance_objects(
        &self,
        region: &str,
        namespace: Option<&str>,
        moves_max: u32,
    ) -> Result<pb::RebalanceResponse, ClientError> {
        let req = pb::RebalanceRequest {
            region: region.to_string(),
            namespace: namespace.unwrap_or_default().to_string(),
            moves_max,
        };
        self.with_retries(|ch| {
            let req = req.clone();
            async move { Ok(ObjectsClient::new(ch).rebalance(req).await?.into_inner()) }
        })
        .await
    }

    pub fn objects(&self, namespace: &str) -> ObjectNamespace {
        ObjectNamespace {
            client: self.clone(),
            namespace: namespace.to_string(),
        }
    }
}

/// The pages of a namespace's object listing ([`ObjectNamespace::pages`]).
pub struct ObjectPages {
    objects: ObjectNamespace,
    prefix: String,
    region: String,
    /// Where the next page starts; `None` once the last page was read.
    next: Option<String>,
}

impl ObjectPages {
    /// The next page (possibly empty while more follow), or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ObjectInfo>>, ClientError> {
        let Some(after) = self.next.take() else {
            return Ok(None);
        };
        let (page, next) = self
            .objects
            .list_objects(&self.prefix, &self.region, &after, 0)
            .await?;
        self.next = next;
        Ok(Some(page))
    }
}

impl ObjectNamespace {
    /// The object called `name` (created, in this node's region, by its first write;
    /// until then reads answer as an empty object).
    pub fn by_name(&self, name: &str) -> ObjectHandle {
        self.handle(pb::object_ref::Key::Name(name.to_string()))
    }

    /// The object with this id (from a previous answer or `unique_id`).
    pub fn by_id(&self, id: &str) -> ObjectHandle {
        self.handle(pb::object_ref::Key::Id(id.to_string()))
    }

    /// One page of the namespace's objects (from the directory), ids after `start_after`,
    /// filtered by id prefix and region, and where the next page starts (`None`: this
    /// was the last). A page may hold fewer than `limit`, even none, and still have a
    /// next one: the node looks at a bounded number of objects per page.
    /// [`ObjectNamespace::pages`] walks them all.
    pub async fn list_objects(
        &self,
        prefix: &str,
        region: &str,
        start_after: &str,
        limit: u32,
    ) -> Result<(Vec<ObjectInfo>, Option<String>), ClientError> {
        let req = pb::ListObjectsRequest {
            namespace: self.namespace.clone(),
            prefix: prefix.to_string(),
            region: region.to_string(),
            start_after: start_after.to_string(),
            limit,
        };
        let bytes_max = self.client.config().message_bytes_max;
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move {
                    let resp = ObjectsClient::new(ch)
                        .max_decoding_message_size(bytes_max)
                        .list_objects(req)
                        .await?
                        .into_inner();
                    let next = resp.more.then_some(resp.next_start_after);
                    Ok((resp.objects, next))
                }
            })
            .await
    }

    /// Every object of the namespace with ids starting with `prefix` (and placed in
    /// `region`, when not empty), page by page: `while let Some(page) =
    /// pages.next_page().await? { ... }`.
    pub fn pages(&self, prefix: &str, region: &str) -> ObjectPages {
        ObjectPages {
            objects: self.clone(),
            prefix: prefix.to_string(),
            region: region.to_string(),
            next: Some(String::new()),
        }
    }

    /// Live events (alarms fired, messages) of every object of the namespace whose id
    /// starts with `id_prefix`, from now on. At most once: to see every event of an
    /// object, subscribe to the object and resume from the last sequence number.
    pub async fn subscribe(
        &self,
        id_prefix: &str,
    ) -> Result<impl Stream<Item = Result<ObjectEvent, ClientError>> + use<>, ClientError> {
        let req = pb::SubscribeNamespaceRequest {
            namespace: self.namespace.clone(),
            id_prefix: id_prefix.to_string(),
        };
        let stream = self
            .client
            .with_retries(|ch| {
                let req = req.clone();
                async move {
                    Ok(ObjectsClient::new(ch)
                        .subscribe_namespace(req)
                        .await?
                        .into_inner())
                }
            })
            .await?;
        Ok(errors_mapped(stream))
    }

    /// A handle on a new object nobody else addresses.
    pub fn unique(&self) -> ObjectHandle {
        let bits: u128 = rand::random();
        self.by_id(&format!("u-{bits:032x}"))
    }

    fn handle(&self, key: pb::object_ref::Key) -> ObjectHandle {
        ObjectHandle {
            client: self.client.clone(),
            object: pb::ObjectRef {
                namespace: self.namespace.clone(),
                key: Some(key),
                location_hint: String::new(),
            },
        }
    }
}

fn errors_mapped(
    stream: tonic::Streaming<ObjectEvent>,
) -> impl Stream<Item = Result<ObjectEvent, ClientError>> {
    futures_util::StreamExt::map(stream, |item| item.map_err(ClientError::from))
}

/// A fresh idempotency key: every retry of one call sends the same one.
fn request_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

impl ObjectHandle {
    /// Places the object in `region` if this handle's call is the first write to it
    /// (reads never create an object).
    pub fn with_location_hint(mut self, region: &str) -> ObjectHandle {
        self.object.location_hint = region.to_string();
        self
    }

    fn rpc(&self, channel: Channel) -> ObjectsClient<Channel> {
        let bytes_max = self.client.config().message_bytes_max;
        ObjectsClient::new(channel)
            .max_decoding_message_size(bytes_max)
            .max_encoding_message_size(bytes_max)
    }

    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, ClientError> {
        let mut values = self.get_many(&[key]).await?;
        Ok(values.pop().filter(|v| v.found).map(|v| v.value))
    }

    pub async fn get_many<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<ObjectValue>, ClientError> {
        let req = pb::ObjectGetRequest {
            object: Some(self.object.clone()),
            keys: keys.iter().map(|k| k.as_ref().to_vec()).collect(),
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).get(req).await?.into_inner().values) }
            })
            .await
    }

    /// Writes entries together; returns the object version after the write.
    pub async fn put_many(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<u64, ClientError> {
        let req = pb::ObjectPutRequest {
            object: Some(self.object.clone()),
            entries: entries
                .into_iter()
                .map(|(key, value)| pb::ObjectEntry { key, value })
                .collect(),
            request_id: request_id(),
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).put(req).await?.into_inner().version) }
            })
            .await
    }

    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<u64, ClientError> {
        self.put_many(vec![(key.into(), value.into())]).await
    }

    pub async fn delete<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<u64, ClientError> {
        let req = pb::ObjectDeleteRequest {
            object: Some(self.object.clone()),
            keys: keys.iter().map(|k| k.as_ref().to_vec()).collect(),
            request_id: request_id(),
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).delete(req).await?.into_inner().version) }
            })
            .await
    }

    pub async fn delete_all(&self) -> Result<u64, ClientError> {
        let req = pb::ObjectDeleteAllRequest {
            object: Some(self.object.clone()),
            request_id: request_id(),
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).delete_all(req).await?.into_inner().version) }
            })
            .await
    }

    /// Keys under `prefix` in byte order (`reverse` for descending), at most `limit`
    /// (0: the page limit); the flag says whether more follow.
    pub async fn list(
        &self,
        prefix: &[u8],
        reverse: bool,
        limit: u32,
    ) -> Result<(Vec<ObjectValue>, bool), ClientError> {
        let req = pb::ObjectListRequest {
            object: Some(self.object.clone()),
            prefix: prefix.to_vec(),
            start: Vec::new(),
            end: Vec::new(),
            reverse,
            limit,
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move {
                    let resp = self.rpc(ch).list(req).await?.into_inner();
                    Ok((resp.entries, resp.more))
                }
            })
            .await
    }

    /// Placement (owner, replicas, epoch) and contents summary of the object.
    pub async fn inspect(&self) -> Result<ObjectInfo, ClientError> {
        let req = pb::InspectRequest {
            object: Some(self.object.clone()),
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).inspect(req).await?.into_inner()) }
            })
            .await
    }

    /// Moves the object (with its state) to `node`, which becomes its owner.
    pub async fn move_to_node(&self, node: u64) -> Result<ObjectInfo, ClientError> {
        self.move_to(pb::move_request::Target::ToNode(node)).await
    }

    /// Moves the object (with its state) to `region`.
    pub async fn move_to_region(&self, region: &str) -> Result<ObjectInfo, ClientError> {
        self.move_to(pb::move_request::Target::ToRegion(region.to_string()))
            .await
    }

    async fn move_to(&self, target: pb::move_request::Target) -> Result<ObjectInfo, ClientError> {
        let req = pb::MoveRequest {
            object: Some(self.object.clone()),
            target: Some(target),
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).r#move(req).await?.into_inner()) }
            })
            .await
    }

    /// Adds `delta` to the integer at `key` atomically; returns the new value. Retries
    /// carry the same request id, so the addition applies at most once.
    pub async fn add(&self, key: impl Into<Vec<u8>>, delta: i64) -> Result<i64, ClientError> {
        let req = pb::ObjectAddRequest {
            object: Some(self.object.clone()),
            key: key.into(),
            delta,
            request_id: request_id(),
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).add(req).await?.into_inner().value) }
            })
            .await
    }

    /// A transaction builder on this object.
    pub fn txn(&self) -> Txn {
        Txn::new(self.clone())
    }

    /// All writes or none, if every precondition holds (FAILED_PRECONDITION otherwise).
    /// Retried with the same request id, so it applies at most once.
    pub async fn transaction(
        &self,
        preconditions: Vec<Precondition>,
        writes: Vec<TransactionWrite>,
    ) -> Result<pb::ObjectTransactionResponse, ClientError> {
        let req = pb::ObjectTransactionRequest {
            object: Some(self.object.clone()),
            preconditions,
            writes,
            request_id: request_id(),
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).transaction(req).await?.into_inner()) }
            })
            .await
    }
}

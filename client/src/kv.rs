//! KV calls (`larder.v1.Kv`): `client.kv("namespace")`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_core::Stream;
use larder_proto::v1 as pb;
use larder_proto::v1::kv_client::KvClient;
use prost::Message;
use tonic::transport::Channel;

use crate::{Client, ClientError};

pub use larder_proto::v1::{ListEntry, Version, WatchEvent};

/// A token naming write `seq` of node `origin` in `namespace`, as tokens name it (see
/// `TokenEntry.namespace`): for tests and tools.
pub fn test_token(namespace: &str, origin: u64, seq: u64) -> Vec<u8> {
    pb::ConsistencyToken {
        entries: vec![pb::TokenEntry {
            namespace: namespace.to_string(),
            origin,
            seq,
        }],
    }
    .encode_to_vec()
}

/// A stored value with what Larder keeps beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvValue {
    pub value: Vec<u8>,
    pub metadata: Vec<u8>,
    /// Unix ms after which the entry reads as absent.
    pub expires_at_ms: Option<u64>,
    pub version: Option<pb::Version>,
}

impl From<pb::Value> for KvValue {
    fn from(v: pb::Value) -> Self {
        KvValue {
            value: v.value,
            metadata: v.metadata,
            expires_at_ms: (v.expires_at_ms != 0).then_some(v.expires_at_ms),
            version: v.version,
        }
    }
}

/// The result of a write.
#[derive(Debug, Clone)]
pub struct WriteResult {
    pub versions: Vec<pb::Version>,
    /// Pass to reads at any node (or keep in a [`Session`]) to read this write back.
    pub consistency_token: Vec<u8>,
}

/// Read-your-writes across nodes: remembers the writes made through it and makes reads
/// through it wait until the serving node has them. Cheap to clone; clones share state.
#[derive(Debug, Clone, Default)]
pub struct Session {
    seen: Arc<Mutex<BTreeMap<(String, u64), u64>>>,
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    /// Merges a token from a write (maximum per namespace and origin).
    pub fn observe(&self, token: &[u8]) {
        let Ok(token) = pb::ConsistencyToken::decode(token) else {
            return;
        };
        let mut seen = self.seen.lock().expect("session lock is never poisoned");
        for entry in token.entries {
            let slot = seen.entry((entry.namespace, entry.origin)).or_insert(0);
            *slot = (*slot).max(entry.seq);
        }
    }

    /// The merged token.
    pub fn token(&self) -> Vec<u8> {
        let seen = self.seen.lock().expect("session lock is never poisoned");
        let entries = seen
            .iter()
            .map(|((namespace, origin), seq)| pb::TokenEntry {
                namespace: namespace.clone(),
                origin: *origin,
                seq: *seq,
            })
            .collect();
        pb::ConsistencyToken { entries }.encode_to_vec()
    }
}

/// One item of a `put_many`.
#[derive(Debug, Clone, Default)]
pub struct PutItem {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub metadata: Vec<u8>,
    pub ttl: Option<Duration>,
    pub expires_at: Option<SystemTime>,
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// KV calls on one namespace.
#[derive(Clone)]
pub struct KvNamespace {
    client: Client,
    namespace: String,
    session: Option<Session>,
}

/// Builder of a single `put`.
pub struct PutBuilder<'a> {
    kv: &'a KvNamespace,
    item: PutItem,
}

impl PutBuilder<'_> {
    pub fn metadata(mut self, metadata: impl Into<Vec<u8>>) -> Self {
        self.item.metadata = metadata.into();
        self
    }

    /// Expire this long after the write.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.item.ttl = Some(ttl);
        self
    }

    /// Expire at this time.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.item.expires_at = Some(at);
        self
    }

    pub async fn send(self) -> Result<WriteResult, ClientError> {
        let req = pb::PutRequest {
            namespace: self.kv.namespace.clone(),
            key: self.item.key,
            value: self.item.value,
            metadata: self.item.metadata,
            expires_at_ms: self.item.expires_at.map_or(0, unix_ms),
            ttl_ms: self.item.ttl.map_or(0, |d| d.as_millis() as u64),
        };
        let resp = self
            .kv
            .client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.kv.rpc(ch).put(req).await?.into_inner()) }
            })
            .await?;
        Ok(self.kv.written(resp))
    }
}

/// A page of a listing.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub keys: Vec<pb::ListEntry>,
    /// Pass to the next call; None when the listing is complete.
    pub cursor: Option<Vec<u8>>,
}

impl Client {
    /// KV calls on `namespace`.
    pub fn kv(&self, namespace: &str) -> KvNamespace {
        KvNamespace {
            client: self.clone(),
            namespace: namespace.to_string(),
            session: None,
        }
    }
}

impl KvNamespace {
    /// The same namespace, with reads and writes going through `session`.
    pub fn with_session(mut self, session: &Session) -> KvNamespace {
        self.session = Some(session.clone());
        self
    }

    fn rpc(&self, channel: Channel) -> KvClient<Channel> {
        let bytes_max = self.client.config().message_bytes_max;
        KvClient::new(channel)
            .max_decoding_message_size(bytes_max)
            .max_encoding_message_size(bytes_max)
    }

    fn token(&self) -> Vec<u8> {
        self.session
            .as_ref()
            .map(Session::token)
            .unwrap_or_default()
    }

    fn written(&self, resp: pb::WriteResponse) -> WriteResult {
        if let Some(session) = &self.session {
            session.observe(&resp.consistency_token);
        }
        WriteResult {
            versions: resp.versions,
            consistency_token: resp.consistency_token,
        }
    }

    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(self.get_with_metadata(key).await?.map(|v| v.value))
    }

    pub async fn get_with_metadata(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<KvValue>, ClientError> {
        let req = pb::GetRequest {
            namespace: self.namespace.clone(),
            key: key.as_ref().to_vec(),
            consistency_token: self.token(),
        };
        let resp = self
            .client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).get(req).await?.into_inner()) }
            })
            .await?;
        Ok(resp.value.filter(|_| resp.found).map(KvValue::from))
    }

    /// Up to 100 keys; one result per key, in order.
    pub async fn get_many<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<KvValue>>, ClientError> {
        let req = pb::GetManyRequest {
            namespace: self.namespace.clone(),
            keys: keys.iter().map(|k| k.as_ref().to_vec()).collect(),
            consistency_token: self.token(),
        };
        let resp = self
            .client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).get_many(req).await?.into_inner()) }
            })
            .await?;
        Ok(resp
            .entries
            .into_iter()
            .map(|kv| kv.value.filter(|_| kv.found).map(KvValue::from))
            .collect())
    }

    pub fn put(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> PutBuilder<'_> {
        PutBuilder {
            kv: self,
            item: PutItem {
                key: key.into(),
                value: value.into(),
                ..PutItem::default()
            },
        }
    }

    /// Up to 10,000 writes, applied together.
    pub async fn put_many(&self, items: Vec<PutItem>) -> Result<WriteResult, ClientError> {
        let req = pb::PutManyRequest {
            namespace: self.namespace.clone(),
            items: items
                .into_iter()
                .map(|item| pb::PutItem {
                    key: item.key,
                    value: item.value,
                    metadata: item.metadata,
                    expires_at_ms: item.expires_at.map_or(0, unix_ms),
                    ttl_ms: item.ttl.map_or(0, |d| d.as_millis() as u64),
                })
                .collect(),
        };
        let resp = self
            .client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).put_many(req).await?.into_inner()) }
            })
            .await?;
        Ok(self.written(resp))
    }

    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<WriteResult, ClientError> {
        self.delete_many(&[key]).await
    }

    pub async fn delete_many<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
    ) -> Result<WriteResult, ClientError> {
        let req = pb::DeleteManyRequest {
            namespace: self.namespace.clone(),
            keys: keys.iter().map(|k| k.as_ref().to_vec()).collect(),
        };
        let resp = self
            .client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).delete_many(req).await?.into_inner()) }
            })
            .await?;
        Ok(self.written(resp))
    }

    /// One page of keys under `prefix`, after `cursor`; `limit` 0 means the maximum (1000).
    pub async fn list_page(
        &self,
        prefix: &[u8],
        cursor: &[u8],
        limit: u32,
    ) -> Result<ListPage, ClientError> {
        let req = pb::ListRequest {
            namespace: self.namespace.clone(),
            prefix: prefix.to_vec(),
            cursor: cursor.to_vec(),
            limit,
            consistency_token: self.token(),
        };
        let resp = self
            .client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).list(req).await?.into_inner()) }
            })
            .await?;
        Ok(ListPage {
            keys: resp.keys,
            cursor: (!resp.list_complete).then_some(resp.cursor),
        })
    }

    /// Every key under `prefix`, page by page, as a stream of pages.
    pub fn list(
        &self,
        prefix: impl Into<Vec<u8>>,
        page_size: u32,
    ) -> impl Stream<Item = Result<ListPage, ClientError>> + '_ {
        let prefix = prefix.into();
        futures_util::stream::unfold(Some(Vec::new()), move |cursor| {
            let prefix = prefix.clone();
            async move {
                let cursor = cursor?;
                match self.list_page(&prefix, &cursor, page_size).await {
                    Ok(page) => {
                        let next = page.cursor.clone();
                        Some((Ok(page), next))
                    }
                    Err(err) => Some((Err(err), None)),
                }
            }
        })
    }

    /// Changes under `prefix` from `resume_token` (empty: from now on).
    pub async fn watch(
        &self,
        prefix: Vec<u8>,
        resume_token: Vec<u8>,
    ) -> Result<impl Stream<Item = Result<pb::WatchEvent, ClientError>> + use<>, ClientError> {
        let req = pb::WatchRequest {
            namespace: self.namespace.clone(),
            prefix,
            resume_token,
        };
        let stream = self
            .client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).watch(req).await?.into_inner()) }
            })
            .await?;
        Ok(futures_util::StreamExt::map(stream, |item| {
            item.map_err(ClientError::from)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_merge_tokens() {
        let token = |ns: &str, origin, seq| {
            pb::ConsistencyToken {
                entries: vec![pb::TokenEntry {
                    namespace: ns.into(),
                    origin,
                    seq,
                }],
            }
            .encode_to_vec()
        };
        let session = Session::new();
        session.observe(&token("a", 1, 5));
        session.observe(&token("a", 1, 3));
        session.observe(&token("a", 2, 1));
        let merged = pb::ConsistencyToken::decode(session.token().as_slice()).expect("decode");
        let seqs: Vec<(u64, u64)> = merged.entries.iter().map(|e| (e.origin, e.seq)).collect();
        assert_eq!(seqs, vec![(1, 5), (2, 1)]);
    }
}

//! Watch: changes under a prefix as a stream, resumable from a token at any node.
//!
//! A watch subscribes to the writer's change batches first, then (when resuming) scans
//! the origin index for every write after its token, then follows the live batches. Its
//! token is the replica progress it has delivered up to — elementwise maximum of the
//! resume token and the progress of each batch it processed — so a resumed watch may
//! see a change again but never misses one. A watcher too slow for the change buffer
//! falls back to a scan from its token.

use tokio::sync::{broadcast, mpsc};

use crate::{Entry, Kv, KvError, Namespace, VersionVector, token};

/// One change delivered to a watcher.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub key: Vec<u8>,
    pub entry: Entry,
    pub resume_token: Vec<u8>,
}

/// Index pages read per step of a catch-up scan.
const CATCH_UP_PAGE: usize = 256;

pub fn watch(
    kv: &Kv,
    namespace: &Namespace,
    prefix: &[u8],
    resume_token: &[u8],
) -> Result<mpsc::Receiver<Result<WatchEvent, KvError>>, KvError> {
    let namespace = &kv.check_namespace(namespace)?;
    crate::validate::watch_prefix(kv.config(), prefix)?;
    let resume = if resume_token.is_empty() {
        None
    } else {
        Some(token::restrict(&token::decode(resume_token)?, namespace))
    };
    let changes = kv.subscribe();
    let (tx, rx) = mpsc::channel(kv.config().watch_stream_buffer);
    let watcher = Watcher {
        kv: kv.clone(),
        namespace: namespace.clone(),
        prefix: prefix.to_vec(),
        tx,
    };
    tokio::spawn(watcher.run(changes, resume));
    Ok(rx)
}

struct Watcher {
    kv: Kv,
    namespace: Namespace,
    prefix: Vec<u8>,
    tx: mpsc::Sender<Result<WatchEvent, KvError>>,
}

fn raise_all(token: &mut VersionVector, other: &VersionVector, namespace: &Namespace) {
    for (origin, seq) in other.namespace(namespace) {
        token.raise(namespace, origin, seq);
    }
}

impl Watcher {
    async fn run(
        self,
        mut changes: broadcast::Receiver<std::sync::Arc<crate::ChangeBatch>>,
        resume: Option<VersionVector>,
    ) {
        let mut token = match resume {
            Some(token) => {
                let mut token = token;
                if self.catch_up(&mut token).await.is_err() {
                    return;
                }
                token
            }
            None => token::restrict(&self.kv.vector(), &self.namespace),
        };
        loop {
            tokio::select! {
                batch = changes.recv() => match batch {
                    Ok(batch) => {
                        let matching: Vec<_> = batch
                            .changes
                            .iter()
                            .filter(|c| c.namespace == self.namespace && c.key.starts_with(&self.prefix))
                            .collect();
                        let before = token::encode(&token);
                        raise_all(&mut token, &batch.vector, &self.namespace);
                        let after = token::encode(&token);
                        let last = matching.len().saturating_sub(1);
                        for (i, change) in matching.into_iter().enumerate() {
                            let resume_token = if i == last { after.clone() } else { before.clone() };
                            let event = WatchEvent { key: change.key.clone(), entry: change.entry.clone(), resume_token };
                            if self.tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(namespace = %self.namespace, missed, "watcher fell behind; catching up from its token");
                        if self.catch_up(&mut token).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        let _ = self.tx.send(Err(KvError::ShuttingDown)).await;
                        return;
                    }
                },
                _ = self.tx.closed() => return,
            }
        }
    }

    /// Sends every current write after `token` under the prefix; raises `token` to the
    /// replica progress taken before the scan. Err: the client went away.
    async fn catch_up(&self, token: &mut VersionVector) -> Result<(), ()> {
        let start = token::restrict(&self.kv.vector(), &self.namespace);
        let floor = token.namespace(&self.namespace);
        let mut cursor = None;
        let before = token::encode(token);
        loop {
            let (writes, next) = match self.kv.keyspace().writes_after(
                &self.namespace,
                &floor,
                cursor,
                CATCH_UP_PAGE,
            ) {
                Ok(page) => page,
                Err(err) => {
                    let _ = self.tx.send(Err(err)).await;
                    return Err(());
                }
            };
            for write in writes
                .into_iter()
                .filter(|w| w.key.starts_with(&self.prefix))
            {
                let event = WatchEvent {
                    key: write.key,
                    entry: write.entry,
                    resume_token: before.clone(),
                };
                self.tx.send(Ok(event)).await.map_err(|_| ())?;
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        raise_all(token, &start, &self.namespace);
        Ok(())
    }
}

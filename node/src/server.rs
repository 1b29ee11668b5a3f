//! One Larder node: binds its listeners, opens its store, starts the directory member and
//! serves until told to stop, then shuts down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use larder_directory::{Directory, DirectoryConfig, NodeSpec, RegionId, liveness};
use larder_kv::Kv;
use larder_objects::{ObjectHost, ObjectStore};
use larder_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, NodeConfig};
use crate::listeners::{Listeners, spawn_api_server, spawn_metrics_server, spawn_peer_server};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind the {listener} listener to {addr}: {source}")]
    Bind {
        listener: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] larder_store::StoreError),
    #[error("directory: {0}")]
    Directory(#[from] larder_directory::DirectoryError),
    #[error("kv: {0}")]
    Kv(#[from] larder_kv::KvError),
    #[error("gRPC reflection: {0}")]
    Reflection(String),
}

/// A started node. Dropping it does not stop it: call [`RunningNode::shutdown`].
pub struct RunningNode {
    pub api_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    directory: Directory,
    kv: Kv,
    store: Store,
    shutdown_tx: watch::Sender<bool>,
    api_server: JoinHandle<()>,
    peer_server: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
    shutdown_grace: Duration,
}

impl RunningNode {
    /// Starts every part of the node, in dependency order: listeners, store, directory
    /// member, KV and objects, the peer listener (before bootstrap, so that the first
    /// voters can reach each other), the directory's own tasks, then the api and metrics
    /// listeners.
    pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
        config.validate()?;
        let listeners = Listeners::bind(&config).await?;
        let me = node_spec(&config, &listeners);
        let (store, directory) = start_store_and_directory(&config, &me, &listeners).await?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut background = vec![tokio::spawn(stop_on_storage_failure(
            store.health().failure(),
            config.node.id,
            shutdown_rx.clone(),
        ))];
        let (kv, objects) =
            start_kv_and_objects(&config, &store, &directory, &shutdown_rx, &mut background)
                .await?;
        let peer_server = spawn_peer_server(
            &config,
            &directory,
            &kv,
            &objects,
            listeners.peer,
            &shutdown_rx,
        );
        start_directory_tasks(&config, &directory, &me, &shutdown_rx, &mut background).await?;
        let (removed, removal) = crate::removal::spawn(directory.clone(), shutdown_rx.clone());
        background.push(removal);
        let api_server = spawn_api_server(
            &config,
            &directory,
            &kv,
            &objects,
            listeners.api,
            &shutdown_rx,
            &removed,
        )
        .await?;
        let health = crate::health::Health {
            directory: directory.clone(),
            kv: kv.clone(),
            removed: removed.clone(),
        };
        background.push(spawn_metrics_server(
            &directory,
            &kv,
            &objects,
            health,
            listeners.metrics,
            &shutdown_rx,
        ));
        tracing::info!(
            node_id = %me.id,
            region = %me.region,
            api = %listeners.api_addr,
            peer = %listeners.peer_addr,
            metrics = %listeners.metrics_addr,
            "node started"
        );
        Ok(RunningNode {
            api_addr: listeners.api_addr,
            peer_addr: listeners.peer_addr,
            metrics_addr: listeners.metrics_addr,
            directory,
            kv,
            store,
            shutdown_tx,
            api_server,
            peer_server,
            background,
            shutdown_grace: Duration::from_millis(config.limits.shutdown_grace_ms),
        })
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// Stops accepting requests, lets in-flight ones finish (up to the grace period),
    /// stops the directory member and flushes storage.
    pub async fn shutdown(self) {
        let node_id = self.directory.me().id;
        tracing::info!(node_id = %node_id, "node shutting down");
        let _ = self.shutdown_tx.send(true);
        if tokio::time::timeout(self.shutdown_grace, self.api_server)
            .await
            .is_err()
        {
            tracing::warn!(node_id = %node_id, "in-flight api requests outlived the grace period");
        }
        for task in self.background {
            let _ = tokio::time::timeout(self.shutdown_grace, task).await;
        }
        self.directory.shutdown().await;
        let _ = tokio::time::timeout(self.shutdown_grace, self.peer_server).await;
        if let Err(err) = self.store.flush().await {
            tracing::error!(node_id = %node_id, error = %err, "final flush failed");
        }
        tracing::info!(node_id = %node_id, "node stopped");
    }
}

/// This node as the directory records it: the advertised addresses, else the bound ones.
fn node_spec(config: &NodeConfig, listeners: &Listeners) -> NodeSpec {
    NodeSpec {
        id: larder_directory::NodeId(config.node.id),
        region: RegionId(config.node.region.clone()),
        jurisdictions: config.jurisdictions(),
        api_addr: config
            .advertise
            .api
            .clone()
            .unwrap_or_else(|| listeners.api_addr.to_string()),
        peer_addr: config
            .advertise
            .peer
            .clone()
            .unwrap_or_else(|| listeners.peer_addr.to_string()),
    }
}

/// Opens the store, with its free-space guard, and starts the directory member on it.
async fn start_store_and_directory(
    config: &NodeConfig,
    me: &NodeSpec,
    listeners: &Listeners,
) -> Result<(Store, Directory), NodeError> {
    let store = Store::open(config.node.data_dir.join("store"))?;
    store
        .health()
        .set_min_free_bytes(config.limits.disk_free_min_bytes);
    let directory = Directory::start(
        me.clone(),
        store.clone(),
        DirectoryConfig {
            peer_source_ip: Some(listeners.peer_addr.ip()).filter(|ip| !ip.is_unspecified()),
            ..config.directory.clone()
        },
        config.cluster.join.clone(),
    )
    .await?;
    Ok((store, directory))
}

/// Starts the KV (fed the cluster view the directory keeps current) and the object
/// host with its failover and alarm tasks.
async fn start_kv_and_objects(
    config: &NodeConfig,
    store: &Store,
    directory: &Directory,
    shutdown: &watch::Receiver<bool>,
    background: &mut Vec<JoinHandle<()>>,
) -> Result<(Kv, ObjectHost), NodeError> {
    let me = directory.me().id.0;
    let view = directory
        .read_local(|state| crate::cluster_view::view_of(state, me))
        .await;
    let (view_tx, view_rx) = watch::channel(Arc::new(view));
    background.push(tokio::spawn(crate::cluster_view::follow(
        directory.clone(),
        view_tx,
        shutdown.clone(),
    )));
    let channels = directory.channels().clone();
    let channel_factory = channels.factory();
    let (kv, kv_tasks) = Kv::start(
        store.clone(),
        config.kv.clone(),
        larder_kv::KvEnv::system(),
        view_rx,
        channel_factory.clone(),
        shutdown.clone(),
    )?;
    let objects = ObjectHost::new(
        directory.clone(),
        ObjectStore::open(store.clone())?,
        config.objects.clone(),
        channel_factory,
        larder_base::SystemClock::shared(),
    );
    background.extend(kv_tasks);
    background.push(tokio::spawn(larder_objects::failover::run(
        objects.clone(),
        shutdown.clone(),
    )));
    background.push(tokio::spawn(larder_objects::alarms::run(
        objects.clone(),
        shutdown.clone(),
    )));
    background.push(tokio::spawn(larder_objects::sweep::run(
        objects.clone(),
        shutdown.clone(),
    )));
    Ok((kv, objects))
}

/// Bootstraps the directory when this node is one of the first voters (and not told to
/// join), then starts registering itself and the liveness checks.
async fn start_directory_tasks(
    config: &NodeConfig,
    directory: &Directory,
    me: &NodeSpec,
    shutdown: &watch::Receiver<bool>,
    background: &mut Vec<JoinHandle<()>>,
) -> Result<(), NodeError> {
    let voters = config.initial_voters()?;
    if voters.contains_key(&me.id) && config.cluster.join.is_none() {
        directory.bootstrap(voters).await?;
    }
    background.push(tokio::spawn({
        let directory = directory.clone();
        let stop = shutdown.clone();
        async move { directory.register_self(stop).await }
    }));
    background.push(tokio::spawn(liveness::run(
        directory.clone(),
        shutdown.clone(),
    )));
    Ok(())
}

/// Exit code of a node stopped by a storage failure (EX_IOERR).
pub const EXIT_STORAGE_FAILED: i32 = 74;

/// Fail-stop: once the store reports a failed flush, acknowledged writes can no longer
/// be promised durable, so the process exits at once (a supervisor restarts it on a
/// reopened store; the cluster serves on with the other replicas meanwhile).
async fn stop_on_storage_failure(
    mut failure: watch::Receiver<Option<String>>,
    node: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if let Some(reason) = failure.borrow_and_update().clone() {
            tracing::error!(node, error = %reason, "storage failed: stopping the node");
            std::process::exit(EXIT_STORAGE_FAILED);
        }
        tokio::select! {
            changed = failure.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

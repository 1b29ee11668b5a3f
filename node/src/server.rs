//! One Larder node: binds its listeners, opens its store, starts the directory member and
//! serves until told to stop, then shuts down in order.

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use larder_directory::{Directory, DirectoryConfig, NodeSpec, RegionId, liveness, peer_services};
use larder_kv::Kv;
use larder_kv::grpc::kv_service::KvService;
use larder_kv::grpc::peer_service::KvPeerService;
use larder_objects::grpc::objects_service::ObjectsService;
use larder_objects::grpc::peer_service::ObjectPeerService;
use larder_objects::{ObjectHost, ObjectStore};
use larder_proto::v1::admin_server::AdminServer;
use larder_proto::v1::kv_server::KvServer;
use larder_proto::v1::objects_server::ObjectsServer;
use larder_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::config::{ConfigError, NodeConfig};
use crate::grpc::admin_service::AdminService;

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

async fn bind(listener: &'static str, addr: &str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind {
            listener,
            addr: addr.to_string(),
            source,
        })
}

/// Accepted connections with TCP_NODELAY: tonic's own `tcp_nodelay` setting only applies
/// to listeners it binds itself, and without it small responses wait for delayed ACKs
/// (measured: ~40 ms stalls at p99.9).
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

async fn signal(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl RunningNode {
    pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
        config.validate()?;
        let api_listener = bind("api", &config.listen.api).await?;
        let peer_listener = bind("peer", &config.listen.peer).await?;
        let metrics_listener = bind("metrics", &config.listen.metrics).await?;
        let local = |l: &TcpListener, name: &'static str| {
            l.local_addr().map_err(|source| NodeError::Bind {
                listener: name,
                addr: String::new(),
                source,
            })
        };
        let api_addr = local(&api_listener, "api")?;
        let peer_addr = local(&peer_listener, "peer")?;
        let metrics_addr = local(&metrics_listener, "metrics")?;

        let me = NodeSpec {
            id: larder_directory::NodeId(config.node.id),
            region: RegionId(config.node.region.clone()),
            jurisdictions: config.jurisdictions(),
            api_addr: config
                .advertise
                .api
                .clone()
                .unwrap_or_else(|| api_addr.to_string()),
            peer_addr: config
                .advertise
                .peer
                .clone()
                .unwrap_or_else(|| peer_addr.to_string()),
        };
        let store = Store::open(config.node.data_dir.join("store"))?;
        store
            .health()
            .set_min_free_bytes(config.limits.disk_free_min_bytes);
        let directory = Directory::start(
            me.clone(),
            store.clone(),
            DirectoryConfig {
                peer_source_ip: Some(peer_addr.ip()).filter(|ip| !ip.is_unspecified()),
                ..config.directory.clone()
            },
            config.cluster.join.clone(),
        )
        .await?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut background = Vec::new();
        background.push(tokio::spawn(stop_on_storage_failure(
            store.health().failure(),
            config.node.id,
            shutdown_rx.clone(),
        )));

        let (view_tx, view_rx) = watch::channel(Arc::new(crate::cluster_view::view_of(
            &directory.local_state().await,
            me.id.0,
        )));
        background.push(tokio::spawn(crate::cluster_view::follow(
            directory.clone(),
            view_tx,
            shutdown_rx.clone(),
        )));
        let channels = directory.channels().clone();
        let channel_factory: larder_kv::ChannelFactory =
            Arc::new(move |addr: &str| channels.channel(addr).map_err(|err| err.to_string()));
        let (kv, kv_tasks) = Kv::start(
            store.clone(),
            config.kv.clone(),
            larder_kv::KvEnv::system(),
            view_rx,
            channel_factory.clone(),
            shutdown_rx.clone(),
        )?;
        let objects = ObjectHost::new(
            directory.clone(),
            ObjectStore::open(store.clone())?,
            config.objects.clone(),
            channel_factory,
        );
        background.extend(kv_tasks);

        let (raft_service, forward_service) = peer_services(&directory);
        background.push(tokio::spawn(larder_objects::failover::run(
            objects.clone(),
            shutdown_rx.clone(),
        )));
        background.push(tokio::spawn(larder_objects::alarms::run(
            objects.clone(),
            shutdown_rx.clone(),
        )));
        let kv_peer_service = KvPeerService::server(kv.clone());
        let object_peer_service = ObjectPeerService::server(
            objects.clone(),
            config.directory.peer_message_bytes_max,
            shutdown_rx.clone(),
        );
        let peer_server = tokio::spawn({
            let stop = signal(shutdown_rx.clone());
            let streams = config.limits.http2_streams_per_connection_max;
            async move {
                let result = tonic::transport::Server::builder()
                    .tcp_nodelay(true)
                    .max_concurrent_streams(streams)
                    .add_service(raft_service)
                    .add_service(forward_service)
                    .add_service(kv_peer_service)
                    .add_service(object_peer_service)
                    .serve_with_incoming_shutdown(incoming(peer_listener), stop)
                    .await;
                if let Err(err) = result {
                    tracing::error!(error = %err, "peer listener failed");
                }
            }
        });

        let voters = config.initial_voters()?;
        if voters.contains_key(&me.id) && config.cluster.join.is_none() {
            directory.bootstrap(voters).await?;
        }

        background.push(tokio::spawn({
            let directory = directory.clone();
            let stop = shutdown_rx.clone();
            async move { directory.register_self(stop).await }
        }));
        background.push(tokio::spawn(liveness::run(
            directory.clone(),
            shutdown_rx.clone(),
        )));

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<AdminServer<AdminService>>()
            .await;
        health_reporter.set_serving::<KvServer<KvService>>().await;
        health_reporter
            .set_serving::<ObjectsServer<ObjectsService>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(larder_proto::V1_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|err| NodeError::Reflection(err.to_string()))?;
        let bytes_max = config.limits.api_message_bytes_max;
        let admin = AdminServer::new(AdminService::new(directory.clone(), kv.clone()))
            .max_decoding_message_size(bytes_max)
            .max_encoding_message_size(bytes_max);
        let kv_api = KvServer::new(KvService::new(kv.clone()))
            .max_decoding_message_size(bytes_max)
            .max_encoding_message_size(bytes_max);
        let objects_api = ObjectsServer::new(ObjectsService::new(objects.clone()))
            .max_decoding_message_size(bytes_max)
            .max_encoding_message_size(bytes_max);
        let api_server = tokio::spawn({
            let stop = signal(shutdown_rx.clone());
            let limits = config.limits.clone();
            async move {
                let result = tonic::transport::Server::builder()
                    .tcp_nodelay(true)
                    .concurrency_limit_per_connection(limits.api_requests_per_connection_max)
                    .max_concurrent_streams(limits.http2_streams_per_connection_max)
                    .add_service(health_service)
                    .add_service(reflection)
                    .add_service(admin)
                    .add_service(kv_api)
                    .add_service(objects_api)
                    .serve_with_incoming_shutdown(incoming(api_listener), stop)
                    .await;
                if let Err(err) = result {
                    tracing::error!(error = %err, "api listener failed");
                }
            }
        });

        background.push(tokio::spawn({
            let stop = signal(shutdown_rx.clone());
            let app = crate::metrics::router(directory.clone(), kv.clone(), objects.clone());
            async move {
                if let Err(err) = axum::serve(metrics_listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %err, "metrics listener failed");
                }
            }
        }));

        tracing::info!(
            node_id = %me.id,
            region = %me.region,
            api = %api_addr,
            peer = %peer_addr,
            metrics = %metrics_addr,
            "node started"
        );
        Ok(RunningNode {
            api_addr,
            peer_addr,
            metrics_addr,
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

/// Resolves on SIGINT or SIGTERM.
pub async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
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

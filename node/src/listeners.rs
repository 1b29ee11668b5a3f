//! The node's three listeners: binding them, and serving the peer, api and metrics
//! services on them until shutdown.

use std::net::SocketAddr;

use larder_directory::{Directory, peer_services};
use larder_kv::Kv;
use larder_kv::grpc::kv_service::KvService;
use larder_kv::grpc::peer_service::KvPeerService;
use larder_objects::ObjectHost;
use larder_objects::grpc::objects_service::ObjectsService;
use larder_objects::grpc::peer_service::ObjectPeerService;
use larder_proto::v1::admin_server::AdminServer;
use larder_proto::v1::kv_server::KvServer;
use larder_proto::v1::objects_server::ObjectsServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::config::NodeConfig;
use crate::grpc::admin_service::AdminService;
use crate::health::Health;
use crate::server::NodeError;

/// The node's three listeners, bound before anything starts so that a taken port fails
/// the start at once, with the addresses they got (a configured port 0 picks one).
pub(crate) struct Listeners {
    pub(crate) api: TcpListener,
    pub(crate) peer: TcpListener,
    pub(crate) metrics: TcpListener,
    pub(crate) api_addr: SocketAddr,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) metrics_addr: SocketAddr,
}

impl Listeners {
    pub(crate) async fn bind(config: &NodeConfig) -> Result<Listeners, NodeError> {
        let api = bind("api", &config.listen.api).await?;
        let peer = bind("peer", &config.listen.peer).await?;
        let metrics = bind("metrics", &config.listen.metrics).await?;
        Ok(Listeners {
            api_addr: local_addr(&api, "api")?,
            peer_addr: local_addr(&peer, "peer")?,
            metrics_addr: local_addr(&metrics, "metrics")?,
            api,
            peer,
            metrics,
        })
    }
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

fn local_addr(listener: &TcpListener, name: &'static str) -> Result<SocketAddr, NodeError> {
    listener.local_addr().map_err(|source| NodeError::Bind {
        listener: name,
        addr: String::new(),
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

/// The peer listener: Raft and directory forwarding, KV replication, object copies.
pub(crate) fn spawn_peer_server(
    config: &NodeConfig,
    directory: &Directory,
    kv: &Kv,
    objects: &ObjectHost,
    listener: TcpListener,
    shutdown: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    let (raft_service, forward_service) = peer_services(directory);
    let kv_peer_service = KvPeerService::server(kv.clone());
    let object_peer_service = ObjectPeerService::server(
        objects.clone(),
        config.directory.peer_message_bytes_max,
        shutdown.clone(),
    );
    let stop = signal(shutdown.clone());
    let streams = config.limits.http2_streams_per_connection_max;
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .max_concurrent_streams(streams)
            .add_service(raft_service)
            .add_service(forward_service)
            .add_service(kv_peer_service)
            .add_service(object_peer_service)
            .serve_with_incoming_shutdown(incoming(listener), stop)
            .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "peer listener failed");
        }
    })
}

/// The api listener: health, reflection, admin, KV and objects, each service with the
/// configured message size limit.
pub(crate) async fn spawn_api_server(
    config: &NodeConfig,
    directory: &Directory,
    kv: &Kv,
    objects: &ObjectHost,
    listener: TcpListener,
    shutdown: &watch::Receiver<bool>,
    removed: &watch::Receiver<bool>,
) -> Result<JoinHandle<()>, NodeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AdminServer<AdminService>>()
        .await;
    health_reporter.set_serving::<KvServer<KvService>>().await;
    health_reporter
        .set_serving::<ObjectsServer<ObjectsService>>()
        .await;
    // From here on serving exactly while ready.
    let services = vec![
        <AdminServer<AdminService> as tonic::server::NamedService>::NAME,
        <KvServer<KvService> as tonic::server::NamedService>::NAME,
        <ObjectsServer<ObjectsService> as tonic::server::NamedService>::NAME,
    ];
    let health = Health {
        directory: directory.clone(),
        kv: kv.clone(),
        removed: removed.clone(),
    };
    tokio::spawn(health.follow_in_grpc(health_reporter, services, shutdown.clone()));
    // Both reflection versions: many tools (grpcurl's older releases, Python's
    // grpcio-reflection) still speak only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(larder_proto::V1_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|err| NodeError::Reflection(err.to_string()))?;
    let reflection = reflection()
        .build_v1()
        .map_err(|err| NodeError::Reflection(err.to_string()))?;
    let bytes_max = config.limits.api_message_bytes_max;
    let admin = AdminServer::new(AdminService::new(
        directory.clone(),
        kv.clone(),
        removed.clone(),
    ))
    .max_decoding_message_size(bytes_max)
    .max_encoding_message_size(bytes_max);
    let kv_api = KvServer::new(KvService::new(kv.clone()))
        .max_decoding_message_size(bytes_max)
        .max_encoding_message_size(bytes_max);
    let objects_api = ObjectsServer::new(ObjectsService::new(objects.clone()))
        .max_decoding_message_size(bytes_max)
        .max_encoding_message_size(bytes_max);
    let refuse = crate::removal::RefuseWhenRemoved::new(removed.clone(), directory.me().id);
    let stop = signal(shutdown.clone());
    let limits = config.limits.clone();
    Ok(tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .concurrency_limit_per_connection(limits.api_requests_per_connection_max)
            .max_concurrent_streams(limits.http2_streams_per_connection_max)
            .layer(crate::grpc::oversized::layer())
            .layer(refuse)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(admin)
            .add_service(kv_api)
            .add_service(objects_api)
            .serve_with_incoming_shutdown(incoming(listener), stop)
            .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "api listener failed");
        }
    }))
}

/// The metrics listener (`GET /metrics`).
pub(crate) fn spawn_metrics_server(
    directory: &Directory,
    kv: &Kv,
    objects: &ObjectHost,
    health: Health,
    listener: TcpListener,
    shutdown: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    let stop = signal(shutdown.clone());
    let app = crate::metrics::router(directory.clone(), kv.clone(), objects.clone(), health);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %err, "metrics listener failed");
        }
    })
}

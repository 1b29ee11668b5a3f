//! Keeps the KV's [`ClusterView`] in step with the directory.

use std::collections::BTreeMap;
use std::sync::Arc;

use larder_directory::{Directory, DirectoryState, NodeStatus};
use larder_kv::{ClusterView, Namespace, NamespaceInfo, NodeId, PeerInfo};
use tokio::sync::watch;

/// The KV's view of a directory state, from node `me`'s point of view.
pub fn view_of(state: &DirectoryState, me: u64) -> ClusterView {
    let nodes = state
        .nodes
        .values()
        .map(|record| {
            (
                NodeId(record.spec.id.0),
                PeerInfo {
                    region: record.spec.region.0.clone(),
                    api_addr: record.spec.api_addr.clone(),
                    peer_addr: record.spec.peer_addr.clone(),
                    up: record.status == NodeStatus::Up,
                },
            )
        })
        .collect();
    let namespaces: BTreeMap<Namespace, NamespaceInfo> = state
        .namespaces
        .values()
        .map(|ns| {
            let allowed = state
                .nodes
                .values()
                .filter(|record| ns.policy.allows(&record.spec))
                .map(|record| NodeId(record.spec.id.0))
                .collect();
            (
                ns.stored_as(),
                NamespaceInfo {
                    allowed,
                    policy: ns.policy.describe(),
                },
            )
        })
        .collect();
    let names = state
        .namespaces
        .values()
        .map(|ns| (ns.name.clone(), ns.stored_as()))
        .collect();
    ClusterView {
        me: NodeId(me),
        nodes,
        namespaces,
        names,
        last_generation: Some(state.last_generation),
    }
}

/// Publishes a new view whenever the local directory applies changes.
pub async fn follow(
    directory: Directory,
    tx: watch::Sender<Arc<ClusterView>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let me = directory.me().id.0;
    let mut changes = directory.reader().subscribe();
    loop {
        // Read in place: the view needs the nodes and namespaces, not a copy of every
        // placement, on every change the directory applies.
        let view = directory.read_local(|state| view_of(state, me)).await;
        tx.send_if_modified(|current| {
            if **current == view {
                false
            } else {
                *current = Arc::new(view);
                true
            }
        });
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

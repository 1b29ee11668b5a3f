//! Where the objects of a namespace are placed, and a wait until no placement names a
//! node the cluster no longer has.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::super::TestCluster;
use super::REPAIR_TIMEOUT;

/// Owner, replicas and epoch of each object of `namespace` (by id), as a running node
/// lists them; empty if none answers.
pub(super) async fn replica_sets(
    cluster: &TestCluster,
    namespace: &str,
) -> BTreeMap<String, (u64, Vec<u64>, u64)> {
    for node in cluster.running() {
        let listed = node
            .client()
            .objects(namespace)
            .list_objects("", "", "", 100)
            .await;
        if let Ok((objects, _)) = listed {
            return objects
                .into_iter()
                .map(|o| (o.id, (o.owner, o.replicas, o.epoch)))
                .collect();
        }
    }
    BTreeMap::new()
}

/// Waits until no placement of `namespace` names a node the cluster no longer has;
/// returns how long that took.
pub(super) async fn placements_on_members(
    cluster: &TestCluster,
    namespace: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let members: BTreeSet<u64> = cluster.nodes.iter().map(|n| n.id).collect();
    let mut last = Vec::new();
    loop {
        let listed = cluster
            .node(cluster.nodes[0].id)
            .client()
            .objects(namespace)
            .list_objects("", "", "", 100)
            .await;
        if let Ok((objects, _)) = listed {
            last = objects
                .iter()
                .filter(|o| {
                    !members.contains(&o.owner) || o.replicas.iter().any(|r| !members.contains(r))
                })
                .map(|o| {
                    format!(
                        "{} owner {} replicas {:?} epoch {}",
                        o.id, o.owner, o.replicas, o.epoch
                    )
                })
                .collect();
            if last.is_empty() {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() >= REPAIR_TIMEOUT {
            bail!(
                "placements still name nodes no longer in the cluster {members:?} after {REPAIR_TIMEOUT:?}: {last:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

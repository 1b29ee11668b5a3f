//! The replicated KV on real processes: propagation, convergence, deletes, expiry,
//! catch-up after restart and after a cut, limits, residency, read-your-writes, watch.
//!
//! Layout: `replication` (propagation, conflicts, deletes, expiry), `catch_up` (nodes
//! that were away), `requests` (limits, residency), `sessions` (read-your-writes,
//! watch), `cli`; the waits they share are here.

#[path = "../support/mod.rs"]
mod support;

mod catch_up;
mod cli;
mod replication;
mod requests;
mod sessions;

use std::time::Duration;

use futures::StreamExt;
use support::{TestCluster, wait_for};

const STEP: Duration = Duration::from_secs(30);

async fn cluster_with_namespace(voters: usize, ns: &str) -> TestCluster {
    let cluster = TestCluster::start(voters).await.expect("cluster");
    cluster.create_namespace(ns).await.expect("namespace");
    cluster
}

/// Waits until every running node returns `expected` for `key`.
async fn wait_value(cluster: &TestCluster, ns: &str, key: &str, expected: Option<&[u8]>) {
    wait_for(
        &format!("{key} = {expected:?} everywhere"),
        STEP,
        || async {
            for node in cluster.running() {
                let got = node.client().kv(ns).get(key).await.ok()?;
                if got.as_deref() != expected {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .unwrap_or_else(|err| panic!("{err}\n{}", cluster.logs()));
}

/// All keys under `prefix` at one node, with their versions.
async fn contents(
    node: &support::TestNode,
    ns: &str,
) -> Option<Vec<(Vec<u8>, Option<larder_proto_version::V>)>> {
    let kv = node.client().kv(ns);
    let mut pages = std::pin::pin!(kv.list(Vec::new(), 0));
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        for entry in page.ok()?.keys {
            out.push((entry.key, entry.version.map(larder_proto_version::V::from)));
        }
    }
    Some(out)
}

/// Versions compared as tuples.
mod larder_proto_version {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct V(pub u64, pub u32, pub u64);
    impl From<larder_client::kv::Version> for V {
        fn from(v: larder_client::kv::Version) -> V {
            V(v.physical_ms, v.logical, v.origin)
        }
    }
}

async fn wait_identical(cluster: &TestCluster, ns: &str, expected_keys: usize) {
    wait_for("identical contents on every node", STEP, || async {
        let mut first = None;
        for node in cluster.running() {
            let c = contents(node, ns).await?;
            if c.len() != expected_keys {
                return None;
            }
            match &first {
                None => first = Some(c),
                Some(f) if *f == c => {}
                Some(_) => return None,
            }
        }
        Some(())
    })
    .await
    .unwrap_or_else(|err| {
        let counts = futures::executor::block_on(async {
            let mut all = Vec::new();
            for node in cluster.running() {
                all.push((node.id, contents(node, ns).await));
            }
            let first = all[0].1.clone().unwrap_or_default();
            all.iter()
                .map(|(id, c)| {
                    let c = c.clone().unwrap_or_default();
                    let diff = c.iter().zip(first.iter()).position(|(a, b)| a != b);
                    (*id, c.len(), diff.map(|i| (c[i].clone(), first[i].clone())))
                })
                .collect::<Vec<_>>()
        });
        panic!("{err}; keys per node: {counts:?}\n{}", cluster.logs())
    });
}

//! Where objects are: `list`, `inspect`, `move`, and `larder node drain`.

use anyhow::{Context, bail};
use larder_client::Client;
use larder_client::objects::{ObjectHandle, ObjectInfo, ObjectNamespace};
use serde_json::{Value, json};

use super::alarms::{alarm_json, unix_text};

pub(super) async fn list(
    objects: &ObjectNamespace,
    json_out: bool,
    prefix: &str,
    region: &str,
) -> anyhow::Result<()> {
    let all = list_all(objects, prefix, region).await?;
    if json_out {
        println!("{}", Value::Array(all.iter().map(info_json).collect()));
    } else {
        println!("ID                               REGION       OWNER  REPLICAS     EPOCH");
        for o in all {
            println!(
                "{:<32} {:<12} {:<6} {:<12} {}",
                o.id,
                o.region,
                o.owner,
                ids(&o.replicas),
                o.epoch
            );
        }
    }
    Ok(())
}

/// Every page of the listing.
async fn list_all(
    objects: &ObjectNamespace,
    prefix: &str,
    region: &str,
) -> anyhow::Result<Vec<ObjectInfo>> {
    let mut after = String::new();
    let mut all = Vec::new();
    loop {
        let (page, more) = objects
            .list_objects(prefix, region, &after, 0)
            .await
            .context("object list")?;
        after = page.last().map(|o| o.id.clone()).unwrap_or_default();
        all.extend(page);
        if !more {
            return Ok(all);
        }
    }
}

pub(super) async fn inspect(object: &ObjectHandle, json_out: bool) -> anyhow::Result<()> {
    let o = object.inspect().await.context("object inspect")?;
    if json_out {
        println!("{}", info_json(&o));
        return Ok(());
    }
    println!(
        "{}/{}: region {}, owner node {}, replicas {}, epoch {}, version {}, {} keys, {} bytes",
        o.namespace,
        o.id,
        o.region,
        o.owner,
        ids(&o.replicas),
        o.epoch,
        o.version,
        o.keys,
        o.bytes
    );
    for a in &o.alarms {
        println!("alarm {} due {}", a.name, unix_text(a.at_unix_ms));
    }
    if o.last_event_seq > 0 {
        println!("last event #{}", o.last_event_seq);
    }
    Ok(())
}

pub(super) async fn move_object(
    object: &ObjectHandle,
    json_out: bool,
    name: &str,
    to_node: Option<u64>,
    to_region: Option<String>,
) -> anyhow::Result<()> {
    let moved = match (to_node, to_region) {
        (Some(node), _) => object.move_to_node(node).await,
        (None, Some(region)) => object.move_to_region(&region).await,
        (None, None) => bail!("give --to-node or --to-region"),
    }
    .context("object move")?;
    if json_out {
        println!("{}", info_json(&moved));
    } else {
        println!(
            "{name} now in {} at node {} (replicas {}, epoch {})",
            moved.region,
            moved.owner,
            ids(&moved.replicas),
            moved.epoch
        );
    }
    Ok(())
}

/// `larder node drain N`.
pub async fn drain(client: &Client, json_out: bool, node: u64) -> anyhow::Result<()> {
    let result = client.drain_node(node).await.context("node drain")?;
    if json_out {
        println!(
            "{}",
            json!({"moved": result.moved.iter().map(info_json).collect::<Vec<_>>(), "failed": result.failed})
        );
    } else {
        println!("moved {} objects off node {node}", result.moved.len());
        for failure in &result.failed {
            println!("not moved: {failure}");
        }
    }
    if result.failed.is_empty() {
        Ok(())
    } else {
        bail!("{} objects could not be moved", result.failed.len())
    }
}

fn info_json(o: &ObjectInfo) -> Value {
    json!({
        "namespace": o.namespace, "id": o.id, "region": o.region,
        "jurisdiction": (!o.jurisdiction.is_empty()).then_some(&o.jurisdiction),
        "owner": o.owner, "replicas": o.replicas, "epoch": o.epoch,
        "version": o.version, "keys": o.keys, "bytes": o.bytes,
        "alarms": o.alarms.iter().map(alarm_json).collect::<Vec<_>>(),
        "last_event_seq": o.last_event_seq,
    })
}

/// Node ids as `1,2,3`.
fn ids(nodes: &[u64]) -> String {
    let ids: Vec<String> = nodes.iter().map(u64::to_string).collect();
    ids.join(",")
}

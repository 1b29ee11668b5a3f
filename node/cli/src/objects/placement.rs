//! Where objects are: `list`, `inspect`, `move`, `rebalance`, and `larder node drain`.

use anyhow::{Context, bail};
use larder_client::Client;
use larder_client::objects::{ObjectHandle, ObjectInfo, ObjectPages};
use serde_json::{Value, json};

use super::alarms::{alarm_json, unix_text};

/// Prints the listing as its pages arrive (JSON: one array), `limit` objects at the
/// most (0: all), so a namespace of any size lists in bounded memory.
pub(super) async fn list(
    mut pages: ObjectPages,
    json_out: bool,
    limit: usize,
) -> anyhow::Result<()> {
    let mut printed = 0usize;
    if json_out {
        print!("[");
    } else {
        println!("ID                               REGION       OWNER  REPLICAS     EPOCH");
    }
    'pages: while let Some(page) = pages.next_page().await.context("object list")? {
        for o in page {
            if limit > 0 && printed == limit {
                break 'pages;
            }
            if json_out {
                let comma = if printed == 0 { "" } else { "," };
                print!("{comma}{}", info_json(&o));
            } else {
                println!(
                    "{:<32} {:<12} {:<6} {:<12} {}",
                    o.id,
                    o.region,
                    o.owner,
                    ids(&o.replicas),
                    o.epoch
                );
            }
            printed += 1;
        }
    }
    if json_out {
        println!("]");
    }
    Ok(())
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

/// `larder object rebalance`: requests of `moves_per_call` moves until one moves
/// nothing, printing each node's count as it goes.
pub(super) async fn rebalance(
    client: &Client,
    json_out: bool,
    region: &str,
    namespace: Option<&str>,
    moves_per_call: u32,
) -> anyhow::Result<()> {
    let (mut moved, mut failed) = (0usize, Vec::new());
    let owned = loop {
        let round = client
            .rebalance_objects(region, namespace, moves_per_call)
            .await
            .context("object rebalance")?;
        moved += round.moved.len();
        failed.extend(round.failed);
        let owned: std::collections::BTreeMap<u64, u64> = round.owned.into_iter().collect();
        if !json_out {
            let counts: Vec<String> = owned
                .iter()
                .map(|(id, n)| format!("node {id}: {n}"))
                .collect();
            println!("moved {moved} so far; owned now {}", counts.join(", "));
        }
        if round.moved.is_empty() {
            break owned;
        }
    };
    if json_out {
        println!(
            "{}",
            json!({"moved": moved, "failed": failed, "owned": owned})
        );
    }
    for failure in &failed {
        eprintln!("not moved: {failure}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("{} moves failed", failed.len())
    }
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

//! `larder object …`: object storage commands and inspection.

use anyhow::{Context, bail};
use clap::Subcommand;
use larder_client::Client;
use larder_client::objects::ObjectInfo;
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub enum ObjectCommand {
    /// Objects of a namespace: id, region, owner, replicas, epoch.
    List {
        namespace: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value = "")]
        region: String,
    },
    /// Placement and contents summary of one object.
    Inspect { namespace: String, name: String },
    /// Read a key; exits 1 with "not found" when absent.
    Get {
        namespace: String,
        name: String,
        key: String,
    },
    Put {
        namespace: String,
        name: String,
        key: String,
        value: String,
    },
    Delete {
        namespace: String,
        name: String,
        key: String,
    },
    /// Keys of one object, in byte order.
    ListKeys {
        namespace: String,
        name: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long)]
        reverse: bool,
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Move an object, with its state, to a node or a region.
    Move {
        namespace: String,
        name: String,
        #[arg(
            long,
            conflicts_with = "to_region",
            required_unless_present = "to_region"
        )]
        to_node: Option<u64>,
        #[arg(long)]
        to_region: Option<String>,
    },
    /// Add to an integer value atomically; prints the new value.
    Add {
        namespace: String,
        name: String,
        key: String,
        #[arg(allow_hyphen_values = true)]
        delta: i64,
    },
}

fn info_json(o: &ObjectInfo) -> Value {
    json!({
        "namespace": o.namespace, "id": o.id, "region": o.region,
        "jurisdiction": (!o.jurisdiction.is_empty()).then_some(&o.jurisdiction),
        "owner": o.owner, "replicas": o.replicas, "epoch": o.epoch,
        "version": o.version, "keys": o.keys, "bytes": o.bytes,
    })
}

pub async fn run(client: &Client, json_out: bool, command: ObjectCommand) -> anyhow::Result<()> {
    match command {
        ObjectCommand::List {
            namespace,
            prefix,
            region,
        } => {
            let objects = client.objects(&namespace);
            let mut after = String::new();
            let mut all = Vec::new();
            loop {
                let (page, more) = objects
                    .list_objects(&prefix, &region, &after, 0)
                    .await
                    .context("object list")?;
                after = page.last().map(|o| o.id.clone()).unwrap_or_default();
                all.extend(page);
                if !more {
                    break;
                }
            }
            if json_out {
                println!("{}", Value::Array(all.iter().map(info_json).collect()));
            } else {
                println!("ID                               REGION       OWNER  REPLICAS     EPOCH");
                for o in all {
                    let replicas: Vec<String> = o.replicas.iter().map(u64::to_string).collect();
                    println!(
                        "{:<32} {:<12} {:<6} {:<12} {}",
                        o.id,
                        o.region,
                        o.owner,
                        replicas.join(","),
                        o.epoch
                    );
                }
            }
        }
        ObjectCommand::Inspect { namespace, name } => {
            let o = client
                .objects(&namespace)
                .by_name(&name)
                .inspect()
                .await
                .context("object inspect")?;
            if json_out {
                println!("{}", info_json(&o));
            } else {
                let replicas: Vec<String> = o.replicas.iter().map(u64::to_string).collect();
                println!(
                    "{}/{}: region {}, owner node {}, replicas {}, epoch {}, version {}, {} keys, {} bytes",
                    o.namespace,
                    o.id,
                    o.region,
                    o.owner,
                    replicas.join(","),
                    o.epoch,
                    o.version,
                    o.keys,
                    o.bytes
                );
            }
        }
        ObjectCommand::Get {
            namespace,
            name,
            key,
        } => {
            let Some(value) = client
                .objects(&namespace)
                .by_name(&name)
                .get(key.as_bytes())
                .await
                .context("object get")?
            else {
                bail!("not found: {key:?} in object {name:?}");
            };
            if json_out {
                println!(
                    "{}",
                    json!({"key": key, "value": String::from_utf8_lossy(&value)})
                );
            } else {
                println!("{}", String::from_utf8_lossy(&value));
            }
        }
        ObjectCommand::Put {
            namespace,
            name,
            key,
            value,
        } => {
            let version = client
                .objects(&namespace)
                .by_name(&name)
                .put(key.clone(), value)
                .await
                .context("object put")?;
            if json_out {
                println!("{}", json!({"key": key, "version": version}));
            } else {
                println!("stored {key} (object version {version})");
            }
        }
        ObjectCommand::Delete {
            namespace,
            name,
            key,
        } => {
            let version = client
                .objects(&namespace)
                .by_name(&name)
                .delete(&[key.as_bytes()])
                .await
                .context("object delete")?;
            if json_out {
                println!("{}", json!({"deleted": key, "version": version}));
            } else {
                println!("deleted {key} (object version {version})");
            }
        }
        ObjectCommand::ListKeys {
            namespace,
            name,
            prefix,
            reverse,
            limit,
        } => {
            let (entries, more) = client
                .objects(&namespace)
                .by_name(&name)
                .list(prefix.as_bytes(), reverse, limit)
                .await
                .context("object list-keys")?;
            if json_out {
                let rows: Vec<Value> = entries
                    .iter()
                    .map(|e| json!({"key": String::from_utf8_lossy(&e.key), "value": String::from_utf8_lossy(&e.value), "version": e.version}))
                    .collect();
                println!("{}", json!({"entries": rows, "more": more}));
            } else {
                for e in entries {
                    println!(
                        "{}\t{}",
                        String::from_utf8_lossy(&e.key),
                        String::from_utf8_lossy(&e.value)
                    );
                }
            }
        }
        ObjectCommand::Move {
            namespace,
            name,
            to_node,
            to_region,
        } => {
            let object = client.objects(&namespace).by_name(&name);
            let moved = match (to_node, to_region) {
                (Some(node), _) => object.move_to_node(node).await,
                (None, Some(region)) => object.move_to_region(&region).await,
                (None, None) => bail!("give --to-node or --to-region"),
            }
            .context("object move")?;
            if json_out {
                println!("{}", info_json(&moved));
            } else {
                let replicas: Vec<String> = moved.replicas.iter().map(u64::to_string).collect();
                println!(
                    "{name} now in {} at node {} (replicas {}, epoch {})",
                    moved.region,
                    moved.owner,
                    replicas.join(","),
                    moved.epoch
                );
            }
        }
        ObjectCommand::Add {
            namespace,
            name,
            key,
            delta,
        } => {
            let value = client
                .objects(&namespace)
                .by_name(&name)
                .add(key.clone(), delta)
                .await
                .context("object add")?;
            if json_out {
                println!("{}", json!({"key": key, "value": value}));
            } else {
                println!("{value}");
            }
        }
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

//! `larder object …`: object storage commands and inspection.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Subcommand;
use futures::StreamExt;
use larder_client::Client;
use larder_client::objects::{Alarm, ObjectEvent, ObjectInfo, object_event};
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
    /// A transaction: if every precondition holds, apply all writes (puts, then
    /// deletes, then adds), else nothing (exit 1 naming the failed precondition).
    Txn {
        namespace: String,
        name: String,
        /// KEY=VERSION: the key's version is VERSION (0: absent).
        #[arg(long = "if-version", value_name = "KEY=VERSION")]
        if_version: Vec<String>,
        #[arg(long = "if-absent", value_name = "KEY")]
        if_absent: Vec<String>,
        #[arg(long = "if-value", value_name = "KEY=VALUE")]
        if_value: Vec<String>,
        #[arg(long, value_name = "KEY=VALUE")]
        put: Vec<String>,
        #[arg(long, value_name = "KEY")]
        delete: Vec<String>,
        /// KEY=DELTA: add DELTA to the integer at KEY.
        #[arg(long, value_name = "KEY=DELTA", allow_hyphen_values = true)]
        add: Vec<String>,
    },
    /// Alarms of an object: set, get, list, delete.
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Append a message to an object's event log; prints its sequence number.
    Publish {
        namespace: String,
        name: String,
        message: String,
    },
    /// Print events (alarms fired, messages) of one object, or of every object of the
    /// namespace when no name is given, one per line.
    Subscribe {
        namespace: String,
        name: Option<String>,
        /// Object events with a higher sequence number first (one object only);
        /// default: from now on.
        #[arg(long)]
        after: Option<u64>,
        /// Namespace subscription: only objects whose id starts with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AlarmCommand {
    /// Set (or replace) an alarm, due `--in` a duration or `--at` a time.
    Set {
        namespace: String,
        name: String,
        alarm: String,
        /// Due after this long, e.g. 30s, 5m.
        #[arg(long = "in", value_parser = humantime::parse_duration, conflicts_with = "at", required_unless_present = "at")]
        after: Option<Duration>,
        /// Due at this time: RFC 3339 (2026-12-01T10:00:00Z) or Unix milliseconds.
        #[arg(long)]
        at: Option<String>,
        #[arg(long, default_value = "")]
        payload: String,
    },
    /// Show one alarm; exits 1 with "not found" when it is not set.
    Get {
        namespace: String,
        name: String,
        alarm: String,
    },
    List {
        namespace: String,
        name: String,
    },
    Delete {
        namespace: String,
        name: String,
        #[arg(required = true)]
        alarms: Vec<String>,
    },
}

fn parse_time(text: &str) -> anyhow::Result<SystemTime> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_millis(ms));
    }
    humantime::parse_rfc3339_weak(text)
        .with_context(|| format!("--at {text:?}: expected RFC 3339 or Unix milliseconds"))
}

/// Splits `KEY=VALUE` for flag `flag`.
fn pair<'a>(flag: &str, text: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    text.split_once('=')
        .with_context(|| format!("--{flag} {text:?}: expected KEY=VALUE"))
}

fn unix_text(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn alarm_json(a: &Alarm) -> Value {
    json!({"name": a.name, "at_unix_ms": a.at_unix_ms, "at": unix_text(a.at_unix_ms),
           "payload": String::from_utf8_lossy(&a.payload)})
}

fn event_json(e: &ObjectEvent) -> Value {
    let mut out =
        json!({"namespace": e.namespace, "id": e.id, "seq": e.seq, "at_unix_ms": e.at_unix_ms});
    match &e.kind {
        Some(object_event::Kind::AlarmFired(a)) => {
            out["alarm_fired"] = json!({"name": a.name, "scheduled_unix_ms": a.scheduled_unix_ms,
                                       "payload": String::from_utf8_lossy(&a.payload)});
        }
        Some(object_event::Kind::Message(m)) => {
            out["message"] = json!(String::from_utf8_lossy(m));
        }
        Some(object_event::Kind::GapUntil(until)) => out["gap_until"] = json!(until),
        None => {}
    }
    out
}

fn event_text(e: &ObjectEvent) -> String {
    let what = match &e.kind {
        Some(object_event::Kind::AlarmFired(a)) => format!(
            "alarm {} fired (due {}) {}",
            a.name,
            unix_text(a.scheduled_unix_ms),
            String::from_utf8_lossy(&a.payload)
        ),
        Some(object_event::Kind::Message(m)) => {
            format!("message {}", String::from_utf8_lossy(m))
        }
        Some(object_event::Kind::GapUntil(until)) => {
            format!("events {}..={until} are no longer kept", e.seq)
        }
        None => "unknown event".to_string(),
    };
    format!("{}/{} #{} {}", e.namespace, e.id, e.seq, what)
}

async fn alarm(client: &Client, json_out: bool, command: AlarmCommand) -> anyhow::Result<()> {
    match command {
        AlarmCommand::Set {
            namespace,
            name,
            alarm,
            after,
            at,
            payload,
        } => {
            let object = client.objects(&namespace).by_name(&name);
            let version = match (after, at) {
                (Some(after), _) => object.set_alarm_in(&alarm, after, payload).await,
                (None, Some(at)) => object.set_alarm(&alarm, parse_time(&at)?, payload).await,
                (None, None) => bail!("give --in or --at"),
            }
            .context("alarm set")?;
            if json_out {
                println!("{}", json!({"alarm": alarm, "version": version}));
            } else {
                println!("alarm {alarm} set (object version {version})");
            }
        }
        AlarmCommand::Get {
            namespace,
            name,
            alarm,
        } => {
            let Some(found) = client
                .objects(&namespace)
                .by_name(&name)
                .alarm(&alarm)
                .await
                .context("alarm get")?
            else {
                bail!("not found: alarm {alarm:?} of object {name:?}");
            };
            if json_out {
                println!("{}", alarm_json(&found));
            } else {
                println!(
                    "{}	{}	{}",
                    found.name,
                    unix_text(found.at_unix_ms),
                    String::from_utf8_lossy(&found.payload)
                );
            }
        }
        AlarmCommand::List { namespace, name } => {
            let alarms = client
                .objects(&namespace)
                .by_name(&name)
                .alarms()
                .await
                .context("alarm list")?;
            if json_out {
                println!("{}", Value::Array(alarms.iter().map(alarm_json).collect()));
            } else {
                for a in alarms {
                    println!(
                        "{}	{}	{}",
                        a.name,
                        unix_text(a.at_unix_ms),
                        String::from_utf8_lossy(&a.payload)
                    );
                }
            }
        }
        AlarmCommand::Delete {
            namespace,
            name,
            alarms,
        } => {
            let names: Vec<&str> = alarms.iter().map(String::as_str).collect();
            let version = client
                .objects(&namespace)
                .by_name(&name)
                .delete_alarms(&names)
                .await
                .context("alarm delete")?;
            if json_out {
                println!("{}", json!({"deleted": alarms, "version": version}));
            } else {
                println!("deleted {} (object version {version})", alarms.join(", "));
            }
        }
    }
    Ok(())
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
                for a in &o.alarms {
                    println!("alarm {} due {}", a.name, unix_text(a.at_unix_ms));
                }
                if o.last_event_seq > 0 {
                    println!("last event #{}", o.last_event_seq);
                }
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
        ObjectCommand::Txn {
            namespace,
            name,
            if_version,
            if_absent,
            if_value,
            put,
            delete,
            add,
        } => {
            let mut txn = client.objects(&namespace).by_name(&name).txn();
            for text in &if_version {
                let (key, version) = pair("if-version", text)?;
                let version = version
                    .parse()
                    .with_context(|| format!("--if-version {text:?}: VERSION is a number"))?;
                txn = txn.if_version(key, version);
            }
            for key in if_absent {
                txn = txn.if_absent(key);
            }
            for text in &if_value {
                let (key, value) = pair("if-value", text)?;
                txn = txn.if_value(key, value);
            }
            for text in &put {
                let (key, value) = pair("put", text)?;
                txn = txn.put(key, value);
            }
            for key in delete {
                txn = txn.delete(key);
            }
            for text in &add {
                let (key, delta) = pair("add", text)?;
                let delta: i64 = delta
                    .parse()
                    .with_context(|| format!("--add {text:?}: DELTA is an integer"))?;
                txn = txn.add(key, delta);
            }
            let result = txn.commit().await.context("object txn")?;
            let results: Vec<Value> = result
                .results
                .iter()
                .map(|r| {
                    if r.deleted {
                        Value::Null
                    } else {
                        json!(String::from_utf8_lossy(&r.value))
                    }
                })
                .collect();
            if json_out {
                println!("{}", json!({"version": result.version, "results": results}));
            } else {
                println!("committed (object version {})", result.version);
            }
        }
        ObjectCommand::Alarm(command) => alarm(client, json_out, command).await?,
        ObjectCommand::Publish {
            namespace,
            name,
            message,
        } => {
            let seq = client
                .objects(&namespace)
                .by_name(&name)
                .publish(message)
                .await
                .context("object publish")?;
            if json_out {
                println!("{}", json!({"seq": seq}));
            } else {
                println!("published #{seq}");
            }
        }
        ObjectCommand::Subscribe {
            namespace,
            name,
            after,
            prefix,
            count,
        } => {
            let objects = client.objects(&namespace);
            let mut events = match name {
                Some(name) => objects
                    .by_name(&name)
                    .subscribe(after)
                    .await
                    .context("object subscribe")?
                    .boxed(),
                None if after.is_some() => {
                    bail!("--after needs an object name: namespace subscriptions are live only")
                }
                None => objects
                    .subscribe(&prefix)
                    .await
                    .context("object subscribe")?
                    .boxed(),
            };
            let mut seen = 0;
            while count.is_none_or(|count| seen < count) {
                let Some(event) = events.next().await else {
                    bail!("the subscription ended");
                };
                let event = event.context("object subscribe")?;
                if json_out {
                    println!("{}", event_json(&event));
                } else {
                    println!("{}", event_text(&event));
                }
                seen += 1;
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

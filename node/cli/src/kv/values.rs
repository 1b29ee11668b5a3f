//! KV values: `put`, `get`, `delete`, `list` and `watch`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use larder_client::Client;
use larder_client::kv::{KvNamespace, KvValue};
use serde_json::{Value, json};

// No doc comment: clap would take it for the help of `larder kv put`, which the
// variant's own comment gives.
#[derive(Args, Debug)]
pub struct PutArgs {
    /// Namespace of the key.
    namespace: String,
    /// Key to write.
    key: String,
    /// The value (default: the contents of --file, else standard input).
    value: Option<String>,
    /// Read the value from this file instead of the argument.
    #[arg(long, conflicts_with = "value")]
    file: Option<PathBuf>,
    /// Expire after this long (e.g. 60s, 5m, 1h); default: never.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    ttl: Option<Duration>,
    /// JSON metadata stored beside the value (at most 1 KiB).
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
}

pub(super) async fn put(client: &Client, json: bool, args: PutArgs) -> anyhow::Result<()> {
    let bytes = value_bytes(args.value, args.file)?;
    let kv = client.kv(&args.namespace);
    let key = args.key;
    let mut put = kv.put(key.clone(), bytes);
    if let Some(metadata) = args.metadata {
        serde_json::from_str::<Value>(&metadata).context("--metadata must be JSON")?;
        put = put.metadata(metadata);
    }
    if let Some(ttl) = args.ttl {
        put = put.ttl(ttl);
    }
    let written = put.send().await.context("put")?;
    let version = written.versions.first().cloned().unwrap_or_default();
    if json {
        println!(
            "{}",
            json!({"key": key, "version": {"physical_ms": version.physical_ms, "logical": version.logical, "origin": version.origin}, "consistency_token": hex(&written.consistency_token)})
        );
    } else {
        println!(
            "stored {key} (version {}.{}@{})",
            version.physical_ms, version.logical, version.origin
        );
    }
    Ok(())
}

/// The value to write: the argument, else the file, else standard input.
fn value_bytes(value: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Vec<u8>> {
    Ok(match (value, file) {
        (Some(value), _) => value.into_bytes(),
        (None, Some(path)) => {
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, None) => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
            buf
        }
    })
}

pub(super) async fn get(
    kv: &KvNamespace,
    json: bool,
    namespace: &str,
    key: &str,
) -> anyhow::Result<()> {
    let Some(value) = kv.get_with_metadata(key.as_bytes()).await.context("get")? else {
        bail!("not found: {key:?} in namespace {namespace:?}");
    };
    if json {
        println!("{}", value_json(key, &value));
    } else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&value.value)?;
        // A terminal gets a final newline so the prompt starts on its own line; a pipe
        // gets the value's bytes exactly.
        if value.value.last() != Some(&b'\n') && std::io::IsTerminal::is_terminal(&out) {
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

pub(super) async fn delete(kv: &KvNamespace, json: bool, key: &str) -> anyhow::Result<()> {
    kv.delete(key.as_bytes()).await.context("delete")?;
    if json {
        println!("{}", json!({"deleted": key}));
    } else {
        println!("deleted {key}");
    }
    Ok(())
}

pub(super) async fn list(
    kv: &KvNamespace,
    json: bool,
    prefix: String,
    limit: Option<usize>,
) -> anyhow::Result<()> {
    let mut pages = std::pin::pin!(kv.list(prefix.into_bytes(), 0));
    let mut printed = 0usize;
    let mut rows = Vec::new();
    'pages: while let Some(page) = pages.next().await {
        for entry in page.context("list")?.keys {
            if limit.is_some_and(|max| printed >= max) {
                break 'pages;
            }
            printed += 1;
            let key = String::from_utf8_lossy(&entry.key).to_string();
            if json {
                let metadata =
                    serde_json::from_slice::<Value>(&entry.metadata).unwrap_or(Value::Null);
                rows.push(json!({"key": key, "metadata": metadata, "expires_at_ms": (entry.expires_at_ms != 0).then_some(entry.expires_at_ms)}));
            } else {
                println!("{key}");
            }
        }
    }
    if json {
        println!("{}", Value::Array(rows));
    }
    Ok(())
}

pub(super) async fn watch(
    kv: &KvNamespace,
    json: bool,
    prefix: String,
    resume: Option<&str>,
) -> anyhow::Result<()> {
    let resume = resume.map(unhex).transpose()?.unwrap_or_default();
    let mut events = std::pin::pin!(
        kv.watch(prefix.into_bytes(), resume)
            .await
            .context("watch")?
    );
    while let Some(event) = events.next().await {
        let event = event.context("watch")?;
        let key = String::from_utf8_lossy(&event.key).to_string();
        if json {
            let mut row = serde_json::Map::new();
            row.insert("key".into(), Value::String(key));
            row.insert("deleted".into(), Value::Bool(event.deleted));
            if let Some(value) = &event.value {
                let (name, v) = bytes_json("value", &value.value);
                row.insert(name, v);
            }
            row.insert(
                "resume_token".into(),
                Value::String(hex(&event.resume_token)),
            );
            println!("{}", Value::Object(row));
        } else if event.deleted {
            println!("DELETE {key}");
        } else {
            let value = event
                .value
                .map(|v| String::from_utf8_lossy(&v.value).to_string())
                .unwrap_or_default();
            println!("PUT {key} {value}");
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> anyhow::Result<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        bail!("hex text must have an even number of digits");
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).context("not hex"))
        .collect()
}

/// A value as JSON: text when it is UTF-8, hex otherwise.
fn bytes_json(field: &str, bytes: &[u8]) -> (String, Value) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (field.to_string(), Value::String(text.to_string())),
        Err(_) => (format!("{field}_hex"), Value::String(hex(bytes))),
    }
}

fn value_json(key: &str, value: &KvValue) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("key".into(), Value::String(key.to_string()));
    let (name, v) = bytes_json("value", &value.value);
    out.insert(name, v);
    let metadata = serde_json::from_slice::<Value>(&value.metadata).unwrap_or(Value::Null);
    out.insert("metadata".into(), metadata);
    out.insert("expires_at_ms".into(), json!(value.expires_at_ms));
    if let Some(v) = &value.version {
        out.insert(
            "version".into(),
            json!({"physical_ms": v.physical_ms, "logical": v.logical, "origin": v.origin}),
        );
    }
    Value::Object(out)
}

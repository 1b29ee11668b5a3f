//! Storage calls on one object: `get`, `put`, `delete`, `list-keys`, `add`, `txn`.

use anyhow::{Context, bail};
use clap::Args;
use larder_client::Client;
use larder_client::objects::{ObjectHandle, Txn};
use serde_json::{Value, json};

// No doc comment: clap would take it for the help of `larder object txn`, which the
// variant's own comment gives.
#[derive(Args, Debug)]
pub struct TxnArgs {
    /// Namespace of the object.
    namespace: String,
    /// Name of the object.
    name: String,
    /// Precondition: the key's version is VERSION (0: absent); repeatable.
    #[arg(long = "if-version", value_name = "KEY=VERSION")]
    if_version: Vec<String>,
    /// Precondition: the key is absent; repeatable.
    #[arg(long = "if-absent", value_name = "KEY")]
    if_absent: Vec<String>,
    /// Precondition: the key holds VALUE; repeatable.
    #[arg(long = "if-value", value_name = "KEY=VALUE")]
    if_value: Vec<String>,
    /// Write VALUE at KEY; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    put: Vec<String>,
    /// Delete KEY; repeatable.
    #[arg(long, value_name = "KEY")]
    delete: Vec<String>,
    /// Add DELTA to the integer at KEY; repeatable.
    #[arg(long, value_name = "KEY=DELTA", allow_hyphen_values = true)]
    add: Vec<String>,
}

pub(super) async fn get(
    object: &ObjectHandle,
    json_out: bool,
    name: &str,
    key: &str,
) -> anyhow::Result<()> {
    let Some(value) = object.get(key.as_bytes()).await.context("object get")? else {
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
    Ok(())
}

pub(super) async fn put(
    object: &ObjectHandle,
    json_out: bool,
    key: String,
    value: String,
) -> anyhow::Result<()> {
    let version = object.put(key.clone(), value).await.context("object put")?;
    if json_out {
        println!("{}", json!({"key": key, "version": version}));
    } else {
        println!("stored {key} (object version {version})");
    }
    Ok(())
}

pub(super) async fn delete(object: &ObjectHandle, json_out: bool, key: &str) -> anyhow::Result<()> {
    let version = object
        .delete(&[key.as_bytes()])
        .await
        .context("object delete")?;
    if json_out {
        println!("{}", json!({"deleted": key, "version": version}));
    } else {
        println!("deleted {key} (object version {version})");
    }
    Ok(())
}

pub(super) async fn list_keys(
    object: &ObjectHandle,
    json_out: bool,
    prefix: &str,
    reverse: bool,
    limit: u32,
) -> anyhow::Result<()> {
    let (entries, more) = object
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
    Ok(())
}

pub(super) async fn add(
    object: &ObjectHandle,
    json_out: bool,
    key: String,
    delta: i64,
) -> anyhow::Result<()> {
    let value = object.add(key.clone(), delta).await.context("object add")?;
    if json_out {
        println!("{}", json!({"key": key, "value": value}));
    } else {
        println!("{value}");
    }
    Ok(())
}

pub(super) async fn txn(client: &Client, json_out: bool, args: TxnArgs) -> anyhow::Result<()> {
    let txn = client.objects(&args.namespace).by_name(&args.name).txn();
    let result = with_flags(txn, args)?
        .commit()
        .await
        .context("object txn")?;
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
    Ok(())
}

/// The transaction the flags describe: preconditions, then writes, in flag order.
fn with_flags(mut txn: Txn, args: TxnArgs) -> anyhow::Result<Txn> {
    for text in &args.if_version {
        let (key, version) = pair("if-version", text)?;
        let version = version
            .parse()
            .with_context(|| format!("--if-version {text:?}: VERSION is a number"))?;
        txn = txn.if_version(key, version);
    }
    for key in args.if_absent {
        txn = txn.if_absent(key);
    }
    for text in &args.if_value {
        let (key, value) = pair("if-value", text)?;
        txn = txn.if_value(key, value);
    }
    for text in &args.put {
        let (key, value) = pair("put", text)?;
        txn = txn.put(key, value);
    }
    for key in args.delete {
        txn = txn.delete(key);
    }
    for text in &args.add {
        let (key, delta) = pair("add", text)?;
        let delta: i64 = delta
            .parse()
            .with_context(|| format!("--add {text:?}: DELTA is an integer"))?;
        txn = txn.add(key, delta);
    }
    Ok(txn)
}

/// Splits `KEY=VALUE` for flag `flag`.
fn pair<'a>(flag: &str, text: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    text.split_once('=')
        .with_context(|| format!("--{flag} {text:?}: expected KEY=VALUE"))
}

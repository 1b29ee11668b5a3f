//! `larder kv namespace …`: create, list and delete namespaces, with where their data
//! may live.

use anyhow::Context;
use clap::Subcommand;
use larder_client::Client;
use larder_client::admin::Namespace;
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub enum NamespaceCommand {
    /// Create a namespace, optionally kept inside regions or a jurisdiction.
    Create {
        /// Name of the new namespace.
        name: String,
        /// Region whose nodes hold the data; repeat for several. Default: every region.
        #[arg(long = "region")]
        regions: Vec<String>,
        /// Only nodes with this jurisdiction tag hold the data.
        #[arg(long, value_name = "TAG")]
        jurisdiction: Option<String>,
    },
    /// List the namespaces and where their data may live.
    List,
    /// Delete a namespace.
    Delete {
        /// Name of the namespace to delete.
        name: String,
    },
}

pub(super) async fn run(
    client: &Client,
    json: bool,
    command: NamespaceCommand,
) -> anyhow::Result<()> {
    match command {
        NamespaceCommand::Create {
            name,
            regions,
            jurisdiction,
        } => create(client, json, &name, regions, jurisdiction).await,
        NamespaceCommand::List => list(client, json).await,
        NamespaceCommand::Delete { name } => delete(client, json, &name).await,
    }
}

async fn create(
    client: &Client,
    json: bool,
    name: &str,
    regions: Vec<String>,
    jurisdiction: Option<String>,
) -> anyhow::Result<()> {
    let ns = client
        .create_namespace(name, regions, jurisdiction)
        .await
        .context("namespace create")?;
    if json {
        println!("{}", namespace_json(&ns));
    } else {
        println!("namespace {} ({})", ns.name, placement(&ns));
    }
    Ok(())
}

async fn list(client: &Client, json: bool) -> anyhow::Result<()> {
    let namespaces = client.list_namespaces().await.context("namespace list")?;
    if json {
        println!(
            "{}",
            Value::Array(namespaces.iter().map(namespace_json).collect())
        );
    } else {
        for ns in namespaces {
            println!("{:<32} {}", ns.name, placement(&ns));
        }
    }
    Ok(())
}

async fn delete(client: &Client, json: bool, name: &str) -> anyhow::Result<()> {
    client
        .delete_namespace(name)
        .await
        .context("namespace delete")?;
    if json {
        println!("{}", json!({"deleted": name}));
    } else {
        println!("namespace {name} deleted");
    }
    Ok(())
}

/// Where the namespace's data lives, in words.
fn placement(ns: &Namespace) -> String {
    let mut parts = Vec::new();
    if !ns.regions.is_empty() {
        parts.push(format!("regions {}", ns.regions.join(",")));
    }
    if !ns.jurisdiction.is_empty() {
        parts.push(format!("jurisdiction {}", ns.jurisdiction));
    }
    if parts.is_empty() {
        "everywhere".to_string()
    } else {
        parts.join(", ")
    }
}

fn namespace_json(ns: &Namespace) -> Value {
    json!({"name": ns.name, "regions": ns.regions, "jurisdiction": (!ns.jurisdiction.is_empty()).then_some(&ns.jurisdiction), "created_at_ms": ns.created_at_ms, "generation": ns.generation})
}

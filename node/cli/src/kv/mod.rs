//! `larder kv …`: the command tree, and one function per command in the modules below.
//!
//! - `values`: put, get, delete, list and watch;
//! - `namespace`: `larder kv namespace …`.

mod namespace;
mod values;

use clap::Subcommand;
use larder_client::Client;

pub use namespace::NamespaceCommand;
pub use values::PutArgs;

#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Write a value: from the argument, --file, or standard input.
    Put(PutArgs),
    /// Read a value; exits 1 with "not found" when the key is absent.
    Get {
        /// Namespace of the key.
        namespace: String,
        /// Key to read.
        key: String,
    },
    /// Delete a key.
    Delete {
        /// Namespace of the key.
        namespace: String,
        /// Key to delete.
        key: String,
    },
    /// List keys in byte order.
    List {
        /// Namespace to list.
        namespace: String,
        /// Only keys that start with this (default: every key).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Stop after this many keys (default: all).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print changes under a prefix until interrupted.
    Watch {
        /// Namespace to watch.
        namespace: String,
        /// Only keys that start with this (default: every key).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Resume token (hex) from an earlier event: print the changes after it first.
        #[arg(long, value_name = "TOKEN")]
        resume: Option<String>,
    },
    /// Namespaces: create, list, delete.
    #[command(subcommand)]
    Namespace(NamespaceCommand),
}

pub async fn run(client: &Client, json: bool, command: KvCommand) -> anyhow::Result<()> {
    match command {
        KvCommand::Put(args) => values::put(client, json, args).await,
        KvCommand::Get { namespace, key } => {
            values::get(&client.kv(&namespace), json, &namespace, &key).await
        }
        KvCommand::Delete { namespace, key } => {
            values::delete(&client.kv(&namespace), json, &key).await
        }
        KvCommand::List {
            namespace,
            prefix,
            limit,
        } => values::list(&client.kv(&namespace), json, prefix, limit).await,
        KvCommand::Watch {
            namespace,
            prefix,
            resume,
        } => values::watch(&client.kv(&namespace), json, prefix, resume.as_deref()).await,
        KvCommand::Namespace(command) => namespace::run(client, json, command).await,
    }
}

//! `larder object …`: the command tree, and one function per command in the modules
//! below.
//!
//! - `storage`: storage calls on one object (get, put, delete, list-keys, add, txn);
//! - `placement`: where objects are (list, inspect, move; `larder node drain`);
//! - `alarms`: `larder object alarm …`;
//! - `events`: the event log (publish, subscribe).

mod alarms;
mod events;
mod placement;
mod storage;

use clap::{ArgGroup, Subcommand};
use larder_client::Client;

pub use alarms::AlarmCommand;
pub use events::SubscribeArgs;
pub use placement::drain;
pub use storage::TxnArgs;

#[derive(Subcommand, Debug)]
pub enum ObjectCommand {
    /// Objects of a namespace: id, region, owner, replicas, epoch.
    List {
        /// Namespace to list.
        namespace: String,
        /// Only objects whose id starts with this (default: all).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Only objects placed in this region (default: every region).
        #[arg(long, default_value = "")]
        region: String,
        /// Stop after this many objects (0: all of them, page by page).
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// Placement and contents summary of one object.
    Inspect {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
    },
    /// Read a key; exits 1 with "not found" when absent.
    Get {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Key to read.
        key: String,
    },
    /// Write a key; the first write to an object creates it, in this node's region.
    Put {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Key to write.
        key: String,
        /// Value to store.
        value: String,
    },
    /// Delete a key.
    Delete {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Key to delete.
        key: String,
    },
    /// Keys of one object, in byte order.
    ListKeys {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Only keys that start with this (default: every key).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Descending byte order.
        #[arg(long)]
        reverse: bool,
        /// Most keys to print (0: one page, the node's limit).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Move an object, with its state, to a node (--to-node) or to a region
    /// (--to-region); one of the two is required.
    #[command(group(ArgGroup::new("target").required(true).multiple(false)))]
    Move {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Node that becomes the object's owner.
        #[arg(long, value_name = "NODE_ID", group = "target")]
        to_node: Option<u64>,
        /// Region to move the object to; its new owner and replicas are chosen there.
        #[arg(long, value_name = "REGION", group = "target")]
        to_region: Option<String>,
    },
    /// Even out how many objects the up nodes of a region own (after nodes join): moves
    /// objects from the most-loaded owners to the least-loaded, a few at a time, each
    /// keeping every acknowledged write, until they differ by at most one.
    Rebalance {
        /// Region whose nodes to even out.
        #[arg(long)]
        region: String,
        /// Move only objects of this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Moves per request (each waits out the object's lease, four at a time).
        #[arg(long, default_value_t = 16)]
        moves_per_call: u32,
    },
    /// Add to an integer value atomically; prints the new value.
    Add {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Key of the integer (absent: 0).
        key: String,
        /// Amount to add; negative to subtract.
        #[arg(allow_hyphen_values = true)]
        delta: i64,
    },
    /// A transaction: if every precondition holds, apply all writes (puts, then
    /// deletes, then adds), else nothing (exit 1 naming the failed precondition).
    Txn(TxnArgs),
    /// Alarms of an object: set, get, list, delete.
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Append a message to an object's event log; prints its sequence number.
    Publish {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Message to append.
        message: String,
    },
    /// Print events (alarms fired, messages) of one object, or of every object of the
    /// namespace when no name is given, one per line.
    Subscribe(SubscribeArgs),
}

pub async fn run(client: &Client, json_out: bool, command: ObjectCommand) -> anyhow::Result<()> {
    let object = |namespace: &str, name: &str| client.objects(namespace).by_name(name);
    match command {
        ObjectCommand::List {
            namespace,
            prefix,
            region,
            limit,
        } => {
            let pages = client.objects(&namespace).pages(&prefix, &region);
            placement::list(pages, json_out, limit).await
        }
        ObjectCommand::Inspect { namespace, name } => {
            placement::inspect(&object(&namespace, &name), json_out).await
        }
        ObjectCommand::Get {
            namespace,
            name,
            key,
        } => storage::get(&object(&namespace, &name), json_out, &name, &key).await,
        ObjectCommand::Put {
            namespace,
            name,
            key,
            value,
        } => storage::put(&object(&namespace, &name), json_out, key, value).await,
        ObjectCommand::Delete {
            namespace,
            name,
            key,
        } => storage::delete(&object(&namespace, &name), json_out, &key).await,
        ObjectCommand::ListKeys {
            namespace,
            name,
            prefix,
            reverse,
            limit,
        } => {
            let object = object(&namespace, &name);
            storage::list_keys(&object, json_out, &prefix, reverse, limit).await
        }
        ObjectCommand::Move {
            namespace,
            name,
            to_node,
            to_region,
        } => {
            let object = object(&namespace, &name);
            placement::move_object(&object, json_out, &name, to_node, to_region).await
        }
        ObjectCommand::Rebalance {
            region,
            namespace,
            moves_per_call,
        } => {
            placement::rebalance(
                client,
                json_out,
                &region,
                namespace.as_deref(),
                moves_per_call,
            )
            .await
        }
        ObjectCommand::Add {
            namespace,
            name,
            key,
            delta,
        } => storage::add(&object(&namespace, &name), json_out, key, delta).await,
        ObjectCommand::Txn(args) => storage::txn(client, json_out, args).await,
        ObjectCommand::Alarm(command) => alarms::run(client, json_out, command).await,
        ObjectCommand::Publish {
            namespace,
            name,
            message,
        } => events::publish(&object(&namespace, &name), json_out, message).await,
        ObjectCommand::Subscribe(args) => events::subscribe(client, json_out, args).await,
    }
}

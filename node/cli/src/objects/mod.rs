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

use clap::Subcommand;
use larder_client::Client;

pub use alarms::AlarmCommand;
pub use events::SubscribeArgs;
pub use placement::drain;
pub use storage::TxnArgs;

#[derive(Subcommand, Debug)]
pub enum ObjectCommand {
    /// Objects of a namespace: id, region, owner, replicas, epoch.
    List {
        namespace: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value = "")]
        region: String,
        /// Stop after this many objects (0: all of them, page by page).
        #[arg(long, default_value_t = 0)]
        limit: usize,
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
    /// Even out how many objects the up nodes of a region own (after nodes join): moves
    /// objects from the most-loaded owners to the least-loaded, a few at a time, each
    /// keeping every acknowledged write, until they differ by at most one.
    Rebalance {
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
        namespace: String,
        name: String,
        key: String,
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
        namespace: String,
        name: String,
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

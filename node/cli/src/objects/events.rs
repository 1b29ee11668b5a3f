//! An object's event log: `publish` and `subscribe`.

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use futures::stream::BoxStream;
use larder_client::objects::{ObjectEvent, ObjectHandle, object_event};
use larder_client::{Client, ClientError};
use serde_json::{Value, json};

use super::alarms::unix_text;

// No doc comment: clap would take it for the help of `larder object subscribe`, which
// the variant's own comment gives.
#[derive(Args, Debug)]
pub struct SubscribeArgs {
    /// Namespace of the objects.
    namespace: String,
    /// Name of the object (default: every object of the namespace).
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
}

type Events = BoxStream<'static, Result<ObjectEvent, ClientError>>;

pub(super) async fn publish(
    object: &ObjectHandle,
    json_out: bool,
    message: String,
) -> anyhow::Result<()> {
    let seq = object.publish(message).await.context("object publish")?;
    if json_out {
        println!("{}", json!({"seq": seq}));
    } else {
        println!("published #{seq}");
    }
    Ok(())
}

/// Prints events until `--count` of them were printed; the stream ending first is an
/// error, since a subscription is meant to outlive the command.
pub(super) async fn subscribe(
    client: &Client,
    json_out: bool,
    args: SubscribeArgs,
) -> anyhow::Result<()> {
    let mut events = open(client, &args).await?;
    let mut seen = 0;
    while args.count.is_none_or(|count| seen < count) {
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
    Ok(())
}

/// One object's events (replayed after `--after`, then live), or the namespace's (live).
async fn open(client: &Client, args: &SubscribeArgs) -> anyhow::Result<Events> {
    let objects = client.objects(&args.namespace);
    Ok(match &args.name {
        Some(name) => objects
            .by_name(name)
            .subscribe(args.after)
            .await
            .context("object subscribe")?
            .boxed(),
        None if args.after.is_some() => {
            bail!("--after needs an object name: namespace subscriptions are live only")
        }
        None => objects
            .subscribe(&args.prefix)
            .await
            .context("object subscribe")?
            .boxed(),
    })
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

//! `larder object alarm …`: set, get, list and delete an object's alarms.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Subcommand;
use larder_client::Client;
use larder_client::objects::{Alarm, ObjectHandle};
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub enum AlarmCommand {
    /// Set (or replace) an alarm, due `--in` a duration or `--at` a time.
    Set {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Name of the alarm, unique within the object.
        alarm: String,
        /// Due after this long, e.g. 30s, 5m.
        #[arg(long = "in", value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "at", required_unless_present = "at")]
        after: Option<Duration>,
        /// Due at this time: RFC 3339 (2026-12-01T10:00:00Z) or Unix milliseconds.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Text carried by the `alarm_fired` event to the object's subscribers.
        #[arg(long, default_value = "")]
        payload: String,
    },
    /// Show one alarm; exits 1 with "not found" when it is not set.
    Get {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Name of the alarm.
        alarm: String,
    },
    /// List the alarms of an object.
    List {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
    },
    /// Delete alarms of an object.
    Delete {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Names of the alarms to delete (at least one).
        #[arg(required = true)]
        alarms: Vec<String>,
    },
}

pub(super) async fn run(
    client: &Client,
    json_out: bool,
    command: AlarmCommand,
) -> anyhow::Result<()> {
    let object = |namespace: &str, name: &str| client.objects(namespace).by_name(name);
    match command {
        AlarmCommand::Set {
            namespace,
            name,
            alarm,
            after,
            at,
            payload,
        } => {
            set(
                &object(&namespace, &name),
                json_out,
                &alarm,
                after,
                at,
                payload,
            )
            .await
        }
        AlarmCommand::Get {
            namespace,
            name,
            alarm,
        } => get(&object(&namespace, &name), json_out, &name, &alarm).await,
        AlarmCommand::List { namespace, name } => list(&object(&namespace, &name), json_out).await,
        AlarmCommand::Delete {
            namespace,
            name,
            alarms,
        } => delete(&object(&namespace, &name), json_out, alarms).await,
    }
}

async fn set(
    object: &ObjectHandle,
    json_out: bool,
    alarm: &str,
    after: Option<Duration>,
    at: Option<String>,
    payload: String,
) -> anyhow::Result<()> {
    let version = match (after, at) {
        (Some(after), _) => object.set_alarm_in(alarm, after, payload).await,
        (None, Some(at)) => object.set_alarm(alarm, parse_time(&at)?, payload).await,
        (None, None) => bail!("give --in or --at"),
    }
    .context("alarm set")?;
    if json_out {
        println!("{}", json!({"alarm": alarm, "version": version}));
    } else {
        println!("alarm {alarm} set (object version {version})");
    }
    Ok(())
}

async fn get(object: &ObjectHandle, json_out: bool, name: &str, alarm: &str) -> anyhow::Result<()> {
    let Some(found) = object.alarm(alarm).await.context("alarm get")? else {
        bail!("not found: alarm {alarm:?} of object {name:?}");
    };
    if json_out {
        println!("{}", alarm_json(&found));
    } else {
        println!("{}", alarm_line(&found));
    }
    Ok(())
}

async fn list(object: &ObjectHandle, json_out: bool) -> anyhow::Result<()> {
    let alarms = object.alarms().await.context("alarm list")?;
    if json_out {
        println!("{}", Value::Array(alarms.iter().map(alarm_json).collect()));
    } else {
        for a in alarms {
            println!("{}", alarm_line(&a));
        }
    }
    Ok(())
}

async fn delete(object: &ObjectHandle, json_out: bool, alarms: Vec<String>) -> anyhow::Result<()> {
    let names: Vec<&str> = alarms.iter().map(String::as_str).collect();
    let version = object.delete_alarms(&names).await.context("alarm delete")?;
    if json_out {
        println!("{}", json!({"deleted": alarms, "version": version}));
    } else {
        println!("deleted {} (object version {version})", alarms.join(", "));
    }
    Ok(())
}

fn parse_time(text: &str) -> anyhow::Result<SystemTime> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_millis(ms));
    }
    humantime::parse_rfc3339_weak(text)
        .with_context(|| format!("--at {text:?}: expected RFC 3339 or Unix milliseconds"))
}

/// A Unix-milliseconds time as RFC 3339.
pub(super) fn unix_text(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

pub(super) fn alarm_json(a: &Alarm) -> Value {
    json!({"name": a.name, "at_unix_ms": a.at_unix_ms, "at": unix_text(a.at_unix_ms),
           "payload": String::from_utf8_lossy(&a.payload)})
}

/// An alarm as one tab-separated line: name, due time, payload.
fn alarm_line(a: &Alarm) -> String {
    format!(
        "{}\t{}\t{}",
        a.name,
        unix_text(a.at_unix_ms),
        String::from_utf8_lossy(&a.payload)
    )
}

//! The namespace sweep: removes this node's copies of deleted namespaces' objects.
//!
//! A deleted namespace's placements leave the directory with it, and no call resolves
//! to its incarnation any more; its copies (on owners and replicas alike, and on nodes
//! that were down at the time) are removed here, in bounded steps, soon after this node
//! applies the deletion or, for a node that was down, after it starts.

use std::collections::BTreeSet;
use std::time::Duration;

use larder_directory::Namespace;
use tokio::sync::watch;

use crate::{ObjectError, ObjectHost};

/// Objects whose copies one step removes.
const OBJECTS_PER_STEP: usize = 256;
/// Pause between steps while a deleted namespace has copies left.
const STEP_PAUSE: Duration = Duration::from_millis(100);
/// Longest time between looks (copies written late by an owner that had not applied
/// the deletion yet).
const CHECK_INTERVAL: Duration = Duration::from_secs(30);

pub async fn run(host: ObjectHost, mut shutdown: watch::Receiver<bool>) {
    let directory = host.placements().directory().clone();
    let mut applied = directory.reader().subscribe();
    // Looked at whenever the set of namespaces changes, not on every applied entry
    // (placements apply thousands a second).
    let namespaces = |s: &larder_directory::DirectoryState| (s.namespaces.len(), s.last_generation);
    let mut seen = None;
    let mut more = true;
    // Deleted namespaces with copies here at the last step: logged once all are gone.
    let mut sweeping = BTreeSet::new();
    loop {
        let now = Some(directory.read_local(namespaces).await);
        if more || seen != now {
            seen = now;
            more = match sweep_step(&host).await {
                Ok(found) => {
                    for gone in sweeping.difference(&found) {
                        tracing::info!(namespace = ?gone, "a deleted namespace's copies are all removed");
                    }
                    let again = !found.is_empty();
                    sweeping = found;
                    again
                }
                Err(err) => {
                    tracing::warn!(error = %err, "namespace sweep step failed");
                    false
                }
            };
        }
        let pause = if more { STEP_PAUSE } else { CHECK_INTERVAL };
        tokio::select! {
            _ = tokio::time::sleep(pause) => more = true,
            changed = applied.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Removes the copies of up to [`OBJECTS_PER_STEP`] objects of each deleted namespace
/// stored here. Returns the deleted namespaces it found copies of (the next step looks
/// again: more may be left, or written late).
pub async fn sweep_step(host: &ObjectHost) -> Result<BTreeSet<Namespace>, ObjectError> {
    let stored = host.copies().stored_namespaces()?;
    let deleted: BTreeSet<Namespace> = host
        .placements()
        .directory()
        .read_local(|s| stored.into_iter().filter(|ns| s.is_deleted(ns)).collect())
        .await;
    for namespace in &deleted {
        let removed = host
            .copies()
            .drop_namespace(namespace, OBJECTS_PER_STEP)
            .await?;
        tracing::info!(namespace = ?namespace, objects = removed, "removed copies of a deleted namespace");
    }
    Ok(deleted)
}

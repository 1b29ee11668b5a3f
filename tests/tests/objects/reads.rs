//! Reads never create: an object nobody wrote answers as the empty object, through any
//! node, and leaves no trace in the directory, nor does a write it refuses; its first
//! accepted write places it.

use larder_client::ClientError;

use crate::events::next_event;
use crate::{STEP, cluster_with_namespace};

/// Names read but never written, per node the reads go through.
const GHOSTS_PER_NODE: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_objects_never_written_answer_empty_and_place_nothing() {
    let cluster = cluster_with_namespace(3).await;
    for node in cluster.running() {
        let rooms = node.client().objects("rooms");
        for n in 0..GHOSTS_PER_NODE {
            let ghost = rooms.by_name(&format!("ghost-{}-{n}", node.id));
            assert_eq!(ghost.get("k").await.expect("get"), None);
            let (entries, more) = ghost.list(b"", false, 0).await.expect("list");
            assert!(entries.is_empty() && !more);
            assert!(ghost.alarms().await.expect("alarms").is_empty());
            // Writes the empty object refuses leave no trace either: a precondition
            // that fails, bad input.
            let refused = ghost.txn().if_value("k", "v").put("k", "w").commit().await;
            assert!(
                matches!(refused, Err(ClientError::FailedPrecondition(_))),
                "{refused:?}"
            );
            let too_long = ghost.put(vec![b'k'; 64 * 1024], "v").await;
            assert!(
                matches!(too_long, Err(ClientError::InvalidArgument(_))),
                "{too_long:?}"
            );
            match ghost.inspect().await {
                Err(ClientError::NotFound(message)) => {
                    assert!(message.contains("nothing was ever written"), "{message}")
                }
                other => panic!("inspect of an object never written: {other:?}"),
            }
        }
    }
    let rooms = cluster.node(1).client().objects("rooms");
    let (listed, _) = rooms.list_objects("", "", "", 1000).await.expect("list");
    assert!(
        listed.is_empty(),
        "reads placed {} objects: {:?}",
        listed.len(),
        listed.iter().map(|o| &o.id).take(5).collect::<Vec<_>>()
    );

    // A subscriber of an object never written waits for it, then gets its events from
    // the first one on; the first write through another node places it.
    let mut events = Box::pin(
        cluster
            .node(2)
            .client()
            .objects("rooms")
            .by_name("chat")
            .subscribe(None)
            .await
            .expect("subscribe"),
    );
    let chat = cluster.node(3).client().objects("rooms").by_name("chat");
    let seq = tokio::time::timeout(STEP, chat.publish("hello"))
        .await
        .expect("publish in time")
        .expect("publish");
    assert_eq!(seq, 1);
    let first = next_event(&mut events, "the first message").await;
    assert_eq!(
        first.seq, 1,
        "delivered from the start of the log: {first:?}"
    );
    let (listed, _) = rooms.list_objects("", "", "", 1000).await.expect("list");
    let names: Vec<&str> = listed.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(names, vec!["chat"], "only the written object is placed");
}

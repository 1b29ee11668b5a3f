//! Alarms and subscriptions: events to object and namespace subscribers, replay, an
//! alarm due during a failover.

use std::time::Duration;

use larder_client::ClientError;

use crate::{STEP, cluster_with_namespace};

/// Waits for the next event of a subscription.
pub(crate) async fn next_event<S>(events: &mut S, what: &str) -> larder_client::objects::ObjectEvent
where
    S: futures::Stream<Item = Result<larder_client::objects::ObjectEvent, ClientError>> + Unpin,
{
    use futures::StreamExt;
    match tokio::time::timeout(STEP, events.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("waiting for {what}: {other:?}"),
    }
}

fn describe(event: &larder_client::objects::ObjectEvent) -> (u64, String) {
    use larder_client::objects::object_event::Kind;
    let what = match &event.kind {
        Some(Kind::Message(m)) => format!("message {}", String::from_utf8_lossy(m)),
        Some(Kind::AlarmFired(a)) => {
            format!("alarm {} {}", a.name, String::from_utf8_lossy(&a.payload))
        }
        Some(Kind::GapUntil(until)) => format!("gap until {until}"),
        None => "none".into(),
    };
    (event.seq, what)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_fire_and_object_and_namespace_subscribers_see_every_event() {
    let cluster = cluster_with_namespace(3).await;
    let room = cluster.node(1).client().objects("rooms").by_name("lobby");
    room.put("k", "v").await.expect("create");
    // A namespace subscriber at node 3 and an object subscriber at node 2 (relayed from
    // the owner, node 1), both from now on.
    let mut everything = Box::pin(
        cluster
            .node(3)
            .client()
            .objects("rooms")
            .subscribe("")
            .await
            .expect("namespace subscription"),
    );
    let via_two = cluster.node(2).client().objects("rooms").by_name("lobby");
    let mut lobby = Box::pin(via_two.subscribe(None).await.expect("subscribe"));
    // The namespace stream connects to every node within a refresh; wait until it
    // delivers before relying on it.
    let probe = cluster.node(1).client().objects("rooms").by_name("probe");
    let deadline = tokio::time::Instant::now() + STEP;
    'connected: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the namespace subscription never delivered"
        );
        let _ = probe.publish("probe").await;
        let wait = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(Ok(event))) =
            tokio::time::timeout_at(wait, futures::StreamExt::next(&mut everything)).await
        {
            if event.id == "probe" {
                break 'connected;
            }
        }
    }

    let first = room.publish("hello").await.expect("publish");
    room.set_alarm_in("tick", Duration::from_millis(300), "payload-1")
        .await
        .expect("alarm");
    room.set_alarm_in("never", Duration::from_secs(3600), "")
        .await
        .expect("alarm");
    assert_eq!(
        room.alarms()
            .await
            .expect("alarms")
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        vec!["never", "tick"]
    );
    let expected = vec![
        (first, "message hello".to_string()),
        (first + 1, "alarm tick payload-1".to_string()),
    ];
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(describe(&next_event(&mut lobby, "object events").await));
    }
    assert_eq!(seen, expected);
    let mut in_namespace = Vec::new();
    while in_namespace.len() < 2 {
        let event = next_event(&mut everything, "namespace events").await;
        if event.id == "lobby" {
            in_namespace.push(describe(&event));
        }
    }
    assert_eq!(in_namespace, expected);
    // The fired alarm is gone, the other stays; inspect shows both facts.
    assert!(room.alarm("tick").await.expect("alarm").is_none());
    let info = via_two.inspect().await.expect("inspect");
    assert_eq!(
        (info.alarms.len(), info.last_event_seq),
        (1, first + 1),
        "{info:?}"
    );
    // A subscriber resuming from the start gets the same events again, in order.
    let mut replay = Box::pin(
        cluster
            .node(3)
            .client()
            .objects("rooms")
            .by_name("lobby")
            .subscribe(Some(0))
            .await
            .expect("subscribe"),
    );
    for want in &expected {
        assert_eq!(&describe(&next_event(&mut replay, "replay").await), want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_due_during_a_failover_fires_and_subscriptions_follow_the_object() {
    // Owner node 1, replicas 3 and 5 (eu-west); the subscriber is at node 2 (us-east).
    let mut cluster = cluster_with_namespace(5).await;
    let room = cluster
        .node(1)
        .client()
        .objects("rooms")
        .by_name("alarm-room");
    let before = room.publish("before").await.expect("publish");
    assert_eq!(room.inspect().await.expect("inspect").owner, 1);
    let via = cluster
        .node(2)
        .client()
        .objects("rooms")
        .by_name("alarm-room");
    let mut events = Box::pin(via.subscribe(Some(0)).await.expect("subscribe"));
    assert_eq!(
        describe(&next_event(&mut events, "the first message").await),
        (before, "message before".into())
    );
    // Due while the owner is down and not yet replaced (detection takes 1.5 s here).
    room.set_alarm_in("during", Duration::from_millis(500), "d")
        .await
        .expect("alarm");
    room.set_alarm_in("after", Duration::from_millis(4000), "a")
        .await
        .expect("alarm");
    cluster.node_mut(1).kill();

    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(describe(
            &next_event(&mut events, "alarms after the failover").await,
        ));
    }
    assert_eq!(
        seen,
        vec![
            (before + 1, "alarm during d".to_string()),
            (before + 2, "alarm after a".to_string())
        ],
        "{}",
        cluster.logs()
    );
    // Published after the failover, through another node: the same stream carries on.
    let next = cluster
        .node(4)
        .client()
        .objects("rooms")
        .by_name("alarm-room")
        .publish("after failover")
        .await
        .expect("publish");
    assert_eq!(next, before + 3);
    assert_eq!(
        describe(&next_event(&mut events, "the message after the failover").await),
        (next, "message after failover".into())
    );
    assert!(via.alarms().await.expect("alarms").is_empty());
    assert_ne!(via.inspect().await.expect("inspect").owner, 1);
}

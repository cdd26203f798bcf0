//! A mandatory message that reaches no queue is told apart from one that
//! does, however many are in flight: the broker returns a message before
//! its confirm, and the AMQP client may hand it to another confirm.

use lapin::BasicProperties;
use tasker_e2e::{amqp_url, unique};
use tasker_protocol::topology;
use tasker_runtime::Error;
use tasker_runtime::broker::Broker;
use tasker_runtime::publisher::Outgoing;
use uuid::Uuid;

fn message(routing_key: &str) -> Outgoing {
    Outgoing {
        exchange: topology::STEPS_EXCHANGE.to_owned(),
        routing_key: routing_key.to_owned(),
        payload: b"{}".to_vec(),
        properties: BasicProperties::default().with_message_id(Uuid::new_v4().to_string().into()),
        mandatory: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mandatory_message_that_reaches_no_queue_and_only_those_are_unroutable() {
    let ns = unique("lanes");
    let (routed, unrouted) = (format!("{ns}/served"), format!("{ns}/nobody"));
    let broker = Broker::connect(&amqp_url(), "test-lanes").await.unwrap();
    let channel = broker.channel().await.unwrap();
    broker
        .declare_service(&channel, &ns, "served", &["served"])
        .await
        .unwrap();
    let publisher = broker.publisher().await.unwrap();

    // The misjudgement is a race (a multiple ack that covers a routed and a
    // returned message): a few rounds give it its chances.
    for _ in 0..5 {
        // 400 batches at once, each of 20 messages, one in three of them to a
        // key no queue is bound to.
        let batches = (0..400).map(|b| {
            let publisher = publisher.clone();
            let keys: Vec<String> = (0..20)
                .map(|i| {
                    if (b + i) % 3 == 0 {
                        unrouted.clone()
                    } else {
                        routed.clone()
                    }
                })
                .collect();
            async move {
                let outcomes = publisher
                    .publish_each(keys.iter().map(|k| message(k)).collect())
                    .await
                    .unwrap();
                keys.into_iter().zip(outcomes).collect::<Vec<_>>()
            }
        });
        let outcomes: Vec<_> = futures::future::join_all(batches)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(outcomes.len(), 8000);
        let wrong: Vec<_> = outcomes
            .iter()
            .filter(|(key, outcome)| match outcome {
                Ok(()) => *key == unrouted,
                Err(Error::Unroutable { .. }) => *key == routed,
                Err(_) => true,
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "{} of {} judged wrongly, e.g. {:?}",
            wrong.len(),
            outcomes.len(),
            &wrong[..wrong.len().min(3)]
        );
    }

    // One at a time too, beside the batches' lanes.
    assert!(matches!(
        publisher.publish(message(&unrouted)).await,
        Err(Error::Unroutable { .. })
    ));
    publisher.publish(message(&routed)).await.unwrap();

    channel
        .queue_delete(
            topology::service_queue(&ns, "served").as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    broker.close().await;
}

//! Acks sent many to a frame settle exactly the deliveries they are given,
//! on a real quorum queue: a delivery still in hand is never covered by a
//! `multiple` ack of the ones after it, and comes back when the channel
//! closes.

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicGetOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use tasker_e2e::{amqp_url, delete_namespaces, eventually, unique};
use tasker_runtime::acks::Acks;
use tasker_runtime::broker::Broker;
use tasker_runtime::publisher::Outgoing;

const MESSAGES: u32 = 8;

async fn ready_in(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the queue exists")
        .message_count()
}

#[tokio::test]
async fn a_delivery_in_hand_is_never_acked_with_the_ones_after_it() {
    let namespace = unique("acks");
    let queue = tasker_e2e::step_queue(&namespace);
    let broker = Broker::connect(&amqp_url(), "test-acks").await.unwrap();
    let setup = broker.channel().await.unwrap();
    broker.declare_common().await.unwrap();
    broker.declare_namespace(&namespace).await.unwrap();
    broker
        .declare_service(&setup, &namespace, tasker_e2e::TEST_SERVICE, &["ok"])
        .await
        .unwrap();
    let publisher = broker.publisher().await.unwrap();
    for n in 1..=MESSAGES {
        publisher
            .publish(Outgoing {
                exchange: String::new(),
                routing_key: queue.clone(),
                payload: n.to_string().into_bytes(),
                properties: BasicProperties::default().with_delivery_mode(2),
                mandatory: true,
            })
            .await
            .unwrap();
    }

    let channel = broker.channel().await.unwrap();
    channel
        .basic_qos(MESSAGES as u16, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "test-acks".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut deliveries = std::collections::HashMap::new();
    for _ in 0..MESSAGES {
        let delivery = consumer.next().await.expect("a delivery").unwrap();
        let n: u32 = String::from_utf8(delivery.data.clone()).unwrap().parse().unwrap();
        deliveries.insert(n, delivery);
    }
    assert_eq!(ready_in(&setup, &queue).await, 0, "all {MESSAGES} are in hand");

    let acks = Acks::start(channel.clone());
    // 1 to 3 are done together, and go in one `multiple` frame; 4 and 7
    // are still in hand; 5, 6 and 8 are done past the gap at 4.
    for n in [3, 1, 2, 6, 5, 8] {
        acks.ack(&deliveries[&n]);
    }
    acks.flush().await;
    // 4 is done: the acked run now reaches 6, and 7 is still in hand.
    acks.ack(&deliveries[&4]);
    acks.flush().await;

    // Closing the channel hands back what it still holds: 7 alone.
    channel.close(200, "test over".into()).await.unwrap();
    eventually("the unacked delivery's return to the queue", || async {
        ready_in(&setup, &queue).await > 0
    })
    .await;
    assert_eq!(
        ready_in(&setup, &queue).await,
        1,
        "only the delivery never acked comes back"
    );
    let back = setup
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the returned delivery");
    assert_eq!(back.delivery.data, b"7");
    assert!(back.delivery.redelivered);

    broker.close().await;
    delete_namespaces(&[&namespace], &[tasker_e2e::TEST_SERVICE]).await;
}

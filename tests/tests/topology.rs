//! Tasker's queues carry the broker's delivery limit, and a queue an older
//! Tasker declared without it still serves.

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use tasker_e2e::{amqp_url, unique};
use tasker_protocol::topology;
use tasker_runtime::broker::Broker;

fn arguments(limit: Option<u32>) -> FieldTable {
    let mut table = FieldTable::default();
    table.insert(
        topology::QUEUE_TYPE_ARGUMENT.into(),
        AMQPValue::LongString("quorum".into()),
    );
    if let Some(limit) = limit {
        table.insert(
            topology::DELIVERY_LIMIT_ARGUMENT.into(),
            AMQPValue::LongUInt(limit),
        );
    }
    table
}

/// Whether declaring `queue` with `args` is accepted, on a channel of its
/// own: RabbitMQ refuses arguments other than the queue's.
async fn accepts(broker: &Broker, queue: &str, args: FieldTable) -> bool {
    let channel = broker.channel().await.unwrap();
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), args)
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_declared_with_the_delivery_limit_and_older_ones_are_used_as_they_are() {
    let broker = Broker::connect(&amqp_url(), "test-topology").await.unwrap();
    let channel = broker.channel().await.unwrap();

    let ns = unique("limit");
    broker.declare_namespace(&ns).await.unwrap();
    let requests = topology::request_queue(&ns);
    assert!(accepts(&broker, &requests, arguments(Some(topology::DELIVERY_LIMIT))).await);
    assert!(
        !accepts(&broker, &requests, arguments(None)).await,
        "declared without the limit"
    );

    // A namespace whose queues an older Tasker declared, without the limit.
    let old = unique("older");
    for queue in [topology::request_queue(&old), topology::result_queue(&old)] {
        assert!(accepts(&broker, &queue, arguments(None)).await);
    }
    broker.declare_namespace(&old).await.unwrap();
    broker
        .declare_service(&channel, &old, "main", &["work"])
        .await
        .unwrap();
    // The channel it was given still works.
    broker
        .declare_service(&channel, &ns, "main", &["work"])
        .await
        .unwrap();

    for namespace in [&ns, &old] {
        broker
            .delete_namespace(&channel, namespace, &["main"])
            .await
            .unwrap();
    }
    let _ = channel
        .queue_delete(requests.as_str().into(), QueueDeleteOptions::default())
        .await;
    broker.close().await;
}

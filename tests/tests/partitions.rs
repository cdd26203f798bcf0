//! A service's steps split over several queues (`WorkerConfig::partitions`):
//! the coordinator publishes as ever, RabbitMQ's consistent-hash exchange
//! spreads the steps over the service's queues by task id, its workers
//! consume them all, a queue the service had before is drained, and a
//! worker that would bind the single queue again is refused.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use serde_json::json;
use tasker_e2e::{Queues, Recorder, Stack, amqp_url, registration_template, run_many, unique, worker_config};
use tasker_protocol::TaskStatus;
use tasker_protocol::topology::{self, message_type};
use tasker_runtime::Error;
use tasker_runtime::broker::{Broker, properties};
use tasker_worker::Worker;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SERVICE: &str = "split";
const CALLABLE: &str = "work";

/// Publishes a step-ready message of `callable` for a new task, as the
/// coordinator does: to the steps exchange, with the task id header.
async fn publish_step(broker: &Broker, namespace: &str, callable: &str) {
    let channel = broker.channel().await.unwrap();
    channel
        .basic_publish(
            topology::STEPS_EXCHANGE.into(),
            topology::step_routing_key(namespace, callable).as_str().into(),
            BasicPublishOptions::default(),
            b"{}",
            properties(message_type::STEP_READY, Some(Uuid::new_v4())),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let _ = channel.close(200, "published".into()).await;
}

/// Deletes the queues and the exchange a test split `namespace`'s service
/// over.
async fn delete_split(namespace: &str, partitions: u32) {
    let broker = Broker::connect(&amqp_url(), "test-cleanup").await.unwrap();
    let channel = broker.channel().await.unwrap();
    let queues = (0..partitions)
        .map(|i| topology::partition_queue(namespace, SERVICE, i))
        .chain([topology::service_queue(namespace, SERVICE)]);
    for queue in queues {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = channel
        .exchange_delete(
            topology::service_exchange(namespace, SERVICE).as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await;
    broker.close().await;
    tasker_e2e::delete_namespaces(&[namespace], &[]).await;
}

#[tokio::test]
async fn steps_spread_over_the_services_queues_by_task_id() {
    let ns = unique("partitions_spread");
    let broker = Broker::connect(&amqp_url(), "test-partitions").await.unwrap();
    let channel = broker.channel().await.unwrap();
    let queues = broker
        .declare_partitions(&channel, &ns, SERVICE, &[CALLABLE], 4)
        .await
        .unwrap();
    let expected: Vec<String> = (0..4)
        .map(|i| topology::partition_queue(&ns, SERVICE, i))
        .collect();
    assert_eq!(queues, expected);

    for _ in 0..40 {
        publish_step(&broker, &ns, CALLABLE).await;
    }
    let depths = Queues::connect().await.unwrap();
    let mut held = Vec::new();
    for queue in &queues {
        held.push(depths.ready(queue).await);
    }
    depths.close().await;
    assert_eq!(
        held.iter().sum::<u32>(),
        40,
        "every step is in one queue: {held:?}"
    );
    assert!(
        held.iter().filter(|&&n| n > 0).count() >= 2,
        "the tasks spread over the queues: {held:?}"
    );
    broker.close().await;
    delete_split(&ns, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_consumes_every_queue_of_its_service_and_the_diamond_completes() {
    let ns = unique("partitions_diamond");
    let recorder = Recorder::default();
    let mut config = worker_config(8);
    config.service = SERVICE.to_owned();
    config.partitions = 4;
    let worker =
        tasker_e2e::with_registration_handlers(Worker::new(config).namespace(&ns), &recorder, Duration::ZERO);
    let stack = Stack::start(vec![registration_template(&ns)], 1, vec![worker])
        .await
        .unwrap();
    let context =
        |i| json!({ "user_info": { "email": format!("user{i}@example.com"), "name": "Kim", "plan": "pro" } });
    let reports = run_many(
        &stack.client,
        &ns,
        "user_registration",
        20,
        context,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(
        reports.iter().all(|r| r.status == TaskStatus::Complete),
        "{reports:#?}"
    );
    assert_eq!(recorder.runs().len(), 20 * 5, "each step ran once");

    let depths = Queues::connect().await.unwrap();
    for i in 0..4 {
        let queue = topology::partition_queue(&ns, SERVICE, i);
        assert_eq!(depths.consumers(&queue).await, 1, "{queue} is consumed");
    }
    depths.close().await;
    stack.stop().await;
    delete_split(&ns, 4).await;
}

#[tokio::test]
async fn one_queue_is_refused_once_the_service_is_split() {
    let ns = unique("partitions_refused");
    let broker = Broker::connect(&amqp_url(), "test-partitions").await.unwrap();
    let channel = broker.channel().await.unwrap();
    broker
        .declare_partitions(&channel, &ns, SERVICE, &[CALLABLE], 2)
        .await
        .unwrap();
    let refused = broker
        .declare_partitions(&channel, &ns, SERVICE, &[CALLABLE], 1)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Config(m) if m.contains("TASKER_PARTITIONS") && m.contains("split over several queues")),
        "{refused}"
    );
    broker.close().await;

    // A worker started so stops at once, rather than retrying.
    let mut config = worker_config(1);
    config.service = SERVICE.to_owned();
    let worker = Worker::new(config)
        .namespace(&ns)
        .handler(CALLABLE, Recorder::default().ok(Duration::ZERO));
    let outcome = tokio::time::timeout(Duration::from_secs(20), worker.run(CancellationToken::new()))
        .await
        .expect("the worker stops");
    assert!(
        matches!(&outcome, Err(Error::Config(m)) if m.contains("TASKER_PARTITIONS")),
        "{outcome:?}"
    );
    delete_split(&ns, 2).await;
}

#[tokio::test]
async fn a_service_split_later_drains_its_former_queue_which_gets_no_new_steps() {
    let ns = unique("partitions_drain");
    let broker = Broker::connect(&amqp_url(), "test-partitions").await.unwrap();
    let channel = broker.channel().await.unwrap();
    let former = broker
        .declare_service(&channel, &ns, SERVICE, &[CALLABLE])
        .await
        .unwrap();
    publish_step(&broker, &ns, CALLABLE).await;

    let queues = broker
        .declare_partitions(&channel, &ns, SERVICE, &[CALLABLE], 2)
        .await
        .unwrap();
    assert_eq!(
        queues,
        [
            topology::partition_queue(&ns, SERVICE, 0),
            topology::partition_queue(&ns, SERVICE, 1),
            former.clone()
        ],
        "the former queue is consumed last"
    );
    for _ in 0..5 {
        publish_step(&broker, &ns, CALLABLE).await;
    }
    let depths = Queues::connect().await.unwrap();
    assert_eq!(depths.ready(&former).await, 1, "only the step from before");
    let split = depths.ready(&queues[0]).await + depths.ready(&queues[1]).await;
    assert_eq!(split, 5, "the new steps");
    depths.close().await;
    broker.close().await;
    delete_split(&ns, 2).await;
}

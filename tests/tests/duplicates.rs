//! A step-ready message that comes again after its step finished (a
//! coordinator that republished after a crash, an ack that was lost) is
//! answered from the worker's memory: the result is sent again, and the
//! handler does not run twice.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tasker_e2e::{Recorder, Stack, amqp_url, unique, worker_config};
use tasker_protocol::topology::{self, message_type};
use tasker_protocol::{StepResult, TaskStatus};
use tasker_runtime::broker::{self, Broker};
use tasker_runtime::publisher::Outgoing;
use tasker_worker::Worker;

async fn next(c: &mut lapin::Consumer) -> lapin::message::Delivery {
    tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// An exclusive queue bound to `exchange` with `key`, to watch its traffic.
async fn tap(broker: &Broker, exchange: &str, key: &str) -> lapin::Consumer {
    let channel = broker.channel().await.unwrap();
    broker
        .private_queue(&channel, Some((exchange, key)), true)
        .await
        .unwrap()
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_comes_back_is_answered_from_memory_not_run_again() {
    let ns = unique("remember");
    let flow = tasker_e2e::one_step_template(&ns, "one");
    let recorder = Recorder::default();
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("ok", recorder.ok(Duration::ZERO));
    let stack = Stack::start(vec![flow], 1, vec![worker]).await.unwrap();
    let broker = Broker::connect(&amqp_url(), "test-tap").await.unwrap();
    let step_key = topology::step_routing_key(&ns, "ok");
    let mut steps = tap(&broker, topology::STEPS_EXCHANGE, &step_key).await;
    let mut results = tap(
        &broker,
        topology::EVENTS_EXCHANGE,
        &topology::step_result_routing_key(&ns),
    )
    .await;

    let report = stack.run(&ns, "one", json!({})).await.unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    let ready = next(&mut steps).await;
    let first: StepResult = serde_json::from_slice(&next(&mut results).await.data).unwrap();

    // The same step-ready message, published again.
    let publisher = broker.publisher().await.unwrap();
    publisher
        .publish(Outgoing {
            exchange: topology::STEPS_EXCHANGE.to_owned(),
            routing_key: step_key.clone(),
            payload: ready.data.clone(),
            properties: broker::properties(message_type::STEP_READY, Some(report.task_id)),
            mandatory: true,
        })
        .await
        .unwrap();
    let again: StepResult = serde_json::from_slice(&next(&mut results).await.data).unwrap();
    assert_eq!((again.task_id, again.attempt), (first.task_id, first.attempt));
    assert_eq!(
        again.started_at, first.started_at,
        "the remembered result, not a new run"
    );
    assert_eq!(recorder.runs_of(report.task_id, "only").len(), 1);
    broker.close().await;
    stack.stop().await;
}

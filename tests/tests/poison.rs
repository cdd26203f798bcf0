//! Messages that cannot be used go to the dead-letter queue with their
//! reason, on every queue, and the consumers carry on.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::json;
use tasker_e2e::{Queues, Recorder, Stack, amqp_url, eventually, unique, worker_config};
use tasker_protocol::message::RejectCode;
use tasker_protocol::topology::{self, headers, message_type};
use tasker_protocol::{TaskRequest, TaskStatus};
use tasker_runtime::broker::{self, Broker};
use tasker_runtime::publisher::Outgoing;
use tasker_worker::{Reply, Worker};

/// A private copy of everything dead-lettered from now on: the dead-letter
/// exchange is a fanout, so a test can bind its own queue to it.
struct DeadLetters {
    _broker: Broker,
    consumer: lapin::Consumer,
}

impl DeadLetters {
    async fn watch() -> Self {
        let broker = Broker::connect(&amqp_url(), "test-dead-letters").await.unwrap();
        let channel = broker.channel().await.unwrap();
        broker.declare_common().await.unwrap();
        let (_, consumer) = broker
            .private_queue(&channel, Some((topology::DEAD_LETTER_EXCHANGE, "")), true)
            .await
            .unwrap();
        Self {
            _broker: broker,
            consumer,
        }
    }

    /// The reason of the next dead letter taken from `queue`.
    async fn next_from(&mut self, queue: &str) -> (String, Vec<u8>) {
        let wait = async {
            loop {
                let delivery = self.consumer.next().await.unwrap().unwrap();
                let h = delivery.properties.headers().clone().unwrap_or_default();
                let text = |k: &str| match h.inner().get(k) {
                    Some(AMQPValue::LongString(s)) => s.to_string(),
                    _ => String::new(),
                };
                if text(headers::DEAD_LETTER_QUEUE) == queue {
                    return (text(headers::DEAD_LETTER_REASON), delivery.data);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .expect("a dead letter within 20 s")
    }
}

async fn publish_raw(
    publisher: &tasker_runtime::publisher::Publisher,
    exchange: &str,
    routing_key: &str,
    kind: &str,
    payload: Vec<u8>,
) {
    publisher
        .publish(Outgoing {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            payload,
            properties: broker::properties(kind, None),
            mandatory: true,
        })
        .await
        .unwrap();
}

fn bad_payloads() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("not_json", b"\x00\x01 definitely not json".to_vec()),
        (
            "wrong_protocol_version",
            br#"{"protocol_version": 2, "task_id": "x"}"#.to_vec(),
        ),
        ("invalid_message", br#"{"protocol_version": 1}"#.to_vec()),
        (
            "too_large",
            format!(
                r#"{{"protocol_version": 1, "pad": "{}"}}"#,
                "x".repeat(1024 * 1024 + 10)
            )
            .into_bytes(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_the_step_and_result_queues_is_dead_lettered_and_work_goes_on() {
    let ns = unique("poison");
    let flow = tasker_e2e::one_step_template(&ns, "one");
    let recorder = Recorder::default();
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("ok", recorder.ok(Duration::ZERO));
    let stack = Stack::start(vec![flow], 1, vec![worker]).await.unwrap();
    let mut dead = DeadLetters::watch().await;
    let publisher = &stack.client.publisher().await;

    for (code, payload) in bad_payloads() {
        // To a worker, on the namespace's step queue.
        publish_raw(
            publisher,
            topology::STEPS_EXCHANGE,
            &topology::step_routing_key(&ns, "ok"),
            message_type::STEP_READY,
            payload.clone(),
        )
        .await;
        let (reason, data) = dead.next_from(&tasker_e2e::step_queue(&ns)).await;
        assert!(reason.starts_with(code), "step queue, {code}: {reason}");
        assert_eq!(data, payload, "the dead letter keeps the original body");
        // To a coordinator, on the namespace's result queue.
        publish_raw(
            publisher,
            topology::EVENTS_EXCHANGE,
            &topology::step_result_routing_key(&ns),
            message_type::STEP_RESULT,
            payload,
        )
        .await;
        let (reason, _) = dead.next_from(&topology::result_queue(&ns)).await;
        assert!(reason.starts_with(code), "result queue, {code}: {reason}");
    }
    // A result for a step the template does not have.
    let bogus = json!({"protocol_version": 1, "task_id": uuid::Uuid::new_v4(), "namespace": ns, "task_name": "one",
        "task_version": "1.0.0", "step": "nope", "attempt": 1, "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:00Z", "status": "completed", "result": {}});
    publish_raw(
        publisher,
        topology::EVENTS_EXCHANGE,
        &topology::step_result_routing_key(&ns),
        message_type::STEP_RESULT,
        serde_json::to_vec(&bogus).unwrap(),
    )
    .await;
    let (reason, _) = dead.next_from(&topology::result_queue(&ns)).await;
    assert!(reason.contains("has no step \"nope\""), "{reason}");

    // Both consumers carry on.
    let report = stack.run(&ns, "one", json!({})).await.unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_is_rejected_and_dead_lettered() {
    let ns = unique("big");
    let flow = tasker_e2e::one_step_template(&ns, "one");
    let stack = Stack::start(vec![flow], 1, vec![]).await.unwrap();
    let mut dead = DeadLetters::watch().await;
    let request = TaskRequest::new(&ns, "one", json!({ "blob": "x".repeat(1024 * 1024) }));
    let reply = stack
        .client
        .submit(request)
        .await
        .unwrap()
        .wait(Duration::from_secs(20))
        .await
        .unwrap();
    let Reply::Rejected(rejected) = reply else {
        panic!("an oversized request must be rejected")
    };
    assert_eq!(rejected.code, RejectCode::Undecodable);
    assert!(rejected.reason.contains("over the limit"), "{}", rejected.reason);
    let (reason, _) = dead.next_from(&topology::request_queue(&ns)).await;
    assert!(
        reason.starts_with("undecodable") && reason.contains("too_large"),
        "{reason}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_redelivered_too_often_is_dead_lettered_instead_of_run() {
    let ns = unique("crashloop");
    let flow = tasker_e2e::one_step_template(&ns, "one");
    let stack = Stack::start(vec![flow], 1, vec![]).await.unwrap();
    let mut dead = DeadLetters::watch().await;
    let submitted = stack
        .client
        .submit(TaskRequest::new(&ns, "one", json!({})))
        .await
        .unwrap();

    // A worker that crashes on this step, six times over: each crash hands
    // the message back, and the quorum queue counts the deliveries.
    let crashing = Broker::connect(&amqp_url(), "crashing-worker").await.unwrap();
    let channel = crashing.channel().await.unwrap();
    // Its service's queue, bound to the step's callable, as a worker makes it.
    crashing
        .declare_service(&channel, &ns, tasker_e2e::TEST_SERVICE, &["ok"])
        .await
        .unwrap();
    channel.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = channel
        .basic_consume(
            tasker_e2e::step_queue(&ns).into(),
            "crash".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..6 {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        d.nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    crashing.close().await;

    let recorder = Recorder::default();
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("ok", recorder.ok(Duration::ZERO));
    let token = tokio_util::sync::CancellationToken::new();
    let run = token.clone();
    let handle = tokio::spawn(async move { worker.run(run).await.unwrap() });
    let (reason, _) = dead.next_from(&tasker_e2e::step_queue(&ns)).await;
    assert!(
        reason.contains("redelivered") && reason.contains("over the limit of 5"),
        "{reason}"
    );
    assert!(
        recorder.runs_of(submitted.task_id, "only").is_empty(),
        "the handler never ran"
    );
    token.cancel();
    handle.await.unwrap();
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_results_for_old_attempts_and_unknown_tasks_change_nothing() {
    let ns = unique("late");
    let flow = tasker_e2e::one_step_template(&ns, "one");
    let recorder = Recorder::default();
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("ok", recorder.ok(Duration::ZERO));
    let mut stack = Stack::start(vec![flow], 1, vec![worker]).await.unwrap();
    let report = stack.run(&ns, "one", json!({})).await.unwrap();
    let publisher = &stack.client.publisher().await;
    let result = |task_id: uuid::Uuid, attempt: u32| {
        serde_json::to_vec(
            &json!({"protocol_version": 1, "task_id": task_id, "namespace": ns, "task_name": "one",
            "task_version": "1.0.0", "step": "only", "attempt": attempt, "started_at": "2026-01-01T00:00:00Z",
            "finished_at": "2026-01-01T00:00:01Z", "status": "failed",
            "error": {"retryable": false, "code": "LATE", "message": "too late"}}),
        )
        .unwrap()
    };
    let key = topology::step_result_routing_key(&ns);
    // A failure for an attempt that never was current, and one for a task
    // that does not exist.
    publish_raw(
        publisher,
        topology::EVENTS_EXCHANGE,
        &key,
        message_type::STEP_RESULT,
        result(report.task_id, 7),
    )
    .await;
    publish_raw(
        publisher,
        topology::EVENTS_EXCHANGE,
        &key,
        message_type::STEP_RESULT,
        result(uuid::Uuid::new_v4(), 1),
    )
    .await;
    // The coordinator takes both, and keeps serving.
    let queues = Queues::connect().await.unwrap();
    let results = topology::result_queue(&ns);
    eventually("the coordinator taking the late results", || async {
        queues.ready(&results).await == 0
    })
    .await;
    let later = stack.run(&ns, "one", json!({})).await.unwrap();
    assert_eq!(later.status, TaskStatus::Complete);
    // Stopping waits for the results in hand, and one not handled in time
    // would go back to the queue: with none back, both late results were
    // handled before the task is read.
    stack.stop_coordinators().await;
    assert_eq!(
        queues.ready_once_unconsumed(&results).await,
        0,
        "the coordinator handled every result before it stopped"
    );
    queues.close().await;
    // The finished task is as it was.
    let store = tasker_coordinator::Store::connect(&tasker_e2e::redis_url(), Duration::from_secs(60))
        .await
        .unwrap();
    let snapshot = store.task(report.task_id).await.unwrap().unwrap();
    assert_eq!(snapshot.status, TaskStatus::Complete);
    assert_eq!(snapshot.steps[0].state, tasker_protocol::StepState::Completed);
    assert!(
        snapshot.steps[0].error.is_none(),
        "the late failure was not recorded"
    );
    stack.stop().await;
}

//! A step whose worker takes it and then neither finishes nor lets go is
//! detected when its lease runs out, and retried as a retryable `timeout`.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde_json::json;
use tasker_e2e::{Recorder, Stack, amqp_url, finished, template, unique, worker_config};
use tasker_protocol::{StepState, TaskRequest, TaskStatus};
use tasker_runtime::broker::Broker;
use tasker_worker::Worker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_held_by_a_wedged_worker_times_out_and_runs_again() {
    let ns = unique("stuck");
    let flow = template(&format!(
        "name: held\nnamespace_name: {ns}\nversion: 1.0.0\nsteps:\n  - name: work\n    handler: {{ callable: work }}\n    timeout_seconds: 0.3\n    retry: {{ max_attempts: 2, backoff: none }}\n"
    ));
    let stack = Stack::start(vec![flow], 1, vec![]).await.unwrap();

    // A "worker" that takes one message and then hangs: it never acks and
    // never closes its channel, so the broker never redelivers.
    let wedged = Broker::connect(&amqp_url(), "wedged-worker").await.unwrap();
    let channel = wedged.channel().await.unwrap();
    // Its service's queue, bound to the step's callable, as a worker makes it.
    wedged
        .declare_service(&channel, &ns, tasker_e2e::TEST_SERVICE, &["work"])
        .await
        .unwrap();
    channel.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = channel
        .basic_consume(
            tasker_e2e::step_queue(&ns).into(),
            "wedged".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let submitted = stack
        .client
        .submit(TaskRequest::new(&ns, "held", json!({})))
        .await
        .unwrap();
    let held = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let ready: tasker_protocol::StepReady = serde_json::from_slice(&held.data).unwrap();
    assert_eq!(ready.attempt, 1);

    // A healthy worker joins; the wedged one still holds attempt 1.
    let recorder = Recorder::default();
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("work", recorder.ok(Duration::ZERO));
    let token = tokio_util::sync::CancellationToken::new();
    let run = token.clone();
    let handle = tokio::spawn(async move { worker.run(run).await.unwrap() });

    let report = finished(submitted.wait(Duration::from_secs(20)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    let step = &report.steps[0];
    assert_eq!((step.state, step.attempts), (StepState::Completed, 2));
    let error = step.error.as_ref().unwrap();
    assert_eq!(error.code, "timeout");
    assert!(error.message.contains("lease"), "{}", error.message);
    let runs = recorder.runs_of(report.task_id, "work");
    assert_eq!(runs.iter().map(|r| r.attempt).collect::<Vec<_>>(), [2]);

    token.cancel();
    handle.await.unwrap();
    wedged.close().await;
    stack.stop().await;
}

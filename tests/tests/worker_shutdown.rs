//! A worker that is told to stop finishes what it has in hand within its
//! grace period, and hands back what it cannot finish.

use std::time::Duration;

use serde_json::json;
use tasker_e2e::{Recorder, Stack, finished, template, unique, worker_config};
use tasker_protocol::{TaskRequest, TaskStatus};
use tasker_worker::Worker;
use tokio_util::sync::CancellationToken;

fn one_step(ns: &str) -> tasker_protocol::TaskTemplate {
    template(&format!(
        "name: slow\nnamespace_name: {ns}\nversion: 1.0.0\nsteps:\n  - name: work\n    handler: {{ callable: slow }}\n"
    ))
}

/// Starts a worker outside the stack, so the test controls its shutdown.
fn spawn_worker(worker: Worker) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let token = CancellationToken::new();
    let run = token.clone();
    (token, tokio::spawn(async move { worker.run(run).await.unwrap() }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_steps_finish_within_the_grace_period() {
    let ns = unique("drain");
    let recorder = Recorder::default();
    let stack = Stack::start(vec![one_step(&ns)], 1, vec![]).await.unwrap();
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("slow", recorder.ok(Duration::from_millis(600)));
    let (stop, handle) = spawn_worker(worker);

    let submitted = stack
        .client
        .submit(TaskRequest::new(&ns, "slow", json!({})))
        .await
        .unwrap();
    // Stop while the handler runs; its grace (5 s) is long enough.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    handle.await.unwrap();
    let report = finished(submitted.wait(Duration::from_secs(10)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    assert_eq!(recorder.runs_of(report.task_id, "work").len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_unfinished_at_the_deadline_go_back_to_the_queue() {
    let ns = unique("handback");
    let recorder = Recorder::default();
    let stack = Stack::start(vec![one_step(&ns)], 1, vec![]).await.unwrap();
    let mut config = worker_config(4);
    config.shutdown_grace = Duration::from_millis(200);
    let impatient = Worker::new(config)
        .namespace(&ns)
        .handler("slow", recorder.ok(Duration::from_secs(3)));
    let (stop, handle) = spawn_worker(impatient);

    let submitted = stack
        .client
        .submit(TaskRequest::new(&ns, "slow", json!({})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    handle.await.unwrap();
    assert!(
        recorder.runs_of(submitted.task_id, "work").is_empty(),
        "the first worker finished nothing"
    );

    // A second worker gets the same step back and completes it.
    let patient = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("slow", recorder.ok(Duration::from_millis(10)));
    let (stop, handle) = spawn_worker(patient);
    let report = finished(submitted.wait(Duration::from_secs(20)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    assert_eq!(
        report.steps[0].attempts, 1,
        "a handed-back step is the same attempt, redelivered"
    );
    stop.cancel();
    handle.await.unwrap();
    stack.stop().await;
}

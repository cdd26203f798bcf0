//! A worker that is told to stop finishes what it has in hand within its
//! grace period, and hands back what it cannot finish.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tasker_e2e::{Recorder, Stack, eventually, finished, template, unique, worker_config};
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
    eventually("the worker starting the step", || async {
        !recorder.starts_of(submitted.task_id, "work").is_empty()
    })
    .await;
    let stopped_at = Instant::now();
    stop.cancel();
    handle.await.unwrap();
    // The worker returned only once the step it had in hand was done.
    let runs = recorder.runs_of(submitted.task_id, "work");
    assert_eq!(runs.len(), 1, "the worker returned before its step finished");
    assert!(
        runs[0].finished > stopped_at,
        "the step was still running when the worker was told to stop"
    );
    // No other worker runs: the result that completes the task is the one
    // the stopping worker sent before it closed its connection.
    let report = finished(submitted.wait(Duration::from_secs(10)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    assert_eq!(recorder.runs_of(report.task_id, "work").len(), 1);
    assert_eq!(recorder.starts_of(report.task_id, "work").len(), 1);
    stack.stop().await;
}

/// A handler that sleeps `delay`, then returns `{"worker": name}`, so that
/// the task's report tells which worker's result it holds.
fn signed(recorder: &Recorder, delay: Duration, name: &'static str) -> impl tasker_worker::StepHandler {
    recorder.handler(delay, move |_| Ok(json!({ "worker": name })))
}

/// The result of the report's only step.
fn result(report: &tasker_protocol::TaskFinished) -> Value {
    serde_json::from_str(report.steps[0].result.as_ref().expect("a result").get()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_unfinished_at_the_deadline_go_back_to_the_queue() {
    let ns = unique("handback");
    let stack = Stack::start(vec![one_step(&ns)], 1, vec![]).await.unwrap();
    let mut config = worker_config(4);
    config.shutdown_grace = Duration::from_millis(200);
    let first = Recorder::default();
    let impatient = Worker::new(config)
        .namespace(&ns)
        .handler("slow", signed(&first, Duration::from_secs(3), "impatient"));
    let (stop, handle) = spawn_worker(impatient);

    let submitted = stack
        .client
        .submit(TaskRequest::new(&ns, "slow", json!({})))
        .await
        .unwrap();
    // Stop only once the first worker has the step in hand: a worker that
    // never got it would hand nothing back.
    eventually("the first worker starting the step", || async {
        !first.starts_of(submitted.task_id, "work").is_empty()
    })
    .await;
    stop.cancel();
    handle.await.unwrap();
    let starts = first.starts_of(submitted.task_id, "work");
    assert_eq!(
        starts.iter().map(|s| s.attempt).collect::<Vec<_>>(),
        [1],
        "the first worker started the step once"
    );
    assert!(
        first.runs_of(submitted.task_id, "work").is_empty(),
        "the first worker finished nothing"
    );

    // A second worker gets the same step back and completes it.
    let second = Recorder::default();
    let patient = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("slow", signed(&second, Duration::from_millis(10), "patient"));
    let (stop, handle) = spawn_worker(patient);
    let report = finished(submitted.wait(Duration::from_secs(20)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    assert_eq!(
        report.steps[0].attempts, 1,
        "a handed-back step is the same attempt, redelivered"
    );
    let runs = second.runs_of(report.task_id, "work");
    assert_eq!(
        runs.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        [1],
        "the second worker ran the handed-back attempt once"
    );
    assert_eq!(
        result(&report),
        json!({ "worker": "patient" }),
        "the result that completed the task is the second worker's"
    );
    assert!(
        first.runs_of(report.task_id, "work").is_empty(),
        "the first worker still finished nothing"
    );
    stop.cancel();
    handle.await.unwrap();
    stack.stop().await;
}

//! Retryable failures are retried on the step's backoff until they succeed
//! or run out of attempts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::json;
use tasker_e2e::{Recorder, Stack, template, unique, worker_config};
use tasker_protocol::{StepState, TaskStatus};
use tasker_worker::{StepError, Worker};

fn flaky_template(ns: &str, backoff: &str) -> tasker_protocol::TaskTemplate {
    template(&format!(
        r#"
name: flaky
namespace_name: {ns}
version: 1.0.0
steps:
  - name: prepare
    handler: {{ callable: ok }}
  - name: call_gateway
    handler: {{ callable: flaky }}
    dependencies: [prepare]
    retry:
      max_attempts: 3
      backoff: {backoff}
      initial_delay: 0.2
      max_delay: 5
  - name: finish
    handler: {{ callable: ok }}
    dependencies: [call_gateway]
"#
    ))
}

/// A handler that fails retryably for its first two calls of each task.
fn fails_twice(recorder: &Recorder) -> impl tasker_worker::StepHandler {
    let calls = Arc::new(AtomicU32::new(0));
    recorder.handler(Duration::ZERO, move |ctx| {
        if calls.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(StepError::retryable(
                "GATEWAY_UNAVAILABLE",
                format!("attempt {} hit a 503", ctx.attempt()),
            ))
        } else {
            Ok(json!({ "charged": true, "attempt": ctx.attempt() }))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_fails_twice_completes_on_its_third_attempt_after_the_backoff() {
    let ns = unique("retry_exp");
    let recorder = Recorder::default();
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("ok", recorder.ok(Duration::ZERO))
        .handler("flaky", fails_twice(&recorder));
    let stack = Stack::start(vec![flaky_template(&ns, "exponential")], 1, vec![worker])
        .await
        .unwrap();
    let report = stack.run(&ns, "flaky", json!({})).await.unwrap();

    assert_eq!(report.status, TaskStatus::Complete, "{report:#?}");
    let step = &report.steps[1];
    assert_eq!(step.state, StepState::Completed);
    assert_eq!(step.attempts, 3);
    // The report keeps the last error, marked as recovered.
    assert_eq!(step.error.as_ref().unwrap().code, "GATEWAY_UNAVAILABLE");

    let runs = recorder.runs_of(report.task_id, "call_gateway");
    assert_eq!(runs.iter().map(|r| r.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    // Exponential from 0.2 s: at least 0.2 s, then at least 0.4 s, between attempts.
    let gap = |a: usize| runs[a + 1].started.duration_since(runs[a].finished);
    assert!(gap(0) >= Duration::from_millis(200), "first gap {:?}", gap(0));
    assert!(gap(1) >= Duration::from_millis(400), "second gap {:?}", gap(1));
    // The step after it ran once, after the success.
    let finish = recorder.runs_of(report.task_id, "finish");
    assert_eq!(finish.len(), 1);
    assert!(finish[0].started >= runs[2].finished);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_backoff_waits_the_same_each_time_and_retry_after_overrides_it() {
    let ns = unique("retry_fixed");
    let recorder = Recorder::default();
    let worker =
        Worker::new(worker_config(4))
            .namespace(&ns)
            .handler("ok", recorder.ok(Duration::ZERO))
            .handler(
                "flaky",
                recorder.handler(Duration::ZERO, |ctx| match ctx.attempt() {
                    1 => Err(StepError::retryable("BUSY", "try later")),
                    2 => Err(StepError::retryable("RATE_LIMITED", "slow down")
                        .retry_after(Duration::from_millis(700))),
                    _ => Ok(json!({})),
                }),
            );
    let stack = Stack::start(vec![flaky_template(&ns, "fixed")], 1, vec![worker])
        .await
        .unwrap();
    let report = stack.run(&ns, "flaky", json!({})).await.unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    let runs = recorder.runs_of(report.task_id, "call_gateway");
    assert_eq!(runs.len(), 3);
    let gap = |a: usize| runs[a + 1].started.duration_since(runs[a].finished);
    assert!(gap(0) >= Duration::from_millis(200), "fixed gap {:?}", gap(0));
    assert!(
        gap(1) >= Duration::from_millis(700),
        "retry-after gap {:?}",
        gap(1)
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_schedule_survives_a_coordinator_restart() {
    let ns = unique("retry_restart");
    let recorder = Recorder::default();
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("ok", recorder.ok(Duration::ZERO))
        .handler("flaky", fails_twice(&recorder));
    let yaml_template = flaky_template(&ns, "fixed");
    let mut stack = Stack::start(vec![yaml_template], 1, vec![worker]).await.unwrap();
    let submitted = stack
        .client
        .submit(tasker_protocol::TaskRequest::new(&ns, "flaky", json!({})))
        .await
        .unwrap();
    // Wait for the first failure, then replace the coordinator while the
    // retry waits in Redis.
    tokio::time::timeout(Duration::from_secs(10), async {
        while recorder.runs_of(submitted.task_id, "call_gateway").is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    stack.stop_coordinators().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.add_coordinator();
    let report = tasker_e2e::finished(submitted.wait(Duration::from_secs(30)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    assert_eq!(report.steps[1].attempts, 3);
    stack.stop().await;
}

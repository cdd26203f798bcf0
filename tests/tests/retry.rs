//! Retryable failures are retried on the step's backoff until they succeed
//! or run out of attempts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::json;
use tasker_e2e::{Recorder, Stack, eventually, template, unique, worker_config};
use tasker_protocol::{StepState, TaskStatus};
use tasker_worker::{StepError, Worker};

fn flaky_template(ns: &str, backoff: &str, initial_delay: &str) -> tasker_protocol::TaskTemplate {
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
      initial_delay: {initial_delay}
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
    let stack = Stack::start(vec![flaky_template(&ns, "exponential", "0.2")], 1, vec![worker])
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
    let stack = Stack::start(vec![flaky_template(&ns, "fixed", "0.2")], 1, vec![worker])
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
    // A second between attempts: time enough to stop the coordinator
    // before the retry it scheduled comes due.
    let yaml_template = flaky_template(&ns, "fixed", "1.0");
    let mut stack = Stack::start(vec![yaml_template], 1, vec![worker]).await.unwrap();
    let submitted = stack
        .client
        .submit(tasker_protocol::TaskRequest::new(&ns, "flaky", json!({})))
        .await
        .unwrap();
    // Wait for the first failure and its retry in Redis, then replace the
    // coordinator while the retry waits there.
    let task_id = submitted.task_id;
    eventually("the first attempt failing", || async {
        !recorder.runs_of(task_id, "call_gateway").is_empty()
    })
    .await;
    let store = tasker_e2e::store().await.unwrap();
    let redis = store.connection();
    let schedule = store.keys().schedule_of(task_id, &ns);
    let scheduled = || {
        let (mut redis, schedule) = (redis.clone(), schedule.clone());
        async move {
            redis
                .zrange_withscores::<_, Vec<(String, i64)>>(&schedule, 0, -1)
                .await
                .unwrap()
        }
    };
    eventually("the retry being scheduled in Redis", || async {
        !scheduled().await.is_empty()
    })
    .await;
    stack.stop_coordinators().await;
    let waiting = scheduled().await;
    assert_eq!(
        waiting.len(),
        1,
        "the retry waits in Redis, not dispatched before the coordinator stopped: {waiting:?}"
    );
    // With no coordinator, nothing dispatches it, even once it is due: the
    // new coordinator must find it in Redis. Nothing can show that a retry
    // was not dispatched but time, so the check waits until it is overdue
    // by half a second; a running coordinator looks every 20 ms
    // (`retry_poll`), and would have dispatched it well before.
    let due = waiting[0].1;
    eventually("the retry being overdue by half a second", || async {
        chrono::Utc::now().timestamp_millis() > due + 500
    })
    .await;
    assert_eq!(
        scheduled().await,
        waiting,
        "the retry stayed in Redis while no coordinator ran"
    );
    assert_eq!(
        recorder.runs_of(task_id, "call_gateway").len(),
        1,
        "no second attempt ran while no coordinator ran"
    );
    let restarted = Instant::now();
    stack.add_coordinator();
    let report = tasker_e2e::finished(submitted.wait(Duration::from_secs(30)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    assert_eq!(report.steps[1].attempts, 3);
    let runs = recorder.runs_of(task_id, "call_gateway");
    assert_eq!(runs.iter().map(|r| r.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(
        runs[1].started >= restarted,
        "the retry ran once the new coordinator was there"
    );
    stack.stop().await;
}

//! Requests that reach the unrouted queue, because no queue of their
//! namespace was bound to take them: rejected at once when no coordinator
//! has ever served the namespace, forwarded when it is served and its queue
//! is only missing for a moment.
//!
//! This file's tests capture the log of the coordinators they run in this
//! process, so they live in a test binary of their own.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tasker_coordinator::Store;
use tasker_e2e::{Queues, Recorder, Stack, eventually, one_step_template, redis_url, unique, worker_config};
use tasker_protocol::{RejectCode, TaskStatus, topology};
use tasker_runtime::Reply;
use tasker_worker::Worker;
use tracing_subscriber::fmt::MakeWriter;

/// Every line logged in this process since it started.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    /// Installs the log as this process's subscriber, once.
    fn capture() -> Self {
        static LOG: std::sync::OnceLock<Log> = std::sync::OnceLock::new();
        LOG.get_or_init(|| {
            let log = Log::default();
            tracing_subscriber::fmt()
                .with_writer(log.clone())
                .with_ansi(false)
                .with_env_filter(tasker_runtime::telemetry::DEFAULT_LOG_FILTER)
                .init();
            log
        })
        .clone()
    }

    /// Every line logged so far.
    fn lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().map(str::to_owned).collect()
    }

    /// The lines logged at WARN or above that mention `word`, or come from
    /// lapin.
    fn warnings_about(&self, word: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .filter(|l| l.contains(word) || l.contains("lapin"))
            .collect()
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Log {
    type Writer = Log;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_a_namespace_no_coordinator_serves_is_rejected_at_once_with_one_log_line() {
    let log = Log::capture();
    let ns = unique("served");
    let stack = Stack::start(vec![one_step_template(&ns, "x")], 1, vec![])
        .await
        .unwrap();
    let nobody = unique("nobody");
    let started = Instant::now();
    let reply = stack
        .client
        .create_task(&nobody, "x", json!({}))
        .await
        .unwrap()
        .wait(Duration::from_secs(30))
        .await
        .unwrap();
    let waited = started.elapsed();
    let Reply::Rejected(rejected) = reply else {
        panic!("a request for {nobody} was not rejected: {reply:?}");
    };
    assert_eq!(rejected.code, RejectCode::UnknownTemplate);
    assert!(rejected.reason.contains(&nobody), "{}", rejected.reason);
    assert!(
        waited < Duration::from_secs(1),
        "rejected after {waited:?}, not at once"
    );
    // The dead-letter line, logged once the request is parked, says what
    // and why; nothing else is logged about it, and lapin logs no closed
    // channel.
    eventually("the dead-letter line", || {
        let logged = !log.warnings_about(&nobody).is_empty();
        async move { logged }
    })
    .await;
    let lines = log.warnings_about(&nobody);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("dead-letter") && lines[0].contains("unknown_template"),
        "{lines:#?}"
    );
    stack.stop().await;
}

/// A RabbitMQ that is still recovering its queues routes a request to the
/// unrouted queue, where another team's coordinator may see it first. For a
/// namespace that a coordinator has served, that coordinator waits for the
/// namespace's queue for a grace period before it rejects, and forwards the
/// request once the queue is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_a_served_namespace_waits_for_its_queue_and_is_forwarded() {
    let log = Log::capture();
    let other_team = unique("other");
    let late = unique("late");
    // A coordinator of `late` has run before; its queues are gone for now.
    let store = Store::connect(&redis_url(), Duration::from_secs(60))
        .await
        .unwrap();
    store
        .note_served(&[&late], chrono::Utc::now().timestamp_millis())
        .await
        .unwrap();
    let other = Stack::start(vec![one_step_template(&other_team, "x")], 1, vec![])
        .await
        .unwrap();
    let submitted = other
        .client
        .create_task(&late, "single", json!({}))
        .await
        .unwrap();
    // A coordinator that does not serve the namespace, here the other
    // team's, takes it off the unrouted queue and holds it while it waits
    // for the namespace's queue. Then the namespace comes up, with its
    // coordinator and worker.
    let queues = Queues::connect().await.unwrap();
    eventually(
        "a coordinator taking the request off the unrouted queue",
        || async { queues.ready(topology::UNROUTED_REQUESTS_QUEUE).await == 0 },
    )
    .await;
    queues.close().await;
    let recorder = Recorder::default();
    let worker = Worker::new(worker_config(2))
        .namespace(&late)
        .handler("ok", recorder.ok(Duration::ZERO));
    let team = Stack::start(vec![one_step_template(&late, "single")], 1, vec![worker])
        .await
        .unwrap();
    let report = tasker_e2e::finished(submitted.wait(Duration::from_secs(20)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete, "{report:#?}");
    assert_eq!(report.namespace, late);
    // It went through the unrouted queue: the other team's coordinator
    // forwarded it.
    assert!(
        log.lines()
            .iter()
            .any(|l| l.contains("forwarded") && l.contains(&late)),
        "the request for {late} was not forwarded from the unrouted queue"
    );
    team.stop().await;
    other.stop().await;
}

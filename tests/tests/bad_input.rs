//! Bad input gets a clear answer, and the coordinator keeps serving.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tasker_e2e::{Recorder, Stack, finished, template, unique, worker_config};
use tasker_protocol::message::RejectCode;
use tasker_protocol::topology;
use tasker_protocol::{StepState, TaskRequest, TaskStatus};
use tasker_runtime::broker::{self, Broker};
use tasker_runtime::publisher::Outgoing;
use tasker_worker::{Reply, StepError, Worker};

fn two_steps(ns: &str, extra: &str) -> tasker_protocol::TaskTemplate {
    template(&format!(
        r#"
name: pair
namespace_name: {ns}
version: 1.0.0
steps:
  - name: first
    handler: {{ callable: first }}
{extra}
  - name: second
    handler: {{ callable: ok }}
    dependencies: [first]
"#
    ))
}

fn rejected(reply: Reply) -> tasker_protocol::TaskRejected {
    match reply {
        Reply::Rejected(r) => r,
        other => panic!("expected a rejection, got {other:#?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_rejected_with_their_reason_and_the_coordinator_keeps_serving() {
    let ns = unique("bad_req");
    let recorder = Recorder::default();
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("first", recorder.ok(Duration::ZERO))
        .handler("ok", recorder.ok(Duration::ZERO));
    let stack = Stack::start(vec![two_steps(&ns, "")], 1, vec![worker])
        .await
        .unwrap();
    let wait = Duration::from_secs(20);

    let r = rejected(
        stack
            .client
            .create_task(&ns, "pear", json!({}))
            .await
            .unwrap()
            .wait(wait)
            .await
            .unwrap(),
    );
    assert_eq!(r.code, RejectCode::UnknownTemplate);
    assert!(
        r.reason.contains(&format!("{ns}/pear")) && r.reason.contains(&format!("did you mean {ns}/pair")),
        "{}",
        r.reason
    );

    let mut request = TaskRequest::new(&ns, "pair", json!({}));
    request.version = Some("2.0.0".into());
    let r = rejected(
        stack
            .client
            .submit(request)
            .await
            .unwrap()
            .wait(wait)
            .await
            .unwrap(),
    );
    assert_eq!(r.code, RejectCode::UnknownVersion);
    assert!(
        r.reason.contains("2.0.0") && r.reason.contains("1.0.0"),
        "{}",
        r.reason
    );

    for context in [json!([1, 2]), json!("text"), json!(null)] {
        let r = rejected(
            stack
                .client
                .create_task(&ns, "pair", context)
                .await
                .unwrap()
                .wait(wait)
                .await
                .unwrap(),
        );
        assert_eq!(r.code, RejectCode::InvalidContext);
        assert!(r.reason.contains("must be a JSON object"), "{}", r.reason);
    }

    let other_ns = unique("other");
    for (payload, code, says) in [
        (b"{not json".to_vec(), RejectCode::Undecodable, "not_json"),
        (
            br#"{"protocol_version": 1, "name": "pair"}"#.to_vec(),
            RejectCode::Undecodable,
            "missing field `namespace`",
        ),
        (
            br#"{"protocol_version": 99, "namespace": "x"}"#.to_vec(),
            RejectCode::UnsupportedVersion,
            "99",
        ),
        (
            format!(r#"{{"protocol_version": 1, "namespace": "{ns}", "name": "pair"}}"#).into_bytes(),
            RejectCode::InvalidContext,
            "not null",
        ),
        (
            format!(r#"{{"protocol_version": 1, "namespace": "{ns}", "name": "pa ir", "context": {{}}}}"#)
                .into_bytes(),
            RejectCode::InvalidName,
            "name \"pa ir\" contains ' '",
        ),
        (
            format!(
                r#"{{"protocol_version": 1, "namespace": "{ns}", "name": "pair", "version": "1.x", "context": {{}}}}"#
            )
            .into_bytes(),
            RejectCode::InvalidVersion,
            "not a semver version",
        ),
        (
            format!(r#"{{"protocol_version": 1, "namespace": "{other_ns}", "name": "pair", "context": {{}}}}"#)
                .into_bytes(),
            RejectCode::NamespaceMismatch,
            "with routing key",
        ),
    ] {
        let r = rejected(
            stack
                .client
                .submit_raw(&ns, payload)
                .await
                .unwrap()
                .wait(wait)
                .await
                .unwrap(),
        );
        assert_eq!(r.code, code, "{}", r.reason);
        assert!(r.reason.contains(says), "{code:?}: {}", r.reason);
    }

    // A request whose header names another protocol version is refused,
    // however its body reads; the rejection names it.
    let broker = Broker::connect(&tasker_e2e::amqp_url(), "test-rejections")
        .await
        .unwrap();
    let channel = broker.channel().await.unwrap();
    let (_, mut rejections) = broker
        .private_queue(
            &channel,
            Some((topology::EVENTS_EXCHANGE, topology::TASK_REJECTED_ROUTING_KEY)),
            true,
        )
        .await
        .unwrap();
    let request = TaskRequest::new(&ns, "pair", json!({}));
    let mut properties = broker::properties(topology::message_type::TASK_REQUEST, None);
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(
        topology::headers::PROTOCOL_VERSION.into(),
        lapin::types::AMQPValue::LongLongInt(2),
    );
    properties = properties.with_headers(headers);
    stack
        .client
        .publisher()
        .await
        .publish(Outgoing {
            exchange: topology::REQUESTS_EXCHANGE.to_owned(),
            routing_key: ns.clone(),
            payload: tasker_protocol::message::encode(&request),
            properties,
            mandatory: true,
        })
        .await
        .unwrap();
    let r = loop {
        let delivery = tokio::time::timeout(wait, rejections.next())
            .await
            .expect("a rejection within the wait")
            .unwrap()
            .unwrap();
        let r: tasker_protocol::TaskRejected = serde_json::from_slice(&delivery.data).unwrap();
        if r.request_id == request.request_id {
            break r;
        }
    };
    assert_eq!(r.code, RejectCode::UnsupportedVersion);
    assert!(r.reason.contains("header is 2"), "{}", r.reason);
    broker.close().await;

    // A namespace nobody serves is rejected too, through the unrouted queue
    // (at once: tests/tests/unrouted.rs times it).
    let r = rejected(
        stack
            .client
            .create_task(&unique("nobody"), "x", json!({}))
            .await
            .unwrap()
            .wait(Duration::from_secs(45))
            .await
            .unwrap(),
    );
    assert_eq!(r.code, RejectCode::UnknownTemplate);

    // After all of that, a good request still runs.
    let report = stack.run(&ns, "pair", json!({"ok": true})).await.unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_seen_before_returns_the_existing_task_and_runs_nothing_again() {
    let ns = unique("idem");
    let recorder = Recorder::default();
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("first", recorder.ok(Duration::from_millis(50)))
        .handler("ok", recorder.ok(Duration::ZERO));
    let stack = Stack::start(vec![two_steps(&ns, "")], 1, vec![worker])
        .await
        .unwrap();
    let request = |key: &str| {
        let mut r = TaskRequest::new(&ns, "pair", json!({ "order": 7 }));
        r.idempotency_key = Some(key.to_owned());
        r
    };
    // Two requests with the same key while the task runs, one after it ended.
    let a = stack.client.submit(request("order-7")).await.unwrap();
    let b = stack.client.submit(request("order-7")).await.unwrap();
    assert_eq!(a.task_id, b.task_id);
    let ids = [a.request_id, b.request_id];
    let first = finished(a.wait(Duration::from_secs(20)).await.unwrap()).unwrap();
    let second = finished(b.wait(Duration::from_secs(20)).await.unwrap()).unwrap();
    let later = stack.client.submit(request("order-7")).await.unwrap();
    let later_id = later.request_id;
    let third = finished(later.wait(Duration::from_secs(20)).await.unwrap()).unwrap();
    for report in [&first, &second, &third] {
        assert_eq!(report.task_id, first.task_id);
        assert_eq!(report.status, TaskStatus::Complete);
    }
    // Each requester's copy names its own request.
    assert_eq!(
        [first.request_id, second.request_id, third.request_id],
        [Some(ids[0]), Some(ids[1]), Some(later_id)]
    );
    // The same key with another context is refused; the task stays as it was.
    let mut conflicting = request("order-7");
    conflicting.context = json!({ "order": 8 });
    let r = rejected(
        stack
            .client
            .submit(conflicting)
            .await
            .unwrap()
            .wait(Duration::from_secs(20))
            .await
            .unwrap(),
    );
    assert_eq!(r.code, RejectCode::IdempotencyConflict);
    assert!(r.reason.contains(&first.task_id.to_string()), "{}", r.reason);
    assert_eq!(recorder.runs_of(first.task_id, "first").len(), 1);
    assert_eq!(recorder.runs_of(first.task_id, "second").len(), 1);
    // Another key is another task.
    let other = stack.client.submit(request("order-8")).await.unwrap();
    assert_ne!(other.task_id, first.task_id);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_handler_a_panic_and_a_hang_each_fail_the_step_clearly() {
    let ns = unique("handlers");
    let recorder = Recorder::default();
    let panicking = template(&format!(
        "name: panics\nnamespace_name: {ns}\nversion: 1.0.0\nsteps:\n  - name: boom\n    handler: {{ callable: boom }}\n"
    ));
    let missing = template(&format!(
        "name: missing\nnamespace_name: {ns}\nversion: 1.0.0\nsteps:\n  - name: lost\n    handler: {{ callable: Not::Registered }}\n"
    ));
    let hanging = template(&format!(
        "name: hangs\nnamespace_name: {ns}\nversion: 1.0.0\nsteps:\n  - name: stuck\n    handler: {{ callable: hang }}\n    timeout_seconds: 0.2\n    retry: {{ max_attempts: 2, backoff: none }}\n"
    ));
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler(
            "boom",
            recorder.handler(Duration::ZERO, |_| panic!("the ledger is on fire")),
        )
        .handler(
            "hang",
            recorder.handler(Duration::from_secs(3600), |_| {
                Err(StepError::permanent("NEVER", "unreachable"))
            }),
        );
    let stack = Stack::start(vec![panicking, missing, hanging], 1, vec![worker])
        .await
        .unwrap();

    let report = stack.run(&ns, "panics", json!({})).await.unwrap();
    let error = report.steps[0].error.clone().unwrap();
    assert_eq!(
        (report.status, report.steps[0].state, report.steps[0].attempts),
        (TaskStatus::Failed, StepState::Failed, 1)
    );
    assert_eq!(error.code, "handler_panic");
    assert!(!error.retryable);
    assert!(
        error.message.contains("the ledger is on fire"),
        "{}",
        error.message
    );

    let report = stack.run(&ns, "missing", json!({})).await.unwrap();
    let error = report.steps[0].error.clone().unwrap();
    assert_eq!(report.steps[0].attempts, 1);
    assert_eq!(error.code, "handler_not_found");
    assert!(error.message.contains("Not::Registered"), "{}", error.message);

    let report = stack.run(&ns, "hangs", json!({})).await.unwrap();
    let step = &report.steps[0];
    assert_eq!(
        (step.state, step.attempts),
        (StepState::Failed, 2),
        "a timeout is retryable"
    );
    let error = step.error.clone().unwrap();
    assert_eq!(error.code, "timeout");
    assert!(error.retryable);
    stack.stop().await;
}

#[test]
fn a_templates_directory_with_invalid_files_lists_every_one() {
    let dir = std::env::temp_dir().join(unique("templates"));
    std::fs::create_dir_all(dir.join("team")).unwrap();
    std::fs::write(
        dir.join("good.yaml"),
        "name: good\nnamespace_name: team\nversion: 1.0.0\nsteps:\n  - name: a\n    handler: { callable: x }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("team/cycle.yaml"),
        "name: cyc\nnamespace_name: team\nversion: 1.0.0\nsteps:\n  - name: a\n    handler: { callable: x }\n  - name: b\n    handler: { callable: x }\n    dependencies: [c]\n  - name: c\n    handler: { callable: x }\n    dependencies: [b]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("team/bad_version.yml"),
        "name: v\nnamespace_name: team\nversion: one\nsteps:\n  - name: a\n    handler: { callable: x }\n",
    )
    .unwrap();
    let error = tasker_coordinator::templates::load_dir(&dir).unwrap_err();
    let text = error.to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    let tasker_coordinator::Error::Templates(errors) = error else {
        panic!("{text}")
    };
    assert_eq!(errors.len(), 2, "{text}");
    assert!(
        text.contains("cycle.yaml") && text.contains("b → c → b"),
        "{text}"
    );
    assert!(
        text.contains("bad_version.yml") && text.contains("semver"),
        "{text}"
    );
}

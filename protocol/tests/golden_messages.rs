//! Golden fixtures pin the wire format: field names, enum spellings, and
//! which optional fields are left out. Each fixture is decoded into its
//! type, encoded again, and compared with the fixture as JSON values.
//!
//! The fixtures follow the user-registration diamond of
//! `templates/microservices/user_registration.yaml`, and `docs/protocol.md`
//! embeds them; change both together.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tasker_protocol::message::{DEFAULT_MAX_MESSAGE_BYTES, Versioned, decode, encode};
use tasker_protocol::{
    CommandReply, DecodeError, PROTOCOL_VERSION, RejectCode, StepOutcome, StepReady, StepResult, StepState,
    TaskAction, TaskCommand, TaskFinished, TaskRejected, TaskRequest, TaskStatus,
};
use uuid::Uuid;

const FIXTURES: [&str; 19] = [
    "task_request",
    "task_request_child",
    "step_result_waiting_for_child",
    "task_finished_child",
    "step_result_from_child",
    "step_ready",
    "step_result_completed",
    "step_result_failed_retryable",
    "step_result_failed_permanent",
    "task_finished_complete",
    "task_finished_failed",
    "task_rejected",
    "task_command_retry",
    "task_command_resolve",
    "task_command_cancel",
    "command_reply",
    "step_result_too_large",
    "task_finished_results_omitted",
    "worker_announcement",
];

/// The task of `task_request.json`, derived from its idempotency key.
const TASK_A: &str = "1313b797-4991-51f3-b1c9-e05383177de6";

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/messages")
        .join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Decodes fixture `name` as `T`, and checks that encoding it again gives
/// the same JSON.
fn round_trip<T>(name: &str) -> T
where
    T: DeserializeOwned + Serialize + Versioned,
{
    let bytes = fixture(name);
    let message: T = decode(&bytes, DEFAULT_MAX_MESSAGE_BYTES).unwrap_or_else(|e| panic!("{name}.json: {e}"));
    let expected: Value = serde_json::from_slice(&bytes).unwrap();
    let again: Value = serde_json::from_slice(&encode(&message)).unwrap();
    assert_eq!(again, expected, "{name}.json does not survive a round trip");
    message
}

#[test]
fn task_request() {
    let request: TaskRequest = round_trip("task_request");
    assert_eq!(
        request.idempotency_key.as_deref(),
        Some("registration:new.user@example.com")
    );
    assert_eq!(request.task_id(), Some(TASK_A.parse().unwrap()));
}

#[test]
fn step_ready() {
    let ready: StepReady = round_trip("step_ready");
    assert_eq!(ready.step, "send_welcome_sequence");
    assert_eq!((ready.attempt, ready.max_attempts), (1, 2));
    assert_eq!(ready.timeout_seconds, None);
    assert!(ready.initialization.is_empty());
    // Every ancestor, not only the parents.
    let deps: Vec<&str> = ready.dependency_results.keys().map(String::as_str).collect();
    assert_eq!(
        deps,
        [
            "create_user_account",
            "initialize_preferences",
            "setup_billing_profile"
        ]
    );
    assert_eq!(ready.idempotency_key(), format!("{TASK_A}:send_welcome_sequence"));
}

#[test]
fn step_result_completed() {
    let result: StepResult = round_trip("step_result_completed");
    let StepOutcome::Completed { result: value } = &result.outcome else {
        panic!("expected a completed outcome, got {:?}", result.outcome);
    };
    let value: Value = serde_json::from_str(value.get()).unwrap();
    assert_eq!(value["messages_sent"], 3);
    assert_eq!(result.task_id.to_string(), TASK_A);
}

#[test]
fn step_result_failed_retryable() {
    let result: StepResult = round_trip("step_result_failed_retryable");
    let StepOutcome::Failed { error } = &result.outcome else {
        panic!("expected a failed outcome, got {:?}", result.outcome);
    };
    assert!(error.retryable);
    assert_eq!(error.retry_after_seconds, Some(5.0));
    assert_eq!(result.attempt, 2);
}

#[test]
fn step_result_failed_permanent() {
    let result: StepResult = round_trip("step_result_failed_permanent");
    let StepOutcome::Failed { error } = &result.outcome else {
        panic!("expected a failed outcome, got {:?}", result.outcome);
    };
    assert!(!error.retryable);
    assert_eq!(error.code, "BLOCKED_EMAIL_DOMAIN");
    assert_eq!(error.retry_after_seconds, None);
}

#[test]
fn task_finished_complete() {
    let finished: TaskFinished = round_trip("task_finished_complete");
    assert_eq!(finished.status, TaskStatus::Complete);
    // The copy to the requester of task_request.json names its request.
    let request: TaskRequest = round_trip("task_request");
    assert_eq!(finished.request_id, request.request_id);
    assert!(
        finished
            .steps
            .iter()
            .all(|s| s.state == StepState::Completed && s.result.is_some())
    );
}

#[test]
fn task_finished_failed() {
    let finished: TaskFinished = round_trip("task_finished_failed");
    assert_eq!(finished.status, TaskStatus::Failed);
    let states: Vec<StepState> = finished.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            StepState::Completed,
            StepState::Failed,
            StepState::Completed,
            StepState::Blocked,
            StepState::Blocked
        ]
    );
    assert_eq!(finished.steps[1].attempts, 3);
    assert!(finished.steps[1].error.as_ref().is_some_and(|e| e.retryable));
}

#[test]
fn a_result_over_the_limit_is_reported_as_a_small_permanent_failure() {
    let result: StepResult = round_trip("step_result_too_large");
    let StepOutcome::Failed { error } = result.outcome else {
        panic!("a result too large is a failure");
    };
    assert_eq!(
        (error.code.as_str(), error.retryable),
        ("result_too_large", false)
    );
    assert_eq!(error.code, tasker_protocol::ErrorCode::ResultTooLarge.as_str());
}

#[test]
fn a_report_over_the_limit_says_its_results_are_left_out() {
    let finished: TaskFinished = round_trip("task_finished_results_omitted");
    assert!(finished.results_omitted);
    assert!(finished.steps.iter().all(|s| s.result.is_none()));
    // Absent means false, and a full report does not write it.
    let full: TaskFinished = round_trip("task_finished_complete");
    assert!(!full.results_omitted);
    assert!(
        !String::from_utf8(encode(&full))
            .unwrap()
            .contains("results_omitted")
    );
}

#[test]
fn worker_announcement() {
    let announcement: tasker_protocol::WorkerAnnouncement = round_trip("worker_announcement");
    assert_eq!(announcement.service, "billing");
    assert_eq!(announcement.serves[0].queue, "tasker.steps.microservices.billing");
    assert_eq!(
        announcement.serves[0].queue,
        tasker_protocol::topology::service_queue("microservices", "billing")
    );
    assert!(!announcement.leaving, "absent means false");
    assert_eq!(announcement.serves[0].partitions, 1, "absent means one queue");
    assert_eq!(
        announcement.serves[0].queues("billing"),
        ["tasker.steps.microservices.billing"]
    );

    // A service split over queues says how many; one queue says nothing.
    let mut split = announcement.serves[0].clone();
    split.partitions = 3;
    let json = serde_json::to_value(&split).unwrap();
    assert_eq!(json["partitions"], 3);
    assert_eq!(
        split.queues("billing"),
        [
            "tasker.steps.microservices.billing.0",
            "tasker.steps.microservices.billing.1",
            "tasker.steps.microservices.billing.2"
        ]
    );
    let json = serde_json::to_value(&announcement.serves[0]).unwrap();
    assert!(json.get("partitions").is_none(), "{json}");
}

#[test]
fn task_rejected() {
    let rejected: TaskRejected = round_trip("task_rejected");
    assert_eq!(rejected.code, RejectCode::UnknownTemplate);
    assert_eq!(rejected.name.as_deref(), Some("user_registraton"));
}

#[test]
fn a_child_task_request_names_the_step_that_waits_for_it() {
    let request: TaskRequest = round_trip("task_request_child");
    let parent = request.parent.as_ref().expect("a parent step");
    assert_eq!(
        (parent.step.as_str(), parent.attempt),
        ("execute_refund_workflow", 1)
    );
    // Every attempt of the parent step asks for the same child.
    assert_eq!(request.idempotency_key, Some(parent.idempotency_key()));
    let waiting: StepResult = round_trip("step_result_waiting_for_child");
    assert!(matches!(
        waiting.outcome,
        StepOutcome::WaitingForChild { child_task_id } if Some(child_task_id) == request.task_id()
    ));
}

#[test]
fn a_finished_child_becomes_its_parent_steps_result() {
    let child: TaskFinished = round_trip("task_finished_child");
    let parent = child.parent.clone().expect("a parent step");
    let expected: StepResult = round_trip("step_result_from_child");
    let result = parent.result_of(&child);
    assert_eq!(
        serde_json::to_value(&result).unwrap(),
        serde_json::to_value(&expected).unwrap()
    );

    // A failed child fails the step for good, naming the child and its failed step.
    let mut failed = child.clone();
    failed.status = TaskStatus::Failed;
    failed.steps[1].state = StepState::Failed;
    failed.steps[1].result = None;
    let StepOutcome::Failed { error } = parent.result_of(&failed).outcome else {
        panic!("a failed child fails its parent step");
    };
    assert_eq!(
        (error.code.as_str(), error.retryable),
        ("child_task_failed", false)
    );
    assert!(
        error.message.contains("0203cdea-4a86-5cc4-9a57-7b04284b46ec"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("process_gateway_refund: GATEWAY_TIMEOUT"),
        "{}",
        error.message
    );

    failed.status = TaskStatus::Cancelled;
    let StepOutcome::Failed { error } = parent.result_of(&failed).outcome else {
        panic!("a cancelled child fails its parent step");
    };
    assert_eq!(error.code, "child_task_cancelled");

    let StepOutcome::Failed { error } = parent
        .rejected("payments", "process_refnd", "no such template")
        .outcome
    else {
        panic!("a refused child fails its parent step");
    };
    assert_eq!(error.code, "child_task_rejected");
    assert!(error.message.contains("no such template"));
}

#[test]
fn a_completed_result_may_be_null() {
    let mut json: Value = serde_json::from_slice(&fixture("step_result_completed")).unwrap();
    json["result"] = Value::Null;
    let result: StepResult = decode(json.to_string().as_bytes(), DEFAULT_MAX_MESSAGE_BYTES).unwrap();
    let again: Value = serde_json::from_slice(&encode(&result)).unwrap();
    assert_eq!(again, json);
}

#[test]
fn every_message_kind_has_a_fixture_of_the_current_version() {
    for name in FIXTURES {
        let json: Value = serde_json::from_slice(&fixture(name)).unwrap();
        assert_eq!(json["protocol_version"], PROTOCOL_VERSION, "{name}.json");
    }
}

#[test]
fn docs_embed_every_fixture() {
    let docs = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md"))
        .unwrap();
    for name in FIXTURES {
        let text = String::from_utf8(fixture(name)).unwrap();
        assert!(
            docs.contains(text.trim_end()),
            "docs/protocol.md does not embed {name}.json as it is"
        );
    }
}

#[test]
fn docs_name_the_topology_of_the_protocol_crate() {
    use tasker_protocol::topology::{self, headers, message_type};
    let docs = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md"))
        .unwrap();
    let names = [
        topology::REQUESTS_EXCHANGE.to_owned(),
        topology::UNROUTED_REQUESTS_EXCHANGE.to_owned(),
        topology::UNROUTED_REQUESTS_QUEUE.to_owned(),
        topology::ALTERNATE_EXCHANGE_ARGUMENT.to_owned(),
        topology::request_queue("<namespace>"),
        topology::STEPS_EXCHANGE.to_owned(),
        topology::service_queue("<namespace>", "<service>"),
        topology::step_routing_key("<namespace>", "<callable>"),
        topology::WORKER_ANNOUNCE_ROUTING_KEY.to_owned(),
        topology::WORKERS_QUEUE.to_owned(),
        topology::EVENTS_EXCHANGE.to_owned(),
        topology::result_queue("<namespace>"),
        topology::step_result_routing_key("<namespace>"),
        topology::task_finished_routing_key("<namespace>", "<name>"),
        topology::TASK_REJECTED_ROUTING_KEY.to_owned(),
        topology::DEAD_LETTER_EXCHANGE.to_owned(),
        topology::DEAD_LETTER_QUEUE.to_owned(),
        topology::CONTENT_TYPE.to_owned(),
        topology::QUEUE_TYPE_ARGUMENT.to_owned(),
        topology::DELIVERY_LIMIT_ARGUMENT.to_owned(),
        message_type::TASK_REQUEST.to_owned(),
        message_type::STEP_READY.to_owned(),
        message_type::STEP_RESULT.to_owned(),
        message_type::TASK_FINISHED.to_owned(),
        message_type::TASK_REJECTED.to_owned(),
        message_type::WORKER_ANNOUNCEMENT.to_owned(),
        headers::PROTOCOL_VERSION.to_owned(),
        headers::TASK_ID.to_owned(),
        headers::DEAD_LETTER_REASON.to_owned(),
        headers::DEAD_LETTER_QUEUE.to_owned(),
        headers::DEAD_LETTER_EXCHANGE.to_owned(),
        headers::DEAD_LETTER_ROUTING_KEY.to_owned(),
        headers::TRACEPARENT.to_owned(),
        headers::TRACESTATE.to_owned(),
        headers::DELIVERY_COUNT.to_owned(),
    ];
    for name in names {
        assert!(
            docs.contains(&format!("`{name}`")),
            "docs/protocol.md does not name `{name}`"
        );
    }
}

#[test]
fn docs_name_every_rejection_code() {
    let docs = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md"))
        .unwrap();
    for code in [
        RejectCode::UnknownTemplate,
        RejectCode::UnknownVersion,
        RejectCode::InvalidContext,
        RejectCode::Undecodable,
        RejectCode::UnsupportedVersion,
        RejectCode::InvalidName,
        RejectCode::InvalidVersion,
        RejectCode::NamespaceMismatch,
        RejectCode::IdempotencyConflict,
    ] {
        let spelled = serde_json::to_value(code).unwrap();
        assert_eq!(spelled, code.as_str());
        assert!(
            docs.contains(&format!("`{}`", code.as_str())),
            "docs/protocol.md does not name the rejection code `{}`",
            code.as_str()
        );
    }
}

// How `decode` classifies what it cannot use. The code goes into the
// dead-letter header, so each class is pinned.

/// The request fixture, edited by `edit`, as bytes.
fn edited_request(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut json: Value = serde_json::from_slice(&fixture("task_request")).unwrap();
    edit(json.as_object_mut().unwrap());
    serde_json::to_vec(&json).unwrap()
}

#[test]
fn decode_refuses_a_payload_over_the_limit() {
    let bytes = fixture("task_request");
    let err = decode::<TaskRequest>(&bytes, 64).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TooLarge {
            size: bytes.len(),
            limit: 64
        }
    );
    assert_eq!(err.reason().as_str(), "too_large");
    assert_eq!(
        err.to_string(),
        format!("payload of {} bytes is over the limit of 64 bytes", bytes.len())
    );
    // At the limit is fine.
    assert!(decode::<TaskRequest>(&bytes, bytes.len()).is_ok());
}

#[test]
fn decode_tells_not_json() {
    for payload in [
        &b"user_registration please"[..],
        b"{\"protocol_version\": 1,",
        b"",
        b"\xff\xfe",
    ] {
        let err = decode::<TaskRequest>(payload, DEFAULT_MAX_MESSAGE_BYTES).unwrap_err();
        assert!(matches!(err, DecodeError::NotJson(_)), "{payload:?}: {err:?}");
        assert_eq!(err.reason().as_str(), "not_json");
    }
}

#[test]
fn decode_tells_another_protocol_version() {
    // A well-formed message of version 2.
    let v2 = edited_request(|m| {
        m.insert("protocol_version".into(), 2.into());
    });
    let err = decode::<TaskRequest>(&v2, DEFAULT_MAX_MESSAGE_BYTES).unwrap_err();
    assert_eq!(err, DecodeError::WrongVersion { found: Some(2) });
    assert_eq!(err.reason().as_str(), "wrong_protocol_version");
    assert_eq!(
        err.to_string(),
        "protocol_version is 2, this process speaks only 1; resend the message as version 1 or upgrade the consumer"
    );
    // A version-2 message whose shape changed is still a version problem,
    // not a schema problem.
    let err = decode::<StepResult>(
        br#"{"protocol_version": 2, "outcome": {}}"#,
        DEFAULT_MAX_MESSAGE_BYTES,
    );
    assert_eq!(err.unwrap_err(), DecodeError::WrongVersion { found: Some(2) });
    let err = decode::<StepReady>(br#"{"protocol_version": "1"}"#, DEFAULT_MAX_MESSAGE_BYTES).unwrap_err();
    assert_eq!(err, DecodeError::WrongVersion { found: None });
    assert!(
        err.to_string().starts_with("protocol_version is not a number"),
        "{err}"
    );
}

#[test]
fn decode_calls_a_missing_field_invalid() {
    let bytes = edited_request(|m| {
        m.remove("namespace");
    });
    let err = decode::<TaskRequest>(&bytes, DEFAULT_MAX_MESSAGE_BYTES).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Invalid(m) if m.contains("missing field `namespace`")),
        "{err:?}"
    );
    assert_eq!(err.reason().as_str(), "invalid_message");

    let bytes = edited_request(|m| {
        m.remove("protocol_version");
    });
    let err = decode::<TaskRequest>(&bytes, DEFAULT_MAX_MESSAGE_BYTES).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Invalid(m) if m.contains("protocol_version")),
        "{err:?}"
    );
}

#[test]
fn decode_calls_a_wrong_shape_invalid() {
    let cases: [(&str, &[u8]); 4] = [
        ("array", b"[1, 2, 3]"),
        ("string", b"\"task\""),
        ("bad uuid", br#"{"protocol_version": 1, "task_id": "nope"}"#),
        ("bad status", br#"{"protocol_version": 1, "task_id": "1313b797-4991-51f3-b1c9-e05383177de6", "step": "a", "attempt": 1, "started_at": "2025-03-14T09:26:54Z", "finished_at": "2025-03-14T09:26:54Z", "status": "done"}"#),
    ];
    for (what, payload) in cases {
        let err = decode::<StepResult>(payload, DEFAULT_MAX_MESSAGE_BYTES).unwrap_err();
        assert!(matches!(err, DecodeError::Invalid(_)), "{what}: {err:?}");
    }
}

#[test]
fn decode_needs_the_field_that_goes_with_the_status() {
    let mut completed: Value = serde_json::from_slice(&fixture("step_result_completed")).unwrap();
    completed.as_object_mut().unwrap().remove("result");
    let err = decode::<StepResult>(completed.to_string().as_bytes(), DEFAULT_MAX_MESSAGE_BYTES).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Invalid(m) if m.contains("no `result`")),
        "{err:?}"
    );

    let mut failed: Value = serde_json::from_slice(&fixture("step_result_failed_permanent")).unwrap();
    failed.as_object_mut().unwrap().remove("error");
    let err = decode::<StepResult>(failed.to_string().as_bytes(), DEFAULT_MAX_MESSAGE_BYTES).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Invalid(m) if m.contains("no `error`")),
        "{err:?}"
    );
}

// The task id a request creates.

fn request(namespace: &str, name: &str, key: Option<&str>) -> TaskRequest {
    let mut request = TaskRequest::new(namespace, name, serde_json::json!({}));
    request.idempotency_key = key.map(str::to_owned);
    request
}

#[test]
fn task_id_is_uuid_v5_of_namespace_name_and_key() {
    let documented_namespace: Uuid = "6b1f0c52-3e0a-4c8e-9d43-7a521f0eb7c1".parse().unwrap();
    let a = request(
        "microservices",
        "user_registration",
        Some("registration:new.user@example.com"),
    );
    let expected = Uuid::new_v5(
        &documented_namespace,
        b"microservices/user_registration/registration:new.user@example.com",
    );
    assert_eq!(a.task_id(), Some(expected));
    assert_eq!(expected.to_string(), TASK_A);
}

#[test]
fn the_same_key_gives_the_same_task_id() {
    let key = Some("registration:new.user@example.com");
    let a = request("microservices", "user_registration", key);
    let b = request("microservices", "user_registration", key);
    assert_ne!(a.request_id, b.request_id);
    assert_eq!(a.task_id(), b.task_id());
    // The version is not part of the id: a retried request that names a
    // version joins the task of one that did not.
    let mut pinned = request("microservices", "user_registration", key);
    pinned.version = Some("1.0.0".to_owned());
    assert_eq!(pinned.task_id(), a.task_id());
}

#[test]
fn the_key_is_scoped_to_namespace_and_name() {
    let key = Some("registration:new.user@example.com");
    let a = request("microservices", "user_registration", key);
    assert_ne!(
        a.task_id(),
        request("microservices", "user_deletion", key).task_id()
    );
    assert_ne!(
        a.task_id(),
        request("customer_success", "user_registration", key).task_id()
    );
}

#[test]
fn without_a_key_the_task_id_is_the_request_id() {
    let a = request("microservices", "user_registration", None);
    assert_eq!(a.task_id(), a.request_id);
    let anonymous = TaskRequest {
        request_id: None,
        ..a
    };
    assert_eq!(anonymous.task_id(), None);
}

#[test]
fn task_commands() {
    let retry: TaskCommand = round_trip("task_command_retry");
    assert!(matches!(retry.action, TaskAction::Retry { step: Some(ref s) } if s == "setup_billing_profile"));
    let resolve: TaskCommand = round_trip("task_command_resolve");
    match resolve.action {
        TaskAction::Resolve { step, result } => {
            assert_eq!(step, "setup_billing_profile");
            assert_eq!(result["billing_id"], "bill_manual");
        }
        other => panic!("expected a resolve, got {other:?}"),
    }
    let cancel: TaskCommand = round_trip("task_command_cancel");
    assert!(matches!(cancel.action, TaskAction::Cancel));
    assert_eq!(cancel.task_id, TASK_A.parse::<Uuid>().unwrap());
    let reply: CommandReply = round_trip("command_reply");
    assert!(reply.accepted);
    assert_eq!(reply.started, ["setup_billing_profile"]);
    assert_eq!(reply.status, Some(TaskStatus::Running));
}

#[test]
fn states_and_statuses_are_spelled_alike_everywhere() {
    // `as_str` is what the store and the CLI write; serde is the wire.
    for state in StepState::ALL {
        let wire = serde_json::to_string(&state).unwrap();
        assert_eq!(wire, format!("\"{}\"", state.as_str()));
        assert_eq!(StepState::parse(state.as_str()), Some(state));
    }
    for status in TaskStatus::ALL {
        let wire = serde_json::to_string(&status).unwrap();
        assert_eq!(wire, format!("\"{}\"", status.as_str()));
        assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
    }
    assert_eq!(StepState::WaitingRetry.as_str(), "waiting_retry");
}

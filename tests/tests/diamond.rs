//! The seed's user-registration diamond, end to end, with its real handlers.

use std::time::Duration;

use serde_json::json;
use tasker_e2e::{Recorder, Stack, registration_template, unique, worker_config};
use tasker_example_microservices::{Latency, register};
use tasker_protocol::{StepState, TaskStatus};
use tasker_worker::{StepError, Worker};

fn step<'a>(report: &'a tasker_protocol::TaskFinished, name: &str) -> &'a tasker_protocol::StepReport {
    report.steps.iter().find(|s| s.name == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_five_steps_complete_with_parallel_branches_and_one_join() {
    let ns = unique("diamond");
    // Enough latency that overlapping branches are measurable.
    let worker = register(Worker::new(worker_config(8)), &Latency(150..151)).namespace(&ns);
    let stack = Stack::start(vec![registration_template(&ns)], 1, vec![worker])
        .await
        .unwrap();

    let context = json!({"user_info": {"email": "Jane@Example.com", "name": "Jane", "plan": "pro"}});
    let report = stack.run(&ns, "user_registration", context).await.unwrap();

    assert_eq!(report.status, TaskStatus::Complete, "{report:#?}");
    assert_eq!(report.steps.len(), 5);
    for s in &report.steps {
        assert_eq!(s.state, StepState::Completed, "{}", s.name);
        assert_eq!(s.attempts, 1, "{}", s.name);
        assert!(s.started_at.is_some() && s.finished_at.is_some(), "{}", s.name);
    }

    let billing = step(&report, "setup_billing_profile");
    let prefs = step(&report, "initialize_preferences");
    let welcome = step(&report, "send_welcome_sequence");
    // The two branches overlap in time.
    assert!(
        billing.started_at < prefs.finished_at && prefs.started_at < billing.finished_at,
        "branches did not overlap: billing {:?}..{:?}, preferences {:?}..{:?}",
        billing.started_at,
        billing.finished_at,
        prefs.started_at,
        prefs.finished_at
    );
    // The join starts only after both.
    assert!(welcome.started_at >= billing.finished_at && welcome.started_at >= prefs.finished_at);

    // The welcome step saw all three upstream results: the account (email,
    // name), billing (a pro trial) and preferences (push on for paid plans).
    let sent: serde_json::Value = serde_json::from_str(welcome.result.as_ref().unwrap().get()).unwrap();
    let types: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["welcome", "trial_started", "welcome"]);
    assert_eq!(sent["channels_used"], json!(["email", "push"]));
    assert_eq!(sent["messages"][0]["recipient"], "jane@example.com");
    assert_eq!(sent["messages"][0]["subject"], "Welcome to Tasker, Jane!");
    assert_eq!(sent["messages"][1]["subject"], "Your Pro trial has started");

    let update: serde_json::Value =
        serde_json::from_str(step(&report, "update_user_status").result.as_ref().unwrap().get()).unwrap();
    assert_eq!(update["status"], "active");
    let account: serde_json::Value = serde_json::from_str(
        step(&report, "create_user_account")
            .result
            .as_ref()
            .unwrap()
            .get(),
    )
    .unwrap();
    assert_eq!(update["user_id"], account["user_id"]);

    // Each attempt's lease ended with its result.
    assert_eq!(tasker_e2e::leftover_bookkeeping(&ns).await, (vec![], vec![]));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_runs_once_and_reads_its_grandparent() {
    let ns = unique("diamond_rec");
    let recorder = Recorder::default();
    let worker = tasker_e2e::with_registration_handlers(
        Worker::new(worker_config(8)).namespace(&ns),
        &recorder,
        Duration::from_millis(20),
    );
    let stack = Stack::start(vec![registration_template(&ns)], 1, vec![worker])
        .await
        .unwrap();
    let report = stack.run(&ns, "user_registration", json!({})).await.unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    let welcome = recorder.runs_of(report.task_id, "send_welcome_sequence");
    assert_eq!(welcome.len(), 1);
    assert_eq!(
        welcome[0].inputs,
        [
            "create_user_account",
            "initialize_preferences",
            "setup_billing_profile"
        ]
    );
    let update = recorder.runs_of(report.task_id, "update_user_status");
    assert_eq!(update[0].inputs.len(), 4, "the last step sees all four ancestors");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_out_of_attempts_blocks_the_join_but_not_preferences() {
    tasker_e2e::init_logs();
    let ns = unique("billing_down");
    // Fast retries: the seed's 2 s initial delay is kept only in shape.
    let yaml = include_str!("../../templates/microservices/user_registration.yaml")
        .replace("namespace_name: microservices", &format!("namespace_name: {ns}"))
        .replace("initial_delay: 2", "initial_delay: 0.05");
    let template = tasker_e2e::template(&yaml);
    let recorder = Recorder::default();
    let worker = register(Worker::new(worker_config(8)), &Latency::none())
        .namespace(&ns)
        .handler(
            "Microservices::StepHandlers::SetupBillingProfileHandler",
            recorder.handler(Duration::ZERO, |_| {
                Err(StepError::retryable(
                    "BILLING_UNAVAILABLE",
                    "billing service returned 503",
                ))
            }),
        );
    let stack = Stack::start(vec![template], 1, vec![worker]).await.unwrap();
    let context = json!({"user_info": {"email": "a@b.io", "name": "A", "plan": "pro"}});
    let report = stack.run(&ns, "user_registration", context).await.unwrap();

    assert_eq!(report.status, TaskStatus::Failed);
    let billing = step(&report, "setup_billing_profile");
    assert_eq!(billing.state, StepState::Failed);
    assert_eq!(billing.attempts, 3);
    let error = billing.error.as_ref().unwrap();
    assert_eq!(error.code, "BILLING_UNAVAILABLE");
    assert!(error.retryable);
    assert_eq!(recorder.runs_of(report.task_id, "setup_billing_profile").len(), 3);
    assert_eq!(step(&report, "create_user_account").state, StepState::Completed);
    assert_eq!(
        step(&report, "initialize_preferences").state,
        StepState::Completed
    );
    for blocked in ["send_welcome_sequence", "update_user_status"] {
        let s = step(&report, blocked);
        assert_eq!(s.state, StepState::Blocked, "{blocked}");
        assert_eq!(s.attempts, 0, "{blocked}");
    }
    // Both retries were scheduled, dispatched and taken off the schedule,
    // and the last failure scheduled none.
    assert_eq!(tasker_e2e::leftover_bookkeeping(&ns).await, (vec![], vec![]));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_email_fails_create_once_and_nothing_else_runs() {
    tasker_e2e::init_logs();
    let ns = unique("bad_email");
    let worker = register(Worker::new(worker_config(8)), &Latency::none()).namespace(&ns);
    let stack = Stack::start(vec![registration_template(&ns)], 1, vec![worker])
        .await
        .unwrap();
    let context = json!({"user_info": {"email": "not-an-email", "name": "A"}});
    let report = stack.run(&ns, "user_registration", context).await.unwrap();

    assert_eq!(report.status, TaskStatus::Failed);
    let create = step(&report, "create_user_account");
    assert_eq!(create.state, StepState::Failed);
    assert_eq!(create.attempts, 1);
    let error = create.error.as_ref().unwrap();
    assert_eq!(error.code, "INVALID_EMAIL");
    assert!(!error.retryable);
    assert_eq!(error.message, "Invalid email format: not-an-email");
    for s in &report.steps[1..] {
        assert_eq!(s.state, StepState::Blocked, "{}", s.name);
        assert_eq!(s.attempts, 0);
        assert!(s.started_at.is_none());
    }

    // The other refusals of the seed, each permanent after one attempt.
    for (user_info, code) in [
        (json!({"name": "A"}), "MISSING_EMAIL"),
        (json!({"email": "x@mailinator.com"}), "BLOCKED_EMAIL_DOMAIN"),
    ] {
        let report = stack
            .run(&ns, "user_registration", json!({ "user_info": user_info }))
            .await
            .unwrap();
        let create = step(&report, "create_user_account");
        assert_eq!(create.error.as_ref().unwrap().code, code);
        assert_eq!(create.attempts, 1);
    }
    stack.stop().await;
}

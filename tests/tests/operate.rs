//! What operators read with `tasker list`: recent tasks, newest first,
//! filtered by namespace and status, against the real servers.

use std::time::Duration;

use serde_json::json;
use tasker_coordinator::Store;
use tasker_e2e::{Recorder, Stack, eventually, one_step_template, redis_url, unique, worker_config};
use tasker_protocol::{StepState, TaskAction, TaskCommand, TaskStatus};
use tasker_worker::{Reply, StepError, Worker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_recent_tasks_newest_first_and_filters_them() {
    let ns = unique("listed");
    let recorder = Recorder::default();
    // The handler fails for good when the context asks it to.
    let handler = recorder.handler(Duration::ZERO, |ctx| {
        if ctx.context().get("fail") == Some(&json!(true)) {
            Err(StepError::permanent("ASKED_TO_FAIL", "the context said fail"))
        } else {
            Ok(json!({"ok": true}))
        }
    });
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("ok", handler);
    let stack = Stack::start(vec![one_step_template(&ns, "single")], 1, vec![worker])
        .await
        .unwrap();

    let mut ids = Vec::new();
    for fail in [false, true, false] {
        let report = stack.run(&ns, "single", json!({"fail": fail})).await.unwrap();
        ids.push((report.task_id, report.status));
        // Creation times are in milliseconds: keep the order unambiguous.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let store = Store::connect(&redis_url(), Duration::ZERO).await.unwrap();

    let all = store.list_tasks(Some(&ns), None, 10).await.unwrap();
    let listed: Vec<_> = all.iter().map(|t| (t.task_id, t.status)).collect();
    let newest_first: Vec<_> = ids.iter().rev().copied().collect();
    assert_eq!(listed, newest_first);
    assert!(
        all.iter()
            .all(|t| t.namespace == ns && t.name == "single" && t.steps == 1 && t.steps_done == 1)
    );
    assert!(
        all.iter()
            .all(|t| t.finished_at.is_some_and(|f| f >= t.created_at))
    );

    let failed = store
        .list_tasks(Some(&ns), Some(TaskStatus::Failed), 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].task_id, ids[1].0);

    let limited = store.list_tasks(Some(&ns), None, 2).await.unwrap();
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].task_id, ids[2].0);

    assert!(
        store
            .list_tasks(Some(&unique("nobody")), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    stack.stop().await;
}

/// The seed's diamond in `namespace`, with retry delays short enough for a test.
fn quick_registration(namespace: &str) -> tasker_protocol::TaskTemplate {
    let yaml = include_str!("../../templates/microservices/user_registration.yaml")
        .replace(
            "namespace_name: microservices",
            &format!("namespace_name: {namespace}"),
        )
        .replace("initial_delay: 2", "initial_delay: 0.02")
        .replace("initial_delay: 1", "initial_delay: 0.02");
    tasker_e2e::template(&yaml)
}

/// A stack running the diamond whose billing step fails retryably while
/// `broken` is set, with every run recorded.
async fn stack_with_flaky_billing(
    ns: &str,
    broken: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (Stack, Recorder) {
    use std::sync::atomic::Ordering;
    let recorder = Recorder::default();
    let mut worker = Worker::new(worker_config(8)).namespace(ns);
    for callable in tasker_e2e::chaos::CALLABLES {
        if callable.contains("SetupBillingProfile") {
            let broken = broken.clone();
            worker = worker.handler(
                *callable,
                recorder.handler(Duration::ZERO, move |_| {
                    if broken.load(Ordering::SeqCst) {
                        Err(StepError::retryable(
                            "BILLING_DOWN",
                            "the billing service is down",
                        ))
                    } else {
                        Ok(json!({"billing_id": "bill_1", "plan": "pro"}))
                    }
                }),
            );
        } else {
            worker = worker.handler(*callable, recorder.ok(Duration::ZERO));
        }
    }
    let stack = Stack::start(vec![quick_registration(ns)], 1, vec![worker])
        .await
        .unwrap();
    (stack, recorder)
}

async fn command(
    stack: &Stack,
    ns: &str,
    task_id: uuid::Uuid,
    action: TaskAction,
) -> tasker_protocol::CommandReply {
    let command = TaskCommand {
        protocol_version: tasker_protocol::PROTOCOL_VERSION,
        task_id,
        action,
    };
    let reply = stack
        .client
        .command(ns, &command)
        .await
        .unwrap()
        .wait(Duration::from_secs(30))
        .await
        .unwrap();
    match reply {
        Reply::Command(r) => r,
        other => panic!("expected a command reply, got {other:?}"),
    }
}

async fn wait_until_ended(task_id: uuid::Uuid) -> tasker_protocol::TaskFinished {
    let store = Store::connect(&redis_url(), Duration::ZERO).await.unwrap();
    for _ in 0..300 {
        let snapshot = store.task(task_id).await.unwrap().unwrap();
        if snapshot.status != TaskStatus::Running {
            return snapshot.report();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {task_id} did not end within 15 s");
}

fn state_of(report: &tasker_protocol::TaskFinished, step: &str) -> (StepState, u32) {
    let s = report.steps.iter().find(|s| s.name == step).unwrap();
    (s.state, s.attempts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_billing_ran_out_of_attempts_completes_and_keeps_what_completed() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let ns = unique("retried");
    let broken = std::sync::Arc::new(AtomicBool::new(true));
    let (stack, recorder) = stack_with_flaky_billing(&ns, &broken).await;
    let context = json!({"user_info": {"email": "a@example.com", "name": "A", "plan": "pro"}});

    let failed = stack.run(&ns, "user_registration", context).await.unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(state_of(&failed, "setup_billing_profile"), (StepState::Failed, 3));
    assert_eq!(state_of(&failed, "send_welcome_sequence").0, StepState::Blocked);
    let task_id = failed.task_id;

    // A failed task is retried; a complete one is not.
    broken.store(false, Ordering::SeqCst);
    let reply = command(&stack, &ns, task_id, TaskAction::Retry { step: None }).await;
    assert!(reply.accepted, "{reply:?}");
    assert_eq!(reply.started, ["setup_billing_profile"]);

    let done = wait_until_ended(task_id).await;
    assert_eq!(done.status, TaskStatus::Complete, "{done:#?}");
    // Attempts go on from where they were: three failed, the fourth worked.
    assert_eq!(
        state_of(&done, "setup_billing_profile"),
        (StepState::Completed, 4)
    );
    assert_eq!(
        state_of(&done, "send_welcome_sequence"),
        (StepState::Completed, 1)
    );
    assert_eq!(state_of(&done, "update_user_status"), (StepState::Completed, 1));
    // What had completed ran once, and kept its result.
    assert_eq!(recorder.runs_of(task_id, "create_user_account").len(), 1);
    assert_eq!(recorder.runs_of(task_id, "initialize_preferences").len(), 1);
    assert_eq!(recorder.runs_of(task_id, "setup_billing_profile").len(), 4);
    // The join saw both branches' results.
    let welcome = recorder.runs_of(task_id, "send_welcome_sequence");
    assert_eq!(welcome.len(), 1);
    let mut inputs = welcome[0].inputs.clone();
    inputs.sort();
    assert_eq!(
        inputs,
        [
            "create_user_account",
            "initialize_preferences",
            "setup_billing_profile"
        ]
    );

    let again = command(&stack, &ns, task_id, TaskAction::Retry { step: None }).await;
    assert!(!again.accepted);
    assert!(again.message.contains("complete"), "{}", again.message);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_resolved_by_hand_lets_its_descendants_run() {
    let ns = unique("resolved");
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (stack, recorder) = stack_with_flaky_billing(&ns, &broken).await;
    let context = json!({"user_info": {"email": "b@example.com", "name": "B", "plan": "pro"}});
    let failed = stack.run(&ns, "user_registration", context).await.unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    let task_id = failed.task_id;

    // Only a failed step can be resolved, and only a step the template has.
    let wrong = command(
        &stack,
        &ns,
        task_id,
        TaskAction::Resolve {
            step: "initialize_preferences".into(),
            result: json!({}),
        },
    )
    .await;
    assert!(
        !wrong.accepted && wrong.message.contains("not failed"),
        "{wrong:?}"
    );
    let unknown = command(
        &stack,
        &ns,
        task_id,
        TaskAction::Retry {
            step: Some("nope".into()),
        },
    )
    .await;
    assert!(
        !unknown.accepted && unknown.message.contains("no step"),
        "{unknown:?}"
    );

    let result = r#"{"billing_id":"bill_manual","plan":"pro"}"#;
    let reply = command(
        &stack,
        &ns,
        task_id,
        TaskAction::Resolve {
            step: "setup_billing_profile".into(),
            result: serde_json::from_str(result).unwrap(),
        },
    )
    .await;
    assert!(reply.accepted, "{reply:?}");
    assert_eq!(reply.started, ["send_welcome_sequence"]);

    let done = wait_until_ended(task_id).await;
    assert_eq!(done.status, TaskStatus::Complete, "{done:#?}");
    let billing = done
        .steps
        .iter()
        .find(|s| s.name == "setup_billing_profile")
        .unwrap();
    assert_eq!(billing.result.as_ref().unwrap().get(), result);
    // No handler ran billing again; the hand-made result stands.
    assert_eq!(recorder.runs_of(task_id, "setup_billing_profile").len(), 3);
    assert_eq!(recorder.runs_of(task_id, "update_user_status").len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_in_the_middle_of_a_diamond_lets_running_steps_finish_and_starts_nothing() {
    let ns = unique("cancelled");
    let recorder = Recorder::default();
    // Billing takes long enough to cancel while it runs; preferences is quick.
    let mut worker = Worker::new(worker_config(8)).namespace(&ns);
    for callable in tasker_e2e::chaos::CALLABLES {
        let delay = if callable.contains("SetupBillingProfile") {
            Duration::from_millis(1500)
        } else {
            Duration::ZERO
        };
        worker = worker.handler(*callable, recorder.ok(delay));
    }
    let stack = Stack::start(vec![quick_registration(&ns)], 1, vec![worker])
        .await
        .unwrap();
    let context = json!({"user_info": {"email": "c@example.com", "name": "C", "plan": "pro"}});
    let submitted = stack
        .client
        .submit(tasker_protocol::TaskRequest::new(
            &ns,
            "user_registration",
            context,
        ))
        .await
        .unwrap();
    let task_id = submitted.task_id;
    // Wait until billing runs, and the quick branch beside it is done and
    // recorded, so that billing is the one step in flight.
    eventually("billing starting", || async {
        !recorder.starts_of(task_id, "setup_billing_profile").is_empty()
    })
    .await;
    let store = Store::connect(&redis_url(), Duration::ZERO).await.unwrap();
    eventually("initialize_preferences completing", || async {
        let snapshot = store.task(task_id).await.unwrap().expect("the task exists");
        snapshot
            .steps
            .iter()
            .any(|s| s.name == "initialize_preferences" && s.state == StepState::Completed)
    })
    .await;

    let early = command(&stack, &ns, task_id, TaskAction::Retry { step: None }).await;
    assert!(
        !early.accepted && early.message.contains("still running"),
        "{early:?}"
    );

    let reply = command(&stack, &ns, task_id, TaskAction::Cancel).await;
    assert!(reply.accepted, "{reply:?}");
    assert!(reply.message.contains("cancelling"), "{}", reply.message);
    assert!(
        recorder.runs_of(task_id, "setup_billing_profile").is_empty(),
        "billing was still running when the cancel was accepted"
    );

    // The requester hears of the end, as for any task.
    let report = tasker_e2e::finished(submitted.wait(Duration::from_secs(30)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Cancelled, "{report:#?}");
    assert_eq!(state_of(&report, "create_user_account").0, StepState::Completed);
    assert_eq!(
        state_of(&report, "initialize_preferences").0,
        StepState::Completed
    );
    // The running step finished; what would have come after it never started.
    assert_eq!(state_of(&report, "setup_billing_profile").0, StepState::Completed);
    assert_eq!(recorder.runs_of(task_id, "setup_billing_profile").len(), 1);
    assert_eq!(
        state_of(&report, "send_welcome_sequence"),
        (StepState::Cancelled, 0)
    );
    assert_eq!(state_of(&report, "update_user_status"), (StepState::Cancelled, 0));
    assert!(recorder.runs_of(task_id, "send_welcome_sequence").is_empty());

    let again = command(&stack, &ns, task_id, TaskAction::Cancel).await;
    assert!(
        !again.accepted && again.message.contains("cancelled"),
        "{again:?}"
    );
    let retry = command(&stack, &ns, task_id, TaskAction::Retry { step: None }).await;
    assert!(!retry.accepted, "{retry:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_request_is_listed_with_its_reason_and_replayed_once_its_template_is_deployed() {
    use tasker_coordinator::dlq::DeadLetters;
    let ns = unique("replayed");
    // The namespace is served, but not yet with the template asked for.
    let early = Stack::start(vec![one_step_template(&ns, "other")], 1, vec![])
        .await
        .unwrap();
    let submitted = early.client.create_task(&ns, "later", json!({})).await.unwrap();
    let (request_id, task_id) = (submitted.request_id.to_string(), submitted.task_id);
    match submitted.wait(Duration::from_secs(30)).await.unwrap() {
        Reply::Rejected(r) => assert_eq!(r.code, tasker_protocol::RejectCode::UnknownTemplate),
        other => panic!("expected a rejection, got {other:?}"),
    }
    early.stop().await;

    let dlq = DeadLetters::connect(&tasker_e2e::amqp_url()).await.unwrap();
    let parked = dlq.list().await.unwrap();
    let letter = parked
        .iter()
        .find(|l| l.id == request_id)
        .expect("the request is parked");
    assert!(
        letter.reason.as_deref().unwrap().starts_with("unknown_template"),
        "{letter:?}"
    );
    assert_eq!(letter.routing_key.as_deref(), Some(ns.as_str()));
    // Listing took nothing away.
    assert!(dlq.list().await.unwrap().iter().any(|l| l.id == request_id));

    // The fix: the template is deployed. Then the request is replayed.
    let recorder = Recorder::default();
    let worker = Worker::new(worker_config(2))
        .namespace(&ns)
        .handler("ok", recorder.ok(Duration::ZERO));
    let fixed = Stack::start(vec![one_step_template(&ns, "later")], 1, vec![worker])
        .await
        .unwrap();
    let replayed = dlq.replay(&request_id).await.unwrap().expect("replayed");
    assert_eq!(replayed.id, request_id);
    let done = wait_until_created_and_ended(task_id).await;
    assert_eq!(done.status, TaskStatus::Complete, "{done:#?}");
    assert_eq!(recorder.runs_of(task_id, "only").len(), 1);
    assert!(!dlq.list().await.unwrap().iter().any(|l| l.id == request_id));
    assert!(dlq.replay(&request_id).await.unwrap().is_none());
    dlq.close().await;
    fixed.stop().await;
}

async fn wait_until_created_and_ended(task_id: uuid::Uuid) -> tasker_protocol::TaskFinished {
    let store = Store::connect(&redis_url(), Duration::ZERO).await.unwrap();
    for _ in 0..300 {
        if let Some(snapshot) = store.task(task_id).await.unwrap()
            && snapshot.status != TaskStatus::Running
        {
            return snapshot.report();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {task_id} was not created and ended within 15 s");
}

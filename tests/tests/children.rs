//! Child tasks across namespaces: a support team's refund ticket hands the
//! payment to the payments team's `process_refund`, which runs as a child
//! task on its own queues, coordinator and worker. The parent step holds no
//! worker while the child runs, completes with the child's result, and
//! fails when the child fails, until an operator fixes the child and
//! retries the parent.

use std::time::Duration;

use serde_json::{Value, json};
use tasker_coordinator::Store;
use tasker_coordinator::store::TaskSnapshot;
use tasker_e2e::{Stack, template, unique, worker_config};
use tasker_protocol::{
    CommandReply, PROTOCOL_VERSION, StepState, TaskAction, TaskCommand, TaskFinished, TaskRequest,
    TaskStatus, TaskTemplate,
};
use tasker_worker::{Reply, Worker};
use uuid::Uuid;

const STEP: &str = "execute_refund_workflow";

/// The two teams' namespaces, made up for the test.
struct Teams {
    support: String,
    payments: String,
}

impl Teams {
    fn new() -> Self {
        Self {
            support: unique("customer_success"),
            payments: unique("payments"),
        }
    }

    /// `customer_success/process_refund`, moved to the test's namespace,
    /// with its child in the test's payments namespace.
    fn support_template(&self) -> TaskTemplate {
        let yaml = include_str!("../../templates/customer_success/process_refund.yaml")
            .replace(
                "namespace_name: customer_success",
                &format!("namespace_name: {}", self.support),
            )
            .replace(
                "child_namespace: payments",
                &format!("child_namespace: {}", self.payments),
            );
        assert!(
            yaml.contains(&self.payments),
            "the template names its child's namespace"
        );
        template(&fast_retries(&yaml))
    }

    /// Both versions of `payments/process_refund`, in the test's namespace.
    fn payments_templates(&self) -> Vec<TaskTemplate> {
        [
            include_str!("../../templates/payments/process_refund.yaml"),
            include_str!("../../templates/payments/process_refund_1_1_0.yaml"),
        ]
        .into_iter()
        .map(|yaml| {
            let yaml = yaml.replace(
                "namespace_name: payments",
                &format!("namespace_name: {}", self.payments),
            );
            template(&fast_retries(&yaml))
        })
        .collect()
    }

    fn support_worker(&self, concurrency: u16) -> Worker {
        tasker_example_customer_success::register(
            Worker::new(worker_config(concurrency)).namespace(&self.support),
            &tasker_example_customer_success::Latency::none(),
        )
    }

    /// The payments team's coordinator and worker, then the support
    /// team's, each on its own stack.
    async fn start_both(&self) -> (Stack, Stack) {
        let payments = Stack::start(self.payments_templates(), 1, vec![self.payments_worker()])
            .await
            .unwrap();
        let support = Stack::start(vec![self.support_template()], 1, vec![self.support_worker(4)])
            .await
            .unwrap();
        (payments, support)
    }

    fn payments_worker(&self) -> Worker {
        tasker_example_payments::register(
            Worker::new(worker_config(8)).namespace(&self.payments),
            &tasker_example_payments::Latency::none(),
        )
    }
}

fn fast_retries(yaml: &str) -> String {
    yaml.replace("initial_delay: 5", "initial_delay: 0.02")
        .replace("initial_delay: 2", "initial_delay: 0.02")
        .replace("initial_delay: 1", "initial_delay: 0.02")
}

/// A refund ticket, with fields that script the simulated payment gateway.
fn ticket(ticket_id: &str, gateway: Value) -> Value {
    let mut ticket = tasker_example_customer_success::request::example_ticket(gateway);
    ticket["ticket_id"] = json!(ticket_id);
    ticket
}

/// Waits until the task's `step` has started a child task and waits for
/// it; returns the child's id.
async fn child_of(store: &Store, task_id: Uuid, step: &str) -> Uuid {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(snapshot) = store.task(task_id).await.unwrap()
            && let Some(s) = snapshot.steps.iter().find(|s| s.name == step)
            && let Some(child) = s.child
        {
            assert_eq!(s.state, StepState::Enqueued, "{snapshot:#?}");
            return child;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{step} of {task_id} never waited for a child: {:#?}",
            store.task(task_id).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn step<'a>(report: &'a TaskFinished, name: &str) -> &'a tasker_protocol::StepReport {
    report.steps.iter().find(|s| s.name == name).unwrap()
}

fn result(report: &TaskFinished, name: &str) -> Value {
    serde_json::from_str(step(report, name).result.as_ref().expect("a result").get()).unwrap()
}

async fn snapshot(store: &Store, task_id: Uuid) -> TaskSnapshot {
    store
        .task(task_id)
        .await
        .unwrap()
        .expect("the task is in the store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_ticket_completes_with_the_payments_child_task_and_holds_no_worker_meanwhile() {
    let teams = Teams::new();
    let payments = Stack::start(teams.payments_templates(), 1, vec![]).await.unwrap();
    // One slot: while a step waits for its child, nothing else could run if
    // the step held it.
    let support = Stack::start(vec![teams.support_template()], 1, vec![teams.support_worker(1)])
        .await
        .unwrap();
    let store = Store::connect(&tasker_e2e::redis_url(), Duration::ZERO)
        .await
        .unwrap();

    let first = support
        .client
        .submit(TaskRequest::new(
            &teams.support,
            "process_refund",
            ticket("TKT-1", json!({ "gateway_failures": 1 })),
        ))
        .await
        .unwrap();
    // No payments worker yet: the child waits at its first step.
    let first_child = child_of(&store, first.task_id, STEP).await;
    let second = support
        .client
        .submit(TaskRequest::new(
            &teams.support,
            "process_refund",
            ticket("TKT-2", json!({})),
        ))
        .await
        .unwrap();
    // The one slot ran the second ticket's first four steps.
    let second_child = child_of(&store, second.task_id, STEP).await;
    assert_ne!(first_child, second_child);
    let child = snapshot(&store, first_child).await;
    assert_eq!(child.status, TaskStatus::Running);
    assert_eq!(
        (child.namespace.as_str(), child.name.as_str()),
        (teams.payments.as_str(), "process_refund")
    );
    let parent = child.parent.as_ref().expect("the child names its parent");
    assert_eq!(
        (parent.task_id, parent.step.as_str(), parent.attempt),
        (first.task_id, STEP, 1)
    );

    // The payments team's worker comes up; both children run, and then
    // both tickets.
    let payments_worker = Stack::start(vec![], 0, vec![teams.payments_worker()])
        .await
        .unwrap();
    let first = tasker_e2e::finished(first.wait(Duration::from_secs(60)).await.unwrap()).unwrap();
    let second = tasker_e2e::finished(second.wait(Duration::from_secs(60)).await.unwrap()).unwrap();
    for report in [&first, &second] {
        assert_eq!(report.status, TaskStatus::Complete, "{report:#?}");
        // The step ran once, and its result is the child's.
        assert_eq!(step(report, STEP).attempts, 1);
    }
    let refund = result(&first, STEP);
    assert_eq!(refund["task_id"], first_child.to_string());
    assert_eq!(refund["namespace"], teams.payments);
    assert_eq!(refund["version"], "1.1.0", "the highest version by default");
    let refund_id = refund["results"]["process_gateway_refund"]["refund_id"]
        .as_str()
        .expect("the gateway's refund id");
    assert_eq!(result(&first, "update_ticket_status")["refund_id"], refund_id);
    assert_eq!(step(&first, STEP).child_task_id, Some(first_child));

    let child = snapshot(&store, first_child).await.report();
    assert_eq!(child.status, TaskStatus::Complete, "{child:#?}");
    assert_eq!(
        step(&child, "process_gateway_refund").attempts,
        2,
        "one retryable gateway failure"
    );
    assert_eq!(child.parent.as_ref().map(|p| p.task_id), Some(first.task_id));

    payments_worker.stop().await;
    support.stop().await;
    payments.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_child_task_fails_its_parent_step_until_the_child_is_fixed_and_the_parent_retried() {
    let teams = Teams::new();
    let (payments, support) = teams.start_both().await;
    let declined = ticket("TKT-3", json!({ "gateway_decline": "the card was closed" }));
    let report = support
        .run(&teams.support, "process_refund", declined)
        .await
        .unwrap();
    assert_eq!(report.status, TaskStatus::Failed, "{report:#?}");
    let waited = step(&report, STEP);
    assert_eq!(waited.state, StepState::Failed);
    let error = waited.error.as_ref().expect("why it failed");
    assert_eq!(
        (error.code.as_str(), error.retryable),
        ("child_task_failed", false)
    );
    let child_id = waited.child_task_id.expect("the child's id");
    assert!(
        error.message.contains(&child_id.to_string()) && error.message.contains("GATEWAY_DECLINED"),
        "{}",
        error.message
    );
    assert_eq!(step(&report, "update_ticket_status").state, StepState::Blocked);

    let store = Store::connect(&tasker_e2e::redis_url(), Duration::ZERO)
        .await
        .unwrap();
    let child = snapshot(&store, child_id).await;
    assert_eq!(child.status, TaskStatus::Failed);

    // Retrying the ticket alone finds the same child, still failed: no
    // second refund is started.
    let parent_id = report.task_id;
    let retried = command(
        &support,
        &teams.support,
        parent_id,
        TaskAction::Retry { step: None },
    )
    .await;
    assert!(retried.accepted, "{retried:?}");
    let again = ended(&store, parent_id).await;
    assert_eq!(again.status, TaskStatus::Failed, "{again:#?}");
    assert_eq!(
        (step(&again, STEP).attempts, step(&again, STEP).child_task_id),
        (2, Some(child_id))
    );
    assert_eq!(
        step(&again, STEP).error.as_ref().unwrap().code,
        "child_task_failed"
    );

    // The payments team settles the refund by hand, so the child completes;
    // then the ticket's retry completes with the child's result.
    let receipt = json!({
        "refund_id": "re_by_hand", "payment_id": "pay_3f9a12c4", "amount": 4999,
        "currency": "USD", "status": "succeeded", "attempt": 1,
    });
    let resolved = command(
        &payments,
        &teams.payments,
        child_id,
        TaskAction::Resolve {
            step: "process_gateway_refund".to_owned(),
            result: receipt,
        },
    )
    .await;
    assert!(resolved.accepted, "{resolved:?}");
    assert_eq!(ended(&store, child_id).await.status, TaskStatus::Complete);
    let retried = command(
        &support,
        &teams.support,
        parent_id,
        TaskAction::Retry { step: None },
    )
    .await;
    assert!(retried.accepted, "{retried:?}");
    let done = ended(&store, parent_id).await;
    assert_eq!(done.status, TaskStatus::Complete, "{done:#?}");
    assert_eq!(step(&done, STEP).attempts, 3);
    assert_eq!(result(&done, "update_ticket_status")["refund_id"], "re_by_hand");
    support.stop().await;
    payments.stop().await;
}

async fn command(stack: &Stack, namespace: &str, task_id: Uuid, action: TaskAction) -> CommandReply {
    let command = TaskCommand {
        protocol_version: PROTOCOL_VERSION,
        task_id,
        action,
    };
    let submitted = stack.client.command(namespace, &command).await.unwrap();
    match submitted.wait(Duration::from_secs(30)).await.unwrap() {
        Reply::Command(reply) => reply,
        other => panic!("expected a command reply, got {other:?}"),
    }
}

/// The task's report once it is no longer running.
async fn ended(store: &Store, task_id: Uuid) -> TaskFinished {
    for _ in 0..400 {
        let task = snapshot(store, task_id).await;
        if task.status != TaskStatus::Running {
            return task.report();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {task_id} did not end within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_task_of_a_template_nobody_serves_fails_its_parent_step() {
    let teams = Teams::new();
    // No payments coordinator: the request falls through to the unrouted
    // queue and is refused after the grace period.
    let support = Stack::start(vec![teams.support_template()], 1, vec![teams.support_worker(4)])
        .await
        .unwrap();
    let report = support
        .run(&teams.support, "process_refund", ticket("TKT-4", json!({})))
        .await
        .unwrap();
    assert_eq!(report.status, TaskStatus::Failed, "{report:#?}");
    let error = step(&report, STEP).error.as_ref().expect("why it failed");
    assert_eq!(error.code, "child_task_rejected", "{error:?}");
    assert!(error.message.contains(&teams.payments), "{}", error.message);
    support.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_teams_process_refund_workflows_run_at_once_on_their_own_queues() {
    let teams = Teams::new();
    let (payments, support) = teams.start_both().await;
    let direct = json!({
        "payment_id": "pay_77",
        "refund_amount": 1500,
        "currency": "EUR",
        "reason": "duplicate charge",
        "customer_id": "cus_7",
        "customer_email": "ada@example.com",
        "captured_amount": 9000,
    });
    let (by_payments, by_support) = tokio::join!(
        payments.run(&teams.payments, "process_refund", direct),
        support.run(&teams.support, "process_refund", ticket("TKT-5", json!({}))),
    );
    let (by_payments, by_support) = (by_payments.unwrap(), by_support.unwrap());
    assert_eq!(by_payments.status, TaskStatus::Complete, "{by_payments:#?}");
    assert_eq!(by_support.status, TaskStatus::Complete, "{by_support:#?}");
    // Same template name, two teams: each task ran its own team's steps.
    assert_eq!(by_payments.namespace, teams.payments);
    assert_eq!(by_support.namespace, teams.support);
    assert!(
        by_payments
            .steps
            .iter()
            .any(|s| s.name == "process_gateway_refund")
    );
    assert!(by_support.steps.iter().any(|s| s.name == "check_refund_policy"));
    assert!(by_payments.steps.iter().all(|s| s.state == StepState::Completed));
    assert!(by_support.steps.iter().all(|s| s.state == StepState::Completed));
    // The support ticket's payment went through the payments namespace.
    assert_eq!(result(&by_support, STEP)["namespace"], teams.payments);
    support.stop().await;
    payments.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_parent_cancels_the_child_task_its_step_waits_for() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tasker_worker::{ChildTask, StepContext, StepError, handler_fn};

    let (parent_ns, child_ns) = (unique("parent"), unique("child"));
    let parent_template = template(&format!(
        "name: parent\nnamespace_name: {parent_ns}\nversion: 1.0.0\nsteps:\n\
         \x20 - name: delegate\n    handler: {{ callable: delegate }}\n\
         \x20 - name: after\n    handler: {{ callable: noted }}\n    dependencies: [delegate]\n"
    ));
    let child_template = template(&format!(
        "name: slow\nnamespace_name: {child_ns}\nversion: 1.0.0\nsteps:\n\
         \x20 - name: first\n    handler: {{ callable: hold }}\n\
         \x20 - name: second\n    handler: {{ callable: noted }}\n    dependencies: [first]\n"
    ));
    // `hold` runs until the test releases it; `noted` counts its runs,
    // which must stay at none: nothing after a cancel starts.
    let (held, release, noted) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(AtomicUsize::new(0)),
    );
    let noted_handler = || {
        let noted = noted.clone();
        handler_fn(move |_ctx: StepContext| {
            let noted = noted.clone();
            async move {
                noted.fetch_add(1, Ordering::SeqCst);
                Ok::<_, StepError>(json!({}))
            }
        })
    };
    let hold = {
        let (held, release) = (held.clone(), release.clone());
        handler_fn(move |_ctx: StepContext| {
            let (held, release) = (held.clone(), release.clone());
            async move {
                held.store(true, Ordering::SeqCst);
                release.notified().await;
                Ok::<_, StepError>(json!({}))
            }
        })
    };
    let child_worker = Worker::new(worker_config(4))
        .namespace(&child_ns)
        .handler("hold", hold)
        .handler("noted", noted_handler());
    let delegate = {
        let child_ns = child_ns.clone();
        handler_fn(move |ctx: StepContext| {
            let child_ns = child_ns.clone();
            async move {
                ctx.complete_with_child(ChildTask::new(child_ns, "slow", json!({})))
                    .await
            }
        })
    };
    let parent_worker = Worker::new(worker_config(4))
        .namespace(&parent_ns)
        .handler("delegate", delegate)
        .handler("noted", noted_handler());
    let children = Stack::start(vec![child_template], 1, vec![child_worker])
        .await
        .unwrap();
    let parents = Stack::start(vec![parent_template], 1, vec![parent_worker])
        .await
        .unwrap();
    let store = Store::connect(&tasker_e2e::redis_url(), Duration::ZERO)
        .await
        .unwrap();

    let submitted = parents
        .client
        .submit(TaskRequest::new(&parent_ns, "parent", json!({})))
        .await
        .unwrap();
    let parent_id = submitted.task_id;
    let child_id = child_of(&store, parent_id, "delegate").await;
    tasker_e2e::eventually("the child's first step running", || async {
        held.load(Ordering::SeqCst)
    })
    .await;

    let reply = command(&parents, &parent_ns, parent_id, TaskAction::Cancel).await;
    assert!(reply.accepted, "{reply:?}");
    assert!(reply.message.contains(&child_id.to_string()), "{}", reply.message);
    // The child's coordinator takes the cancel: its pending step is
    // cancelled while its first step still runs.
    tasker_e2e::eventually("the child's second step cancelled", || async {
        snapshot(&store, child_id).await.steps[1].state == StepState::Cancelled
    })
    .await;
    release.notify_one();

    let child = ended(&store, child_id).await;
    assert_eq!(child.status, TaskStatus::Cancelled, "{child:#?}");
    let parent = tasker_e2e::finished(submitted.wait(Duration::from_secs(30)).await.unwrap()).unwrap();
    assert_eq!(parent.status, TaskStatus::Cancelled, "{parent:#?}");
    let waited = step(&parent, "delegate");
    assert_eq!(waited.state, StepState::Failed);
    assert_eq!(
        waited.error.as_ref().map(|e| e.code.as_str()),
        Some("child_task_cancelled")
    );
    assert_eq!(step(&parent, "after").state, StepState::Cancelled);
    assert_eq!(noted.load(Ordering::SeqCst), 0, "a step started after the cancel");
    parents.stop().await;
    children.stop().await;
}

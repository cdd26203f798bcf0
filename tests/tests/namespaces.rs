//! Team namespaces with their own workers: a request may pin a template
//! version and gets the highest one by default, and two namespaces' tasks
//! run at once, each on its own queues and worker.

use serde_json::{Value, json};
use tasker_e2e::{Queues, Stack, eventually, template, unique, worker_config};
use tasker_protocol::{StepState, TaskRequest, TaskStatus, TaskTemplate, topology};
use tasker_worker::Worker;

/// The repository's template at `path`, moved to `namespace`, with retry
/// delays cut for a test.
fn team_template(yaml: &str, from: &str, namespace: &str) -> TaskTemplate {
    let yaml = yaml
        .replace(
            &format!("namespace_name: {from}"),
            &format!("namespace_name: {namespace}"),
        )
        .replace("initial_delay: 5", "initial_delay: 0.02")
        .replace("initial_delay: 2", "initial_delay: 0.02")
        .replace("initial_delay: 1", "initial_delay: 0.02");
    template(&yaml)
}

fn refund() -> Value {
    json!({
        "payment_id": "pay_3f9a12c4",
        "refund_amount": 4999,
        "currency": "USD",
        "reason": "item arrived damaged",
        "customer_id": "cus_42",
        "customer_email": "jane@example.com",
        "captured_amount": 12_000,
        "gateway_failures": 1,
    })
}

fn steps(report: &tasker_protocol::TaskFinished) -> Vec<&str> {
    report.steps.iter().map(|s| s.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_pins_a_version_and_gets_the_highest_by_default_while_two_teams_run_at_once() {
    let payments = unique("payments");
    let shop = unique("ecommerce");
    let templates = vec![
        team_template(
            include_str!("../../templates/payments/process_refund.yaml"),
            "payments",
            &payments,
        ),
        team_template(
            include_str!("../../templates/payments/process_refund_1_1_0.yaml"),
            "payments",
            &payments,
        ),
        team_template(
            include_str!("../../templates/ecommerce/order_processing.yaml"),
            "ecommerce",
            &shop,
        ),
    ];
    let workers = vec![
        tasker_example_payments::register(
            Worker::new(worker_config(8)).namespace(&payments),
            &tasker_example_payments::Latency::none(),
        ),
        tasker_example_ecommerce::register(
            Worker::new(worker_config(8)).namespace(&shop),
            &tasker_example_ecommerce::Latency::none(),
        ),
    ];
    let stack = Stack::start(templates, 1, workers).await.unwrap();

    let mut pinned = TaskRequest::new(&payments, "process_refund", refund());
    pinned.version = Some("1.0.0".into());
    let order = json!({
        "customer": { "id": "cus_7", "email": "ada@example.com", "name": "Ada" },
        "cart_items": [{ "sku": "WIDGET-001", "quantity": 2 }],
        "payment_token": "tok_visa",
    });
    // All three at once: two versions of one team's workflow, and another team's.
    let (pinned, latest, order) = tokio::join!(
        async {
            tasker_e2e::finished(
                stack
                    .client
                    .submit(pinned)
                    .await?
                    .wait(std::time::Duration::from_secs(60))
                    .await?,
            )
        },
        stack.run(&payments, "process_refund", refund()),
        stack.run(&shop, "order_processing", order),
    );
    let (pinned, latest, order) = (pinned.unwrap(), latest.unwrap(), order.unwrap());

    assert_eq!(
        (pinned.status, pinned.version.as_str()),
        (TaskStatus::Complete, "1.0.0"),
        "{pinned:#?}"
    );
    assert_eq!(
        steps(&pinned),
        [
            "validate_payment_eligibility",
            "process_gateway_refund",
            "update_payment_records",
            "notify_customer"
        ]
    );
    assert_eq!(
        (latest.status, latest.version.as_str()),
        (TaskStatus::Complete, "1.1.0"),
        "{latest:#?}"
    );
    assert!(steps(&latest).contains(&"record_refund_audit"));
    // The simulated gateway failed once, retryably, in both versions.
    for report in [&pinned, &latest] {
        let gateway = report
            .steps
            .iter()
            .find(|s| s.name == "process_gateway_refund")
            .unwrap();
        assert_eq!((gateway.state, gateway.attempts), (StepState::Completed, 2));
    }
    assert_eq!(order.status, TaskStatus::Complete, "{order:#?}");
    assert_eq!(order.namespace, shop);
    assert_eq!(steps(&order).len(), 5);
    stack.stop().await;
}

/// A RabbitMQ that is still recovering its queues routes a request to the
/// unrouted queue, where another team's coordinator may see it first. That
/// coordinator waits for the namespace's queue for a grace period before it
/// rejects, and forwards the request once the queue is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrouted_request_waits_for_its_namespace_queue_and_is_forwarded() {
    let other_team = unique("other");
    let late = unique("late");
    let other = Stack::start(vec![tasker_e2e::one_step_template(&other_team, "x")], 1, vec![])
        .await
        .unwrap();
    // No queue for `late` yet: the request goes to the unrouted queue.
    let submitted = other
        .client
        .create_task(&late, "single", json!({}))
        .await
        .unwrap();
    // A coordinator that does not serve the namespace, here the other
    // team's, takes it and holds it while it waits for the namespace's
    // queue, which does not exist yet.
    let queues = Queues::connect().await.unwrap();
    eventually(
        "a coordinator taking the request off the unrouted queue",
        || async { queues.ready(topology::UNROUTED_REQUESTS_QUEUE).await == 0 },
    )
    .await;
    queues.close().await;
    // Now the namespace comes up, with its coordinator and worker.
    let recorder = tasker_e2e::Recorder::default();
    let worker = Worker::new(worker_config(2))
        .namespace(&late)
        .handler("ok", recorder.ok(std::time::Duration::ZERO));
    let team = Stack::start(
        vec![tasker_e2e::one_step_template(&late, "single")],
        1,
        vec![worker],
    )
    .await
    .unwrap();
    let report =
        tasker_e2e::finished(submitted.wait(std::time::Duration::from_secs(20)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete, "{report:#?}");
    assert_eq!(report.namespace, late);
    team.stop().await;
    other.stop().await;
}

//! `customer_success/process_refund`, run through this crate's handlers.
//! `execute_refund_workflow` starts a child task in the payments namespace,
//! which runs no handler here: these runs either stop there, with the
//! child's request in hand, or stand in for the child's result.

use serde_json::{Value, json};
use tasker_example_customer_success::{Latency, handlers};
use tasker_protocol::ParentStep;

const TEMPLATE: &str = include_str!("../../../templates/customer_success/process_refund.yaml");

fn request(extra: Value) -> Value {
    tasker_example_customer_success::request::example_ticket(extra)
}

/// What the payments child task would complete with.
fn child_result() -> Value {
    json!({
        "task_id": "9e027b64-c13a-5d8e-8f20-41c7d6a93b15",
        "namespace": "payments",
        "name": "process_refund",
        "version": "1.1.0",
        "results": {
            "validate_payment_eligibility": { "eligible": true },
            "process_gateway_refund": { "refund_id": "re_5d1c", "status": "succeeded" },
        },
    })
}

#[test]
fn every_step_has_a_handler() {
    let registered = handlers(&Latency::none());
    let template = harness::template(TEMPLATE);
    let missing: Vec<&str> = template
        .steps
        .iter()
        .filter(|step| !registered.iter().any(|(callable, _)| *callable == step.callable))
        .map(|step| step.name.as_str())
        .collect();
    assert!(missing.is_empty(), "no handler for {missing:?}");
}

#[tokio::test]
async fn the_payment_step_asks_the_payment_service_for_the_approved_refund() {
    let template = harness::template(TEMPLATE);
    let context = request(json!({ "gateway_failures": 1, "manager_decision": "approve" }));
    let run = harness::run(&template, &handlers(&Latency::none()), &context, &[]).await;
    // The run stops where the step waits for its child.
    assert_eq!(run.failure(), ("execute_refund_workflow", "waiting_for_child"));
    let child = &run.children["execute_refund_workflow"];
    assert_eq!(
        (child.namespace.as_str(), child.name.as_str()),
        ("payments", "process_refund")
    );
    assert_eq!(child.version, None, "the highest version");
    assert_eq!(child.context["refund_amount"], 4999);
    assert_eq!(child.context["approved_by"], "policy:auto");
    assert_eq!(
        child.context["gateway_failures"], 1,
        "simulation fields pass through"
    );
    assert!(child.context.get("manager_decision").is_none());
    // It reports to this step, and every attempt asks for the same child.
    let parent: &ParentStep = child.parent.as_ref().expect("a parent step");
    assert_eq!(
        (
            parent.namespace.as_str(),
            parent.name.as_str(),
            parent.step.as_str(),
            parent.attempt
        ),
        ("customer_success", "process_refund", "execute_refund_workflow", 1)
    );
    assert_eq!(
        child.idempotency_key.as_deref(),
        Some(parent.idempotency_key().as_str())
    );
    let waiting = &run.failed.as_ref().unwrap().1;
    assert_eq!(
        waiting,
        &tasker_worker::StepError::WaitingForChild {
            child_task_id: child.task_id().unwrap()
        }
    );
}

#[tokio::test]
async fn a_finished_refund_resolves_the_ticket() {
    let stand_in = [("execute_refund_workflow", child_result())];
    let run = harness::run(
        &harness::template(TEMPLATE),
        &handlers(&Latency::none()),
        &request(json!({})),
        &stand_in,
    )
    .await;
    assert!(run.failed.is_none(), "{:?}", run.failed);
    let ticket = run.result("update_ticket_status");
    assert_eq!(ticket["status"], "resolved");
    assert_eq!(ticket["refund_id"], "re_5d1c");
    assert_eq!(
        ticket["note"],
        "Refunded $49.99 on payment pay_3f9a12c4 (refund re_5d1c)."
    );
}

#[tokio::test]
async fn large_refunds_go_to_the_manager() {
    let stand_in = [("execute_refund_workflow", child_result())];
    let template = harness::template(TEMPLATE);
    let approved = request(json!({ "refund_amount": 45_000, "manager_id": "mgr_ana" }));
    let run = harness::run(&template, &handlers(&Latency::none()), &approved, &stand_in).await;
    assert!(run.failed.is_none(), "{:?}", run.failed);
    assert_eq!(run.result("check_refund_policy")["requires_approval"], true);
    assert_eq!(run.result("get_manager_approval")["approved_by"], "mgr_ana");
    assert_eq!(run.result("update_ticket_status")["approved_by"], "mgr_ana");

    let denied = request(json!({ "refund_amount": 45_000, "manager_decision": "deny" }));
    let run = harness::run(&template, &handlers(&Latency::none()), &denied, &stand_in).await;
    assert_eq!(run.failure(), ("get_manager_approval", "MANAGER_DENIED"));
    assert!(!run.results.contains_key("update_ticket_status"));

    let unclear = request(json!({ "refund_amount": 45_000, "manager_decision": "maybe" }));
    let run = harness::run(&template, &handlers(&Latency::none()), &unclear, &stand_in).await;
    assert_eq!(run.failure(), ("get_manager_approval", "invalid_input"));
}

#[tokio::test]
async fn the_template_sets_the_policy() {
    let template = harness::template(TEMPLATE);
    let window = template.steps[template.step_index("check_refund_policy").expect("a policy step")]
        .initialization["refund_window_days"]
        .as_i64()
        .expect("a refund window");
    let stand_in = [("execute_refund_workflow", child_result())];
    let run = harness::run(
        &template,
        &handlers(&Latency::none()),
        &request(json!({ "days_since_purchase": window })),
        &stand_in,
    )
    .await;
    assert!(run.failed.is_none(), "{:?}", run.failed);
    let late = request(json!({ "days_since_purchase": window + 1 }));
    let run = harness::run(&template, &handlers(&Latency::none()), &late, &stand_in).await;
    assert_eq!(run.failure(), ("check_refund_policy", "REFUND_WINDOW_EXPIRED"));
}

#[tokio::test]
async fn bad_requests_fail_validation() {
    for (extra, code) in [
        (json!({ "refund_amount": 0 }), "INVALID_REFUND_AMOUNT"),
        (json!({ "currency": "XYZ" }), "UNSUPPORTED_CURRENCY"),
        (json!({ "ticket_id": null }), "MISSING_TICKET_ID"),
        (json!({ "days_since_purchase": null }), "MISSING_PURCHASE_DATE"),
    ] {
        let run = harness::run(
            &harness::template(TEMPLATE),
            &handlers(&Latency::none()),
            &request(extra),
            &[],
        )
        .await;
        assert_eq!(run.failure(), ("validate_refund_request", code));
    }
}

use tasker_worker::testing as harness;

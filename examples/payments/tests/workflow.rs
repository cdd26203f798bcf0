//! Both versions of `payments/process_refund`, run end to end through this
//! crate's handlers, with the simulated ledger and gateway scripted from the
//! context.

use serde_json::{Value, json};
use tasker_example_payments::{Latency, handlers};

const V1_0: &str = include_str!("../../../templates/payments/process_refund.yaml");
const V1_1: &str = include_str!("../../../templates/payments/process_refund_1_1_0.yaml");

fn request(extra: Value) -> Value {
    let mut context = json!({
        "payment_id": "pay_3f9a12c4",
        "refund_amount": 4999,
        "currency": "USD",
        "reason": "item arrived damaged",
        "customer_id": "cus_42",
        "customer_email": "jane@example.com",
        "captured_amount": 12_000,
    });
    if let (Some(base), Some(extra)) = (context.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    context
}

#[test]
fn every_step_of_both_versions_has_a_handler() {
    let registered = handlers(&Latency::none());
    for yaml in [V1_0, V1_1] {
        let template = harness::template(yaml);
        for step in &template.steps {
            assert!(
                registered.iter().any(|(callable, _)| *callable == step.callable),
                "{}: no handler for {}",
                template.key(),
                step.callable
            );
        }
    }
}

#[tokio::test]
async fn version_1_0_refunds_and_notifies() {
    let run = harness::run(
        &harness::template(V1_0),
        &handlers(&Latency::none()),
        &request(json!({})),
        &[],
    )
    .await;
    assert!(run.failed.is_none(), "{:?}", run.failed);
    let receipt = run.result("process_gateway_refund");
    let ledger = run.result("update_payment_records");
    assert_eq!(ledger["refund_id"], receipt["refund_id"]);
    assert_eq!(ledger["payment_status"], "partially_refunded");
    assert_eq!(ledger["remaining_refundable"], 12_000 - 4999);
    let notice = run.result("notify_customer");
    assert_eq!(notice["recipient"], "jane@example.com");
    assert_eq!(notice["subject"], "Your refund of $49.99 is on its way");
    assert!(!run.results.contains_key("record_refund_audit"));
}

#[tokio::test]
async fn version_1_1_audits_before_it_notifies() {
    let template = harness::template(V1_1);
    let audit = template.step_index("record_refund_audit").expect("an audit step");
    let notify = template.step_index("notify_customer").expect("a notify step");
    assert!(template.dag.ancestors(notify).contains(&audit));

    let context = request(json!({ "requested_by": "agent_sam", "ticket_id": "TKT-1042" }));
    let run = harness::run(&template, &handlers(&Latency::none()), &context, &[]).await;
    assert!(run.failed.is_none(), "{:?}", run.failed);
    let record = run.result("record_refund_audit");
    assert_eq!(
        record["refund_id"],
        run.result("process_gateway_refund")["refund_id"]
    );
    assert_eq!(record["status_before"], "captured");
    assert_eq!(record["status_after"], "partially_refunded");
    assert_eq!(record["requested_by"], "agent_sam");
    assert_eq!(record["ticket_id"], "TKT-1042");
}

#[tokio::test]
async fn scripted_gateway_failures_are_retried() {
    let context = request(json!({ "gateway_failures": 2, "gateway_failure": "rate_limited" }));
    let run = harness::run(
        &harness::template(V1_0),
        &handlers(&Latency::none()),
        &context,
        &[],
    )
    .await;
    assert!(run.failed.is_none(), "{:?}", run.failed);
    assert_eq!(run.attempts["process_gateway_refund"], 3);
    assert_eq!(run.result("process_gateway_refund")["attempt"], 3);
}

#[tokio::test]
async fn a_gateway_that_keeps_failing_exhausts_the_attempts() {
    let template = harness::template(V1_0);
    let step = &template.steps[template
        .step_index("process_gateway_refund")
        .expect("the gateway step")];
    let context = request(json!({ "gateway_failures": step.retry.max_attempts }));
    let run = harness::run(&template, &handlers(&Latency::none()), &context, &[]).await;
    assert_eq!(run.failure(), ("process_gateway_refund", "GATEWAY_TIMEOUT"));
    assert_eq!(run.attempts["process_gateway_refund"], step.retry.max_attempts);
    assert!(!run.results.contains_key("update_payment_records"));
}

#[tokio::test]
async fn a_decline_stops_the_refund_at_once() {
    let context = request(json!({ "gateway_decline": "card account closed" }));
    let run = harness::run(
        &harness::template(V1_0),
        &handlers(&Latency::none()),
        &context,
        &[],
    )
    .await;
    assert_eq!(run.failure(), ("process_gateway_refund", "GATEWAY_DECLINED"));
    assert_eq!(run.attempts["process_gateway_refund"], 1);
}

#[tokio::test]
async fn ineligible_payments_fail_the_first_step() {
    for (extra, code) in [
        (json!({ "payment_id": "pay_missing_77" }), "PAYMENT_NOT_FOUND"),
        (json!({ "already_refunded_amount": 12_000 }), "ALREADY_REFUNDED"),
        (json!({ "refund_amount": 20_000 }), "AMOUNT_EXCEEDS_CAPTURED"),
        (json!({ "refund_amount": "49.99" }), "invalid_input"),
    ] {
        let run = harness::run(
            &harness::template(V1_0),
            &handlers(&Latency::none()),
            &request(extra),
            &[],
        )
        .await;
        assert_eq!(run.failure(), ("validate_payment_eligibility", code));
        assert_eq!(
            run.attempts["validate_payment_eligibility"], 1,
            "permanent errors are not retried"
        );
    }
}

use tasker_worker::testing as harness;

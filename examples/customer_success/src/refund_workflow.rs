//! The refund itself happens in the payment service: `execute_refund_workflow`
//! starts the `payments` namespace's `process_refund` as a child task and
//! completes with the child's result. What the child is asked to do lives
//! here.

use serde_json::{Map, Value, json};
use tasker_worker::{StepContext, StepError};

use crate::policy::Approval;
use crate::request::ValidatedRefund;

/// The namespace of the child task, unless the step's
/// `handler.initialization.child_namespace` names another.
pub const PAYMENTS_NAMESPACE: &str = "payments";

/// The template of the child task, unless the step's
/// `handler.initialization.child_task` names another.
pub const PAYMENTS_TASK: &str = "process_refund";

/// The child task's namespace and template name, from the step's
/// `handler.initialization`.
///
/// # Errors
///
/// A permanent error if a setting is there but is not a string.
pub fn child_template(ctx: &StepContext) -> Result<(String, String), StepError> {
    Ok((
        ctx.initialization("child_namespace")?
            .unwrap_or_else(|| PAYMENTS_NAMESPACE.to_owned()),
        ctx.initialization("child_task")?
            .unwrap_or_else(|| PAYMENTS_TASK.to_owned()),
    ))
}

/// Fields of the parent's context that script the simulated payment ledger
/// and gateway; they pass through to the child unchanged, so that one
/// request can exercise the whole chain.
pub const SIMULATION_FIELDS: [&str; 5] = [
    "captured_amount",
    "already_refunded_amount",
    "gateway_failures",
    "gateway_failure",
    "gateway_decline",
];

/// The child task's context, built from the validated request, the
/// approval, and the parent's context for the simulation fields.
#[must_use]
pub fn payments_request(
    context: &Map<String, Value>,
    refund: &ValidatedRefund,
    approval: &Approval,
) -> Value {
    let mut child = json!({
        "payment_id": refund.payment_id,
        "refund_amount": refund.refund_amount,
        "currency": refund.currency,
        "reason": refund.reason,
        "customer_id": refund.customer_id,
        "customer_email": refund.customer_email,
        "order_id": refund.order_id,
        "ticket_id": refund.ticket_id,
        "requested_by": refund.requested_by,
        "approved_by": approval.approved_by,
        "source": "customer_success/process_refund",
    });
    if let Some(fields) = child.as_object_mut() {
        // Absent optional fields are left out rather than sent as null.
        fields.retain(|_, v| !v.is_null());
        for key in SIMULATION_FIELDS {
            if let Some(value) = context.get(key).filter(|v| !v.is_null()) {
                fields.insert(key.to_owned(), value.clone());
            }
        }
    }
    child
}

/// The gateway's refund id in the child's result: in one of the child's
/// step `results` (the result of `process_gateway_refund` carries one).
#[must_use]
pub fn refund_id_of(result: &Value) -> Option<&str> {
    result
        .get("results")?
        .as_object()?
        .values()
        .find_map(|step| step.get("refund_id").and_then(Value::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ApprovalMethod;
    use tasker_example_payments::refund::{RefundRequest, check_eligibility};

    fn refund() -> ValidatedRefund {
        ValidatedRefund {
            ticket_id: "TKT-1042".to_owned(),
            customer_id: "cus_42".to_owned(),
            customer_email: Some("jane@example.com".to_owned()),
            order_id: None,
            payment_id: "pay_3f9a12".to_owned(),
            refund_amount: 12_500,
            currency: "USD".to_owned(),
            reason: "item arrived damaged".to_owned(),
            requested_by: "agent_sam".to_owned(),
            days_since_purchase: 4,
        }
    }

    fn approval() -> Approval {
        Approval {
            approved_by: "mgr_ana".to_owned(),
            method: ApprovalMethod::Manager,
        }
    }

    fn context(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn asks_payments_for_the_validated_refund() {
        let parent = context(json!({ "refund_amount": "ignored: the validated amount wins" }));
        let child = payments_request(&parent, &refund(), &approval());
        assert_eq!(child["payment_id"], "pay_3f9a12");
        assert_eq!(child["refund_amount"], 12_500);
        assert_eq!(child["currency"], "USD");
        assert_eq!(child["approved_by"], "mgr_ana");
        assert_eq!(child["ticket_id"], "TKT-1042");
        assert!(child.get("order_id").is_none(), "no null fields: {child}");
    }

    #[test]
    fn passes_the_simulation_fields_through_and_nothing_else() {
        let parent = context(json!({
            "gateway_failures": 2,
            "gateway_failure": "rate_limited",
            "captured_amount": 20_000,
            "gateway_decline": null,
            "manager_decision": "approve",
        }));
        let child = payments_request(&parent, &refund(), &approval());
        assert_eq!(child["gateway_failures"], 2);
        assert_eq!(child["gateway_failure"], "rate_limited");
        assert_eq!(child["captured_amount"], 20_000);
        assert!(child.get("gateway_decline").is_none());
        assert!(child.get("manager_decision").is_none());
    }

    #[test]
    fn the_payments_service_accepts_the_request() {
        let parent = context(json!({ "captured_amount": 20_000, "already_refunded_amount": 5_000 }));
        let child = payments_request(&parent, &refund(), &approval());
        let request: RefundRequest = serde_json::from_value(child).expect("the payments request shape");
        let eligible = check_eligibility(&request).expect("eligible for a refund");
        assert_eq!(eligible.refund_amount, 12_500);
        assert_eq!(eligible.remaining_after(), 20_000 - 5_000 - 12_500);
        assert_eq!(eligible.customer_email.as_deref(), Some("jane@example.com"));
    }

    #[test]
    fn finds_the_refund_id_in_a_step_result_of_the_child() {
        let child = json!({
            "task_id": "9e027b64-c13a-5d8e-8f20-41c7d6a93b15",
            "namespace": "payments",
            "name": "process_refund",
            "version": "1.1.0",
            "results": {
                "validate_payment_eligibility": { "eligible": true },
                "process_gateway_refund": { "refund_id": "re_2", "status": "succeeded" },
            },
        });
        assert_eq!(refund_id_of(&child), Some("re_2"));
        assert_eq!(
            refund_id_of(&json!({ "results": { "a": { "status": "done" } } })),
            None
        );
        assert_eq!(
            refund_id_of(&json!({ "refund_id": "re_1" })),
            None,
            "not a child's result"
        );
        assert_eq!(refund_id_of(&json!(null)), None);
    }
}

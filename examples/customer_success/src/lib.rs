//! The `customer_success` namespace: the handlers of `process_refund`, which
//! takes a support agent's refund request from validation to a resolved
//! ticket. Each step simulates its service (no external calls) with a short,
//! configurable latency.
//!
//! ```text
//! validate_refund_request ─▶ check_refund_policy ─▶ get_manager_approval ─▶ execute_refund_workflow ─▶ update_ticket_status
//!                                                                                  │
//!                                                                                  └─ child task: payments/process_refund
//! ```
//!
//! `execute_refund_workflow` starts the payment service's `process_refund`
//! as a child task and completes with its result; no worker of this
//! service waits for the payment meanwhile. The request the child gets is
//! built in [`refund_workflow::payments_request`].
//!
//! - [`request`]: the request as filed, and its validation;
//! - [`policy`]: the refund window, the limits, and the approval;
//! - [`refund_workflow`]: what the payment service is asked to do;
//! - [`money`]: currencies and how amounts are shown.

#![warn(missing_docs)]

pub mod money;
pub mod policy;
pub mod refund_workflow;
pub mod request;

use std::ops::Range;
use std::time::Duration;

use serde_json::{Value, json};
use tasker_worker::{ChildTask, StepContext, StepError, StepHandler, Worker};

use crate::money::format_money;
use crate::policy::{
    Approval, ManagerDecision, ManagerReview, PolicyDecision, RefundPolicy, approve, check_policy,
};
use crate::refund_workflow::{child_template, payments_request, refund_id_of};
use crate::request::{RefundTicket, ValidatedRefund, validate};

/// The namespace these handlers serve.
pub const NAMESPACE: &str = "customer_success";

/// How long each simulated service call takes, picked at random from a range
/// of milliseconds. Zero for tests; a little for demos.
#[derive(Debug, Clone)]
pub struct Latency(pub Range<u64>);

impl Latency {
    /// No latency.
    #[must_use]
    pub fn none() -> Self {
        Self(0..0)
    }

    async fn wait(&self) {
        if self.0.is_empty() {
            return;
        }
        let ms = rand::random_range(self.0.clone());
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// The handlers of `process_refund`, each with its template `callable`.
///
/// [`register`] puts them on a worker; the workflow tests run the
/// templates' steps through them directly.
#[must_use]
pub fn handlers(latency: &Latency) -> Vec<(&'static str, Box<dyn StepHandler>)> {
    vec![
        (
            "CustomerSuccess::StepHandlers::ValidateRefundRequestHandler",
            Box::new(ValidateRefundRequest(latency.clone())),
        ),
        (
            "CustomerSuccess::StepHandlers::CheckRefundPolicyHandler",
            Box::new(CheckRefundPolicy(latency.clone())),
        ),
        (
            "CustomerSuccess::StepHandlers::GetManagerApprovalHandler",
            Box::new(GetManagerApproval(latency.clone())),
        ),
        (
            "CustomerSuccess::StepHandlers::ExecuteRefundWorkflowHandler",
            Box::new(ExecuteRefundWorkflow),
        ),
        (
            "CustomerSuccess::StepHandlers::UpdateTicketStatusHandler",
            Box::new(UpdateTicketStatus(latency.clone())),
        ),
    ]
}

/// Registers [`handlers`] on `worker`. The caller chooses the namespaces
/// the worker serves.
#[must_use]
pub fn register(worker: Worker, latency: &Latency) -> Worker {
    handlers(latency)
        .into_iter()
        .fold(worker, |worker, (callable, handler)| {
            worker.handler(callable, Registered(handler))
        })
}

/// A handler from [`handlers`], as [`Worker::handler`] takes it.
struct Registered(Box<dyn StepHandler>);

#[async_trait::async_trait]
impl StepHandler for Registered {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        self.0.call(ctx).await
    }
}

/// Checks that the request has everything a refund needs. Every problem is
/// permanent; see [`request::validate`].
pub struct ValidateRefundRequest(pub Latency);

#[async_trait::async_trait]
impl StepHandler for ValidateRefundRequest {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let ticket = RefundTicket::from_context(ctx)?;
        let refund = validate(&ticket, chrono::Utc::now().date_naive())?;
        self.0.wait().await;
        let mut result = json!(refund);
        result["validated_at"] = json!(chrono::Utc::now().to_rfc3339());
        Ok(result)
    }
}

/// Checks the refund against the policy in the step's
/// `handler.initialization`; see [`policy::check_policy`].
pub struct CheckRefundPolicy(pub Latency);

#[async_trait::async_trait]
impl StepHandler for CheckRefundPolicy {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let refund: ValidatedRefund = ctx.dependency_result("validate_refund_request")?;
        let policy = RefundPolicy::from_initialization(ctx)?;
        let decision = check_policy(&refund, &policy)?;
        self.0.wait().await;
        let mut result = json!(decision);
        result["checked_at"] = json!(chrono::Utc::now().to_rfc3339());
        Ok(result)
    }
}

/// Gets the refund approved: by policy under the auto-approval limit,
/// otherwise by the (simulated) manager on the request; see
/// [`policy::approve`].
pub struct GetManagerApproval(pub Latency);

#[async_trait::async_trait]
impl StepHandler for GetManagerApproval {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let refund: ValidatedRefund = ctx.dependency_result("validate_refund_request")?;
        let decision: PolicyDecision = ctx.dependency_result("check_refund_policy")?;
        let review = ManagerReview {
            decision: ctx.input_or("manager_decision", ManagerDecision::default())?,
            manager_id: ctx.input_or("manager_id", None)?,
            note: ctx.input_or("manager_note", None)?,
        };
        let approval = approve(&refund, &decision, &review)?;
        self.0.wait().await;
        let mut result = json!(approval);
        result["approved"] = json!(true);
        result["approved_at"] = json!(chrono::Utc::now().to_rfc3339());
        Ok(result)
    }
}

/// Has the payment service refund the payment: starts its
/// `process_refund` as a child task (the namespace and template come from
/// the step's `handler.initialization`), and completes with the child's
/// result once the child finishes.
pub struct ExecuteRefundWorkflow;

#[async_trait::async_trait]
impl StepHandler for ExecuteRefundWorkflow {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let refund: ValidatedRefund = ctx.dependency_result("validate_refund_request")?;
        let approval: Approval = ctx.dependency_result("get_manager_approval")?;
        let (namespace, name) = child_template(ctx)?;
        let request = payments_request(ctx.context(), &refund, &approval);
        ctx.complete_with_child(ChildTask::new(namespace, name, request))
            .await
    }
}

/// Resolves the ticket with the outcome of the refund.
pub struct UpdateTicketStatus(pub Latency);

#[async_trait::async_trait]
impl StepHandler for UpdateTicketStatus {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let refund: ValidatedRefund = ctx.dependency_result("validate_refund_request")?;
        let approval: Approval = ctx.dependency_result("get_manager_approval")?;
        let outcome: Value = ctx.dependency_result("execute_refund_workflow")?;
        let refund_id = refund_id_of(&outcome).map(str::to_owned);
        let amount = format_money(refund.refund_amount, &refund.currency);
        let note = match &refund_id {
            Some(id) => format!(
                "Refunded {amount} on payment {} (refund {id}).",
                refund.payment_id
            ),
            None => format!("Refunded {amount} on payment {}.", refund.payment_id),
        };
        self.0.wait().await;
        Ok(json!({
            "ticket_id": refund.ticket_id,
            "customer_id": refund.customer_id,
            "status": "resolved",
            "resolution": "refund_issued",
            "refund_id": refund_id,
            "refund_amount": refund.refund_amount,
            "currency": refund.currency,
            "approved_by": approval.approved_by,
            "resolved_by": refund.requested_by,
            "note": note,
            "resolved_at": chrono::Utc::now().to_rfc3339(),
        }))
    }
}

//! The `payments` namespace: the handlers of `process_refund`, which returns
//! money to a customer through a simulated payment gateway. Nothing here
//! calls an outside service; each step waits a short, configurable latency.
//!
//! ```text
//! 1.0.0  validate_payment_eligibility ─▶ process_gateway_refund ─▶ update_payment_records ─▶ notify_customer
//! 1.1.0  validate_payment_eligibility ─▶ process_gateway_refund ─▶ update_payment_records ─▶ record_refund_audit ─▶ notify_customer
//! ```
//!
//! One worker serves both versions: 1.1.0 only adds a step.
//!
//! - [`refund`]: the request, the simulated ledger lookup, and eligibility;
//! - [`gateway`]: the simulated gateway and the context fields that script
//!   its failures;
//! - [`ledger`]: what a refund changes in the payment's record;
//! - [`money`]: currencies and how amounts are shown.

#![warn(missing_docs)]

pub mod gateway;
pub mod ledger;
pub mod money;
pub mod refund;

use std::ops::Range;
use std::time::Duration;

use serde_json::{Value, json};
use tasker_worker::{StepContext, StepError, StepHandler, Worker};
use uuid::Uuid;

use crate::gateway::{GatewayReceipt, SimulatedGateway};
use crate::ledger::{LedgerUpdate, apply_refund};
use crate::money::format_money;
use crate::refund::{EligibleRefund, RefundRequest, check_eligibility};

/// The namespace these handlers serve.
pub const NAMESPACE: &str = "payments";

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

/// The handlers of both versions of `process_refund`, each with its
/// template `callable`.
///
/// [`register`] puts them on a worker; the workflow tests run the
/// templates' steps through them directly.
#[must_use]
pub fn handlers(latency: &Latency) -> Vec<(&'static str, Box<dyn StepHandler>)> {
    vec![
        (
            "Payments::StepHandlers::ValidatePaymentEligibilityHandler",
            Box::new(ValidatePaymentEligibility(latency.clone())),
        ),
        (
            "Payments::StepHandlers::ProcessGatewayRefundHandler",
            Box::new(ProcessGatewayRefund(latency.clone())),
        ),
        (
            "Payments::StepHandlers::UpdatePaymentRecordsHandler",
            Box::new(UpdatePaymentRecords(latency.clone())),
        ),
        (
            "Payments::StepHandlers::RecordRefundAuditHandler",
            Box::new(RecordRefundAudit(latency.clone())),
        ),
        (
            "Payments::StepHandlers::NotifyCustomerHandler",
            Box::new(NotifyCustomer(latency.clone())),
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

/// An id with `prefix` derived from the step's idempotency key, so that a
/// repeated run produces the same record instead of a second one.
fn stable_id(prefix: &str, ctx: &StepContext) -> String {
    let key = Uuid::new_v5(&Uuid::NAMESPACE_OID, ctx.idempotency_key().as_bytes());
    format!("{prefix}_{}", &key.simple().to_string()[..24])
}

/// Looks the payment up in the ledger and checks that the refund fits what
/// is left of it. Every refusal is permanent; see [`check_eligibility`].
pub struct ValidatePaymentEligibility(pub Latency);

#[async_trait::async_trait]
impl StepHandler for ValidatePaymentEligibility {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let request = RefundRequest::from_context(ctx)?;
        let refund = check_eligibility(&request)?;
        self.0.wait().await;
        let mut result = json!(refund);
        result["refundable_amount"] = json!(
            refund
                .captured_amount
                .saturating_sub(refund.already_refunded_amount)
        );
        result["eligible"] = json!(true);
        result["checked_at"] = json!(chrono::Utc::now().to_rfc3339());
        Ok(result)
    }
}

/// Sends the refund to the gateway. Its failures are scripted from the task
/// context; see [`gateway`].
pub struct ProcessGatewayRefund(pub Latency);

#[async_trait::async_trait]
impl StepHandler for ProcessGatewayRefund {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let refund: EligibleRefund = ctx.dependency_result("validate_payment_eligibility")?;
        let gateway = SimulatedGateway::from_context(ctx)?;
        self.0.wait().await;
        let receipt = gateway.refund(&refund, ctx.attempt(), &ctx.idempotency_key())?;
        let mut result = json!(receipt);
        result["gateway"] = json!("simulated");
        result["processed_at"] = json!(chrono::Utc::now().to_rfc3339());
        Ok(result)
    }
}

/// Books the refund in the payment's ledger record.
pub struct UpdatePaymentRecords(pub Latency);

#[async_trait::async_trait]
impl StepHandler for UpdatePaymentRecords {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let refund: EligibleRefund = ctx.dependency_result("validate_payment_eligibility")?;
        let receipt: GatewayReceipt = ctx.dependency_result("process_gateway_refund")?;
        let update = apply_refund(&refund, &receipt)?;
        self.0.wait().await;
        let mut result = json!(update);
        result["ledger_entry_id"] = json!(stable_id("le", ctx));
        result["updated_at"] = json!(chrono::Utc::now().to_rfc3339());
        Ok(result)
    }
}

/// Writes the refund's audit record: who asked, why, and what changed
/// (version 1.1.0 of the template).
pub struct RecordRefundAudit(pub Latency);

#[async_trait::async_trait]
impl StepHandler for RecordRefundAudit {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let refund: EligibleRefund = ctx.dependency_result("validate_payment_eligibility")?;
        let update: LedgerUpdate = ctx.dependency_result("update_payment_records")?;
        let requested_by: String = ctx.input_or("requested_by", "system".to_owned())?;
        let ticket_id: Option<String> = ctx.input_or("ticket_id", None)?;
        self.0.wait().await;
        Ok(json!({
            "audit_id": stable_id("aud", ctx),
            "task_id": ctx.task_id(),
            "payment_id": update.payment_id,
            "refund_id": update.refund_id,
            "amount": refund.refund_amount,
            "currency": refund.currency,
            "reason": refund.reason,
            "requested_by": requested_by,
            "ticket_id": ticket_id,
            "status_before": update.previous_status,
            "status_after": update.payment_status,
            "recorded_at": chrono::Utc::now().to_rfc3339(),
        }))
    }
}

/// Emails the customer that the refund is on its way, when the request gave
/// an address; a refund without one is still complete.
pub struct NotifyCustomer(pub Latency);

#[async_trait::async_trait]
impl StepHandler for NotifyCustomer {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let refund: EligibleRefund = ctx.dependency_result("validate_payment_eligibility")?;
        let receipt: GatewayReceipt = ctx.dependency_result("process_gateway_refund")?;
        let Some(recipient) = refund.customer_email.as_deref().filter(|e| !e.trim().is_empty()) else {
            return Ok(json!({
                "notified": false,
                "reason": "the refund request has no customer_email",
                "customer_id": refund.customer_id,
                "refund_id": receipt.refund_id,
            }));
        };
        let amount = format_money(refund.refund_amount, &refund.currency);
        self.0.wait().await;
        Ok(json!({
            "notified": true,
            "channel": "email",
            "recipient": recipient,
            "customer_id": refund.customer_id,
            "subject": format!("Your refund of {amount} is on its way"),
            "body": format!(
                "We have refunded {amount} to your original payment method (refund {}). \
                 It usually reaches your account within 5 to 10 business days.",
                receipt.refund_id
            ),
            "refund_id": receipt.refund_id,
            "message_id": stable_id("msg", ctx),
            "sent_at": chrono::Utc::now().to_rfc3339(),
        }))
    }
}

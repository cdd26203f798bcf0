//! The `ecommerce` namespace: the handlers of `order_processing`, which
//! takes a cart from checkout to a confirmed order. Each step simulates its
//! service (no external calls) with a short, configurable latency.
//!
//! ```text
//! validate_cart ─▶ process_payment ─▶ update_inventory ─▶ create_order ─▶ send_confirmation
//! ```
//!
//! - [`cart`]: the order request, cart validation and pricing;
//! - [`catalog`]: the products and their stock;
//! - [`processor`]: the simulated payment processor and the context fields
//!   that script its failures;
//! - [`inventory`]: holding stock for a paid order.

#![warn(missing_docs)]

pub mod cart;
pub mod catalog;
pub mod inventory;
pub mod processor;

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tasker_worker::{StepContext, StepError, StepHandler, Worker};
use uuid::Uuid;

use crate::cart::{OrderRequest, Pricing, ValidatedCart, summary, validate_cart};
use crate::catalog::dollars;
use crate::inventory::{Reservation, reserve};
use crate::processor::{PaymentReceipt, SimulatedProcessor};

/// The namespace these handlers serve.
pub const NAMESPACE: &str = "ecommerce";

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

/// The five handlers of `order_processing`, each with its template
/// `callable`.
///
/// [`register`] puts them on a worker; the workflow tests run the
/// templates' steps through them directly.
#[must_use]
pub fn handlers(latency: &Latency) -> Vec<(&'static str, Box<dyn StepHandler>)> {
    vec![
        (
            "Ecommerce::StepHandlers::ValidateCartHandler",
            Box::new(ValidateCart(latency.clone())),
        ),
        (
            "Ecommerce::StepHandlers::ProcessPaymentHandler",
            Box::new(ProcessPayment(latency.clone())),
        ),
        (
            "Ecommerce::StepHandlers::UpdateInventoryHandler",
            Box::new(UpdateInventory(latency.clone())),
        ),
        (
            "Ecommerce::StepHandlers::CreateOrderHandler",
            Box::new(CreateOrder(latency.clone())),
        ),
        (
            "Ecommerce::StepHandlers::SendConfirmationHandler",
            Box::new(SendConfirmation(latency.clone())),
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

/// The step's idempotency key as a UUID's hex digits, so that a repeated
/// run produces the same record instead of a second one.
fn stable_hex(ctx: &StepContext) -> String {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, ctx.idempotency_key().as_bytes())
        .simple()
        .to_string()
}

/// Checks the cart against the catalog and prices it with the step's
/// `handler.initialization`. Every problem is permanent; see
/// [`cart::validate_cart`].
pub struct ValidateCart(pub Latency);

#[async_trait::async_trait]
impl StepHandler for ValidateCart {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let request = OrderRequest::from_context(ctx)?;
        let pricing = Pricing::from_initialization(ctx)?;
        let cart = validate_cart(&request, &pricing)?;
        self.0.wait().await;
        let mut result = json!(cart);
        result["validated_at"] = json!(chrono::Utc::now().to_rfc3339());
        Ok(result)
    }
}

/// Charges the cart's total. The processor's failures are scripted from the
/// task context; see [`processor`].
pub struct ProcessPayment(pub Latency);

#[async_trait::async_trait]
impl StepHandler for ProcessPayment {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let cart: ValidatedCart = ctx.dependency_result("validate_cart")?;
        let processor = SimulatedProcessor::from_context(ctx)?;
        self.0.wait().await;
        let receipt = processor.charge(
            cart.totals.total,
            &cart.currency,
            ctx.attempt(),
            &ctx.idempotency_key(),
        )?;
        let mut result = json!(receipt);
        result["processed_at"] = json!(chrono::Utc::now().to_rfc3339());
        Ok(result)
    }
}

/// Holds the stock of the paid order.
pub struct UpdateInventory(pub Latency);

#[async_trait::async_trait]
impl StepHandler for UpdateInventory {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let cart: ValidatedCart = ctx.dependency_result("validate_cart")?;
        let reservations = reserve(&cart.lines)?;
        self.0.wait().await;
        Ok(json!({
            "reservation_id": format!("res_{}", &stable_hex(ctx)[..24]),
            "reservations": reservations,
            "units_reserved": reservations.iter().map(|r| r.quantity).sum::<u64>(),
            "reserved_at": chrono::Utc::now().to_rfc3339(),
        }))
    }
}

/// The part of `update_inventory`'s result the order needs.
#[derive(Deserialize)]
struct Held {
    reservation_id: String,
    reservations: Vec<Reservation>,
}

/// Records the order, paid and with its stock held.
pub struct CreateOrder(pub Latency);

#[async_trait::async_trait]
impl StepHandler for CreateOrder {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let cart: ValidatedCart = ctx.dependency_result("validate_cart")?;
        let payment: PaymentReceipt = ctx.dependency_result("process_payment")?;
        let held: Held = ctx.dependency_result("update_inventory")?;
        let hex = stable_hex(ctx);
        let date = chrono::Utc::now().format("%Y%m%d");
        self.0.wait().await;
        Ok(json!({
            "order_id": format!("ord_{}", &hex[..24]),
            "order_number": format!("ORD-{date}-{}", hex[..6].to_uppercase()),
            "customer_id": cart.customer_id,
            "items": cart.lines,
            "totals": cart.totals,
            "currency": cart.currency,
            "payment_id": payment.payment_id,
            "reservation_id": held.reservation_id,
            "units": held.reservations.iter().map(|r| r.quantity).sum::<u64>(),
            "status": "confirmed",
            "created_at": chrono::Utc::now().to_rfc3339(),
        }))
    }
}

/// The part of `create_order`'s result the confirmation needs.
#[derive(Deserialize)]
struct Order {
    order_id: String,
    order_number: String,
}

/// Emails the customer their order confirmation.
pub struct SendConfirmation(pub Latency);

#[async_trait::async_trait]
impl StepHandler for SendConfirmation {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let cart: ValidatedCart = ctx.dependency_result("validate_cart")?;
        let order: Order = ctx.dependency_result("create_order")?;
        let greeting = cart.customer_name.as_deref().unwrap_or("there");
        self.0.wait().await;
        Ok(json!({
            "channel": "email",
            "recipient": cart.customer_email,
            "subject": format!("Order {} confirmed", order.order_number),
            "body": format!(
                "Hi {greeting}, thanks for your order {}: {}. We will email you again when it ships.",
                order.order_number,
                summary(&cart)
            ),
            "order_id": order.order_id,
            "total_charged": dollars(cart.totals.total),
            "message_id": format!("msg_{}", &stable_hex(ctx)[..24]),
            "status": "sent",
            "sent_at": chrono::Utc::now().to_rfc3339(),
        }))
    }
}

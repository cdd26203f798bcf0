//! `ecommerce/order_processing`, run end to end through this crate's
//! handlers, with the simulated payment processor scripted from the context.

use serde_json::{Value, json};
use tasker_example_ecommerce::{Latency, handlers};

const TEMPLATE: &str = include_str!("../../../templates/ecommerce/order_processing.yaml");

fn order(extra: Value) -> Value {
    let mut context = json!({
        "customer": { "id": "cus_7", "email": "ada@example.com", "name": "Ada" },
        "cart_items": [
            { "sku": "WIDGET-001", "quantity": 2 },
            { "sku": "LAMP-004", "quantity": 1 },
        ],
        "payment_token": "tok_visa",
    });
    if let (Some(base), Some(extra)) = (context.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    context
}

#[test]
fn every_step_has_a_handler() {
    let registered = handlers(&Latency::none());
    for step in &harness::template(TEMPLATE).steps {
        assert!(
            registered.iter().any(|(callable, _)| *callable == step.callable),
            "no handler for {}",
            step.callable
        );
    }
}

#[tokio::test]
async fn a_cart_becomes_a_confirmed_order() {
    let run = harness::run(
        &harness::template(TEMPLATE),
        &handlers(&Latency::none()),
        &order(json!({})),
        &[],
    )
    .await;
    assert!(run.failed.is_none(), "{:?}", run.failed);
    let cart = run.result("validate_cart");
    // 2 × 19.99 + 34.50 = 74.48, tax at the template's 8.25% is 6.14, and it ships free.
    assert_eq!(
        cart["totals"],
        json!({ "subtotal": 7448, "tax": 614, "shipping": 0, "total": 8062 })
    );
    assert_eq!(run.result("process_payment")["amount"], 8062);
    let held = run.result("update_inventory");
    assert_eq!(held["units_reserved"], 3);
    let order = run.result("create_order");
    assert_eq!(order["payment_id"], run.result("process_payment")["payment_id"]);
    assert_eq!(order["reservation_id"], held["reservation_id"]);
    let email = run.result("send_confirmation");
    assert_eq!(email["recipient"], "ada@example.com");
    assert_eq!(
        email["subject"],
        format!(
            "Order {} confirmed",
            order["order_number"].as_str().unwrap_or_default()
        )
    );
    assert_eq!(email["total_charged"], "$80.62");
}

#[tokio::test]
async fn processor_outages_are_retried() {
    let context = order(json!({ "payment_failures": 2, "payment_failure": "unavailable" }));
    let run = harness::run(
        &harness::template(TEMPLATE),
        &handlers(&Latency::none()),
        &context,
        &[],
    )
    .await;
    assert!(run.failed.is_none(), "{:?}", run.failed);
    assert_eq!(run.attempts["process_payment"], 3);
}

#[tokio::test]
async fn a_declined_card_stops_the_order_before_stock_is_held() {
    let context = order(json!({ "payment_decline": "insufficient funds" }));
    let run = harness::run(
        &harness::template(TEMPLATE),
        &handlers(&Latency::none()),
        &context,
        &[],
    )
    .await;
    assert_eq!(run.failure(), ("process_payment", "CARD_DECLINED"));
    assert_eq!(run.attempts["process_payment"], 1);
    assert!(!run.results.contains_key("update_inventory"));
}

#[tokio::test]
async fn bad_carts_fail_validation() {
    for (extra, code) in [
        (json!({ "cart_items": [] }), "EMPTY_CART"),
        (
            json!({ "cart_items": [{ "sku": "WIDGET-001", "quantity": 0 }] }),
            "INVALID_QUANTITY",
        ),
        (
            json!({ "cart_items": [{ "sku": "NOPE-1", "quantity": 1 }] }),
            "UNKNOWN_PRODUCT",
        ),
        (json!({ "cart_items": "WIDGET-001" }), "invalid_input"),
        (json!({ "payment_token": null }), "MISSING_PAYMENT_TOKEN"),
    ] {
        let run = harness::run(
            &harness::template(TEMPLATE),
            &handlers(&Latency::none()),
            &order(extra),
            &[],
        )
        .await;
        assert_eq!(run.failure(), ("validate_cart", code));
    }
}

use tasker_worker::testing as harness;

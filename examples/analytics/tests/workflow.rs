//! `analytics/pipeline`, run end to end through this crate's handlers.

use serde_json::{Value, json};
use tasker_example_analytics::{Latency, handlers};

const TEMPLATE: &str = include_str!("../../../templates/analytics/pipeline.yaml");

fn period(start: &str, end: &str, seed: u64) -> Value {
    json!({ "start_date": start, "end_date": end, "seed": seed })
}

#[test]
fn every_step_has_a_handler_and_the_extracts_are_the_roots() {
    let template = harness::template(TEMPLATE);
    let registered = handlers(&Latency::none());
    for step in &template.steps {
        assert!(
            registered.iter().any(|(callable, _)| *callable == step.callable),
            "no handler for {}",
            step.callable
        );
    }
    let mut roots: Vec<&str> = template
        .dag
        .roots()
        .map(|i| template.steps[i].name.as_str())
        .collect();
    roots.sort_unstable();
    assert_eq!(
        roots,
        [
            "extract_customer_data",
            "extract_inventory_data",
            "extract_sales_data"
        ]
    );
}

#[tokio::test]
async fn the_pipeline_joins_what_it_extracted() {
    let run = harness::run(
        &harness::template(TEMPLATE),
        &handlers(&Latency::none()),
        &period("2025-03-01", "2025-03-14", 7),
        &[],
    )
    .await;
    assert!(run.failed.is_none(), "{:?}", run.failed);
    let records = run.result("extract_sales_data")["records"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let revenue: u64 = records.iter().filter_map(|r| r["amount"].as_u64()).sum();
    assert!(revenue > 0);
    let metrics = run.result("aggregate_metrics");
    assert_eq!(metrics["revenue"], revenue);
    assert_eq!(metrics["days"], 14);
    let by_segment: u64 = metrics["revenue_by_segment"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or_default();
    assert_eq!(by_segment, revenue);
    let customers = run.result("extract_customer_data")["record_count"].as_u64();
    assert_eq!(metrics["customer_count"].as_u64(), customers);

    let insights = run.result("generate_insights");
    assert_eq!(insights["revenue"], revenue);
    let kinds: Vec<&str> = insights["insights"]
        .as_array()
        .map(|all| all.iter().filter_map(|i| i["kind"].as_str()).collect())
        .unwrap_or_default();
    for kind in ["top_region", "top_category", "top_segment", "purchase_rate"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

#[tokio::test]
async fn the_same_request_gives_the_same_insights() {
    let template = harness::template(TEMPLATE);
    let registered = handlers(&Latency::none());
    let insights = |seed| {
        let context = period("2025-03-01", "2025-03-07", seed);
        let (template, registered) = (&template, &registered);
        async move {
            let run = harness::run(template, registered, &context, &[]).await;
            run.result("generate_insights")["insights"].clone()
        }
    };
    assert_eq!(insights(3).await, insights(3).await);
    assert_ne!(insights(3).await, insights(4).await);
}

#[tokio::test]
async fn a_bad_period_fails_the_extracts() {
    for (context, code) in [
        (period("2025-03-01", "2025-04-30", 1), "DATE_RANGE_TOO_LONG"),
        (period("2025-03-10", "2025-03-01", 1), "INVALID_DATE_RANGE"),
        (json!({ "end_date": "2025-03-01" }), "MISSING_START_DATE"),
        (
            json!({ "start_date": "2025-03-01", "end_date": "2025-03-02", "seed": -1 }),
            "invalid_input",
        ),
    ] {
        let run = harness::run(
            &harness::template(TEMPLATE),
            &handlers(&Latency::none()),
            &context,
            &[],
        )
        .await;
        let (step, failed_with) = run.failure();
        assert!(step.starts_with("extract_"), "{step}");
        assert_eq!(failed_with, code);
        assert!(!run.results.contains_key("aggregate_metrics"));
    }
}

use tasker_worker::testing as harness;

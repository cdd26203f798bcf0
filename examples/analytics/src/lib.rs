//! The `analytics` namespace: the handlers of `pipeline`, which extracts a
//! period's data from three sources at once, transforms each, joins them
//! and draws insights. The sources are synthetic and deterministic (see
//! [`source`]); each step waits a short, configurable latency.
//!
//! ```text
//! extract_sales_data ─────▶ transform_sales ──────┐
//! extract_inventory_data ─▶ transform_inventory ──┼─▶ aggregate_metrics ─▶ generate_insights
//! extract_customer_data ──▶ transform_customers ──┘
//! ```
//!
//! The request gives the period as `start_date` and `end_date`
//! (`YYYY-MM-DD`, at most [`period::MAX_DAYS`] days) and, optionally, the
//! data's `seed`.
//!
//! - [`period`]: the period and its validation;
//! - [`source`]: the synthetic order database, warehouse and CRM;
//! - [`transform`]: each source's summary;
//! - [`metrics`]: the join, and the insights.

#![warn(missing_docs)]

pub mod metrics;
pub mod period;
pub mod source;
pub mod transform;

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tasker_worker::{StepContext, StepError, StepHandler, Worker};

use crate::metrics::{Metrics, Severity, aggregate, insights};
use crate::period::ReportPeriod;
use crate::source::{CustomerRecord, SaleRecord, StockRecord};
use crate::transform::{
    CustomerSummary, InventorySummary, SalesSummary, summarize_customers, summarize_sales, summarize_stock,
};

/// The namespace these handlers serve.
pub const NAMESPACE: &str = "analytics";

/// How long each simulated service call takes, picked at random from a range
/// of milliseconds. Zero for tests; a little for demos, so that the
/// parallel branches show.
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

/// The eight handlers of `pipeline`, each with its template `callable`.
///
/// [`register`] puts them on a worker; the workflow tests run the
/// templates' steps through them directly.
#[must_use]
pub fn handlers(latency: &Latency) -> Vec<(&'static str, Box<dyn StepHandler>)> {
    vec![
        (
            "Analytics::StepHandlers::ExtractSalesDataHandler",
            Box::new(ExtractSalesData(latency.clone())),
        ),
        (
            "Analytics::StepHandlers::ExtractInventoryDataHandler",
            Box::new(ExtractInventoryData(latency.clone())),
        ),
        (
            "Analytics::StepHandlers::ExtractCustomerDataHandler",
            Box::new(ExtractCustomerData(latency.clone())),
        ),
        (
            "Analytics::StepHandlers::TransformSalesHandler",
            Box::new(TransformSales(latency.clone())),
        ),
        (
            "Analytics::StepHandlers::TransformInventoryHandler",
            Box::new(TransformInventory(latency.clone())),
        ),
        (
            "Analytics::StepHandlers::TransformCustomersHandler",
            Box::new(TransformCustomers(latency.clone())),
        ),
        (
            "Analytics::StepHandlers::AggregateMetricsHandler",
            Box::new(AggregateMetrics(latency.clone())),
        ),
        (
            "Analytics::StepHandlers::GenerateInsightsHandler",
            Box::new(GenerateInsights(latency.clone())),
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

/// The result of an extract step, as the transforms read it.
#[derive(Deserialize)]
struct Extract<T> {
    period: ReportPeriod,
    records: Vec<T>,
}

fn extract_result<T: serde::Serialize>(
    source: &str,
    period: &ReportPeriod,
    seed: u64,
    records: &[T],
) -> Value {
    json!({
        "source": source,
        "period": period,
        "seed": seed,
        "record_count": records.len(),
        "records": records,
        "extracted_at": chrono::Utc::now().to_rfc3339(),
    })
}

fn read_extract<T: DeserializeOwned>(ctx: &StepContext, step: &str) -> Result<Extract<T>, StepError> {
    ctx.dependency_result(step)
}

/// Reads the period's order lines from the order database.
pub struct ExtractSalesData(pub Latency);

#[async_trait::async_trait]
impl StepHandler for ExtractSalesData {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let (period, seed) = ReportPeriod::from_context(ctx)?;
        self.0.wait().await;
        Ok(extract_result(
            "orders_db",
            &period,
            seed,
            &source::sales(&period, seed),
        ))
    }
}

/// Reads every product's stock at the period's end from the warehouse.
pub struct ExtractInventoryData(pub Latency);

#[async_trait::async_trait]
impl StepHandler for ExtractInventoryData {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let (period, seed) = ReportPeriod::from_context(ctx)?;
        self.0.wait().await;
        Ok(extract_result(
            "warehouse",
            &period,
            seed,
            &source::stock(&period, seed),
        ))
    }
}

/// Reads the customers on file from the CRM.
pub struct ExtractCustomerData(pub Latency);

#[async_trait::async_trait]
impl StepHandler for ExtractCustomerData {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let (period, seed) = ReportPeriod::from_context(ctx)?;
        self.0.wait().await;
        Ok(extract_result(
            "crm",
            &period,
            seed,
            &source::customers(&period, seed),
        ))
    }
}

/// Sums the order lines; see [`transform::summarize_sales`].
pub struct TransformSales(pub Latency);

#[async_trait::async_trait]
impl StepHandler for TransformSales {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let extract: Extract<SaleRecord> = read_extract(ctx, "extract_sales_data")?;
        self.0.wait().await;
        Ok(json!(summarize_sales(&extract.records, extract.period.days())))
    }
}

/// Values the stock; see [`transform::summarize_stock`].
pub struct TransformInventory(pub Latency);

#[async_trait::async_trait]
impl StepHandler for TransformInventory {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let extract: Extract<StockRecord> = read_extract(ctx, "extract_inventory_data")?;
        self.0.wait().await;
        Ok(json!(summarize_stock(&extract.records)))
    }
}

/// Counts the customers; see [`transform::summarize_customers`].
pub struct TransformCustomers(pub Latency);

#[async_trait::async_trait]
impl StepHandler for TransformCustomers {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let extract: Extract<CustomerRecord> = read_extract(ctx, "extract_customer_data")?;
        self.0.wait().await;
        Ok(json!(summarize_customers(&extract.records)))
    }
}

/// Joins the three summaries; see [`metrics::aggregate`].
pub struct AggregateMetrics(pub Latency);

#[async_trait::async_trait]
impl StepHandler for AggregateMetrics {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let sales: SalesSummary = ctx.dependency_result("transform_sales")?;
        let stock: InventorySummary = ctx.dependency_result("transform_inventory")?;
        let customers: CustomerSummary = ctx.dependency_result("transform_customers")?;
        self.0.wait().await;
        Ok(json!(aggregate(&sales, &stock, &customers)))
    }
}

/// Draws the findings from the metrics; see [`metrics::insights`].
pub struct GenerateInsights(pub Latency);

#[async_trait::async_trait]
impl StepHandler for GenerateInsights {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let metrics: Metrics = ctx.dependency_result("aggregate_metrics")?;
        let found = insights(&metrics);
        self.0.wait().await;
        Ok(json!({
            "insight_count": found.len(),
            "warning_count": found.iter().filter(|i| i.severity == Severity::Warning).count(),
            "insights": found,
            "revenue": metrics.revenue,
            "order_count": metrics.order_count,
            "generated_at": chrono::Utc::now().to_rfc3339(),
        }))
    }
}

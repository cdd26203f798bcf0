//! The aggregation, which joins the three summaries, and the insights drawn
//! from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::transform::{CustomerSummary, InventorySummary, SalesSummary};

/// Products with fewer days of stock than this at the period's sales rate
/// should be reordered.
pub const REORDER_COVER_DAYS: f64 = 14.0;

/// The segment of a customer who bought but is not in the CRM.
pub const UNKNOWN_SEGMENT: &str = "unknown";

/// One product's sales against its stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockCover {
    /// The product.
    pub sku: String,
    /// Its category.
    pub category: String,
    /// Units sold in the period.
    pub units_sold: u64,
    /// Units on the shelf at its end.
    pub on_hand: u64,
    /// At or below the reorder point.
    pub below_reorder_point: bool,
    /// Units sold per day.
    pub daily_sales: f64,
    /// How many days the stock lasts at that rate; none when nothing sold.
    pub days_of_cover: Option<f64>,
}

/// The joined metrics: the result of `aggregate_metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Days in the period.
    pub days: u32,
    /// Revenue, in cents.
    pub revenue: u64,
    /// Orders.
    pub order_count: u64,
    /// Revenue per order, in cents.
    pub average_order_value: u64,
    /// Revenue per day, in cents, rounded.
    pub average_daily_revenue: u64,
    /// Units sold.
    pub units_sold: u64,
    /// Revenue by shipping region.
    pub revenue_by_region: BTreeMap<String, u64>,
    /// Revenue by product category.
    pub revenue_by_category: BTreeMap<String, u64>,
    /// Revenue by the buyer's CRM segment; [`UNKNOWN_SEGMENT`] for buyers
    /// the CRM does not know.
    pub revenue_by_segment: BTreeMap<String, u64>,
    /// Customers on file.
    pub customer_count: u64,
    /// Of those, active.
    pub active_customers: u64,
    /// Customers on file who bought in the period.
    pub purchasing_customers: u64,
    /// `purchasing_customers / customer_count`, 0 to 1.
    pub purchase_rate: f64,
    /// What the stock cost, in cents.
    pub inventory_value: u64,
    /// Every product's sales against its stock, by SKU.
    pub stock_cover: Vec<StockCover>,
}

/// Joins the sales with the CRM (by customer) and the warehouse (by SKU).
#[must_use]
pub fn aggregate(sales: &SalesSummary, stock: &InventorySummary, customers: &CustomerSummary) -> Metrics {
    let mut revenue_by_segment = BTreeMap::new();
    let mut purchasing_customers = 0;
    for (customer, revenue) in &sales.revenue_by_customer {
        let segment = match customers.segment_of.get(customer) {
            Some(segment) => {
                purchasing_customers += 1;
                segment.as_str()
            }
            None => UNKNOWN_SEGMENT,
        };
        *revenue_by_segment.entry(segment.to_owned()).or_default() += revenue;
    }
    let days = sales.days.max(1);
    let stock_cover = stock
        .by_sku
        .iter()
        .map(|(sku, level)| {
            let units_sold = sales.units_by_sku.get(sku).copied().unwrap_or(0);
            let daily_sales = units_sold as f64 / f64::from(days);
            StockCover {
                sku: sku.clone(),
                category: level.category.clone(),
                units_sold,
                on_hand: level.on_hand,
                below_reorder_point: level.on_hand <= level.reorder_point,
                daily_sales: round2(daily_sales),
                days_of_cover: (units_sold > 0).then(|| round2(level.on_hand as f64 / daily_sales)),
            }
        })
        .collect();
    Metrics {
        days: sales.days,
        revenue: sales.revenue,
        order_count: sales.order_count,
        average_order_value: sales.average_order_value,
        average_daily_revenue: (sales.revenue + u64::from(days) / 2) / u64::from(days),
        units_sold: sales.units_sold,
        revenue_by_region: sales.revenue_by_region.clone(),
        revenue_by_category: sales.revenue_by_category.clone(),
        revenue_by_segment,
        customer_count: customers.customer_count,
        active_customers: customers.active_count,
        purchasing_customers,
        purchase_rate: if customers.customer_count == 0 {
            0.0
        } else {
            round4(purchasing_customers as f64 / customers.customer_count as f64)
        },
        inventory_value: stock.inventory_value,
        stock_cover,
    }
}

/// How much an insight matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Someone should act.
    Warning,
}

/// One finding: the result of `generate_insights` is a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Insight {
    /// A stable name: `top_region`, `reorder`, ...
    pub kind: String,
    /// How much it matters.
    pub severity: Severity,
    /// A sentence for people.
    pub message: String,
}

impl Insight {
    fn new(kind: &str, severity: Severity, message: String) -> Self {
        Self {
            kind: kind.to_owned(),
            severity,
            message,
        }
    }
}

/// The findings, most important first: products to reorder, then where the
/// revenue came from, then products that did not sell, then how many
/// customers bought.
#[must_use]
pub fn insights(metrics: &Metrics) -> Vec<Insight> {
    let mut found = Vec::new();
    for cover in &metrics.stock_cover {
        let short = cover.days_of_cover.is_some_and(|d| d < REORDER_COVER_DAYS);
        if cover.below_reorder_point || short {
            let rate = match cover.days_of_cover {
                Some(days) => format!(
                    "about {days:.1} days of stock at {:.2} sold a day",
                    cover.daily_sales
                ),
                None => "no sales in the period".to_owned(),
            };
            found.push(Insight::new(
                "reorder",
                Severity::Warning,
                format!(
                    "reorder {} ({}): {} on hand, {rate}",
                    cover.sku, cover.category, cover.on_hand
                ),
            ));
        }
    }
    if metrics.revenue == 0 {
        found.push(Insight::new(
            "no_sales",
            Severity::Warning,
            format!("no revenue in the {} day(s) of the period", metrics.days),
        ));
    } else {
        for (kind, what, by) in [
            ("top_region", "region", &metrics.revenue_by_region),
            ("top_category", "category", &metrics.revenue_by_category),
            ("top_segment", "customer segment", &metrics.revenue_by_segment),
        ] {
            if let Some((name, revenue)) = leader(by) {
                found.push(Insight::new(
                    kind,
                    Severity::Info,
                    format!(
                        "the {name} {what} brought {:.1}% of revenue (${:.2} of ${:.2})",
                        percent(revenue, metrics.revenue),
                        revenue as f64 / 100.0,
                        metrics.revenue as f64 / 100.0
                    ),
                ));
            }
        }
    }
    for cover in &metrics.stock_cover {
        if cover.units_sold == 0 && cover.on_hand > 0 {
            found.push(Insight::new(
                "slow_mover",
                Severity::Info,
                format!(
                    "{} ({}) did not sell; {} units sit on the shelf",
                    cover.sku, cover.category, cover.on_hand
                ),
            ));
        }
    }
    if metrics.customer_count > 0 {
        found.push(Insight::new(
            "purchase_rate",
            Severity::Info,
            format!(
                "{} of {} customers ({:.1}%) bought in the period",
                metrics.purchasing_customers,
                metrics.customer_count,
                metrics.purchase_rate * 100.0
            ),
        ));
    }
    found
}

/// The entry with the most revenue; the first by name among equals.
fn leader(by: &BTreeMap<String, u64>) -> Option<(&str, u64)> {
    by.iter()
        .fold(None, |best: Option<(&str, u64)>, (name, &v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((name.as_str(), v)),
        })
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::period::ReportPeriod;
    use crate::source;
    use crate::transform::tests::sale;
    use crate::transform::{StockLevel, summarize_customers, summarize_sales, summarize_stock};

    fn stock(levels: &[(&str, u64, u64)]) -> InventorySummary {
        InventorySummary {
            by_sku: levels
                .iter()
                .map(|&(sku, on_hand, reorder_point)| {
                    let level = StockLevel {
                        category: "home".to_owned(),
                        on_hand,
                        reorder_point,
                        value: on_hand * 100,
                    };
                    (sku.to_owned(), level)
                })
                .collect(),
            ..InventorySummary::default()
        }
    }

    fn customers(segments: &[(&str, &str)]) -> CustomerSummary {
        CustomerSummary {
            customer_count: segments.len() as u64,
            segment_of: segments
                .iter()
                .map(|&(c, s)| (c.to_owned(), s.to_owned()))
                .collect(),
            ..CustomerSummary::default()
        }
    }

    #[test]
    fn joins_revenue_to_segments_and_counts_buyers() {
        let sales = summarize_sales(
            &[
                sale("SO-1", 1, "cus_001", "north", "SKU-2001", 1, 700),
                sale("SO-2", 1, "cus_002", "north", "SKU-2001", 1, 200),
                sale("SO-3", 2, "cus_003", "south", "SKU-2001", 1, 100),
                sale("SO-4", 2, "cus_999", "south", "SKU-2001", 1, 50),
            ],
            2,
        );
        let crm = customers(&[
            ("cus_001", "enterprise"),
            ("cus_002", "consumer"),
            ("cus_003", "consumer"),
            ("cus_004", "consumer"),
        ]);
        let m = aggregate(&sales, &stock(&[]), &crm);
        assert_eq!(m.revenue_by_segment["enterprise"], 700);
        assert_eq!(m.revenue_by_segment["consumer"], 300);
        assert_eq!(m.revenue_by_segment[UNKNOWN_SEGMENT], 50);
        // cus_999 bought but is not on file, so it does not count.
        assert_eq!(m.purchasing_customers, 3);
        assert_eq!(m.purchase_rate, 0.75);
        assert_eq!(m.average_daily_revenue, 525);
    }

    #[test]
    fn days_of_cover_follow_the_sales_rate() {
        // 20 units over 10 days is 2 a day: 30 on hand last 15 days, 10 last 5.
        let sales = SalesSummary {
            days: 10,
            units_by_sku: [("A".to_owned(), 20), ("B".to_owned(), 20)].into(),
            ..SalesSummary::default()
        };
        let m = aggregate(
            &sales,
            &stock(&[("A", 30, 5), ("B", 10, 5), ("C", 8, 5)]),
            &customers(&[]),
        );
        let cover: Vec<(&str, Option<f64>)> = m
            .stock_cover
            .iter()
            .map(|c| (c.sku.as_str(), c.days_of_cover))
            .collect();
        assert_eq!(cover, [("A", Some(15.0)), ("B", Some(5.0)), ("C", None)]);
        assert!(m.stock_cover.iter().all(|c| c.category == "home"));
    }

    #[test]
    fn insights_flag_what_needs_reordering_and_what_does_not_sell() {
        let sales = SalesSummary {
            days: 10,
            revenue: 1000,
            revenue_by_region: [("east".to_owned(), 250), ("west".to_owned(), 750)].into(),
            units_by_sku: [("A".to_owned(), 20), ("B".to_owned(), 20)].into(),
            ..SalesSummary::default()
        };
        // A lasts 15 days, B 5, C is at its reorder point and unsold, D unsold.
        let inventory = stock(&[("A", 30, 5), ("B", 10, 5), ("C", 5, 5), ("D", 40, 5)]);
        let found = insights(&aggregate(
            &sales,
            &inventory,
            &customers(&[("cus_1", "consumer")]),
        ));
        let of = |kind: &str| -> Vec<&str> {
            found
                .iter()
                .filter(|i| i.kind == kind)
                .map(|i| i.message.as_str())
                .collect()
        };
        let reorder = of("reorder");
        assert_eq!(reorder.len(), 2, "{reorder:?}");
        assert!(
            reorder[0].starts_with("reorder B ") && reorder[1].starts_with("reorder C "),
            "{reorder:?}"
        );
        let slow = of("slow_mover");
        assert_eq!(slow.len(), 2);
        assert!(slow[0].starts_with("C ") && slow[1].starts_with("D "));
        assert_eq!(
            of("top_region"),
            ["the west region brought 75.0% of revenue ($7.50 of $10.00)"]
        );
        assert_eq!(found[0].severity, Severity::Warning);
    }

    #[test]
    fn no_revenue_is_a_warning() {
        let found = insights(&Metrics::default());
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].kind.as_str(), found[0].severity),
            ("no_sales", Severity::Warning)
        );
    }

    #[test]
    fn the_whole_pipeline_keeps_every_cent() {
        let period = ReportPeriod::parse(Some("2025-05-01"), Some("2025-05-31")).expect("a period");
        for seed in [1, 2, 99] {
            let records = source::sales(&period, seed);
            let sales = summarize_sales(&records, period.days());
            let m = aggregate(
                &sales,
                &summarize_stock(&source::stock(&period, seed)),
                &summarize_customers(&source::customers(&period, seed)),
            );
            let total: u64 = records.iter().map(|r| r.amount).sum();
            assert_eq!(m.revenue, total);
            for by in [
                &m.revenue_by_region,
                &m.revenue_by_category,
                &m.revenue_by_segment,
            ] {
                assert_eq!(by.values().sum::<u64>(), total);
            }
            assert!(!m.revenue_by_segment.contains_key(UNKNOWN_SEGMENT));
            assert_eq!(m.stock_cover.len(), source::PRODUCTS.len());
            let sold: u64 = m.stock_cover.iter().map(|c| c.units_sold).sum();
            assert_eq!(sold, records.iter().map(|r| r.quantity).sum::<u64>());
        }
    }
}

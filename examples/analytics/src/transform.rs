//! The transforms: each turns one source's records into the summary the
//! aggregation joins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::source::{CustomerRecord, SaleRecord, StockRecord};

/// The order database's records, summed: the result of `transform_sales`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesSummary {
    /// Days in the period.
    pub days: u32,
    /// Distinct orders.
    pub order_count: u64,
    /// Units across every order.
    pub units_sold: u64,
    /// Revenue, in cents.
    pub revenue: u64,
    /// Revenue per order, rounded to the cent; 0 with no orders.
    pub average_order_value: u64,
    /// Revenue by day, `YYYY-MM-DD`.
    pub revenue_by_day: BTreeMap<String, u64>,
    /// Revenue by shipping region.
    pub revenue_by_region: BTreeMap<String, u64>,
    /// Revenue by product category.
    pub revenue_by_category: BTreeMap<String, u64>,
    /// Units by SKU.
    pub units_by_sku: BTreeMap<String, u64>,
    /// Revenue by customer id, for the join with the CRM.
    pub revenue_by_customer: BTreeMap<String, u64>,
}

/// Sums the order lines of a period of `days` days.
#[must_use]
pub fn summarize_sales(records: &[SaleRecord], days: u32) -> SalesSummary {
    let mut summary = SalesSummary {
        days,
        ..SalesSummary::default()
    };
    let mut orders = std::collections::BTreeSet::new();
    for r in records {
        orders.insert(r.order_id.as_str());
        summary.units_sold += r.quantity;
        summary.revenue += r.amount;
        *summary.revenue_by_day.entry(r.date.to_string()).or_default() += r.amount;
        *summary.revenue_by_region.entry(r.region.clone()).or_default() += r.amount;
        *summary.revenue_by_category.entry(r.category.clone()).or_default() += r.amount;
        *summary.units_by_sku.entry(r.sku.clone()).or_default() += r.quantity;
        *summary
            .revenue_by_customer
            .entry(r.customer_id.clone())
            .or_default() += r.amount;
    }
    summary.order_count = orders.len() as u64;
    summary.average_order_value = (summary.revenue + summary.order_count / 2)
        .checked_div(summary.order_count)
        .unwrap_or(0);
    summary
}

/// One product's stock, as the aggregation needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// The product's category.
    pub category: String,
    /// Units on the shelf.
    pub on_hand: u64,
    /// Reorder below this.
    pub reorder_point: u64,
    /// `on_hand × unit cost`, in cents.
    pub value: u64,
}

/// The warehouse's records, summed: the result of `transform_inventory`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventorySummary {
    /// Products counted.
    pub sku_count: u64,
    /// Units on every shelf.
    pub units_on_hand: u64,
    /// What the stock cost, in cents.
    pub inventory_value: u64,
    /// The products at or below their reorder point.
    pub below_reorder_point: Vec<String>,
    /// Each product's stock, by SKU.
    pub by_sku: BTreeMap<String, StockLevel>,
}

/// Sums the warehouse's stock records.
#[must_use]
pub fn summarize_stock(records: &[StockRecord]) -> InventorySummary {
    let mut summary = InventorySummary::default();
    for r in records {
        let value = r.on_hand * r.unit_cost;
        summary.sku_count += 1;
        summary.units_on_hand += r.on_hand;
        summary.inventory_value += value;
        if r.on_hand <= r.reorder_point {
            summary.below_reorder_point.push(r.sku.clone());
        }
        summary.by_sku.insert(
            r.sku.clone(),
            StockLevel {
                category: r.category.clone(),
                on_hand: r.on_hand,
                reorder_point: r.reorder_point,
                value,
            },
        );
    }
    summary.below_reorder_point.sort();
    summary
}

/// The CRM's records, counted: the result of `transform_customers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSummary {
    /// Customers on file.
    pub customer_count: u64,
    /// Of those, active accounts.
    pub active_count: u64,
    /// Customers by segment.
    pub by_segment: BTreeMap<String, u64>,
    /// Customers by region.
    pub by_region: BTreeMap<String, u64>,
    /// Each customer's segment, for the join with the sales.
    pub segment_of: BTreeMap<String, String>,
}

/// Counts the CRM's customers.
#[must_use]
pub fn summarize_customers(records: &[CustomerRecord]) -> CustomerSummary {
    let mut summary = CustomerSummary::default();
    for r in records {
        summary.customer_count += 1;
        summary.active_count += u64::from(r.active);
        *summary.by_segment.entry(r.segment.clone()).or_default() += 1;
        *summary.by_region.entry(r.region.clone()).or_default() += 1;
        summary
            .segment_of
            .insert(r.customer_id.clone(), r.segment.clone());
    }
    summary
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::NaiveDate;

    pub(crate) fn sale(
        order: &str,
        day: u32,
        customer: &str,
        region: &str,
        sku: &str,
        quantity: u64,
        amount: u64,
    ) -> SaleRecord {
        SaleRecord {
            order_id: order.to_owned(),
            date: NaiveDate::from_ymd_opt(2025, 1, day).expect("a date"),
            customer_id: customer.to_owned(),
            region: region.to_owned(),
            sku: sku.to_owned(),
            category: if sku.starts_with("SKU-1") {
                "electronics"
            } else {
                "home"
            }
            .to_owned(),
            quantity,
            amount,
        }
    }

    #[test]
    fn sums_sales_by_every_dimension() {
        let records = [
            sale("SO-1", 1, "cus_001", "north", "SKU-1001", 1, 1000),
            sale("SO-2", 1, "cus_002", "south", "SKU-2001", 3, 600),
            // A second line of the same order.
            sale("SO-2", 1, "cus_002", "south", "SKU-1001", 1, 1000),
            sale("SO-3", 2, "cus_001", "north", "SKU-2001", 2, 400),
        ];
        let s = summarize_sales(&records, 2);
        assert_eq!((s.order_count, s.units_sold, s.revenue), (3, 7, 3000));
        assert_eq!(s.average_order_value, 1000);
        assert_eq!(s.revenue_by_day["2025-01-01"], 2600);
        assert_eq!(s.revenue_by_day["2025-01-02"], 400);
        assert_eq!(s.revenue_by_region["north"], 1400);
        assert_eq!(s.revenue_by_category["electronics"], 2000);
        assert_eq!(s.units_by_sku["SKU-2001"], 5);
        assert_eq!(s.revenue_by_customer["cus_002"], 1600);
    }

    #[test]
    fn no_sales_sum_to_zero() {
        let s = summarize_sales(&[], 3);
        assert_eq!(
            (s.order_count, s.revenue, s.average_order_value, s.days),
            (0, 0, 0, 3)
        );
    }

    #[test]
    fn values_stock_and_flags_reorders() {
        let day = NaiveDate::from_ymd_opt(2025, 1, 31).expect("a date");
        let stock = |sku: &str, on_hand, reorder_point, unit_cost| StockRecord {
            sku: sku.to_owned(),
            category: "home".to_owned(),
            on_hand,
            reorder_point,
            unit_cost,
            counted_on: day,
        };
        let s = summarize_stock(&[
            stock("B", 20, 20, 150),
            stock("A", 5, 10, 100),
            stock("C", 50, 10, 10),
        ]);
        assert_eq!(
            (s.sku_count, s.units_on_hand, s.inventory_value),
            (3, 75, 20 * 150 + 5 * 100 + 50 * 10)
        );
        // At the reorder point counts as below it.
        assert_eq!(s.below_reorder_point, ["A", "B"]);
        assert_eq!(s.by_sku["A"].value, 500);
    }

    #[test]
    fn counts_customers() {
        let day = NaiveDate::from_ymd_opt(2024, 6, 1).expect("a date");
        let customer = |id: &str, segment: &str, active| CustomerRecord {
            customer_id: id.to_owned(),
            segment: segment.to_owned(),
            region: "east".to_owned(),
            signup_date: day,
            active,
        };
        let s = summarize_customers(&[
            customer("cus_001", "consumer", true),
            customer("cus_002", "enterprise", false),
            customer("cus_003", "consumer", true),
        ]);
        assert_eq!((s.customer_count, s.active_count), (3, 2));
        assert_eq!(s.by_segment["consumer"], 2);
        assert_eq!(s.by_region["east"], 3);
        assert_eq!(s.segment_of["cus_002"], "enterprise");
    }
}

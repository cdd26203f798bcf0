//! The three synthetic source systems: the order database, the warehouse
//! and the CRM. Their data is small and deterministic: a function of the
//! seed and of the day, product or customer, never of the period as a
//! whole, so that two runs over overlapping periods agree on the days they
//! share.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::period::ReportPeriod;

/// A product: its SKU, category, price and unit cost, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product {
    /// Stock-keeping unit.
    pub sku: &'static str,
    /// What it is filed under.
    pub category: &'static str,
    /// What a customer pays for one.
    pub unit_price: u64,
    /// What one costs the shop.
    pub unit_cost: u64,
}

/// Every product the shop sells.
pub const PRODUCTS: [Product; 8] = [
    Product {
        sku: "SKU-1001",
        category: "electronics",
        unit_price: 12_999,
        unit_cost: 8_200,
    },
    Product {
        sku: "SKU-1002",
        category: "electronics",
        unit_price: 4_999,
        unit_cost: 2_900,
    },
    Product {
        sku: "SKU-2001",
        category: "home",
        unit_price: 3_499,
        unit_cost: 1_800,
    },
    Product {
        sku: "SKU-2002",
        category: "home",
        unit_price: 8_999,
        unit_cost: 5_100,
    },
    Product {
        sku: "SKU-3001",
        category: "apparel",
        unit_price: 2_499,
        unit_cost: 900,
    },
    Product {
        sku: "SKU-3002",
        category: "apparel",
        unit_price: 5_999,
        unit_cost: 2_400,
    },
    Product {
        sku: "SKU-4001",
        category: "outdoor",
        unit_price: 15_999,
        unit_cost: 9_800,
    },
    Product {
        sku: "SKU-4002",
        category: "outdoor",
        unit_price: 1_999,
        unit_cost: 1_100,
    },
];

/// The sales regions.
pub const REGIONS: [&str; 4] = ["north", "south", "east", "west"];

/// The customer segments.
pub const SEGMENTS: [&str; 3] = ["consumer", "small_business", "enterprise"];

/// How many customers the CRM holds: `cus_001` to `cus_040`.
pub const CUSTOMER_COUNT: u64 = 40;

/// One order line from the order database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleRecord {
    /// `SO-YYYYMMDD-NN`.
    pub order_id: String,
    /// The day of the order.
    pub date: NaiveDate,
    /// Who bought.
    pub customer_id: String,
    /// Where it shipped.
    pub region: String,
    /// What.
    pub sku: String,
    /// The product's category.
    pub category: String,
    /// How many.
    pub quantity: u64,
    /// `quantity × unit price`, in cents.
    pub amount: u64,
}

/// One product's stock at the warehouse at the end of the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRecord {
    /// The product.
    pub sku: String,
    /// Its category.
    pub category: String,
    /// Units on the shelf.
    pub on_hand: u64,
    /// Below this many, the product is reordered.
    pub reorder_point: u64,
    /// What one unit cost, in cents.
    pub unit_cost: u64,
    /// The day counted.
    pub counted_on: NaiveDate,
}

/// One customer from the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    /// `cus_NNN`.
    pub customer_id: String,
    /// One of [`SEGMENTS`].
    pub segment: String,
    /// One of [`REGIONS`].
    pub region: String,
    /// When they signed up; never after the period's end.
    pub signup_date: NaiveDate,
    /// Whether the account is active.
    pub active: bool,
}

/// The order lines of every day of the period: 3 to 8 a day.
#[must_use]
pub fn sales(period: &ReportPeriod, seed: u64) -> Vec<SaleRecord> {
    let mut records = Vec::new();
    for date in period.dates() {
        let mut rng = Rng::new(seed, &format!("sales:{date}"));
        for n in 1..=rng.between(3, 8) {
            let product = PRODUCTS[rng.index(PRODUCTS.len())];
            let quantity = rng.between(1, 4);
            records.push(SaleRecord {
                order_id: format!("SO-{}-{n:02}", date.format("%Y%m%d")),
                date,
                customer_id: customer_id(rng.between(1, CUSTOMER_COUNT)),
                region: REGIONS[rng.index(REGIONS.len())].to_owned(),
                sku: product.sku.to_owned(),
                category: product.category.to_owned(),
                quantity,
                amount: quantity * product.unit_price,
            });
        }
    }
    records
}

/// Every product's stock, counted on the period's last day.
#[must_use]
pub fn stock(period: &ReportPeriod, seed: u64) -> Vec<StockRecord> {
    PRODUCTS
        .iter()
        .map(|product| {
            let mut rng = Rng::new(seed, &format!("stock:{}:{}", product.sku, period.end_date));
            StockRecord {
                sku: product.sku.to_owned(),
                category: product.category.to_owned(),
                on_hand: rng.between(0, 150),
                reorder_point: rng.between(10, 40),
                unit_cost: product.unit_cost,
                counted_on: period.end_date,
            }
        })
        .collect()
}

/// Every customer who had signed up by the period's last day.
#[must_use]
pub fn customers(period: &ReportPeriod, seed: u64) -> Vec<CustomerRecord> {
    (1..=CUSTOMER_COUNT)
        .map(|n| {
            let mut rng = Rng::new(seed, &format!("customer:{n}"));
            let segment = SEGMENTS[rng.index(SEGMENTS.len())];
            let region = REGIONS[rng.index(REGIONS.len())];
            let age = rng.between(0, 720);
            CustomerRecord {
                customer_id: customer_id(n),
                segment: segment.to_owned(),
                region: region.to_owned(),
                signup_date: period
                    .end_date
                    .checked_sub_days(Days::new(age))
                    .unwrap_or(NaiveDate::MIN),
                active: rng.below(10) < 8,
            }
        })
        .collect()
}

fn customer_id(n: u64) -> String {
    format!("cus_{n:03}")
}

/// SplitMix64: tiny, fast, and the same on every platform and version,
/// which a library generator does not promise.
struct Rng(u64);

impl Rng {
    /// A generator for one stream (`"sales:2025-01-03"`) of one seed.
    fn new(seed: u64, stream: &str) -> Self {
        // FNV-1a folds the stream name into the seed.
        let mut state = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
        for byte in stream.bytes() {
            state = (state ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self(state)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; `n` is above 0.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(start: &str, end: &str) -> ReportPeriod {
        ReportPeriod::parse(Some(start), Some(end)).expect("a period")
    }

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let p = period("2025-01-01", "2025-01-07");
        assert_eq!(sales(&p, 7), sales(&p, 7));
        assert_eq!(stock(&p, 7), stock(&p, 7));
        assert_eq!(customers(&p, 7), customers(&p, 7));
        assert_ne!(sales(&p, 7), sales(&p, 8));
        assert_ne!(stock(&p, 7), stock(&p, 8));
        assert_ne!(customers(&p, 7), customers(&p, 8));
    }

    #[test]
    fn a_day_has_the_same_sales_in_every_period_that_holds_it() {
        let short = sales(&period("2025-01-01", "2025-01-03"), 3);
        let long = sales(&period("2025-01-01", "2025-01-10"), 3);
        assert!(long.len() > short.len());
        assert_eq!(&long[..short.len()], &short[..]);
    }

    #[test]
    fn records_stay_within_their_bounds() {
        let p = period("2025-03-01", "2025-03-31");
        let orders = sales(&p, 42);
        for day in p.dates() {
            let n = orders.iter().filter(|r| r.date == day).count();
            assert!((3..=8).contains(&n), "{day}: {n} orders");
        }
        let people = customers(&p, 42);
        assert_eq!(people.len() as u64, CUSTOMER_COUNT);
        for order in &orders {
            assert!(
                people.iter().any(|c| c.customer_id == order.customer_id),
                "{}",
                order.customer_id
            );
            let product = PRODUCTS
                .iter()
                .find(|pr| pr.sku == order.sku)
                .expect("a known product");
            assert_eq!(order.amount, order.quantity * product.unit_price);
            assert!((1..=4).contains(&order.quantity));
        }
        assert!(people.iter().all(|c| c.signup_date <= p.end_date));
        assert!(
            stock(&p, 42)
                .iter()
                .all(|s| s.on_hand <= 150 && (10..=40).contains(&s.reorder_point))
        );
    }
}

//! The product catalog and its stock levels, fixed in this example so that
//! runs are repeatable. Prices are in US cents.

/// One product for sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product {
    /// Stock-keeping unit, the product's id.
    pub sku: &'static str,
    /// What the customer sees.
    pub name: &'static str,
    /// Price of one unit, in cents.
    pub unit_price: u64,
    /// Units in the warehouse.
    pub stock: u32,
}

/// Everything the shop sells.
pub const CATALOG: [Product; 6] = [
    Product {
        sku: "WIDGET-001",
        name: "Standard widget",
        unit_price: 1999,
        stock: 120,
    },
    Product {
        sku: "GADGET-002",
        name: "Deluxe gadget",
        unit_price: 4999,
        stock: 40,
    },
    Product {
        sku: "GIZMO-003",
        name: "Pocket gizmo",
        unit_price: 999,
        stock: 300,
    },
    Product {
        sku: "LAMP-004",
        name: "Desk lamp",
        unit_price: 3450,
        stock: 15,
    },
    Product {
        sku: "KETTLE-005",
        name: "Electric kettle",
        unit_price: 5995,
        stock: 3,
    },
    Product {
        sku: "POSTER-006",
        name: "Limited-edition poster",
        unit_price: 2500,
        stock: 0,
    },
];

/// The product with this SKU, in any case.
#[must_use]
pub fn product(sku: &str) -> Option<Product> {
    CATALOG
        .iter()
        .copied()
        .find(|p| p.sku.eq_ignore_ascii_case(sku.trim()))
}

/// `cents` as dollars: `$49.99`.
#[must_use]
pub fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_products_by_sku_in_any_case() {
        assert_eq!(product(" widget-001").map(|p| p.unit_price), Some(1999));
        assert_eq!(product("WIDGET-999"), None);
    }

    #[test]
    fn skus_are_unique() {
        for (i, a) in CATALOG.iter().enumerate() {
            assert!(
                CATALOG[i + 1..]
                    .iter()
                    .all(|b| !a.sku.eq_ignore_ascii_case(b.sku)),
                "{}",
                a.sku
            );
        }
    }

    #[test]
    fn formats_dollars() {
        assert_eq!(dollars(4999), "$49.99");
        assert_eq!(dollars(5), "$0.05");
        assert_eq!(dollars(120_000), "$1200.00");
    }
}

//! Holding stock for a paid order.

use serde::{Deserialize, Serialize};
use tasker_worker::StepError;

use crate::cart::CartLine;

/// The stock held for one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The product.
    pub sku: String,
    /// Units held.
    pub quantity: u64,
    /// Units in stock before.
    pub stock_before: u64,
    /// Units in stock after.
    pub stock_after: u64,
}

/// Takes each line's units out of the stock counted when the cart was
/// checked.
///
/// # Errors
///
/// A permanent `INSUFFICIENT_STOCK` if a line wants more than that stock,
/// which a cart that passed `validate_cart` never does.
pub fn reserve(lines: &[CartLine]) -> Result<Vec<Reservation>, StepError> {
    lines
        .iter()
        .map(|line| {
            let stock_after = line.stock_available.checked_sub(line.quantity).ok_or_else(|| {
                StepError::permanent(
                    "INSUFFICIENT_STOCK",
                    format!(
                        "cannot hold {} of {}: only {} in stock",
                        line.quantity, line.sku, line.stock_available
                    ),
                )
            })?;
            Ok(Reservation {
                sku: line.sku.clone(),
                quantity: line.quantity,
                stock_before: line.stock_available,
                stock_after,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: u64, stock: u64) -> CartLine {
        CartLine {
            sku: sku.to_owned(),
            name: sku.to_owned(),
            quantity,
            unit_price: 100,
            line_total: quantity * 100,
            stock_available: stock,
        }
    }

    #[test]
    fn takes_each_line_out_of_its_stock() {
        let held = reserve(&[line("A", 3, 10), line("B", 5, 5)]).expect("held");
        assert_eq!(held.len(), 2);
        assert_eq!((held[0].stock_before, held[0].stock_after), (10, 7));
        assert_eq!((held[1].stock_before, held[1].stock_after), (5, 0));
    }

    #[test]
    fn refuses_more_than_is_in_stock() {
        let error = reserve(&[line("A", 1, 10), line("B", 6, 5)]).expect_err("short");
        assert_eq!(error.code(), "INSUFFICIENT_STOCK");
        assert!(error.to_string().contains('B'));
    }
}

//! The order request, the validation of its cart against the catalog, and
//! its pricing.

use serde::{Deserialize, Serialize};
use tasker_worker::{StepContext, StepError};

use crate::catalog::{self, dollars};

/// The most units of one product a single order may hold.
pub const MAX_QUANTITY_PER_PRODUCT: u64 = 10;

/// The customer id of an order placed without an account.
pub const GUEST: &str = "guest";

/// The customer, as the storefront sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The account id; none for a guest checkout.
    pub id: Option<String>,
    /// Where the confirmation goes.
    pub email: Option<String>,
    /// The name to greet them with.
    pub name: Option<String>,
}

/// One line of the cart, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartItem {
    /// The product.
    pub sku: Option<String>,
    /// How many units.
    pub quantity: Option<i64>,
}

/// The task context of `ecommerce/order_processing`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// Who is buying.
    pub customer: Customer,
    /// What they are buying.
    pub cart_items: Vec<CartItem>,
    /// The payment method, tokenized by the storefront: `tok_…`.
    pub payment_token: Option<String>,
}

impl OrderRequest {
    /// Reads the request from the task context.
    ///
    /// # Errors
    ///
    /// A permanent `invalid_input` error names the field that has the wrong
    /// shape.
    pub fn from_context(ctx: &StepContext) -> Result<Self, StepError> {
        Ok(Self {
            customer: ctx.input_or("customer", Customer::default())?,
            cart_items: ctx.input_or("cart_items", Vec::new())?,
            payment_token: ctx.input_or("payment_token", None)?,
        })
    }
}

/// How an order is priced; amounts in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    /// Sales tax, in basis points of the subtotal (825 is 8.25%).
    pub tax_rate_bps: u64,
    /// Orders with at least this subtotal ship free.
    pub free_shipping_from: u64,
    /// What shipping costs below that.
    pub shipping_fee: u64,
}

impl Default for Pricing {
    fn default() -> Self {
        Self {
            tax_rate_bps: 825,
            free_shipping_from: 5000,
            shipping_fee: 599,
        }
    }
}

impl Pricing {
    /// The pricing from the step's `handler.initialization`, each key
    /// defaulting to [`Pricing::default`].
    ///
    /// # Errors
    ///
    /// A permanent `invalid_input` error names the setting that is not a
    /// whole number of 0 or more.
    pub fn from_initialization(ctx: &StepContext) -> Result<Self, StepError> {
        let default = Self::default();
        Ok(Self {
            tax_rate_bps: ctx
                .initialization("tax_rate_bps")?
                .unwrap_or(default.tax_rate_bps),
            free_shipping_from: ctx
                .initialization("free_shipping_from")?
                .unwrap_or(default.free_shipping_from),
            shipping_fee: ctx
                .initialization("shipping_fee")?
                .unwrap_or(default.shipping_fee),
        })
    }

    /// The totals of lines that sum to `subtotal`.
    #[must_use]
    pub fn totals(&self, subtotal: u64) -> Totals {
        // Round half up to the cent.
        let tax = subtotal.saturating_mul(self.tax_rate_bps).saturating_add(5_000) / 10_000;
        let shipping = if subtotal >= self.free_shipping_from {
            0
        } else {
            self.shipping_fee
        };
        Totals {
            subtotal,
            tax,
            shipping,
            total: subtotal.saturating_add(tax).saturating_add(shipping),
        }
    }
}

/// What an order costs, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// The lines' sum.
    pub subtotal: u64,
    /// Sales tax.
    pub tax: u64,
    /// Shipping.
    pub shipping: u64,
    /// What the customer pays.
    pub total: u64,
}

/// A priced cart line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The product, as the catalog spells it.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Units, between 1 and [`MAX_QUANTITY_PER_PRODUCT`].
    pub quantity: u64,
    /// Price of one, in cents.
    pub unit_price: u64,
    /// `quantity × unit_price`.
    pub line_total: u64,
    /// Units in stock when the cart was checked.
    pub stock_available: u64,
}

/// A cart that can be sold: the result of `validate_cart`, which the later
/// steps read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatedCart {
    /// The account, or [`GUEST`].
    pub customer_id: String,
    /// Where the confirmation goes.
    pub customer_email: String,
    /// How to greet them, if known.
    pub customer_name: Option<String>,
    /// One line per product, repeated products merged, in the order first
    /// seen.
    pub lines: Vec<CartLine>,
    /// What it costs.
    pub totals: Totals,
    /// Always `USD`: the catalog is priced in dollars.
    pub currency: String,
    /// The payment method to charge.
    pub payment_token: String,
}

/// Checks the order against the catalog and prices it.
///
/// # Errors
///
/// Every problem is permanent, with one of the codes
/// `MISSING_CUSTOMER_EMAIL`, `INVALID_CUSTOMER_EMAIL`, `EMPTY_CART`,
/// `MISSING_SKU`, `UNKNOWN_PRODUCT`, `INVALID_QUANTITY`,
/// `QUANTITY_LIMIT_EXCEEDED`, `OUT_OF_STOCK`, `INSUFFICIENT_STOCK`,
/// `MISSING_PAYMENT_TOKEN` or `INVALID_PAYMENT_TOKEN`.
pub fn validate_cart(request: &OrderRequest, pricing: &Pricing) -> Result<ValidatedCart, StepError> {
    let email = request
        .customer
        .email
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    if email.is_empty() {
        return Err(StepError::permanent(
            "MISSING_CUSTOMER_EMAIL",
            "the order has no customer.email; the confirmation needs somewhere to go",
        ));
    }
    if !is_email(email) {
        return Err(StepError::permanent(
            "INVALID_CUSTOMER_EMAIL",
            format!("customer.email {email:?} is not an email address"),
        ));
    }
    if request.cart_items.is_empty() {
        return Err(StepError::permanent(
            "EMPTY_CART",
            "the cart is empty; add at least one item to cart_items",
        ));
    }
    let mut lines: Vec<CartLine> = Vec::new();
    for (i, item) in request.cart_items.iter().enumerate() {
        let n = i + 1;
        let sku = item.sku.as_deref().map(str::trim).unwrap_or_default();
        if sku.is_empty() {
            return Err(StepError::permanent(
                "MISSING_SKU",
                format!("cart item {n} has no sku"),
            ));
        }
        let product = catalog::product(sku).ok_or_else(|| {
            StepError::permanent(
                "UNKNOWN_PRODUCT",
                format!("cart item {n}: no product {sku:?} in the catalog"),
            )
        })?;
        let quantity = match item.quantity {
            Some(q) if q > 0 => q.unsigned_abs(),
            Some(q) => {
                return Err(StepError::permanent(
                    "INVALID_QUANTITY",
                    format!(
                        "cart item {n} ({}) has quantity {q}; it must be at least 1",
                        product.sku
                    ),
                ));
            }
            None => {
                return Err(StepError::permanent(
                    "INVALID_QUANTITY",
                    format!("cart item {n} ({}) has no quantity", product.sku),
                ));
            }
        };
        match lines.iter_mut().find(|l| l.sku == product.sku) {
            Some(line) => line.quantity = line.quantity.saturating_add(quantity),
            None => lines.push(CartLine {
                sku: product.sku.to_owned(),
                name: product.name.to_owned(),
                quantity,
                unit_price: product.unit_price,
                line_total: 0,
                stock_available: u64::from(product.stock),
            }),
        }
    }
    for line in &mut lines {
        if line.quantity > MAX_QUANTITY_PER_PRODUCT {
            return Err(StepError::permanent(
                "QUANTITY_LIMIT_EXCEEDED",
                format!(
                    "the cart holds {} of {}; one order may hold at most {MAX_QUANTITY_PER_PRODUCT}",
                    line.quantity, line.sku
                ),
            ));
        }
        if line.stock_available == 0 {
            return Err(StepError::permanent(
                "OUT_OF_STOCK",
                format!(
                    "{} ({}) is out of stock; remove it from the cart",
                    line.name, line.sku
                ),
            ));
        }
        if line.quantity > line.stock_available {
            return Err(StepError::permanent(
                "INSUFFICIENT_STOCK",
                format!(
                    "the cart holds {} of {} but only {} are in stock",
                    line.quantity, line.sku, line.stock_available
                ),
            ));
        }
        line.line_total = line.quantity * line.unit_price;
    }
    let token = request
        .payment_token
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(StepError::permanent(
            "MISSING_PAYMENT_TOKEN",
            "the order has no payment_token; tokenize the card in the storefront first",
        ));
    }
    if !token.starts_with("tok_") || token.len() == "tok_".len() {
        return Err(StepError::permanent(
            "INVALID_PAYMENT_TOKEN",
            format!("payment_token {token:?} is not a payment token (tok_…); never send card numbers"),
        ));
    }
    let subtotal = lines.iter().map(|l| l.line_total).sum();
    Ok(ValidatedCart {
        customer_id: request
            .customer
            .id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .unwrap_or(GUEST)
            .to_owned(),
        customer_email: email.to_lowercase(),
        customer_name: request.customer.name.clone(),
        lines,
        totals: pricing.totals(subtotal),
        currency: "USD".to_owned(),
        payment_token: token.to_owned(),
    })
}

/// One sentence about the cart, for the confirmation: `3 items, $63.57`.
#[must_use]
pub fn summary(cart: &ValidatedCart) -> String {
    let units: u64 = cart.lines.iter().map(|l| l.quantity).sum();
    let noun = if units == 1 { "item" } else { "items" };
    format!("{units} {noun}, {}", dollars(cart.totals.total))
}

/// `local@domain.tld`, with no spaces and one `@`.
fn is_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let clean = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace) && !s.contains('@');
    let Some((host, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    clean(local) && clean(host) && clean(tld)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, quantity: i64) -> CartItem {
        CartItem {
            sku: Some(sku.to_owned()),
            quantity: Some(quantity),
        }
    }

    fn order(items: Vec<CartItem>) -> OrderRequest {
        OrderRequest {
            customer: Customer {
                id: Some("cus_7".to_owned()),
                email: Some("Ada@Example.com".to_owned()),
                name: Some("Ada".to_owned()),
            },
            cart_items: items,
            payment_token: Some("tok_visa".to_owned()),
        }
    }

    fn code(request: &OrderRequest) -> String {
        validate_cart(request, &Pricing::default())
            .expect_err("should be refused")
            .code()
            .to_owned()
    }

    #[test]
    fn prices_a_cart_and_merges_repeated_products() {
        let cart = validate_cart(
            &order(vec![
                item("WIDGET-001", 2),
                item("gizmo-003", 1),
                item("WIDGET-001", 1),
            ]),
            &Pricing::default(),
        )
        .expect("valid");
        assert_eq!(cart.lines.len(), 2);
        assert_eq!(
            (cart.lines[0].sku.as_str(), cart.lines[0].quantity),
            ("WIDGET-001", 3)
        );
        assert_eq!(cart.lines[1].sku, "GIZMO-003");
        // 3 × 19.99 + 9.99 = 69.96; 8.25% tax is 5.7717, so 5.77; free shipping from 50.00.
        assert_eq!(
            cart.totals,
            Totals {
                subtotal: 6996,
                tax: 577,
                shipping: 0,
                total: 7573
            }
        );
        assert_eq!(cart.customer_email, "ada@example.com");
        assert_eq!(summary(&cart), "4 items, $75.73");
    }

    #[test]
    fn small_orders_pay_shipping_and_tax_rounds_half_up() {
        let pricing = Pricing {
            tax_rate_bps: 1000,
            free_shipping_from: 5000,
            shipping_fee: 599,
        };
        // 9.95 at 10% is 0.995, which rounds to 1.00.
        assert_eq!(
            pricing.totals(995),
            Totals {
                subtotal: 995,
                tax: 100,
                shipping: 599,
                total: 1694
            }
        );
        assert_eq!(pricing.totals(5000).shipping, 0);
        assert_eq!(pricing.totals(4999).shipping, 599);
    }

    #[test]
    fn guests_check_out_without_an_account() {
        let mut request = order(vec![item("LAMP-004", 1)]);
        request.customer.id = None;
        assert_eq!(
            validate_cart(&request, &Pricing::default()).map(|c| c.customer_id),
            Ok(GUEST.to_owned())
        );
    }

    #[test]
    fn refuses_bad_carts() {
        assert_eq!(code(&order(vec![])), "EMPTY_CART");
        assert_eq!(
            code(&order(vec![CartItem {
                sku: None,
                quantity: Some(1)
            }])),
            "MISSING_SKU"
        );
        assert_eq!(code(&order(vec![item("NOPE-000", 1)])), "UNKNOWN_PRODUCT");
        for q in [0, -2] {
            assert_eq!(
                code(&order(vec![item("WIDGET-001", q)])),
                "INVALID_QUANTITY",
                "{q}"
            );
        }
        let no_quantity = CartItem {
            sku: Some("WIDGET-001".to_owned()),
            quantity: None,
        };
        assert_eq!(code(&order(vec![no_quantity])), "INVALID_QUANTITY");
        // Merged lines count together against the limit.
        assert_eq!(
            code(&order(vec![item("WIDGET-001", 6), item("WIDGET-001", 5)])),
            "QUANTITY_LIMIT_EXCEEDED"
        );
        assert_eq!(code(&order(vec![item("POSTER-006", 1)])), "OUT_OF_STOCK");
        assert_eq!(code(&order(vec![item("KETTLE-005", 4)])), "INSUFFICIENT_STOCK");
    }

    #[test]
    fn refuses_bad_customers_and_payment_tokens() {
        let mut request = order(vec![item("WIDGET-001", 1)]);
        request.customer.email = None;
        assert_eq!(code(&request), "MISSING_CUSTOMER_EMAIL");
        request.customer.email = Some("ada.example.com".to_owned());
        assert_eq!(code(&request), "INVALID_CUSTOMER_EMAIL");

        let mut request = order(vec![item("WIDGET-001", 1)]);
        request.payment_token = None;
        assert_eq!(code(&request), "MISSING_PAYMENT_TOKEN");
        for token in ["4242424242424242", "tok_"] {
            request.payment_token = Some(token.to_owned());
            assert_eq!(code(&request), "INVALID_PAYMENT_TOKEN", "{token}");
        }
    }
}

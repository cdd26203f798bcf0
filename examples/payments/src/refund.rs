//! A refund request, the payment it refunds, and whether the payment can be
//! refunded at all.
//!
//! The payment ledger is simulated. It finds every well-formed payment id
//! except those that start with [`MISSING_PAYMENT_PREFIX`], and reports the
//! captured and already-refunded amounts the request names, so that a demo
//! can ask for each refusal.

use serde::{Deserialize, Serialize};
use tasker_worker::{StepContext, StepError};

use crate::money::{self, format_money};

/// Payment ids with this prefix are unknown to the simulated ledger.
pub const MISSING_PAYMENT_PREFIX: &str = "pay_missing";

/// The reason recorded when the request gives none.
pub const DEFAULT_REASON: &str = "requested_by_customer";

/// The task context of `payments/process_refund`. Amounts are in minor units
/// of `currency` (cents for USD).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefundRequest {
    /// The payment to refund, `pay_…`.
    pub payment_id: Option<String>,
    /// How much to give back.
    pub refund_amount: Option<i64>,
    /// The payment's currency.
    pub currency: Option<String>,
    /// Why the money goes back.
    pub reason: Option<String>,
    /// Whose payment it is.
    pub customer_id: Option<String>,
    /// Where the refund notice goes; none is sent without it.
    pub customer_email: Option<String>,
    /// What the simulated ledger has captured for the payment; the refund
    /// amount when absent.
    pub captured_amount: Option<i64>,
    /// What earlier refunds already returned; 0 when absent.
    pub already_refunded_amount: Option<i64>,
}

impl RefundRequest {
    /// Reads the request from the task context.
    ///
    /// # Errors
    ///
    /// A permanent `invalid_input` error names the field that has the wrong
    /// type.
    pub fn from_context(ctx: &StepContext) -> Result<Self, StepError> {
        Ok(Self {
            payment_id: ctx.input_or("payment_id", None)?,
            refund_amount: ctx.input_or("refund_amount", None)?,
            currency: ctx.input_or("currency", None)?,
            reason: ctx.input_or("reason", None)?,
            customer_id: ctx.input_or("customer_id", None)?,
            customer_email: ctx.input_or("customer_email", None)?,
            captured_amount: ctx.input_or("captured_amount", None)?,
            already_refunded_amount: ctx.input_or("already_refunded_amount", None)?,
        })
    }
}

/// A refund the ledger allows: the result of `validate_payment_eligibility`,
/// which the later steps read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EligibleRefund {
    /// The payment.
    pub payment_id: String,
    /// What this refund returns.
    pub refund_amount: u64,
    /// Upper-case ISO code.
    pub currency: String,
    /// Why.
    pub reason: String,
    /// Whose payment it is, if known.
    pub customer_id: Option<String>,
    /// Where the notice goes, if anywhere.
    pub customer_email: Option<String>,
    /// What the payment captured.
    pub captured_amount: u64,
    /// What earlier refunds returned.
    pub already_refunded_amount: u64,
}

impl EligibleRefund {
    /// What may still be refunded after this refund.
    #[must_use]
    pub fn remaining_after(&self) -> u64 {
        self.captured_amount
            .saturating_sub(self.already_refunded_amount)
            .saturating_sub(self.refund_amount)
    }
}

/// Checks that the payment exists, has money left to refund, and covers the
/// amount asked for.
///
/// # Errors
///
/// Every refusal is permanent, with one of the codes `MISSING_PAYMENT_ID`,
/// `INVALID_PAYMENT_ID`, `PAYMENT_NOT_FOUND`, `MISSING_REFUND_AMOUNT`,
/// `INVALID_REFUND_AMOUNT`, `MISSING_CURRENCY`, `UNSUPPORTED_CURRENCY`,
/// `INVALID_PAYMENT_RECORD`, `ALREADY_REFUNDED` or `AMOUNT_EXCEEDS_CAPTURED`.
pub fn check_eligibility(request: &RefundRequest) -> Result<EligibleRefund, StepError> {
    let payment_id = request.payment_id.as_deref().map(str::trim).unwrap_or_default();
    if payment_id.is_empty() {
        return Err(StepError::permanent(
            "MISSING_PAYMENT_ID",
            "the refund request has no payment_id; give the id of the payment to refund, pay_…",
        ));
    }
    if !is_payment_id(payment_id) {
        return Err(StepError::permanent(
            "INVALID_PAYMENT_ID",
            format!(
                "{payment_id:?} is not a payment id; payment ids are \"pay_\" followed by letters, digits or '_'"
            ),
        ));
    }
    if payment_id.starts_with(MISSING_PAYMENT_PREFIX) {
        return Err(StepError::permanent(
            "PAYMENT_NOT_FOUND",
            format!("no payment {payment_id} in the ledger; check the id on the customer's receipt"),
        ));
    }
    let refund_amount = match request.refund_amount {
        None => {
            return Err(StepError::permanent(
                "MISSING_REFUND_AMOUNT",
                "the refund request has no refund_amount; give it in minor units, e.g. 4999 for $49.99",
            ));
        }
        Some(amount) => u64::try_from(amount).ok().filter(|&a| a > 0).ok_or_else(|| {
            StepError::permanent(
                "INVALID_REFUND_AMOUNT",
                format!("refund_amount is {amount}; it must be above 0, in minor units"),
            )
        })?,
    };
    let code = request.currency.as_deref().map(str::trim).unwrap_or_default();
    if code.is_empty() {
        return Err(StepError::permanent(
            "MISSING_CURRENCY",
            "the refund request has no currency; give the payment's ISO code, e.g. USD",
        ));
    }
    let currency = money::currency(code).ok_or_else(|| {
        let known: Vec<&str> = money::CURRENCIES.iter().map(|c| c.code).collect();
        StepError::permanent(
            "UNSUPPORTED_CURRENCY",
            format!(
                "the gateway cannot refund in {code:?}; it supports {}",
                known.join(", ")
            ),
        )
    })?;
    let captured_amount = ledger_amount("captured_amount", request.captured_amount, refund_amount)?;
    let already_refunded_amount =
        ledger_amount("already_refunded_amount", request.already_refunded_amount, 0)?;
    let refundable = captured_amount.saturating_sub(already_refunded_amount);
    if refundable == 0 {
        return Err(StepError::permanent(
            "ALREADY_REFUNDED",
            format!(
                "payment {payment_id} is already fully refunded ({} of {} captured)",
                format_money(already_refunded_amount, currency.code),
                format_money(captured_amount, currency.code)
            ),
        ));
    }
    if refund_amount > refundable {
        return Err(StepError::permanent(
            "AMOUNT_EXCEEDS_CAPTURED",
            format!(
                "a refund of {} is more than the {} left to refund on payment {payment_id}; refund at most that",
                format_money(refund_amount, currency.code),
                format_money(refundable, currency.code)
            ),
        ));
    }
    Ok(EligibleRefund {
        payment_id: payment_id.to_owned(),
        refund_amount,
        currency: currency.code.to_owned(),
        reason: request
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or(DEFAULT_REASON)
            .to_owned(),
        customer_id: request.customer_id.clone(),
        customer_email: request.customer_email.clone(),
        captured_amount,
        already_refunded_amount,
    })
}

/// `pay_` and then one or more ASCII letters, digits or `_`.
fn is_payment_id(id: &str) -> bool {
    id.strip_prefix("pay_")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

fn ledger_amount(field: &str, value: Option<i64>, default: u64) -> Result<u64, StepError> {
    match value {
        None => Ok(default),
        Some(v) => u64::try_from(v).map_err(|_| {
            StepError::permanent(
                "INVALID_PAYMENT_RECORD",
                format!("{field} is {v}; a ledger amount is 0 or more"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RefundRequest {
        RefundRequest {
            payment_id: Some("pay_3f9a12".to_owned()),
            refund_amount: Some(2500),
            currency: Some("usd".to_owned()),
            reason: Some("damaged_item".to_owned()),
            customer_id: Some("cus_42".to_owned()),
            customer_email: Some("jane@example.com".to_owned()),
            captured_amount: Some(10_000),
            already_refunded_amount: Some(2_000),
        }
    }

    fn code(request: &RefundRequest) -> String {
        check_eligibility(request)
            .expect_err("should be refused")
            .code()
            .to_owned()
    }

    #[test]
    fn accepts_a_partial_refund_and_normalizes_it() {
        let refund = check_eligibility(&request()).expect("eligible");
        assert_eq!(refund.currency, "USD");
        assert_eq!(refund.refund_amount, 2500);
        assert_eq!(refund.remaining_after(), 10_000 - 2_000 - 2500);
    }

    #[test]
    fn defaults_the_ledger_to_a_full_capture_and_the_reason() {
        let refund = check_eligibility(&RefundRequest {
            captured_amount: None,
            already_refunded_amount: None,
            reason: Some("  ".to_owned()),
            ..request()
        })
        .expect("eligible");
        assert_eq!(refund.captured_amount, 2500);
        assert_eq!(refund.already_refunded_amount, 0);
        assert_eq!(refund.remaining_after(), 0);
        assert_eq!(refund.reason, DEFAULT_REASON);
    }

    #[test]
    fn refuses_bad_payment_ids() {
        assert_eq!(
            code(&RefundRequest {
                payment_id: None,
                ..request()
            }),
            "MISSING_PAYMENT_ID"
        );
        for id in ["3f9a12", "pay_", "pay_3f-9a", "PAY_3f9a"] {
            let bad = RefundRequest {
                payment_id: Some(id.to_owned()),
                ..request()
            };
            assert_eq!(code(&bad), "INVALID_PAYMENT_ID", "{id}");
        }
        let missing = RefundRequest {
            payment_id: Some("pay_missing_01".to_owned()),
            ..request()
        };
        assert_eq!(code(&missing), "PAYMENT_NOT_FOUND");
    }

    #[test]
    fn refuses_bad_amounts_and_currencies() {
        assert_eq!(
            code(&RefundRequest {
                refund_amount: None,
                ..request()
            }),
            "MISSING_REFUND_AMOUNT"
        );
        for amount in [0, -100] {
            let bad = RefundRequest {
                refund_amount: Some(amount),
                ..request()
            };
            assert_eq!(code(&bad), "INVALID_REFUND_AMOUNT", "{amount}");
        }
        assert_eq!(
            code(&RefundRequest {
                currency: None,
                ..request()
            }),
            "MISSING_CURRENCY"
        );
        let bad = RefundRequest {
            currency: Some("XBT".to_owned()),
            ..request()
        };
        assert_eq!(code(&bad), "UNSUPPORTED_CURRENCY");
        let bad = RefundRequest {
            captured_amount: Some(-1),
            ..request()
        };
        assert_eq!(code(&bad), "INVALID_PAYMENT_RECORD");
    }

    #[test]
    fn refuses_more_than_is_left() {
        let refunded = RefundRequest {
            already_refunded_amount: Some(10_000),
            ..request()
        };
        assert_eq!(code(&refunded), "ALREADY_REFUNDED");
        // 8000 is left; exactly that is allowed, a cent more is not.
        let all = RefundRequest {
            refund_amount: Some(8_000),
            ..request()
        };
        assert_eq!(check_eligibility(&all).map(|r| r.remaining_after()), Ok(0));
        let over = RefundRequest {
            refund_amount: Some(8_001),
            ..request()
        };
        assert_eq!(code(&over), "AMOUNT_EXCEEDS_CAPTURED");
    }
}

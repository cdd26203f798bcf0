//! The refund request a support agent files on a ticket, and its validation.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tasker_worker::{StepContext, StepError};

use crate::money;

/// A filled-in ticket that the refund policy approves on its own, for demos
/// and tests, with `overrides` laid over it (a field set to `null` is
/// cleared). It carries `captured_amount` too, which the payment service's
/// simulated ledger reads when the refund reaches it as a child task.
#[must_use]
pub fn example_ticket(overrides: serde_json::Value) -> serde_json::Value {
    let mut ticket = serde_json::json!({
        "ticket_id": "TKT-1042",
        "customer_id": "cus_42",
        "customer_email": "jane@example.com",
        "payment_id": "pay_3f9a12c4",
        "refund_amount": 4999,
        "currency": "USD",
        "reason": "item arrived damaged",
        "requested_by": "agent_sam",
        "days_since_purchase": 6,
        "captured_amount": 12_000,
    });
    if let (Some(base), serde_json::Value::Object(overrides)) = (ticket.as_object_mut(), overrides) {
        base.extend(overrides);
    }
    ticket
}

/// The task context of `customer_success/process_refund`, as filed. Amounts
/// are in minor units of `currency` (cents for USD).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefundTicket {
    /// The support ticket, e.g. `TKT-1042`.
    pub ticket_id: Option<String>,
    /// The customer asking for the refund.
    pub customer_id: Option<String>,
    /// Where the payment service sends its refund notice.
    pub customer_email: Option<String>,
    /// The order the payment was for, if the agent knows it.
    pub order_id: Option<String>,
    /// The payment to refund, `pay_…`.
    pub payment_id: Option<String>,
    /// How much to give back.
    pub refund_amount: Option<i64>,
    /// The payment's currency.
    pub currency: Option<String>,
    /// Why, in the agent's words or as a reason code.
    pub reason: Option<String>,
    /// The agent filing the request.
    pub requested_by: Option<String>,
    /// The purchase date, `YYYY-MM-DD` or RFC 3339.
    pub purchase_date: Option<String>,
    /// Days since the purchase, for callers that know the age but not the
    /// date; `purchase_date` wins when both are given.
    pub days_since_purchase: Option<i64>,
}

impl RefundTicket {
    /// Reads the request from the task context.
    ///
    /// # Errors
    ///
    /// A permanent `invalid_input` error names the field that has the wrong
    /// type.
    pub fn from_context(ctx: &StepContext) -> Result<Self, StepError> {
        Ok(Self {
            ticket_id: ctx.input_or("ticket_id", None)?,
            customer_id: ctx.input_or("customer_id", None)?,
            customer_email: ctx.input_or("customer_email", None)?,
            order_id: ctx.input_or("order_id", None)?,
            payment_id: ctx.input_or("payment_id", None)?,
            refund_amount: ctx.input_or("refund_amount", None)?,
            currency: ctx.input_or("currency", None)?,
            reason: ctx.input_or("reason", None)?,
            requested_by: ctx.input_or("requested_by", None)?,
            purchase_date: ctx.input_or("purchase_date", None)?,
            days_since_purchase: ctx.input_or("days_since_purchase", None)?,
        })
    }
}

/// A request that passed validation: the result of
/// `validate_refund_request`, which the later steps read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatedRefund {
    /// The support ticket.
    pub ticket_id: String,
    /// The customer.
    pub customer_id: String,
    /// The customer's address, if given.
    pub customer_email: Option<String>,
    /// The order, if given.
    pub order_id: Option<String>,
    /// The payment to refund.
    pub payment_id: String,
    /// How much, in minor units; above 0.
    pub refund_amount: u64,
    /// Upper-case ISO code.
    pub currency: String,
    /// Why.
    pub reason: String,
    /// The agent who filed it.
    pub requested_by: String,
    /// Whole days from the purchase to the day of validation.
    pub days_since_purchase: u32,
}

/// Checks that the request names everything a refund needs, with values
/// that make sense. `today` is the date the refund window is counted to.
///
/// # Errors
///
/// Every problem is permanent, with one of the codes `MISSING_TICKET_ID`,
/// `MISSING_CUSTOMER_ID`, `MISSING_PAYMENT_ID`, `MISSING_REFUND_AMOUNT`,
/// `INVALID_REFUND_AMOUNT`, `MISSING_CURRENCY`, `UNSUPPORTED_CURRENCY`,
/// `MISSING_REFUND_REASON`, `MISSING_REQUESTER`, `INVALID_CUSTOMER_EMAIL`,
/// `MISSING_PURCHASE_DATE` or `INVALID_PURCHASE_DATE`.
pub fn validate(ticket: &RefundTicket, today: NaiveDate) -> Result<ValidatedRefund, StepError> {
    let ticket_id = required(
        ticket.ticket_id.as_deref(),
        "MISSING_TICKET_ID",
        "ticket_id",
        "the support ticket, e.g. TKT-1042",
    )?;
    let customer_id = required(
        ticket.customer_id.as_deref(),
        "MISSING_CUSTOMER_ID",
        "customer_id",
        "the customer asking for the refund",
    )?;
    let payment_id = required(
        ticket.payment_id.as_deref(),
        "MISSING_PAYMENT_ID",
        "payment_id",
        "the payment to refund, pay_…",
    )?;
    let refund_amount = match ticket.refund_amount {
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
    let code = required(
        ticket.currency.as_deref(),
        "MISSING_CURRENCY",
        "currency",
        "the payment's ISO code, e.g. USD",
    )?;
    let currency = money::currency(&code).ok_or_else(|| {
        let known: Vec<&str> = money::CURRENCIES.iter().map(|c| c.code).collect();
        StepError::permanent(
            "UNSUPPORTED_CURRENCY",
            format!(
                "refunds cannot be issued in {code:?}; use one of {}",
                known.join(", ")
            ),
        )
    })?;
    let reason = required(
        ticket.reason.as_deref(),
        "MISSING_REFUND_REASON",
        "reason",
        "why the customer gets the money back",
    )?;
    let requested_by = required(
        ticket.requested_by.as_deref(),
        "MISSING_REQUESTER",
        "requested_by",
        "the agent filing the request",
    )?;
    let customer_email = match ticket.customer_email.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(email) if is_email(email) => Some(email.to_lowercase()),
        Some(email) => {
            return Err(StepError::permanent(
                "INVALID_CUSTOMER_EMAIL",
                format!("customer_email {email:?} is not an email address; fix it or leave it out"),
            ));
        }
    };
    let days_since_purchase = days_since_purchase(ticket, today)?;
    Ok(ValidatedRefund {
        ticket_id,
        customer_id,
        customer_email,
        order_id: ticket
            .order_id
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned),
        payment_id,
        refund_amount,
        currency: currency.code.to_owned(),
        reason,
        requested_by,
        days_since_purchase,
    })
}

/// The trimmed value of a required text field.
fn required(value: Option<&str>, code: &str, field: &str, what: &str) -> Result<String, StepError> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(StepError::permanent(
            code,
            format!("the refund request has no {field}; give {what}"),
        )),
    }
}

fn days_since_purchase(ticket: &RefundTicket, today: NaiveDate) -> Result<u32, StepError> {
    let days = match (&ticket.purchase_date, ticket.days_since_purchase) {
        (Some(date), _) => {
            let purchased = parse_date(date).ok_or_else(|| {
                StepError::permanent(
                    "INVALID_PURCHASE_DATE",
                    format!("purchase_date {date:?} is not a date; write it as YYYY-MM-DD"),
                )
            })?;
            (today - purchased).num_days()
        }
        (None, Some(days)) => days,
        (None, None) => {
            return Err(StepError::permanent(
                "MISSING_PURCHASE_DATE",
                "the refund request has no purchase_date; give it as YYYY-MM-DD (or give days_since_purchase)",
            ));
        }
    };
    u32::try_from(days).map_err(|_| {
        StepError::permanent(
            "INVALID_PURCHASE_DATE",
            format!(
                "the purchase is {} day(s) in the future; check purchase_date",
                -days
            ),
        )
    })
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|d| d.date_naive())
    })
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

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, 31).expect("a date")
    }

    fn ticket() -> RefundTicket {
        RefundTicket {
            ticket_id: Some(" TKT-1042 ".to_owned()),
            customer_id: Some("cus_42".to_owned()),
            customer_email: Some("Jane@Example.com".to_owned()),
            order_id: Some("ORD-7".to_owned()),
            payment_id: Some("pay_3f9a12".to_owned()),
            refund_amount: Some(4999),
            currency: Some("eur".to_owned()),
            reason: Some("item arrived damaged".to_owned()),
            requested_by: Some("agent_sam".to_owned()),
            purchase_date: Some("2025-03-11".to_owned()),
            days_since_purchase: None,
        }
    }

    fn code(ticket: &RefundTicket) -> String {
        validate(ticket, today())
            .expect_err("should be refused")
            .code()
            .to_owned()
    }

    #[test]
    fn normalizes_a_good_request() {
        let refund = validate(&ticket(), today()).expect("valid");
        assert_eq!(refund.ticket_id, "TKT-1042");
        assert_eq!(refund.currency, "EUR");
        assert_eq!(refund.customer_email.as_deref(), Some("jane@example.com"));
        assert_eq!(refund.days_since_purchase, 20);
    }

    #[test]
    fn counts_days_from_either_form_of_the_purchase_date() {
        let rfc3339 = RefundTicket {
            purchase_date: Some("2025-03-01T18:30:00Z".to_owned()),
            ..ticket()
        };
        assert_eq!(validate(&rfc3339, today()).map(|r| r.days_since_purchase), Ok(30));
        let by_age = RefundTicket {
            purchase_date: None,
            days_since_purchase: Some(3),
            ..ticket()
        };
        assert_eq!(validate(&by_age, today()).map(|r| r.days_since_purchase), Ok(3));
    }

    #[test]
    fn names_each_missing_field() {
        type Break = fn(&mut RefundTicket);
        let cases: [(Break, &str); 8] = [
            (|t| t.ticket_id = None, "MISSING_TICKET_ID"),
            (|t| t.customer_id = Some("  ".to_owned()), "MISSING_CUSTOMER_ID"),
            (|t| t.payment_id = None, "MISSING_PAYMENT_ID"),
            (|t| t.refund_amount = None, "MISSING_REFUND_AMOUNT"),
            (|t| t.currency = None, "MISSING_CURRENCY"),
            (|t| t.reason = None, "MISSING_REFUND_REASON"),
            (|t| t.requested_by = None, "MISSING_REQUESTER"),
            (|t| t.purchase_date = None, "MISSING_PURCHASE_DATE"),
        ];
        for (break_it, expected) in cases {
            let mut bad = ticket();
            break_it(&mut bad);
            assert_eq!(code(&bad), expected);
        }
    }

    #[test]
    fn refuses_bad_values() {
        for amount in [0, -1] {
            assert_eq!(
                code(&RefundTicket {
                    refund_amount: Some(amount),
                    ..ticket()
                }),
                "INVALID_REFUND_AMOUNT"
            );
        }
        assert_eq!(
            code(&RefundTicket {
                currency: Some("DOGE".to_owned()),
                ..ticket()
            }),
            "UNSUPPORTED_CURRENCY"
        );
        assert_eq!(
            code(&RefundTicket {
                customer_email: Some("jane@".to_owned()),
                ..ticket()
            }),
            "INVALID_CUSTOMER_EMAIL"
        );
        for date in ["31/03/2025", "2025-02-30", "2025-04-01"] {
            let bad = RefundTicket {
                purchase_date: Some(date.to_owned()),
                ..ticket()
            };
            assert_eq!(code(&bad), "INVALID_PURCHASE_DATE", "{date}");
        }
    }

    #[test]
    fn an_empty_email_is_no_email() {
        let refund = validate(
            &RefundTicket {
                customer_email: Some(String::new()),
                ..ticket()
            },
            today(),
        )
        .expect("valid");
        assert_eq!(refund.customer_email, None);
    }
}

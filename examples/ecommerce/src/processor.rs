//! The simulated payment processor, scripted from the task context so that
//! a demo or test gets exactly the failures it asks for:
//!
//! - `payment_failures: N`: the first N attempts fail with a retryable error;
//! - `payment_failure`: which one, `timeout` (`PAYMENT_TIMEOUT`, the step's
//!   backoff applies) or `unavailable` (`PROCESSOR_UNAVAILABLE`, with a
//!   `retry_after`);
//! - `payment_decline: "reason"`: once the processor answers, it declines
//!   the card for good (`CARD_DECLINED`).
//!
//! The attempt number comes from the step context, so the script holds
//! across redeliveries and workers.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tasker_worker::{StepContext, StepError};
use uuid::Uuid;

use crate::catalog::dollars;

/// How long an unavailable processor asks callers to wait.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A failure that another attempt may get past.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransientFailure {
    /// The processor did not answer in time.
    #[default]
    Timeout,
    /// The processor is down for maintenance or overloaded.
    Unavailable,
}

/// The processor, with its script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulatedProcessor {
    /// How many attempts fail before the processor answers.
    pub failures: u32,
    /// How they fail.
    pub failure: TransientFailure,
    /// When set, the processor's answer is a decline, for this reason.
    pub decline: Option<String>,
}

/// The processor's receipt: the result of `process_payment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReceipt {
    /// The processor's id for the charge, `pay_…`; the same for every
    /// attempt of the same step, as the idempotency key makes it.
    pub payment_id: String,
    /// What was charged, in cents.
    pub amount: u64,
    /// Upper-case ISO code.
    pub currency: String,
    /// Always `captured`: anything else is an error.
    pub status: String,
    /// The attempt that succeeded.
    pub attempt: u32,
}

impl SimulatedProcessor {
    /// Reads the script from the task context.
    ///
    /// # Errors
    ///
    /// A permanent `invalid_input` error names the script field that has the
    /// wrong type or value.
    pub fn from_context(ctx: &StepContext) -> Result<Self, StepError> {
        Ok(Self {
            failures: ctx.input_or("payment_failures", 0)?,
            failure: ctx.input_or("payment_failure", TransientFailure::default())?,
            decline: ctx.input_or("payment_decline", None)?,
        })
    }

    /// Charges `amount` cents; `attempt` counts from 1 and
    /// `idempotency_key` is the step's.
    ///
    /// # Errors
    ///
    /// Retryable `PAYMENT_TIMEOUT` or `PROCESSOR_UNAVAILABLE` while `attempt`
    /// is within the scripted failures; then permanent `CARD_DECLINED` if a
    /// decline is scripted.
    pub fn charge(
        &self,
        amount: u64,
        currency: &str,
        attempt: u32,
        idempotency_key: &str,
    ) -> Result<PaymentReceipt, StepError> {
        if attempt <= self.failures {
            let left = self.failures - attempt;
            return Err(match self.failure {
                TransientFailure::Timeout => StepError::retryable(
                    "PAYMENT_TIMEOUT",
                    format!(
                        "the payment processor did not answer attempt {attempt} in time ({left} more scripted failure(s))"
                    ),
                ),
                TransientFailure::Unavailable => StepError::retryable(
                    "PROCESSOR_UNAVAILABLE",
                    format!(
                        "the payment processor is unavailable for attempt {attempt} ({left} more scripted failure(s))"
                    ),
                )
                .retry_after(UNAVAILABLE_RETRY_AFTER),
            });
        }
        if let Some(reason) = &self.decline {
            return Err(StepError::permanent(
                "CARD_DECLINED",
                format!(
                    "the card was declined for {}: {reason}; ask the customer for another payment method",
                    dollars(amount)
                ),
            ));
        }
        let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, idempotency_key.as_bytes());
        Ok(PaymentReceipt {
            payment_id: format!("pay_{}", &id.simple().to_string()[..24]),
            amount,
            currency: currency.to_owned(),
            status: "captured".to_owned(),
            attempt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_the_scripted_attempts_then_charges() {
        let processor = SimulatedProcessor {
            failures: 3,
            failure: TransientFailure::Unavailable,
            decline: None,
        };
        for attempt in 1..=3 {
            match processor.charge(7573, "USD", attempt, "t:process_payment") {
                Err(StepError::Retryable {
                    code, retry_after, ..
                }) => {
                    assert_eq!(code, "PROCESSOR_UNAVAILABLE");
                    assert_eq!(retry_after, Some(UNAVAILABLE_RETRY_AFTER));
                }
                other => panic!("attempt {attempt}: expected a retryable failure, got {other:?}"),
            }
        }
        let receipt = processor
            .charge(7573, "USD", 4, "t:process_payment")
            .expect("charged");
        assert_eq!((receipt.amount, receipt.attempt), (7573, 4));
    }

    #[test]
    fn no_script_charges_at_once_with_a_stable_id() {
        let processor = SimulatedProcessor::default();
        let a = processor
            .charge(100, "USD", 1, "t:process_payment")
            .expect("charged");
        let b = processor
            .charge(100, "USD", 2, "t:process_payment")
            .expect("charged");
        assert_eq!(a.payment_id, b.payment_id);
        assert!(a.payment_id.starts_with("pay_"));
    }

    #[test]
    fn a_decline_is_permanent_and_comes_after_the_timeouts() {
        let processor = SimulatedProcessor {
            failures: 1,
            failure: TransientFailure::Timeout,
            decline: Some("insufficient funds".to_owned()),
        };
        let first = processor.charge(100, "USD", 1, "k").expect_err("timeout");
        assert_eq!((first.code(), first.is_retryable()), ("PAYMENT_TIMEOUT", true));
        let second = processor.charge(100, "USD", 2, "k").expect_err("declined");
        assert_eq!((second.code(), second.is_retryable()), ("CARD_DECLINED", false));
        assert!(second.to_string().contains("insufficient funds"));
    }
}

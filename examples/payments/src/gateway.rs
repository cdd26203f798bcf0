//! The simulated payment gateway, scripted from the task context so that a
//! demo or test gets exactly the failures it asks for:
//!
//! - `gateway_failures: N`: the first N attempts fail with a retryable error;
//! - `gateway_failure`: which one, `timeout` (`GATEWAY_TIMEOUT`, the step's
//!   backoff applies) or `rate_limited` (`RATE_LIMITED`, with a `retry_after`);
//! - `gateway_decline: "reason"`: once the gateway answers, it declines the
//!   refund for good (`GATEWAY_DECLINED`).
//!
//! The attempt number comes from the step context, so the script holds
//! across redeliveries and workers.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tasker_worker::{StepContext, StepError};
use uuid::Uuid;

use crate::money::format_money;
use crate::refund::EligibleRefund;

/// How long a rate-limited gateway asks callers to wait.
pub const RATE_LIMIT_RETRY_AFTER: Duration = Duration::from_secs(2);

/// A failure that another attempt may get past.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransientFailure {
    /// The gateway did not answer in time.
    #[default]
    Timeout,
    /// The gateway refused the call for now.
    RateLimited,
}

/// The gateway, with its script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulatedGateway {
    /// How many attempts fail before the gateway answers.
    pub failures: u32,
    /// How they fail.
    pub failure: TransientFailure,
    /// When set, the gateway's answer is a decline, for this reason.
    pub decline: Option<String>,
}

/// The gateway's receipt for a refund: the result of `process_gateway_refund`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayReceipt {
    /// The gateway's id for the refund, `re_…`; the same for every attempt
    /// of the same step, as a real gateway's idempotency key makes it.
    pub refund_id: String,
    /// The refunded payment.
    pub payment_id: String,
    /// What was returned, in minor units.
    pub amount: u64,
    /// Upper-case ISO code.
    pub currency: String,
    /// Always `succeeded`: anything else is an error.
    pub status: String,
    /// The attempt that succeeded.
    pub attempt: u32,
}

impl SimulatedGateway {
    /// Reads the script from the task context.
    ///
    /// # Errors
    ///
    /// A permanent `invalid_input` error names the script field that has the
    /// wrong type or value.
    pub fn from_context(ctx: &StepContext) -> Result<Self, StepError> {
        Ok(Self {
            failures: ctx.input_or("gateway_failures", 0)?,
            failure: ctx.input_or("gateway_failure", TransientFailure::default())?,
            decline: ctx.input_or("gateway_decline", None)?,
        })
    }

    /// Sends the refund; `attempt` counts from 1 and `idempotency_key` is the
    /// step's.
    ///
    /// # Errors
    ///
    /// Retryable `GATEWAY_TIMEOUT` or `RATE_LIMITED` while `attempt` is
    /// within the scripted failures; then permanent `GATEWAY_DECLINED` if a
    /// decline is scripted.
    pub fn refund(
        &self,
        refund: &EligibleRefund,
        attempt: u32,
        idempotency_key: &str,
    ) -> Result<GatewayReceipt, StepError> {
        if attempt <= self.failures {
            let left = self.failures - attempt;
            return Err(match self.failure {
                TransientFailure::Timeout => StepError::retryable(
                    "GATEWAY_TIMEOUT",
                    format!(
                        "the gateway did not answer attempt {attempt} in time ({left} more scripted failure(s))"
                    ),
                ),
                TransientFailure::RateLimited => StepError::retryable(
                    "RATE_LIMITED",
                    format!(
                        "the gateway rate-limited attempt {attempt}; it asks to wait {}s ({left} more scripted failure(s))",
                        RATE_LIMIT_RETRY_AFTER.as_secs()
                    ),
                )
                .retry_after(RATE_LIMIT_RETRY_AFTER),
            });
        }
        if let Some(reason) = &self.decline {
            return Err(StepError::permanent(
                "GATEWAY_DECLINED",
                format!(
                    "the gateway declined the refund of {} on payment {}: {reason}",
                    format_money(refund.refund_amount, &refund.currency),
                    refund.payment_id
                ),
            ));
        }
        let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, idempotency_key.as_bytes());
        Ok(GatewayReceipt {
            refund_id: format!("re_{}", &id.simple().to_string()[..24]),
            payment_id: refund.payment_id.clone(),
            amount: refund.refund_amount,
            currency: refund.currency.clone(),
            status: "succeeded".to_owned(),
            attempt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refund() -> EligibleRefund {
        EligibleRefund {
            payment_id: "pay_1".to_owned(),
            refund_amount: 1250,
            currency: "EUR".to_owned(),
            reason: "damaged_item".to_owned(),
            customer_id: None,
            customer_email: None,
            captured_amount: 1250,
            already_refunded_amount: 0,
        }
    }

    #[test]
    fn fails_the_scripted_attempts_then_refunds() {
        let gateway = SimulatedGateway {
            failures: 2,
            ..SimulatedGateway::default()
        };
        for attempt in 1..=2 {
            let error = gateway
                .refund(&refund(), attempt, "t:s")
                .expect_err("scripted failure");
            assert!(error.is_retryable());
            assert_eq!(error.code(), "GATEWAY_TIMEOUT");
        }
        let receipt = gateway
            .refund(&refund(), 3, "t:s")
            .expect("third attempt succeeds");
        assert_eq!(receipt.attempt, 3);
        assert_eq!(receipt.amount, 1250);
        assert_eq!(receipt.currency, "EUR");
    }

    #[test]
    fn rate_limits_carry_a_delay() {
        let gateway = SimulatedGateway {
            failures: 1,
            failure: TransientFailure::RateLimited,
            decline: None,
        };
        match gateway.refund(&refund(), 1, "t:s") {
            Err(StepError::Retryable {
                code, retry_after, ..
            }) => {
                assert_eq!(code, "RATE_LIMITED");
                assert_eq!(retry_after, Some(RATE_LIMIT_RETRY_AFTER));
            }
            other => panic!("expected a retryable rate limit, got {other:?}"),
        }
        assert!(gateway.refund(&refund(), 2, "t:s").is_ok());
    }

    #[test]
    fn a_decline_is_permanent_and_comes_after_the_transient_failures() {
        let gateway = SimulatedGateway {
            failures: 1,
            failure: TransientFailure::Timeout,
            decline: Some("card account closed".to_owned()),
        };
        assert!(
            gateway
                .refund(&refund(), 1, "t:s")
                .expect_err("timeout")
                .is_retryable()
        );
        let error = gateway.refund(&refund(), 2, "t:s").expect_err("decline");
        assert_eq!(error.code(), "GATEWAY_DECLINED");
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("card account closed"));
    }

    #[test]
    fn the_refund_id_follows_the_idempotency_key() {
        let gateway = SimulatedGateway::default();
        let first = gateway
            .refund(&refund(), 1, "task-a:process_gateway_refund")
            .expect("ok");
        let again = gateway
            .refund(&refund(), 2, "task-a:process_gateway_refund")
            .expect("ok");
        let other = gateway
            .refund(&refund(), 1, "task-b:process_gateway_refund")
            .expect("ok");
        assert_eq!(first.refund_id, again.refund_id);
        assert_ne!(first.refund_id, other.refund_id);
        assert!(first.refund_id.starts_with("re_"));
    }
}

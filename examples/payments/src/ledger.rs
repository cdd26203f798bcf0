//! What a completed refund changes in the payment's ledger record.

use serde::{Deserialize, Serialize};
use tasker_worker::StepError;

use crate::gateway::GatewayReceipt;
use crate::refund::EligibleRefund;

/// A payment's state in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Captured, nothing refunded.
    Captured,
    /// Some of the capture returned.
    PartiallyRefunded,
    /// All of it returned.
    Refunded,
}

/// The ledger after the refund: the result of `update_payment_records`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerUpdate {
    /// The payment.
    pub payment_id: String,
    /// The gateway's refund id.
    pub refund_id: String,
    /// Its status before this refund.
    pub previous_status: PaymentStatus,
    /// Its status now.
    pub payment_status: PaymentStatus,
    /// Everything refunded so far, this refund included.
    pub refunded_total: u64,
    /// What a later refund may still return.
    pub remaining_refundable: u64,
    /// Upper-case ISO code.
    pub currency: String,
}

/// Books the gateway's receipt against the eligible refund.
///
/// # Errors
///
/// A permanent `RECEIPT_MISMATCH` when the receipt is for another payment,
/// amount or currency than the refund: booking it would corrupt the ledger,
/// and someone has to look.
pub fn apply_refund(refund: &EligibleRefund, receipt: &GatewayReceipt) -> Result<LedgerUpdate, StepError> {
    if receipt.payment_id != refund.payment_id
        || receipt.amount != refund.refund_amount
        || receipt.currency != refund.currency
    {
        return Err(StepError::permanent(
            "RECEIPT_MISMATCH",
            format!(
                "gateway receipt {} is for {} {} on {}, but the refund was {} {} on {}; reconcile it by hand",
                receipt.refund_id,
                receipt.amount,
                receipt.currency,
                receipt.payment_id,
                refund.refund_amount,
                refund.currency,
                refund.payment_id
            ),
        ));
    }
    let refunded_total = refund.already_refunded_amount + refund.refund_amount;
    Ok(LedgerUpdate {
        payment_id: refund.payment_id.clone(),
        refund_id: receipt.refund_id.clone(),
        previous_status: status(refund.already_refunded_amount, refund.captured_amount),
        payment_status: status(refunded_total, refund.captured_amount),
        refunded_total,
        remaining_refundable: refund.remaining_after(),
        currency: refund.currency.clone(),
    })
}

fn status(refunded: u64, captured: u64) -> PaymentStatus {
    if refunded == 0 {
        PaymentStatus::Captured
    } else if refunded >= captured {
        PaymentStatus::Refunded
    } else {
        PaymentStatus::PartiallyRefunded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refund(amount: u64, captured: u64, already: u64) -> EligibleRefund {
        EligibleRefund {
            payment_id: "pay_1".to_owned(),
            refund_amount: amount,
            currency: "USD".to_owned(),
            reason: "damaged_item".to_owned(),
            customer_id: None,
            customer_email: None,
            captured_amount: captured,
            already_refunded_amount: already,
        }
    }

    fn receipt(refund: &EligibleRefund) -> GatewayReceipt {
        GatewayReceipt {
            refund_id: "re_1".to_owned(),
            payment_id: refund.payment_id.clone(),
            amount: refund.refund_amount,
            currency: refund.currency.clone(),
            status: "succeeded".to_owned(),
            attempt: 1,
        }
    }

    #[test]
    fn a_partial_refund_leaves_the_rest_refundable() {
        let r = refund(300, 1000, 0);
        let update = apply_refund(&r, &receipt(&r)).expect("books");
        assert_eq!(update.previous_status, PaymentStatus::Captured);
        assert_eq!(update.payment_status, PaymentStatus::PartiallyRefunded);
        assert_eq!((update.refunded_total, update.remaining_refundable), (300, 700));
    }

    #[test]
    fn the_last_refund_closes_the_payment() {
        let r = refund(700, 1000, 300);
        let update = apply_refund(&r, &receipt(&r)).expect("books");
        assert_eq!(update.previous_status, PaymentStatus::PartiallyRefunded);
        assert_eq!(update.payment_status, PaymentStatus::Refunded);
        assert_eq!((update.refunded_total, update.remaining_refundable), (1000, 0));
    }

    #[test]
    fn refuses_a_receipt_for_something_else() {
        let r = refund(700, 1000, 0);
        let wrong = GatewayReceipt {
            amount: 70,
            ..receipt(&r)
        };
        assert_eq!(
            apply_refund(&r, &wrong).expect_err("mismatch").code(),
            "RECEIPT_MISMATCH"
        );
        let wrong = GatewayReceipt {
            payment_id: "pay_2".to_owned(),
            ..receipt(&r)
        };
        assert_eq!(
            apply_refund(&r, &wrong).expect_err("mismatch").code(),
            "RECEIPT_MISMATCH"
        );
    }
}

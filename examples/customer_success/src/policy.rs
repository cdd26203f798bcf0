//! The refund policy, and the approval it calls for.
//!
//! A refund must fall within the refund window and under the most a
//! support refund may return. Below the auto-approval limit it goes through
//! on its own; above it a manager decides. Managers are simulated: the
//! request's `manager_decision` (`approve`, the default, or `deny`) is what
//! the manager on call decides.

use serde::{Deserialize, Serialize};
use tasker_worker::{StepContext, StepError};

use crate::money::format_money;
use crate::request::ValidatedRefund;

/// Who approves the refunds under the auto-approval limit.
pub const AUTO_APPROVER: &str = "policy:auto";

/// The manager who decides when the request names none.
pub const MANAGER_ON_CALL: &str = "mgr_on_call";

/// The limits a refund is checked against. Amounts are in minor units of
/// the refund's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPolicy {
    /// How many days after the purchase a refund may still be given.
    pub refund_window_days: u32,
    /// Refunds up to this much need no manager.
    pub auto_approve_limit: u64,
    /// No support refund returns more than this.
    pub max_refund_amount: u64,
}

impl Default for RefundPolicy {
    fn default() -> Self {
        Self {
            refund_window_days: 30,
            auto_approve_limit: 10_000,
            max_refund_amount: 250_000,
        }
    }
}

impl RefundPolicy {
    /// The policy from the step's `handler.initialization`, each key
    /// defaulting to [`RefundPolicy::default`].
    ///
    /// # Errors
    ///
    /// A permanent `invalid_input` error names the setting that is not a
    /// whole number of 0 or more.
    pub fn from_initialization(ctx: &StepContext) -> Result<Self, StepError> {
        let default = Self::default();
        Ok(Self {
            refund_window_days: ctx
                .initialization("refund_window_days")?
                .unwrap_or(default.refund_window_days),
            auto_approve_limit: ctx
                .initialization("auto_approve_limit")?
                .unwrap_or(default.auto_approve_limit),
            max_refund_amount: ctx
                .initialization("max_refund_amount")?
                .unwrap_or(default.max_refund_amount),
        })
    }
}

/// What the policy said: the result of `check_refund_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    /// The policy applied.
    pub policy: RefundPolicy,
    /// The purchase's age.
    pub days_since_purchase: u32,
    /// Whether a manager must approve.
    pub requires_approval: bool,
}

/// Checks the refund against the policy.
///
/// # Errors
///
/// A permanent `REFUND_WINDOW_EXPIRED` when the purchase is older than the
/// window, or `REFUND_LIMIT_EXCEEDED` when the amount is above the maximum.
pub fn check_policy(refund: &ValidatedRefund, policy: &RefundPolicy) -> Result<PolicyDecision, StepError> {
    if refund.days_since_purchase > policy.refund_window_days {
        return Err(StepError::permanent(
            "REFUND_WINDOW_EXPIRED",
            format!(
                "the purchase was {} days ago and refunds are given within {} days; offer store credit instead",
                refund.days_since_purchase, policy.refund_window_days
            ),
        ));
    }
    if refund.refund_amount > policy.max_refund_amount {
        return Err(StepError::permanent(
            "REFUND_LIMIT_EXCEEDED",
            format!(
                "a refund of {} is above the {} a support refund may return; escalate ticket {} to finance",
                format_money(refund.refund_amount, &refund.currency),
                format_money(policy.max_refund_amount, &refund.currency),
                refund.ticket_id
            ),
        ));
    }
    Ok(PolicyDecision {
        policy: *policy,
        days_since_purchase: refund.days_since_purchase,
        requires_approval: refund.refund_amount > policy.auto_approve_limit,
    })
}

/// What the simulated manager decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManagerDecision {
    /// The refund may go ahead.
    #[default]
    Approve,
    /// It may not.
    Deny,
}

/// How the refund was approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMethod {
    /// Under the auto-approval limit.
    Automatic,
    /// By a manager.
    Manager,
}

/// The approval: the result of `get_manager_approval`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved: a manager's id, or [`AUTO_APPROVER`].
    pub approved_by: String,
    /// How.
    pub method: ApprovalMethod,
}

/// The manager's side of the approval, from the task context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagerReview {
    /// What they decide.
    pub decision: ManagerDecision,
    /// Who they are; [`MANAGER_ON_CALL`] when absent.
    pub manager_id: Option<String>,
    /// Why, when they deny.
    pub note: Option<String>,
}

/// Approves the refund, by policy or by the manager.
///
/// # Errors
///
/// A permanent `SELF_APPROVAL_NOT_ALLOWED` when the manager is the agent
/// who filed the request, or `MANAGER_DENIED` when the manager says no.
pub fn approve(
    refund: &ValidatedRefund,
    policy: &PolicyDecision,
    review: &ManagerReview,
) -> Result<Approval, StepError> {
    if !policy.requires_approval {
        return Ok(Approval {
            approved_by: AUTO_APPROVER.to_owned(),
            method: ApprovalMethod::Automatic,
        });
    }
    let manager = review
        .manager_id
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or(MANAGER_ON_CALL);
    if manager == refund.requested_by {
        return Err(StepError::permanent(
            "SELF_APPROVAL_NOT_ALLOWED",
            format!(
                "{manager} filed this refund and cannot also approve it; ask another manager to review ticket {}",
                refund.ticket_id
            ),
        ));
    }
    match review.decision {
        ManagerDecision::Approve => Ok(Approval {
            approved_by: manager.to_owned(),
            method: ApprovalMethod::Manager,
        }),
        ManagerDecision::Deny => Err(StepError::permanent(
            "MANAGER_DENIED",
            format!(
                "{manager} denied the refund of {} on ticket {}: {}",
                format_money(refund.refund_amount, &refund.currency),
                refund.ticket_id,
                review.note.as_deref().unwrap_or("no reason given")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refund(amount: u64, days: u32) -> ValidatedRefund {
        ValidatedRefund {
            ticket_id: "TKT-1".to_owned(),
            customer_id: "cus_1".to_owned(),
            customer_email: None,
            order_id: None,
            payment_id: "pay_1".to_owned(),
            refund_amount: amount,
            currency: "USD".to_owned(),
            reason: "damaged".to_owned(),
            requested_by: "agent_sam".to_owned(),
            days_since_purchase: days,
        }
    }

    fn code<T: std::fmt::Debug>(result: Result<T, StepError>) -> String {
        result.expect_err("should be refused").code().to_owned()
    }

    #[test]
    fn the_window_and_the_maximum_are_inclusive() {
        let policy = RefundPolicy::default();
        assert!(
            check_policy(
                &refund(policy.max_refund_amount, policy.refund_window_days),
                &policy
            )
            .is_ok()
        );
        assert_eq!(
            code(check_policy(&refund(500, policy.refund_window_days + 1), &policy)),
            "REFUND_WINDOW_EXPIRED"
        );
        assert_eq!(
            code(check_policy(&refund(policy.max_refund_amount + 1, 0), &policy)),
            "REFUND_LIMIT_EXCEEDED"
        );
    }

    #[test]
    fn approval_is_needed_above_the_auto_approve_limit() {
        let policy = RefundPolicy {
            auto_approve_limit: 1000,
            ..RefundPolicy::default()
        };
        assert!(
            !check_policy(&refund(1000, 1), &policy)
                .expect("ok")
                .requires_approval
        );
        assert!(
            check_policy(&refund(1001, 1), &policy)
                .expect("ok")
                .requires_approval
        );
    }

    fn decision(requires_approval: bool) -> PolicyDecision {
        PolicyDecision {
            policy: RefundPolicy::default(),
            days_since_purchase: 1,
            requires_approval,
        }
    }

    #[test]
    fn small_refunds_are_approved_by_policy_whatever_the_manager_says() {
        let review = ManagerReview {
            decision: ManagerDecision::Deny,
            ..ManagerReview::default()
        };
        let approval = approve(&refund(500, 1), &decision(false), &review).expect("approved");
        assert_eq!(approval.method, ApprovalMethod::Automatic);
        assert_eq!(approval.approved_by, AUTO_APPROVER);
    }

    #[test]
    fn large_refunds_follow_the_manager() {
        let approval =
            approve(&refund(50_000, 1), &decision(true), &ManagerReview::default()).expect("approved");
        assert_eq!(approval.method, ApprovalMethod::Manager);
        assert_eq!(approval.approved_by, MANAGER_ON_CALL);

        let denied = ManagerReview {
            decision: ManagerDecision::Deny,
            manager_id: Some("mgr_ana".to_owned()),
            note: Some("customer already got store credit".to_owned()),
        };
        let error = approve(&refund(50_000, 1), &decision(true), &denied).expect_err("denied");
        assert_eq!(error.code(), "MANAGER_DENIED");
        assert!(error.to_string().contains("mgr_ana"));
        assert!(error.to_string().contains("store credit"));
    }

    #[test]
    fn nobody_approves_their_own_refund() {
        let review = ManagerReview {
            manager_id: Some("agent_sam".to_owned()),
            ..ManagerReview::default()
        };
        assert_eq!(
            code(approve(&refund(50_000, 1), &decision(true), &review)),
            "SELF_APPROVAL_NOT_ALLOWED"
        );
    }
}

//! The `microservices` namespace: the five handlers of the
//! user-registration diamond. Each simulates its service (no external
//! calls) with a short, configurable latency.
//!
//! ```text
//! create_user_account ─┬─▶ setup_billing_profile ──┬─▶ send_welcome_sequence ─▶ update_user_status
//!                      └─▶ initialize_preferences ─┘
//! ```

#![warn(missing_docs)]

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tasker_worker::{StepContext, StepError, StepHandler, Worker};
use uuid::Uuid;

/// The namespace these handlers serve.
pub const NAMESPACE: &str = "microservices";

/// The language these handlers are written in, which each result names
/// (`language`), as the other languages' versions of them do, so that a
/// task served by several languages shows which ran each step.
pub const LANGUAGE: &str = "rust";

/// Domains of disposable mailboxes, which cannot register.
pub const BLOCKED_DOMAINS: [&str; 3] = ["tempmail.com", "throwaway.email", "mailinator.com"];

/// How long each simulated service call takes, picked at random from a range
/// of milliseconds. Zero for benchmarks; a little for demos, so that the
/// parallel branches show.
#[derive(Debug, Clone)]
pub struct Latency(pub Range<u64>);

impl Latency {
    /// No latency.
    #[must_use]
    pub fn none() -> Self {
        Self(0..0)
    }

    async fn wait(&self) {
        if self.0.is_empty() {
            return;
        }
        let ms = rand::random_range(self.0.clone());
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Registers the five handlers, each under its template `callable`. The
/// caller chooses the namespaces the worker serves.
#[must_use]
pub fn register(worker: Worker, latency: &Latency) -> Worker {
    register_with(worker, latency, BillingService::Up)
}

/// Whether the billing service the billing step calls is reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingService {
    /// It answers.
    Up,
    /// It is down: every billing attempt fails retryably with
    /// `BILLING_SERVICE_UNAVAILABLE`, as during an outage.
    Down,
}

/// [`register`], with the billing service up or down.
#[must_use]
pub fn register_with(worker: Worker, latency: &Latency, billing: BillingService) -> Worker {
    Service::ALL.into_iter().fold(worker, |worker, service| {
        service.register(worker, latency, billing)
    })
}

/// The services of the `microservices` namespace, each owned by its own
/// team; each serves some of the five callables, and several processes,
/// in several languages, serve the namespace together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Creates accounts and activates them.
    User,
    /// Only creates accounts: half of `User`, for a layout that runs the two
    /// user handlers apart (in other languages, say).
    Accounts,
    /// Only activates accounts: the other half of `User`.
    Status,
    /// Sets up the billing profile.
    Billing,
    /// Sets up the user's preferences.
    Preferences,
    /// Sends the welcome sequence.
    Notifications,
}

impl Service {
    /// The four services that together serve each callable once: the
    /// namespace's usual layout. `Accounts` and `Status` split `User`.
    pub const ALL: [Self; 4] = [Self::User, Self::Billing, Self::Preferences, Self::Notifications];

    /// Every service, `User`'s halves included.
    pub const EVERY: [Self; 6] = [
        Self::User,
        Self::Accounts,
        Self::Status,
        Self::Billing,
        Self::Preferences,
        Self::Notifications,
    ];

    /// The service's name, which names its queue.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Accounts => "accounts",
            Self::Status => "status",
            Self::Billing => "billing",
            Self::Preferences => "preferences",
            Self::Notifications => "notifications",
        }
    }

    /// The service called `name`.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        Self::EVERY.into_iter().find(|s| s.name() == name)
    }

    /// The callables the service serves.
    #[must_use]
    pub fn callables(self) -> &'static [&'static str] {
        match self {
            Self::User => &[CREATE_USER_ACCOUNT, UPDATE_USER_STATUS],
            Self::Accounts => &[CREATE_USER_ACCOUNT],
            Self::Status => &[UPDATE_USER_STATUS],
            Self::Billing => &["Microservices::StepHandlers::SetupBillingProfileHandler"],
            Self::Preferences => &["Microservices::StepHandlers::InitializePreferencesHandler"],
            Self::Notifications => &["Microservices::StepHandlers::SendWelcomeSequenceHandler"],
        }
    }

    /// Registers the service's handlers.
    #[must_use]
    pub fn register(self, worker: Worker, latency: &Latency, billing: BillingService) -> Worker {
        let l = || latency.clone();
        match self {
            Self::User => worker
                .handler(CREATE_USER_ACCOUNT, CreateUserAccount(l()))
                .handler(UPDATE_USER_STATUS, UpdateUserStatus(l())),
            Self::Accounts => worker.handler(CREATE_USER_ACCOUNT, CreateUserAccount(l())),
            Self::Status => worker.handler(UPDATE_USER_STATUS, UpdateUserStatus(l())),
            Self::Billing => worker.handler(self.callables()[0], SetupBillingProfile(l(), billing)),
            Self::Preferences => worker.handler(self.callables()[0], InitializePreferences(l())),
            Self::Notifications => worker.handler(self.callables()[0], SendWelcomeSequence(l())),
        }
    }
}

const CREATE_USER_ACCOUNT: &str = "Microservices::StepHandlers::CreateUserAccountHandler";
const UPDATE_USER_STATUS: &str = "Microservices::StepHandlers::UpdateUserStatusHandler";

#[derive(Debug, Default, Deserialize)]
struct UserInfo {
    email: Option<String>,
    name: Option<String>,
    plan: Option<String>,
}

/// Creates the account in the user service. Validates the email: required,
/// well-formed, and not from a disposable domain; each refusal is permanent.
pub struct CreateUserAccount(pub Latency);

#[async_trait::async_trait]
impl StepHandler for CreateUserAccount {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let info: UserInfo = ctx.input_or("user_info", UserInfo::default())?;
        let email = info.email.unwrap_or_default();
        if email.trim().is_empty() {
            return Err(StepError::permanent("MISSING_EMAIL", "Email address is required"));
        }
        if !is_email(&email) {
            return Err(StepError::permanent(
                "INVALID_EMAIL",
                format!("Invalid email format: {email}"),
            ));
        }
        let domain = email.rsplit('@').next().unwrap_or_default().to_lowercase();
        if BLOCKED_DOMAINS.contains(&domain.as_str()) {
            return Err(StepError::permanent(
                "BLOCKED_EMAIL_DOMAIN",
                format!("Disposable email addresses are not allowed: {domain}"),
            ));
        }
        self.0.wait().await;
        // Derived from the step's idempotency key, so that a repeated run
        // finds the same account instead of creating a second one.
        let key = Uuid::new_v5(&Uuid::NAMESPACE_OID, ctx.idempotency_key().as_bytes());
        Ok(json!({
            "user_id": format!("usr_{}", &key.simple().to_string()[..24]),
            "email": email.to_lowercase(),
            "name": info.name,
            "plan": info.plan.unwrap_or_else(|| "free".to_owned()),
            "status": "created",
            "email_verified": false,
            "verification_token": Uuid::new_v4().simple().to_string(),
            "created_at": chrono::Utc::now().to_rfc3339(),
            "language": LANGUAGE,
        }))
    }
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

#[derive(Deserialize)]
struct Account {
    user_id: String,
    email: String,
    name: Option<String>,
    plan: String,
}

/// Sets up the billing profile; paid plans start with a trial.
pub struct SetupBillingProfile(pub Latency, pub BillingService);

#[async_trait::async_trait]
impl StepHandler for SetupBillingProfile {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let account: Account = ctx.dependency_result("create_user_account")?;
        let trial_days = match account.plan.as_str() {
            "pro" => 14,
            "enterprise" => 30,
            _ => 0,
        };
        self.0.wait().await;
        if self.1 == BillingService::Down {
            return Err(StepError::retryable(
                "BILLING_SERVICE_UNAVAILABLE",
                "the billing service did not answer; the step is retried with backoff",
            ));
        }
        Ok(json!({
            "billing_id": format!("bill_{}", &account.user_id[4..]),
            "user_id": account.user_id,
            "plan": account.plan,
            "trial_days": trial_days,
            "billing_status": if trial_days > 0 { "trialing" } else { "active" },
            "created_at": chrono::Utc::now().to_rfc3339(),
            "language": LANGUAGE,
        }))
    }
}

/// Creates the user's preferences, with notification channels by plan;
/// the request may override them under `preferences`.
pub struct InitializePreferences(pub Latency);

#[async_trait::async_trait]
impl StepHandler for InitializePreferences {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let account: Account = ctx.dependency_result("create_user_account")?;
        let mut notifications = json!({ "email": true, "push": account.plan != "free", "sms": false });
        let overrides: Value = ctx.input_or("preferences", Value::Null)?;
        if let (Some(base), Some(extra)) = (
            notifications.as_object_mut(),
            overrides.get("notifications").and_then(Value::as_object),
        ) {
            base.extend(extra.clone());
        }
        self.0.wait().await;
        Ok(json!({
            "user_id": account.user_id,
            "preferences": {
                "notifications": notifications,
                "language": overrides.get("language").cloned().unwrap_or_else(|| json!("en")),
                "theme": "light",
            },
            "created_at": chrono::Utc::now().to_rfc3339(),
            "language": LANGUAGE,
        }))
    }
}

/// Sends the welcome messages, composed from all three upstream results:
/// a welcome email always, a trial email when billing started a trial, and
/// a push notification when the user accepts them.
pub struct SendWelcomeSequence(pub Latency);

#[async_trait::async_trait]
impl StepHandler for SendWelcomeSequence {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let account: Account = ctx.dependency_result("create_user_account")?;
        let billing: Value = ctx.dependency_result("setup_billing_profile")?;
        let preferences: Value = ctx.dependency_result("initialize_preferences")?;
        let name = account.name.clone().unwrap_or_else(|| account.email.clone());
        let mut messages = vec![json!({
            "channel": "email", "type": "welcome", "recipient": account.email,
            "subject": format!("Welcome to Tasker, {name}!"),
        })];
        if billing["trial_days"].as_u64().unwrap_or(0) > 0 {
            messages.push(json!({
                "channel": "email", "type": "trial_started", "recipient": account.email,
                "subject": format!("Your {} trial has started", capitalize(&account.plan)),
            }));
        }
        if preferences["preferences"]["notifications"]["push"] == json!(true) {
            messages.push(json!({
                "channel": "push", "type": "welcome",
                "body": format!("Your {} account is ready. Let's get started!", account.plan),
            }));
        }
        let mut channels: Vec<&str> = messages.iter().filter_map(|m| m["channel"].as_str()).collect();
        channels.dedup();
        self.0.wait().await;
        Ok(json!({
            "user_id": account.user_id,
            "channels_used": channels,
            "messages_sent": messages.len(),
            "messages": messages,
            "status": "sent",
            "sent_at": chrono::Utc::now().to_rfc3339(),
            "language": LANGUAGE,
        }))
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Marks the user active in the user service.
pub struct UpdateUserStatus(pub Latency);

#[async_trait::async_trait]
impl StepHandler for UpdateUserStatus {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let account: Account = ctx.dependency_result("create_user_account")?;
        let welcome: Value = ctx.dependency_result("send_welcome_sequence")?;
        self.0.wait().await;
        Ok(json!({
            "user_id": account.user_id,
            "status": "active",
            "welcome_sent": welcome["status"] == json!("sent"),
            "activated_at": chrono::Utc::now().to_rfc3339(),
            "language": LANGUAGE,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_services_serve_each_callable_once_and_accounts_and_status_split_user() {
        let mut served: Vec<&str> = Service::ALL.iter().flat_map(|s| s.callables()).copied().collect();
        served.sort_unstable();
        let before = served.len();
        served.dedup();
        assert_eq!((before, served.len()), (5, 5), "{served:?}");
        let halves = [Service::Accounts.callables(), Service::Status.callables()].concat();
        assert_eq!(halves, Service::User.callables());
        for service in Service::EVERY {
            assert_eq!(Service::named(service.name()), Some(service));
        }
    }

    #[test]
    fn email_shapes() {
        assert!(is_email("new.user@example.com"));
        assert!(!is_email("no-at-sign.com"));
        assert!(!is_email("a@nodot"));
        assert!(!is_email("a b@example.com"));
        assert!(!is_email("a@b@example.com"));
    }
}

//! What a step handler is, what it can read, and how it fails.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tasker_protocol::StepReady;
use uuid::Uuid;

/// The code a step fails with when its worker has no handler for its callable.
pub const HANDLER_NOT_FOUND: &str = "handler_not_found";
/// The code a step fails with when its handler panics.
pub const HANDLER_PANIC: &str = "handler_panic";
/// The code a step fails with when its handler runs past `timeout_seconds`.
pub const TIMEOUT: &str = "timeout";
/// The code of a missing or malformed input, ancestor result or setting.
pub const INVALID_INPUT: &str = "invalid_input";

/// The user's code for one step. One value serves every attempt of every
/// task, concurrently, so it holds only shared, read-mostly state.
#[async_trait::async_trait]
pub trait StepHandler: Send + Sync + 'static {
    /// Runs one attempt. Returns the step's JSON result, or why it failed.
    ///
    /// Delivery is at least once: after a crash, an attempt can run twice.
    /// Pass [`StepContext::idempotency_key`] to the services you call so
    /// that the second run has no second effect.
    ///
    /// # Errors
    ///
    /// A [`StepError::Permanent`] fails the step for good; a
    /// [`StepError::Retryable`] asks for another attempt after the step's
    /// backoff, while attempts remain.
    async fn call(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError>;
}

/// Makes a handler of an async closure.
pub fn handler_fn<F, Fut>(f: F) -> impl StepHandler
where
    F: Fn(StepContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<serde_json::Value, StepError>> + Send + 'static,
{
    struct FnHandler<F>(F);

    #[async_trait::async_trait]
    impl<F, Fut> StepHandler for FnHandler<F>
    where
        F: Fn(StepContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<serde_json::Value, StepError>> + Send + 'static,
    {
        async fn call(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError> {
            (self.0)(ctx.clone()).await
        }
    }

    FnHandler(f)
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// Trying again cannot help: bad input, a refused operation.
    #[error("{code}: {message}")]
    Permanent {
        /// A short, stable code such as `INVALID_EMAIL`.
        code: String,
        /// A sentence for people.
        message: String,
    },
    /// Trying again may help: a timeout, a 503, a lock held elsewhere.
    #[error("{code}: {message}")]
    Retryable {
        /// A short, stable code such as `GATEWAY_UNAVAILABLE`.
        code: String,
        /// A sentence for people.
        message: String,
        /// Wait at least this long before the next attempt, instead of the
        /// step's backoff.
        retry_after: Option<Duration>,
    },
}

impl StepError {
    /// A failure that no retry can fix.
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Permanent {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A failure that another attempt may fix, after the step's backoff.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Retryable {
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// Sets how long to wait before the next attempt; only retryable errors
    /// carry it.
    #[must_use]
    pub fn retry_after(self, delay: Duration) -> Self {
        match self {
            Self::Retryable { code, message, .. } => Self::Retryable {
                code,
                message,
                retry_after: Some(delay),
            },
            permanent @ Self::Permanent { .. } => permanent,
        }
    }

    /// The error's code.
    #[must_use]
    pub fn code(&self) -> &str {
        match self {
            Self::Permanent { code, .. } | Self::Retryable { code, .. } => code,
        }
    }

    /// Whether another attempt may help.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Retryable { .. } => true,
            Self::Permanent { .. } => false,
        }
    }
}

/// What a handler can read about the attempt it runs: the task's input, the
/// results of every ancestor step, its own configuration, and who it is.
///
/// Cloning is cheap: the data is shared.
#[derive(Clone)]
pub struct StepContext {
    inner: Arc<Inner>,
}

struct Inner {
    ready: StepReady,
    context: serde_json::Map<String, serde_json::Value>,
}

impl StepContext {
    /// Builds the context of one attempt from its step-ready message.
    ///
    /// # Errors
    ///
    /// Returns a permanent [`INVALID_INPUT`] error if the message's context
    /// is not a JSON object.
    pub fn new(ready: StepReady) -> Result<Self, StepError> {
        let context = serde_json::from_str(ready.context.get()).map_err(|e| {
            StepError::permanent(
                INVALID_INPUT,
                format!("the task context is not a JSON object: {e}"),
            )
        })?;
        Ok(Self {
            inner: Arc::new(Inner { ready, context }),
        })
    }

    /// The task's id.
    #[must_use]
    pub fn task_id(&self) -> Uuid {
        self.inner.ready.task_id
    }

    /// This step's name.
    #[must_use]
    pub fn step_name(&self) -> &str {
        &self.inner.ready.step
    }

    /// The template's namespace.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.inner.ready.namespace
    }

    /// This attempt, counting from 1.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.inner.ready.attempt
    }

    /// The step's `max_attempts`.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.inner.ready.max_attempts
    }

    /// A key that is the same for every attempt and delivery of this step of
    /// this task: pass it to the services you call, so that a repeated call
    /// has no second effect.
    #[must_use]
    pub fn idempotency_key(&self) -> String {
        self.inner.ready.idempotency_key()
    }

    /// The whole task context, the request's input.
    #[must_use]
    pub fn context(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.inner.context
    }

    /// The input `key`, decoded as `T`.
    ///
    /// # Errors
    ///
    /// Returns a permanent [`INVALID_INPUT`] error if it is missing or is
    /// not a `T`.
    pub fn input<T: DeserializeOwned>(&self, key: &str) -> Result<T, StepError> {
        match self.inner.context.get(key) {
            Some(value) => decode(value, || format!("input {key:?}")),
            None => Err(StepError::permanent(
                INVALID_INPUT,
                format!("the task context has no {key:?}; add it to the task request's context"),
            )),
        }
    }

    /// The input `key` decoded as `T`, or `default` when it is missing or null.
    ///
    /// # Errors
    ///
    /// Returns a permanent [`INVALID_INPUT`] error if it is present but is
    /// not a `T`.
    pub fn input_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T, StepError> {
        match self.inner.context.get(key) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(value) => decode(value, || format!("input {key:?}")),
        }
    }

    /// The result of `step`, which must be an ancestor of this step (a
    /// dependency, or a dependency's dependency, and so on), decoded as `T`.
    ///
    /// # Errors
    ///
    /// Returns a permanent [`INVALID_INPUT`] error if `step` is not an
    /// ancestor or its result is not a `T`.
    pub fn dependency_result<T: DeserializeOwned>(&self, step: &str) -> Result<T, StepError> {
        let Some(raw) = self.inner.ready.dependency_results.get(step) else {
            let known: Vec<&str> = self
                .inner
                .ready
                .dependency_results
                .keys()
                .map(String::as_str)
                .collect();
            return Err(StepError::permanent(
                INVALID_INPUT,
                format!(
                    "step {:?} has no result from {step:?}; it can read only its ancestors: {}",
                    self.step_name(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        serde_json::from_str(raw.get()).map_err(|e| {
            StepError::permanent(
                INVALID_INPUT,
                format!("the result of {step:?} is not what this handler expects: {e}"),
            )
        })
    }

    /// The handler's `initialization` setting `key`, decoded as `T`, or
    /// `None` when the template does not set it.
    ///
    /// # Errors
    ///
    /// Returns a permanent [`INVALID_INPUT`] error if it is not a `T`.
    pub fn initialization<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StepError> {
        self.inner
            .ready
            .initialization
            .get(key)
            .map(|value| decode(value, || format!("handler.initialization.{key}")))
            .transpose()
    }

    /// The step-ready message this attempt came from.
    #[must_use]
    pub fn message(&self) -> &StepReady {
        &self.inner.ready
    }
}

fn decode<T: DeserializeOwned>(value: &serde_json::Value, what: impl Fn() -> String) -> Result<T, StepError> {
    T::deserialize(value)
        .map_err(|e| StepError::permanent(INVALID_INPUT, format!("{} is malformed: {e}", what())))
}

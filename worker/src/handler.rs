//! What a step handler is, what it can read, and how it fails.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tasker_protocol::topology::{self, message_type};
use tasker_protocol::{PROTOCOL_VERSION, ParentStep, StepReady, TaskRequest, message};
use tracing::Instrument;
use uuid::Uuid;

use tasker_protocol::ErrorCode;
use tasker_runtime::broker;
use tasker_runtime::publisher::{Outgoing, Publisher};

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
        /// Wait this long before the next attempt (at most a day), instead
        /// of the step's backoff.
        retry_after: Option<Duration>,
    },
    /// Not a failure: the step's result will be the outcome of a child
    /// task, which [`StepContext::complete_with_child`] started. Return it
    /// from the handler as it is; the worker then reports that the step
    /// waits, and takes the next message.
    #[error("waiting for child task {child_task_id}")]
    WaitingForChild {
        /// The child task.
        child_task_id: Uuid,
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
            other @ (Self::Permanent { .. } | Self::WaitingForChild { .. }) => other,
        }
    }

    /// The error's code.
    #[must_use]
    pub fn code(&self) -> &str {
        match self {
            Self::Permanent { code, .. } | Self::Retryable { code, .. } => code,
            Self::WaitingForChild { .. } => "waiting_for_child",
        }
    }

    /// Whether another attempt may help.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Retryable { .. } => true,
            Self::Permanent { .. } | Self::WaitingForChild { .. } => false,
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
    /// Where child task requests go.
    children: Children,
    /// The child task this attempt started.
    child: std::sync::Mutex<Option<Uuid>>,
}

/// Where a context sends the child task requests of its handler.
pub(crate) enum Children {
    /// Nowhere: the context was made outside a worker.
    None,
    /// To the broker, as a worker does.
    Broker(Publisher),
    /// Into a list, for [`crate::testing`].
    Recorded(Arc<std::sync::Mutex<Vec<TaskRequest>>>),
}

/// A task that a step asks for, to complete with its outcome: see
/// [`StepContext::complete_with_child`].
#[derive(Debug, Clone)]
pub struct ChildTask {
    namespace: String,
    name: String,
    version: Option<String>,
    context: serde_json::Value,
}

impl ChildTask {
    /// The highest version of template `namespace/name`, with `context` as
    /// its input (a JSON object).
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, context: serde_json::Value) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            version: None,
            context,
        }
    }

    /// Pins the template's version.
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }
}

impl StepContext {
    /// Builds the context of one attempt from its step-ready message.
    ///
    /// # Errors
    ///
    /// Returns a permanent `invalid_input` error if the message's context
    /// is not a JSON object.
    pub fn new(ready: StepReady) -> Result<Self, StepError> {
        Self::with_children(ready, Children::None)
    }

    /// As [`Self::new`], with somewhere to send child task requests.
    pub(crate) fn with_children(ready: StepReady, children: Children) -> Result<Self, StepError> {
        let context = serde_json::from_str(ready.context.get()).map_err(|e| {
            StepError::permanent(
                ErrorCode::InvalidInput,
                format!("the task context is not a JSON object: {e}"),
            )
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                ready,
                context,
                children,
                child: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Starts `child`, a task of any namespace, and makes its outcome this
    /// step's: return what this gives from the handler.
    ///
    /// ```ignore
    /// return ctx.complete_with_child(ChildTask::new("payments", "process_refund", request)).await;
    /// ```
    ///
    /// The request is confirmed by the broker before this returns, and the
    /// worker takes its next message: the step holds no worker slot while
    /// the child runs. When the child completes, the step completes with a
    /// JSON object of the child's `task_id`, `namespace`, `name`, `version`
    /// and `results` (each of its steps' results, by name); when the child
    /// fails or is cancelled, the step fails permanently with
    /// `child_task_failed` or `child_task_cancelled`, and a child that its
    /// coordinator refuses fails it with `child_task_rejected`.
    ///
    /// Every attempt and delivery of this step asks for the same child (its
    /// idempotency key is the task and step), so a redelivery or a retry
    /// never starts a second child: a retry of the step after its child
    /// failed finds the child failed, until the child is retried.
    ///
    /// # Errors
    ///
    /// Returns [`StepError::WaitingForChild`] once the child is requested;
    /// a permanent `invalid_input` error if the child's context is not a
    /// JSON object; a retryable `child_not_started` error if the request
    /// could not be published; and a permanent one outside a worker.
    pub async fn complete_with_child(&self, child: ChildTask) -> Result<serde_json::Value, StepError> {
        let ready = &self.inner.ready;
        if !child.context.is_object() {
            return Err(StepError::permanent(
                ErrorCode::InvalidInput,
                format!(
                    "the context of child task {}/{} must be a JSON object",
                    child.namespace, child.name
                ),
            ));
        }
        let parent = ParentStep {
            task_id: ready.task_id,
            namespace: ready.namespace.clone(),
            name: ready.task_name.clone(),
            version: ready.task_version.clone(),
            step: ready.step.clone(),
            attempt: ready.attempt,
        };
        let request = TaskRequest {
            protocol_version: PROTOCOL_VERSION,
            request_id: Some(Uuid::new_v4()),
            idempotency_key: Some(parent.idempotency_key()),
            namespace: child.namespace,
            name: child.name,
            version: child.version,
            context: child.context,
            parent: Some(parent),
        };
        let child_task_id = request.task_id().expect("a request with a key has a task id");
        let span = tracing::info_span!(
            "start child task",
            otel.name = format!("start child {}/{}", request.namespace, request.name),
            otel.kind = "producer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "send",
            messaging.destination.name = topology::REQUESTS_EXCHANGE,
            messaging.rabbitmq.destination.routing_key = %request.namespace,
            tasker.task.id = %ready.task_id,
            tasker.step.name = %ready.step,
            tasker.child_task.id = %child_task_id,
            tasker.child_task.namespace = %request.namespace,
            tasker.child_task.name = %request.name,
        );
        let child_name = format!("{}/{}", request.namespace, request.name);
        match &self.inner.children {
            Children::None => {
                return Err(StepError::permanent(
                    ErrorCode::ChildNotStarted,
                    "this context has no broker to start a child task with; child tasks start only in a Worker",
                ));
            }
            Children::Recorded(list) => list.lock().expect("child list poisoned").push(request),
            Children::Broker(publisher) => {
                let properties =
                    span.in_scope(|| broker::properties(message_type::TASK_REQUEST, Some(child_task_id)));
                let outgoing = Outgoing {
                    exchange: topology::REQUESTS_EXCHANGE.to_owned(),
                    routing_key: request.namespace.clone(),
                    payload: message::encode(&request),
                    properties,
                    mandatory: true,
                };
                publisher.publish(outgoing).instrument(span).await.map_err(|e| {
                    StepError::retryable(
                        ErrorCode::ChildNotStarted,
                        format!("the request for child task {child_name} was not published: {e}"),
                    )
                })?;
            }
        }
        *self.inner.child.lock().expect("child lock poisoned") = Some(child_task_id);
        tracing::info!(task_id = %ready.task_id, step = %ready.step, %child_task_id,
            child = %child_name, "child task requested");
        Err(StepError::WaitingForChild { child_task_id })
    }

    /// The child task this attempt started, if it started one.
    #[must_use]
    pub fn started_child(&self) -> Option<Uuid> {
        *self.inner.child.lock().expect("child lock poisoned")
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
    /// Returns a permanent `invalid_input` error if it is missing or is
    /// not a `T`.
    pub fn input<T: DeserializeOwned>(&self, key: &str) -> Result<T, StepError> {
        match self.inner.context.get(key) {
            Some(value) => decode(value, || format!("input {key:?}")),
            None => Err(StepError::permanent(
                ErrorCode::InvalidInput,
                format!("the task context has no {key:?}; add it to the task request's context"),
            )),
        }
    }

    /// The input `key` decoded as `T`, or `default` when it is missing or null.
    ///
    /// # Errors
    ///
    /// Returns a permanent `invalid_input` error if it is present but is
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
    /// Returns a permanent `invalid_input` error if the step's message does
    /// not carry `step`'s result (it is not an ancestor, or the template's
    /// `results_from` leaves it out) or that result is not a `T`.
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
                ErrorCode::InvalidInput,
                format!(
                    "step {:?} has no result from {step:?}; it can read only the results its message carries (its ancestors', or those its results_from names): {}",
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
                ErrorCode::InvalidInput,
                format!("the result of {step:?} is not what this handler expects: {e}"),
            )
        })
    }

    /// The handler's `initialization` setting `key`, decoded as `T`, or
    /// `None` when the template does not set it.
    ///
    /// # Errors
    ///
    /// Returns a permanent `invalid_input` error if it is not a `T`.
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
        .map_err(|e| StepError::permanent(ErrorCode::InvalidInput, format!("{} is malformed: {e}", what())))
}

//! The error type of the coordinator crate.

use tasker_protocol::TemplateError;

/// What can stop the coordinator or one of its operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RabbitMQ failed.
    #[error(transparent)]
    Broker(#[from] tasker_worker::Error),
    /// Redis failed.
    #[error("redis at {url}: {source}")]
    Redis {
        /// The store's URL, with any password masked.
        url: String,
        /// What redis-rs reported.
        #[source]
        source: redis::RedisError,
    },
    /// One or more templates are invalid; the coordinator will not start.
    #[error("{} invalid template file(s); fix them and start again:\n{}", .0.len(), list(.0))]
    Templates(Vec<TemplateError>),
    /// A setting cannot be used.
    #[error("{0}")]
    Config(String),
    /// Work the coordinator handed to one of its own tasks was dropped
    /// unanswered; the delivery is tried again.
    #[error("{0}")]
    Interrupted(String),
    /// The store holds something this coordinator cannot read.
    #[error("task {task_id}: {detail}")]
    CorruptState {
        /// The task.
        task_id: uuid::Uuid,
        /// What is wrong.
        detail: String,
    },
}

fn list(errors: &[TemplateError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    /// Whether the operation may succeed if tried again later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Broker(e) => e.is_retryable(),
            Self::Redis { .. } | Self::Interrupted(_) => true,
            Self::Templates(_) | Self::Config(_) | Self::CorruptState { .. } => false,
        }
    }
}

//! The error type of the coordinator crate.

use tasker_protocol::TemplateError;

/// What can stop the coordinator or one of its operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RabbitMQ failed.
    #[error(transparent)]
    Broker(#[from] tasker_runtime::Error),
    /// Redis failed.
    #[error("redis at {url}: {source}")]
    Redis {
        /// The store's URL, with any password masked.
        url: String,
        /// What redis-rs reported.
        #[source]
        source: redis::RedisError,
    },
    /// Redis refused the login: trying again with the same URL cannot help.
    #[error(
        "redis at {url} refused the login: {source}; check the user name and password in the URL (TASKER_REDIS_URL or --redis-url)"
    )]
    RedisRefused {
        /// The store's URL, with any password masked.
        url: String,
        /// What redis-rs reported.
        #[source]
        source: redis::RedisError,
    },
    /// Fewer replicas than asked acknowledged a write in time: a failover
    /// now could lose it, so the message that caused it is not acked.
    #[error(
        "redis at {url}: {acked} of {wanted} replica(s) acknowledged a write within {waited:?}; the message is tried \
         again (is a replica down? TASKER_REDIS_WAIT_REPLICAS sets how many a write waits for)"
    )]
    NotReplicated {
        /// The store's URL, with any password masked.
        url: String,
        /// How many replicas were asked for.
        wanted: u16,
        /// How many acknowledged.
        acked: u16,
        /// How long the coordinator waited.
        waited: std::time::Duration,
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
    /// A store script replied with something this coordinator cannot read:
    /// the script and the coordinator disagree on their contract.
    #[error(
        "the store's {script}.lua replied with something this coordinator cannot read ({detail}); do all coordinators run the same version?"
    )]
    ScriptReply {
        /// The script.
        script: &'static str,
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
            Self::Redis { .. } | Self::NotReplicated { .. } | Self::Interrupted(_) => true,
            Self::RedisRefused { .. }
            | Self::Templates(_)
            | Self::Config(_)
            | Self::CorruptState { .. }
            | Self::ScriptReply { .. } => false,
        }
    }
}

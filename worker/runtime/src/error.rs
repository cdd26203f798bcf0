//! The error type of this crate.

/// What can go wrong while talking to RabbitMQ.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection, a channel, or an operation on it failed.
    #[error("rabbitmq at {url}: {source}")]
    Amqp {
        /// The broker's URL, with any password masked; for a connection
        /// that no node of a cluster accepted, every URL tried.
        url: String,
        /// What lapin reported.
        #[source]
        source: lapin::Error,
    },
    /// The TLS handshake failed: the server's certificate is not signed by
    /// a trusted CA, or the server wants a client certificate.
    #[error("the TLS handshake with rabbitmq at {url} failed: {source}; {hint}", hint = crate::secrets::TLS_HINT)]
    Tls {
        /// The broker's URL, with any password masked.
        url: String,
        /// What lapin reported.
        #[source]
        source: lapin::Error,
    },
    /// The broker refused the login or the vhost: trying again with the
    /// same URL cannot help.
    #[error(
        "rabbitmq at {url} refused the connection: {reason}; check the user name and password in the URL (TASKER_AMQP_URL or --amqp-url) and that the user may use the vhost"
    )]
    Refused {
        /// The broker's URL, with any password masked.
        url: String,
        /// What the broker said.
        reason: String,
    },
    /// The broker refused a publish (a negative publisher confirm).
    #[error(
        "rabbitmq refused to store a message for exchange {exchange:?}, routing key {routing_key:?}; check the broker's log for the reason (disk or memory alarm, queue limits)"
    )]
    Nacked {
        /// The exchange published to.
        exchange: String,
        /// The routing key used.
        routing_key: String,
    },
    /// A mandatory message reached no queue.
    #[error(
        "no queue is bound to exchange {exchange:?} with routing key {routing_key:?}; declare the namespace's queues (any Tasker process serving it does)"
    )]
    Unroutable {
        /// The exchange published to.
        exchange: String,
        /// The routing key used.
        routing_key: String,
    },
    /// The broker cancelled a consumer, for instance because its queue was
    /// deleted or its leader moved.
    #[error("rabbitmq cancelled a consumer; reconnecting will consume again")]
    ConsumerCancelled,
    /// A configuration value cannot be used.
    #[error("{0}")]
    Config(String),
    /// Waiting for a task's outcome took too long.
    #[error("no reply for task request {request_id} within {waited:?}; is a coordinator running?")]
    ReplyTimeout {
        /// The request waited on.
        request_id: uuid::Uuid,
        /// How long it waited.
        waited: std::time::Duration,
    },
}

impl Error {
    /// Whether trying again after reconnecting may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Amqp { .. }
            | Self::Tls { .. }
            | Self::Nacked { .. }
            | Self::Unroutable { .. }
            | Self::ConsumerCancelled
            | Self::ReplyTimeout { .. } => true,
            Self::Refused { .. } | Self::Config(_) => false,
        }
    }
}

//! The Tasker SDK for services.
//!
//! A service that runs steps links this crate, registers a [`StepHandler`]
//! per template `callable`, and runs a [`Worker`]:
//!
//! ```no_run
//! use tasker_worker::{StepContext, StepError, Worker, WorkerConfig, handler_fn};
//! # async fn example(shutdown: tokio_util::sync::CancellationToken) -> Result<(), tasker_worker::Error> {
//! Worker::new(WorkerConfig::from_env())
//!     .namespace("microservices")
//!     .handler("Microservices::StepHandlers::CreateUserAccountHandler", handler_fn(|ctx: StepContext| async move {
//!         let email: String = ctx.input("email")?;
//!         Ok::<_, StepError>(serde_json::json!({ "email": email }))
//!     }))
//!     .run(shutdown)
//!     .await
//! # }
//! ```
//!
//! The layout:
//!
//! - [`handler`]: the [`StepHandler`] trait, the [`StepContext`] a handler
//!   reads, and the [`StepError`] it returns;
//! - [`worker`]: the consumer loop: prefetch-bounded concurrency, timeouts,
//!   panics, and acking only after the result is confirmed;
//! - [`testing`]: running a template's handlers in process, for a
//!   service's unit tests;
//! - [`Client`]: submit tasks and wait for their outcome;
//! - [`telemetry`]: logging, trace export and signal handling for a
//!   worker's `main`.
//!
//! The RabbitMQ plumbing underneath (connections, confirmed publishing,
//! acks, dead-lettering, health, metrics) is `tasker-runtime`'s, shared
//! with the coordinator. A worker talks only to RabbitMQ, never to the
//! coordinator's store.

#![warn(missing_docs)]

mod announce;
mod config;
pub mod handler;
mod recent;
pub mod testing;
pub mod worker;

pub use handler::{ChildTask, StepContext, StepError, StepHandler, handler_fn};
pub use tasker_protocol::ErrorCode;
pub use tasker_runtime::{Client, Error, Reply, Submitted, defaults};
pub use worker::{Worker, WorkerConfig};

/// Logging, trace export and signal handling for a worker's `main`.
pub mod telemetry {
    pub use tasker_runtime::telemetry::{Telemetry, init, shutdown_on_signal};
}

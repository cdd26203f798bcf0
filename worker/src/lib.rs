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
//! - [`client`]: submit tasks and wait for their outcome;
//! - [`acks`]: acking a channel's deliveries, many to a frame when it is busy;
//! - [`broker`]: what every Tasker process does with RabbitMQ: connecting,
//!   declaring the topology, confirmed publishing, dead-lettering;
//! - [`health`]: connection state, logged once per change, served as `/healthz` and `/readyz`;
//! - [`metrics`]: the Prometheus metrics both kinds of process record;
//! - [`telemetry`]: logging and signal handling for binaries;
//! - [`error`]: this crate's [`Error`].
//!
//! A worker talks only to RabbitMQ, never to the coordinator's store.

#![warn(missing_docs)]

pub mod acks;
pub mod broker;
pub mod client;
pub mod error;
pub mod handler;
pub mod health;
pub mod metrics;
pub mod telemetry;
pub mod testing;
pub mod worker;

pub use client::{Client, Reply, Submitted};
pub use error::Error;
pub use handler::{ChildTask, StepContext, StepError, StepHandler, handler_fn};
pub use worker::{Worker, WorkerConfig};

/// Defaults shared by every Tasker process.
pub mod defaults {
    /// Where RabbitMQ is when `TASKER_AMQP_URL` is not set.
    pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
}

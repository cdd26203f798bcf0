//! What every Tasker process shares, the coordinator and the workers alike.
//!
//! Handler authors need none of it directly: the worker SDK
//! (`tasker-worker`) re-exports the little they use, the task [`Client`]
//! and the telemetry setup of a `main`.
//!
//! - [`broker`]: connecting to RabbitMQ, declaring the topology, and the
//!   properties every message carries;
//! - [`publisher`]: confirmed publishing, and dead-lettering;
//! - [`acks`]: acking a channel's deliveries, many to a frame when it is busy;
//! - [`reconnect`]: the backoff between attempts to reconnect;
//! - [`secrets`]: passwords given beside URLs, and the files of TLS;
//! - [`client`]: submitting tasks and commands, and waiting for the answer;
//! - [`duration`]: durations as flags and environment variables write them;
//! - [`health`]: connection state, logged once per change, served as
//!   `/healthz`, `/readyz` and `/metrics`;
//! - [`metrics`]: the Prometheus metrics both kinds of process record;
//! - [`telemetry`]: logging, trace export and propagation, and signal
//!   handling for binaries;
//! - [`error`]: this crate's [`Error`].

#![warn(missing_docs)]

pub mod acks;
pub mod broker;
pub mod client;
pub mod duration;
pub mod error;
pub mod health;
pub mod metrics;
pub mod publisher;
pub mod reconnect;
pub mod secrets;
pub mod telemetry;

pub use client::{Client, Reply, Submitted};
pub use error::Error;
pub use reconnect::Reconnect;

/// Defaults shared by every Tasker process.
pub mod defaults {
    /// Where RabbitMQ is when `TASKER_AMQP_URL` is not set.
    pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
}

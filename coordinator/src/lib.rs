//! The Tasker coordinator, its Redis state, and the `tasker` command line.
//!
//! The coordinator accepts task requests, keeps each task's state in Redis,
//! publishes a step-ready message for every step whose dependencies are
//! met, and moves tasks on as step results come back. Any number of
//! coordinators can run against one broker and one Redis: every state
//! change is one atomic Lua script, and every message is acked only after
//! its effects are stored and confirmed.
//!
//! - [`coordinator`]: the consumer loops and the rules that drive a task,
//!   one file per kind of message, and [`CoordinatorConfig`];
//! - [`store`]: the Redis state, its schema, and its scripts, each with
//!   its typed contract;
//! - [`batch`]: task requests and step results sent to Redis in batches;
//! - [`templates`]: loading a directory of templates;
//! - [`dlq`]: reading and replaying the dead-letter queue;
//! - [`error`]: this crate's [`Error`].
//!
//! One step result passes through `coordinator/session.rs` (its delivery),
//! `coordinator/mod.rs` (`handle`: retried in place while Redis or the
//! broker is away), `coordinator/result.rs` (decoded and recorded),
//! `batch.rs` and `store/record_result.rs` with `record_result.lua` (one
//! script call that hands back everything that follows), then
//! `coordinator/publish.rs` or `coordinator/finished.rs` (the ready steps
//! or the task's report, confirmed), and back in `result.rs`, the ack.

#![warn(missing_docs)]

pub mod batch;
pub mod coordinator;
pub mod dlq;
pub mod error;
pub mod store;
pub mod templates;

pub use coordinator::{CoordinatorConfig, DEFAULT_REDIS_URL, run};
pub use error::Error;
pub use store::Store;

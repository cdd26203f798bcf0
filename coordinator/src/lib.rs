//! The Tasker coordinator.
//!
//! It accepts task requests, keeps each task's state in Redis, publishes a
//! step-ready message for every step whose dependencies are met, and moves
//! tasks on as step results come back. Any number of coordinators can run
//! against one broker and one Redis: every state change is one atomic Lua
//! script, and every message is acked only after its effects are stored
//! and confirmed.
//!
//! - [`coordinator`]: the consumer loops and the rules that drive a task;
//! - [`store`]: the Redis state and its scripts (`src/lua/*.lua`);
//! - [`batch`]: task requests and step results sent to Redis in batches;
//! - [`templates`]: loading a directory of templates;
//! - [`report`]: text views of a task for people;
//! - [`error`]: this crate's [`Error`].

#![warn(missing_docs)]

pub mod batch;
pub mod coordinator;
pub mod dlq;
pub mod error;
pub mod graph;
pub mod report;
pub mod store;
pub mod templates;

pub use coordinator::{CoordinatorConfig, run};
pub use error::Error;
pub use store::Store;

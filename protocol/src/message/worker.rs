//! A worker's announcement: who it is, and which steps it serves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A worker says it is alive and what it serves: published to
/// [`crate::topology::EVENTS_EXCHANGE`] with routing key
/// [`crate::topology::WORKER_ANNOUNCE_ROUTING_KEY`] when it has declared its
/// queues, again every `every_seconds` while it runs, and with `leaving` when
/// it stops. Coordinators keep the live ones for `tasker workers`; a worker
/// not heard from for three of its intervals counts as gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerAnnouncement {
    /// Always [`super::PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// This worker process, new at every start.
    pub worker_id: Uuid,
    /// The service the worker is part of: workers of one service share its
    /// queues and serve the same callables.
    pub service: String,
    /// For each namespace it serves, its queue and its callables.
    pub serves: Vec<ServedNamespace>,
    /// The language of its SDK, e.g. `rust` or `python`.
    pub language: String,
    /// The SDK's version.
    pub sdk_version: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id on that host.
    pub pid: u32,
    /// How many steps it runs at once: its prefetch.
    pub concurrency: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it sent this announcement.
    pub sent_at: DateTime<Utc>,
    /// How often it announces itself, in seconds.
    pub every_seconds: f64,
    /// It is stopping: it takes no new steps.
    #[serde(default, skip_serializing_if = "is_false")]
    pub leaving: bool,
}

/// One namespace a worker serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedNamespace {
    /// The namespace.
    pub namespace: String,
    /// The service's queue of that namespace's steps.
    pub queue: String,
    /// The callables whose steps it runs.
    pub callables: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

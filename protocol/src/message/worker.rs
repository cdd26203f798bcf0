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
    /// The service's queue of that namespace's steps; when they are split
    /// over several queues, the service's exchange of the same name.
    pub queue: String,
    /// The callables whose steps it runs.
    pub callables: Vec<String>,
    /// How many queues the steps are split over: 1 (left out) is `queue`
    /// itself, more are [`crate::topology::partition_queue`]s `0..partitions`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub partitions: u32,
}

impl ServedNamespace {
    /// The queues this service's steps of the namespace wait in.
    #[must_use]
    pub fn queues(&self, service: &str) -> Vec<String> {
        if self.partitions <= 1 {
            vec![self.queue.clone()]
        } else {
            (0..self.partitions)
                .map(|i| crate::topology::partition_queue(&self.namespace, service, i))
                .collect()
        }
    }
}

fn one() -> u32 {
    1
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_one(n: &u32) -> bool {
    *n == 1
}

fn is_false(b: &bool) -> bool {
    !*b
}

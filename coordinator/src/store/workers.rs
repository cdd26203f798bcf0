//! The workers that have announced themselves, for `tasker workers`: one
//! hash, `tasker:workers`, written by the coordinators that receive the
//! announcements. Workers have no access to Redis.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tasker_protocol::WorkerAnnouncement;

use super::Store;
use super::keys::WORKERS;
use super::snapshot::millis;
use crate::Error;

/// How long after its last announcement a worker's entry is dropped.
const FORGET_AFTER_MS: i64 = 3600 * 1000;

/// A worker as the coordinators last heard of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSeen {
    /// Its last announcement.
    pub announcement: WorkerAnnouncement,
    /// When a coordinator received it (unix ms, the coordinator's clock).
    pub received_ms: i64,
}

impl WorkerSeen {
    /// When a coordinator received its last announcement.
    #[must_use]
    pub fn last_seen(&self) -> DateTime<Utc> {
        millis(self.received_ms)
    }

    /// Whether it is live at `now`: heard from within three of its
    /// announcement intervals.
    #[must_use]
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        let every_ms = (self.announcement.every_seconds * 1000.0) as i64;
        now.timestamp_millis() - self.received_ms <= 3 * every_ms.max(1000)
    }
}

impl Store {
    /// Notes a worker's announcement, received at `received_ms`; forgets
    /// the worker if it says it leaves.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails.
    pub async fn note_worker(&self, announcement: WorkerAnnouncement, received_ms: i64) -> Result<(), Error> {
        let id = announcement.worker_id.to_string();
        let mut conn = self.conn();
        if announcement.leaving {
            return conn.hdel(WORKERS, id).await.map_err(|e| self.error(e));
        }
        let seen = WorkerSeen {
            announcement,
            received_ms,
        };
        let json = serde_json::to_string(&seen).expect("a worker entry always serializes");
        conn.hset(WORKERS, id, json).await.map_err(|e| self.error(e))
    }

    /// Every worker heard from within the last hour, oldest entries dropped
    /// on the way.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails.
    pub async fn workers(&self) -> Result<Vec<WorkerSeen>, Error> {
        let mut conn = self.conn();
        let entries: HashMap<String, String> = conn.hgetall(WORKERS).await.map_err(|e| self.error(e))?;
        let now = Utc::now().timestamp_millis();
        let mut workers = Vec::with_capacity(entries.len());
        let mut stale = Vec::new();
        for (id, json) in entries {
            match serde_json::from_str::<WorkerSeen>(&json) {
                Ok(seen) if now - seen.received_ms <= FORGET_AFTER_MS => workers.push(seen),
                // Gone long ago, or written by another version: forgotten.
                _ => stale.push(id),
            }
        }
        if !stale.is_empty() {
            let _: () = conn.hdel(WORKERS, &stale).await.map_err(|e| self.error(e))?;
        }
        workers.sort_by(|a, b| {
            (&a.announcement.service, a.announcement.worker_id)
                .cmp(&(&b.announcement.service, b.announcement.worker_id))
        });
        Ok(workers)
    }
}

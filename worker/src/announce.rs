//! The worker's announcements: when it has declared its queues, every few
//! seconds after, and once more, `leaving`, when it stops. Coordinators keep
//! them as the list of live workers that `tasker workers` shows.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tasker_protocol::topology::{self, message_type};
use tasker_protocol::{PROTOCOL_VERSION, ServedNamespace, WorkerAnnouncement, message};
use tasker_runtime::broker;
use tasker_runtime::publisher::{Outgoing, Publisher};
use tokio_util::sync::CancellationToken;
use tracing::debug;
use uuid::Uuid;

use crate::Error;

/// Who this worker process is, for its announcements.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub worker_id: Uuid,
    pub service: String,
    pub concurrency: u16,
    pub started_at: DateTime<Utc>,
    pub every: Duration,
}

impl Identity {
    /// The announcement of a worker serving `serves`.
    fn announcement(&self, serves: &[ServedNamespace], leaving: bool) -> WorkerAnnouncement {
        WorkerAnnouncement {
            protocol_version: PROTOCOL_VERSION,
            worker_id: self.worker_id,
            service: self.service.clone(),
            serves: serves.to_vec(),
            language: "rust".to_owned(),
            sdk_version: env!("CARGO_PKG_VERSION").to_owned(),
            host: host_name(),
            pid: std::process::id(),
            concurrency: u32::from(self.concurrency),
            started_at: self.started_at,
            sent_at: Utc::now(),
            every_seconds: self.every.as_secs_f64(),
            leaving,
        }
    }

    /// Publishes one announcement.
    pub async fn announce(
        &self,
        publisher: &Publisher,
        serves: &[ServedNamespace],
        leaving: bool,
    ) -> Result<(), Error> {
        let announcement = self.announcement(serves, leaving);
        publisher
            .publish(Outgoing {
                exchange: topology::EVENTS_EXCHANGE.to_owned(),
                routing_key: topology::WORKER_ANNOUNCE_ROUTING_KEY.to_owned(),
                payload: message::encode(&announcement),
                properties: broker::properties(message_type::WORKER_ANNOUNCEMENT, None),
                // A coordinator that is not there yet hears the next one.
                mandatory: false,
            })
            .await
    }

    /// Announces the worker every [`Identity::every`] until `stop` is
    /// cancelled. A failed announcement is tried again at the next one: the
    /// session notices a lost connection by itself.
    pub async fn keep_announcing(
        self,
        publisher: Publisher,
        serves: Vec<ServedNamespace>,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.every) => {}
            }
            if let Err(e) = self.announce(&publisher, &serves, false).await {
                debug!(error = %e, "announcement not sent; the next one will be");
            }
        }
    }
}

/// The name of the host, as the kernel has it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

//! Workers' announcements: every coordinator consumes them, from one shared
//! queue, and keeps the live workers in the store for `tasker workers`.

use chrono::Utc;
use lapin::message::Delivery;
use tasker_protocol::{WorkerAnnouncement, message};
use tracing::{debug, info};

use super::Coordinator;
use crate::Error;

impl Coordinator {
    /// Notes a worker's announcement: it is alive, or it leaves.
    pub(super) async fn handle_announcement(&self, queue: &str, delivery: &Delivery) -> Result<(), Error> {
        let announcement: WorkerAnnouncement =
            match message::decode(&delivery.data, self.config.max_message_bytes) {
                Ok(a) => a,
                Err(e) => {
                    return self
                        .dead_letter(delivery, queue, e.reason(), &e.to_string())
                        .await;
                }
            };
        if announcement.leaving {
            info!(worker_id = %announcement.worker_id, service = %announcement.service,
                host = %announcement.host, "worker leaves");
        } else {
            debug!(worker_id = %announcement.worker_id, service = %announcement.service, "worker announced");
        }
        self.store
            .note_worker(announcement, Utc::now().timestamp_millis())
            .await?;
        self.acks.ack(delivery);
        Ok(())
    }
}

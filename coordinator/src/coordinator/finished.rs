//! A finished task's report, to everyone who hears of it: the events
//! exchange, every requester's reply queue, and the parent step of a child
//! task.

use tasker_protocol::topology::{self, message_type};
use tasker_protocol::{ParentStep, StepResult, TaskFinished, TaskStatus, TaskTemplate, message};
use tasker_runtime::broker;
use tasker_runtime::metrics;
use tasker_runtime::publisher::Outgoing;
use tracing::{info, warn};
use uuid::Uuid;

use super::{Coordinator, span};
use crate::Error;
use crate::store::{Reply, TaskSnapshot};

/// Who hears of a finished task.
pub(super) enum Audience {
    /// Everyone, when it has just finished: the events exchange, every
    /// requester, and the parent step of a child task.
    Everyone,
    /// A request for a task that had finished already: its requester's
    /// reply queue, if it gave one, and the parent step if it came from one.
    Late {
        /// The requester.
        reply: Option<Reply>,
        /// Whether the request came from a parent step.
        parent: bool,
    },
}

impl Coordinator {
    /// Reads the task and publishes its report to `audience`.
    pub(super) async fn publish_finished(&self, task_id: Uuid, audience: Audience) -> Result<(), Error> {
        match self.store.task(task_id).await? {
            Some(snapshot) => self.announce(&snapshot, audience).await,
            None => Ok(()),
        }
    }

    /// Publishes the report of the finished task `snapshot` to `audience`.
    /// A report over the size limit goes without its steps' results, which
    /// `tasker status` shows.
    pub(super) async fn announce(&self, snapshot: &TaskSnapshot, audience: Audience) -> Result<(), Error> {
        let task_id = snapshot.task_id;
        let full = snapshot.report();
        let limit = self.config.max_message_bytes;
        let mut payload = message::encode(&full);
        let stripped;
        let report = if payload.len() > limit {
            warn!(task_id = %task_id, size = payload.len(), limit,
                "the task's report is over the size limit; its results are left out of it");
            let mut without = full.clone();
            for step in &mut without.steps {
                step.result = None;
            }
            without.results_omitted = true;
            payload = message::encode(&without);
            stripped = without;
            &stripped
        } else {
            &full
        };
        let props = || broker::properties(message_type::TASK_FINISHED, Some(task_id));
        let mut messages = Vec::new();
        // Each requester's copy names its request.
        let direct = |reply: &Reply| Outgoing {
            exchange: String::new(),
            routing_key: reply.queue.clone(),
            payload: match reply.request_id {
                Some(id) => message::encode(&TaskFinished {
                    request_id: Some(id),
                    ..report.clone()
                }),
                None => payload.clone(),
            },
            properties: props().with_correlation_id(reply.correlation.as_str().into()),
            // A requester that went away takes its reply queue with it.
            mandatory: false,
        };
        match audience {
            Audience::Late { reply, parent } => {
                if let Some(reply) = &reply {
                    messages.push(direct(reply));
                }
                // The store has just moved the parent link to the asking attempt.
                if parent && let Some(parent) = &full.parent {
                    messages.push(to_parent(parent, &self.parent_result(parent, &full)));
                }
            }
            Audience::Everyone => {
                info!(task_id = %task_id, status = report.status.as_str(), "task finished");
                if let Some(tp) = &snapshot.traceparent {
                    span::finished_task(&full, tp);
                }
                messages.push(Outgoing {
                    exchange: topology::EVENTS_EXCHANGE.to_owned(),
                    routing_key: topology::task_finished_routing_key(&report.namespace, &report.name),
                    payload: payload.clone(),
                    properties: props(),
                    mandatory: false,
                });
                for reply in &snapshot.replies {
                    messages.push(direct(reply));
                }
                if let Some(parent) = &full.parent {
                    messages.push(to_parent(parent, &self.parent_result(parent, &full)));
                }
            }
        }
        Ok(self.publisher.publish_all(messages).await?)
    }

    /// The step result that the finished child task `child` makes for the
    /// step waiting for it; a permanent `result_too_large` if that would be
    /// over the size limit, as a worker reports for a handler's result.
    fn parent_result(&self, parent: &ParentStep, child: &TaskFinished) -> StepResult {
        let result = parent.result_of(child);
        let size = message::encode(&result).len();
        if size > self.config.max_message_bytes {
            warn!(task_id = %child.task_id, size, limit = self.config.max_message_bytes,
                "the child task's results are over the size limit for its parent step; the step fails");
            return parent.result_too_large(child, size, self.config.max_message_bytes);
        }
        result
    }
}

/// A step result for the parent step of a child task, to the parent's
/// result queue.
pub(super) fn to_parent(parent: &ParentStep, result: &StepResult) -> Outgoing {
    Outgoing {
        exchange: topology::EVENTS_EXCHANGE.to_owned(),
        routing_key: topology::step_result_routing_key(&parent.namespace),
        payload: message::encode(result),
        properties: broker::properties(message_type::STEP_RESULT, Some(parent.task_id)),
        mandatory: true,
    }
}

/// Counts a task that has just ended.
pub(super) fn count_finished(template: &TaskTemplate, status: TaskStatus) {
    let m = metrics::global();
    let outcome = match status {
        TaskStatus::Complete => "complete",
        TaskStatus::Cancelled => "cancelled",
        TaskStatus::Failed | TaskStatus::Running => "failed",
    };
    m.tasks
        .get_or_create(&metrics::task_outcome(
            &template.namespace,
            &template.name,
            outcome,
        ))
        .inc();
    m.tasks_in_flight
        .get_or_create(&metrics::task(&template.namespace, &template.name))
        .dec();
}

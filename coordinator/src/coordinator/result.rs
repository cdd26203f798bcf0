//! What happens to a step result, one way through: decode it, record it in
//! one store call that hands back everything that follows from it, publish
//! that (the steps it made ready, or the task's report), then ack.

use chrono::Utc;
use lapin::message::Delivery;
use tasker_protocol::{DeadLetterReason, StepOutcome, StepResult, TaskStatus, TaskTemplate, message};
use tasker_runtime::{metrics, telemetry};
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::Coordinator;
use super::finished::{Audience, count_finished};
use super::publish::ReadySteps;
use crate::Error;
use crate::store::{Recorded, StepEnd, Verdict};

impl Coordinator {
    /// A step result from a worker, or from the coordinator of a child task.
    pub(super) async fn handle_result(
        &self,
        queue: &str,
        delivery: &Delivery,
        redelivered: bool,
    ) -> Result<(), Error> {
        let result: StepResult = match message::decode(&delivery.data, self.config.max_message_bytes) {
            Ok(r) => r,
            Err(e) => {
                return self
                    .dead_letter(delivery, queue, e.reason(), &e.to_string())
                    .await;
            }
        };
        let span = tracing::Span::current();
        span.record("tasker.task.id", tracing::field::display(result.task_id));
        span.record("tasker.step.name", result.step.as_str());
        span.record("tasker.step.attempt", result.attempt);
        let Ok(template) =
            self.templates
                .get(&result.namespace, &result.task_name, Some(&result.task_version))
        else {
            let reason = format!(
                "template {}/{}@{} is not loaded by this coordinator",
                result.namespace, result.task_name, result.task_version
            );
            return self
                .dead_letter(delivery, queue, DeadLetterReason::TemplateNotLoaded, &reason)
                .await;
        };
        let template = template.clone();
        let Some(step) = template.step_index(&result.step) else {
            let reason = format!("template {} has no step {:?}", template.key(), result.step);
            return self
                .dead_letter(delivery, queue, DeadLetterReason::UnknownStep, &reason)
                .await;
        };
        if let StepOutcome::WaitingForChild { child_task_id } = result.outcome {
            self.wait_for_child(&template, step, &result, child_task_id)
                .await?;
        } else {
            self.record(&template, step, &result, redelivered).await?;
        }
        self.acks.ack(delivery);
        Ok(())
    }

    /// A worker started a child task for the step: the attempt's lease ends,
    /// since the worker holds nothing any more, and the child's coordinator
    /// reports the outcome when the child finishes.
    async fn wait_for_child(
        &self,
        template: &TaskTemplate,
        step: usize,
        result: &StepResult,
        child: Uuid,
    ) -> Result<(), Error> {
        let noted = self
            .store
            .wait_for_child(result.task_id, template, step, result.attempt, child)
            .await?;
        if noted {
            info!(task_id = %result.task_id, step = %result.step, attempt = result.attempt,
                child_task_id = %child, "step waits for its child task");
        } else {
            debug!(task_id = %result.task_id, step = %result.step, attempt = result.attempt,
                "the step moved on before its child task was noted; nothing to do");
        }
        Ok(())
    }

    /// Records how an attempt ended and carries out what follows: the
    /// steps now ready, or the task's report if it finished. The store has
    /// ended the attempt's lease, leased the ready steps and scheduled any
    /// retry in the same call. Used for results from workers and for
    /// timeouts alike.
    pub(super) async fn record(
        &self,
        template: &TaskTemplate,
        step: usize,
        result: &StepResult,
        redelivered: bool,
    ) -> Result<(), Error> {
        let traceparent = telemetry::traceparent(&tracing::Span::current());
        let end = StepEnd {
            template,
            step,
            result,
            redelivered,
            traceparent: traceparent.as_deref(),
        };
        let prepared = self
            .store
            .prepare_result(end, |child| self.lease(template, child));
        let recorded = self.recorder.apply(prepared).await?;
        let task_id = result.task_id;
        match recorded.verdict {
            Verdict::Applied => {
                count_step(template, result, &recorded);
                debug!(task_id = %task_id, step = %result.step, attempt = result.attempt, "step result applied");
            }
            Verdict::Duplicate => {
                info!(task_id = %task_id, step = %result.step, attempt = result.attempt,
                    redelivered, "duplicate step result; the first one stands");
            }
            Verdict::Stale => {
                info!(task_id = %task_id, step = %result.step, attempt = result.attempt,
                    "result for an attempt that is not the current one; ignored");
            }
            Verdict::UnknownTask => {
                warn!(task_id = %task_id, step = %result.step, "result for an unknown or expired task; ignored");
                return Ok(());
            }
        }
        if let Some(due) = recorded.retry_due {
            info!(task_id = %task_id, step = %result.step, attempt = result.attempt,
                retry_in_ms = (due - Utc::now()).num_milliseconds().max(0), "step will be retried");
        }
        // A task that has finished has no ready steps: at most one of the
        // two publishes anything. The store hands back the report only when
        // it is to be sent: the first time, or again for a redelivery.
        let announce = async {
            match &recorded.finished {
                Some(snapshot) => self.announce(snapshot, Audience::Everyone).await,
                None => Ok(()),
            }
        };
        let ready = ReadySteps {
            template,
            task_id,
            steps: &recorded.ready,
            attempt: 1,
            inputs: &recorded.inputs,
            joins: &recorded.joins,
        };
        tokio::try_join!(self.publish_steps(ready), announce)?;
        if recorded.verdict == Verdict::Applied
            && let Some(status) = recorded.status.filter(|s| *s != TaskStatus::Running)
        {
            count_finished(template, status);
        }
        Ok(())
    }
}

/// Counts an applied result, and for each join it released, how long the
/// join waited from its first parent's end to its last.
fn count_step(template: &TaskTemplate, result: &StepResult, recorded: &Recorded) {
    let m = metrics::global();
    let outcome = match &result.outcome {
        StepOutcome::Completed { .. } => "completed",
        _ if recorded.retry_due.is_some() => "retried",
        StepOutcome::Failed { .. } | StepOutcome::WaitingForChild { .. } => "failed",
    };
    m.steps
        .get_or_create(&metrics::step_outcome(
            &template.namespace,
            &template.name,
            &result.step,
            outcome,
        ))
        .inc();
    for join in &recorded.joins {
        if let Some(wait_ms) = join.wait_ms {
            let labels = metrics::step(
                &template.namespace,
                &template.name,
                &template.steps[join.step].name,
            );
            m.join_wait
                .get_or_create(&labels)
                .observe(wait_ms as f64 / 1000.0);
        }
    }
}

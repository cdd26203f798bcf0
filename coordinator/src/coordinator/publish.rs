//! Step-ready messages: built from what the store handed back, published
//! together, confirmed before the delivery that caused them is acked. A
//! step whose message would be over the size limit is not published: it
//! fails at once, permanently, with `input_too_large`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::value::RawValue;
use tasker_protocol::topology::{self, message_type};
use tasker_protocol::{
    ErrorCode, PROTOCOL_VERSION, StepFailure, StepOutcome, StepReady, StepResult, TaskTemplate, message,
};
use tasker_runtime::publisher::Outgoing;
use tasker_runtime::{broker, metrics, telemetry};
use tracing::{debug, warn};
use uuid::Uuid;

use super::{Coordinator, span};
use crate::Error;
use crate::store::{Inputs, JoinSpans, Waiting};

/// Steps of one task to publish, all at one attempt.
pub(super) struct ReadySteps<'a> {
    pub template: &'a TaskTemplate,
    pub task_id: Uuid,
    pub steps: &'a [usize],
    pub attempt: u32,
    /// What their messages carry.
    pub inputs: &'a Inputs,
    /// For each join among them, its parents' spans.
    pub joins: &'a [JoinSpans],
}

impl Coordinator {
    /// Publishes a step-ready message for each of `ready`'s steps and waits
    /// for every confirm. A step whose message would be over the size limit
    /// fails instead, as a permanent `input_too_large`, recorded as any
    /// result is. Returns the steps whose messages reached no queue, which
    /// now wait for a worker.
    pub(super) async fn publish_steps(&self, ready: ReadySteps<'_>) -> Result<Vec<usize>, Error> {
        let ReadySteps {
            template,
            task_id,
            steps,
            attempt,
            inputs,
            joins,
        } = ready;
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let mut messages = Vec::with_capacity(steps.len());
        let mut published = Vec::with_capacity(steps.len());
        let mut spans = Vec::with_capacity(steps.len());
        let mut too_large = Vec::new();
        for &step in steps {
            let ready = step_ready(template, task_id, step, attempt, inputs)?;
            let payload = message::encode(&ready);
            if payload.len() > self.config.max_message_bytes {
                too_large.push(input_too_large(
                    &ready,
                    payload.len(),
                    self.config.max_message_bytes,
                ));
                continue;
            }
            debug!(task_id = %task_id, step = %ready.step, attempt, "step published");
            let links = joins
                .iter()
                .find(|j| j.step == step)
                .map_or(&[][..], |j| &j.links[..]);
            let span = span::publish_step(template, task_id, &ready.step, &ready.callable, attempt, links);
            let properties = span.in_scope(|| broker::properties(message_type::STEP_READY, Some(task_id)));
            if let Some(id) = properties.message_id() {
                span.record("messaging.message.id", id.as_str());
            }
            spans.push(span);
            published.push(step);
            messages.push(Outgoing {
                exchange: topology::STEPS_EXCHANGE.to_owned(),
                routing_key: topology::step_routing_key(&template.namespace, &ready.callable),
                payload,
                properties,
                mandatory: true,
            });
        }
        // The producer spans end when the broker has confirmed.
        let outcomes = if messages.is_empty() {
            Vec::new()
        } else {
            self.publisher.publish_each(messages).await?
        };
        drop(spans);
        let mut waiting = Vec::new();
        for (step, outcome) in published.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) => {}
                // No service has declared the step's callable.
                Err(tasker_runtime::Error::Unroutable { .. }) => {
                    self.wait_for_worker(template, task_id, step, attempt).await?;
                    waiting.push(step);
                }
                Err(e) => return Err(e.into()),
            }
        }
        for result in too_large {
            let step = template
                .step_index(&result.step)
                .expect("a step-ready message names a step of its template");
            warn!(task_id = %task_id, step = %result.step, attempt, "step input over the size limit; the step fails");
            // As a redelivery: if this failure was recorded before, what it
            // caused (the task's end) is handed back and carried out again.
            // Boxed: recording it may publish, which may record.
            Box::pin(self.record(template, step, &result, true)).await?;
        }
        Ok(waiting)
    }
}

impl Coordinator {
    /// Notes that `step` waits for a worker that serves its callable, and
    /// says so once.
    async fn wait_for_worker(
        &self,
        template: &TaskTemplate,
        task_id: Uuid,
        step: usize,
        attempt: u32,
    ) -> Result<(), Error> {
        let callable = &template.steps[step].callable;
        let trace = telemetry::traceparent(&tracing::Span::current());
        let waiting = self
            .store
            .wait_for_worker(task_id, template, step, attempt, WAITING_RETRY, trace.as_deref())
            .await?;
        if waiting == Waiting::Began {
            warn!(task_id = %task_id, step = %template.steps[step].name, attempt, %callable,
                "step waits for a worker: no service serves its callable yet");
            metrics::global()
                .steps_without_worker
                .get_or_create(&metrics::callable(&template.namespace, callable))
                .inc();
        }
        Ok(())
    }
}

/// How soon a step that waits for a worker is tried again.
pub(super) const WAITING_RETRY: Duration = Duration::from_secs(1);

/// The failure of a step whose step-ready message, `ready`, would be `size`
/// bytes, over `limit`: it names the largest parts of the input, and what to
/// do about them.
fn input_too_large(ready: &StepReady, size: usize, limit: usize) -> StepResult {
    let mut parts: Vec<(String, usize)> = ready
        .dependency_results
        .iter()
        .map(|(name, result)| (format!("the result of {name}"), result.get().len()))
        .collect();
    parts.push(("the context".to_owned(), ready.context.get().len()));
    if !ready.initialization.is_empty() {
        let initialization = serde_json::to_string(&ready.initialization).map_or(0, |s| s.len());
        parts.push(("its initialization".to_owned(), initialization));
    }
    parts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let largest: Vec<String> = parts
        .iter()
        .take(3)
        .map(|(part, bytes)| format!("{part} ({bytes} bytes)"))
        .collect();
    let now = Utc::now();
    let failure = StepOutcome::Failed {
        error: StepFailure::of(
            ErrorCode::InputTooLarge,
            format!(
                "the input of step {} makes a step-ready message of {size} bytes, over the limit of {limit} bytes; \
                     the largest parts: {}. Name only the results it needs with results_from in its template, make \
                     them smaller (store large data elsewhere and pass a reference), or raise the limit \
                     (TASKER_MAX_MESSAGE_BYTES) on every coordinator and worker, and RabbitMQ's max_message_size",
                ready.step,
                largest.join(", ")
            ),
        ),
    };
    ready.result(now, now, failure)
}

/// The step-ready message for one attempt of one step.
fn step_ready(
    template: &TaskTemplate,
    task_id: Uuid,
    step: usize,
    attempt: u32,
    inputs: &Inputs,
) -> Result<StepReady, Error> {
    let corrupt = |detail: String| Error::CorruptState { task_id, detail };
    let context =
        RawValue::from_string(inputs.context.clone()).map_err(|e| corrupt(format!("stored context: {e}")))?;
    let mut dependency_results = BTreeMap::new();
    for &a in template.carried(step) {
        let name = &template.steps[a].name;
        let raw = inputs
            .results
            .get(&a)
            .ok_or_else(|| corrupt(format!("no stored result for ancestor {name:?}")))?;
        let raw = RawValue::from_string(raw.clone())
            .map_err(|e| corrupt(format!("stored result of {name:?}: {e}")))?;
        dependency_results.insert(name.clone(), raw);
    }
    let t = &template.steps[step];
    Ok(StepReady {
        protocol_version: PROTOCOL_VERSION,
        task_id,
        namespace: template.namespace.clone(),
        task_name: template.name.clone(),
        task_version: template.version.to_string(),
        step: t.name.clone(),
        callable: t.callable.clone(),
        attempt,
        max_attempts: t.retry.max_attempts,
        timeout_seconds: t.timeout.map(|d| d.as_secs_f64()),
        context,
        initialization: t.initialization.clone(),
        dependencies: t.dependencies.clone(),
        dependency_results,
    })
}

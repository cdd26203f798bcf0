//! Step-ready messages: built from what the store handed back, published
//! together, confirmed before the delivery that caused them is acked.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use tasker_protocol::topology::{self, message_type};
use tasker_protocol::{PROTOCOL_VERSION, StepReady, TaskTemplate, message};
use tasker_runtime::broker;
use tasker_runtime::publisher::Outgoing;
use tracing::debug;
use uuid::Uuid;

use super::{Coordinator, span};
use crate::Error;
use crate::store::{Inputs, JoinSpans};

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
    /// for every confirm.
    pub(super) async fn publish_steps(&self, ready: ReadySteps<'_>) -> Result<(), Error> {
        let ReadySteps {
            template,
            task_id,
            steps,
            attempt,
            inputs,
            joins,
        } = ready;
        if steps.is_empty() {
            return Ok(());
        }
        let mut messages = Vec::with_capacity(steps.len());
        let mut spans = Vec::with_capacity(steps.len());
        for &step in steps {
            let ready = step_ready(template, task_id, step, attempt, inputs)?;
            debug!(task_id = %task_id, step = %ready.step, attempt, "step published");
            let links = joins
                .iter()
                .find(|j| j.step == step)
                .map_or(&[][..], |j| &j.links[..]);
            let span = span::publish_step(template, task_id, &ready.step, attempt, links);
            let properties = span.in_scope(|| broker::properties(message_type::STEP_READY, Some(task_id)));
            if let Some(id) = properties.message_id() {
                span.record("messaging.message.id", id.as_str());
            }
            spans.push(span);
            messages.push(Outgoing {
                exchange: topology::STEPS_EXCHANGE.to_owned(),
                routing_key: template.namespace.clone(),
                payload: message::encode(&ready),
                properties,
                mandatory: true,
            });
        }
        // The producer spans end when the broker has confirmed.
        let published = self.publisher.publish_all(messages).await;
        drop(spans);
        Ok(published?)
    }
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
    for &a in template.dag.ancestors(step) {
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
        dependency_results,
    })
}

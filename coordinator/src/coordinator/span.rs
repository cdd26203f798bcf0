//! The spans the coordinator records, so that a task is one trace: each
//! delivery's, each step publish's, and the task's whole life.

use lapin::message::Delivery;
use tasker_protocol::{TaskFinished, TaskStatus, TaskTemplate, topology};
use tasker_runtime::telemetry;
use uuid::Uuid;

use super::Input;

/// The consumer span of one delivery, a child of the span that published
/// the message: the client's for a request, the worker's for a result. A
/// worker's announcement belongs to no task and comes every few seconds
/// from every worker: its span is at debug level, so that it is not
/// exported as a trace of its own each time.
pub(super) fn delivery(input: Input, queue: &str, delivery: &Delivery) -> tracing::Span {
    let name = match input {
        Input::Request => "accept task",
        Input::Result => "record result",
        Input::Announcement => {
            return tracing::debug_span!("coordinator", otel.name = "note worker", messaging.destination.name = %queue);
        }
    };
    let span = tracing::info_span!(
        "coordinator",
        otel.name = name,
        otel.kind = "consumer",
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = %queue,
        messaging.rabbitmq.destination.routing_key = %delivery.routing_key.as_str(),
        messaging.message.id = delivery.properties.message_id().as_ref().map(|m| m.to_string()).unwrap_or_default(),
        redelivered = delivery.redelivered,
        tasker.task.id = tracing::field::Empty,
        tasker.step.name = tracing::field::Empty,
        tasker.step.attempt = tracing::field::Empty,
        tasker.step.outcome = tracing::field::Empty,
    );
    telemetry::continue_from(&span, delivery.properties.headers().as_ref());
    telemetry::record_ids(&span);
    span
}

/// The producer span of one attempt's step-ready message; the worker's
/// span is its child. A join's links to the spans that recorded its
/// parents' results (`links`, traceparents): it shows what the join
/// waited for.
pub(super) fn publish_step(
    template: &TaskTemplate,
    task_id: Uuid,
    step: &str,
    callable: &str,
    attempt: u32,
    links: &[String],
) -> tracing::Span {
    let span = tracing::info_span!(
        "publish step",
        otel.name = format!("publish {step}"),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.destination.name = topology::STEPS_EXCHANGE,
        messaging.rabbitmq.destination.routing_key = %topology::step_routing_key(&template.namespace, callable),
        messaging.message.id = tracing::field::Empty,
        tasker.task.id = %task_id,
        tasker.namespace = %template.namespace,
        tasker.task.name = %template.name,
        tasker.task.version = %template.version,
        tasker.step.name = %step,
        tasker.step.attempt = attempt,
    );
    if !links.is_empty() {
        telemetry::add_links(&span, links);
    }
    span
}

/// Records the task's whole life as one span, from its acceptance to its
/// end, under the span that accepted it (`traceparent`).
pub(super) fn finished_task(report: &TaskFinished, traceparent: &str) {
    telemetry::record_finished_span(
        &format!("task {}/{}", report.namespace, report.name),
        traceparent,
        report.created_at.into(),
        report.finished_at.into(),
        vec![
            ("tasker.task.id", report.task_id.to_string()),
            ("tasker.namespace", report.namespace.clone()),
            ("tasker.task.name", report.name.clone()),
            ("tasker.task.version", report.version.clone()),
            ("tasker.task.status", report.status.as_str().to_owned()),
        ],
        report.status != TaskStatus::Complete,
    );
}

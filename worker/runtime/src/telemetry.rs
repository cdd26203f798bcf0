//! Logging setup shared by every Tasker binary.
//!
//! Logs are readable text by default and JSON with `TASKER_LOG_FORMAT=json`.
//! `RUST_LOG` filters them, with `info` as the default.

use std::collections::HashMap;

use lapin::types::{AMQPValue, FieldTable};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer as _};

/// What is logged when `RUST_LOG` is not set: Tasker's own lines from
/// `info` up, and lapin's warnings. lapin's line for every message the
/// broker returns is left out: a mandatory message that reaches no queue
/// fails its publish with [`crate::Error::Unroutable`], and the caller
/// says what that means. So is lapin's line for every channel the broker
/// closes: Tasker asks whether an exchange or a queue exists on a channel of
/// its own, and a "no" closes it; a closed channel that matters fails an
/// operation, and the error Tasker reports names it.
pub const DEFAULT_LOG_FILTER: &str = "info,lapin=warn,lapin::returned_messages=error,lapin::channel=off";

/// Flushes spans on drop: keep it alive for the life of `main`.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Nothing useful can be done about a failed flush at exit.
            let _ = provider.shutdown();
        }
    }
}

/// Installs logging, and span export over OTLP when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Call once, at the start of `main`,
/// and keep the guard until the end.
///
/// - Logs are readable text by default and JSON with
///   `TASKER_LOG_FORMAT=json`; `RUST_LOG` filters them (default `info`).
/// - Export follows the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT`,
///   `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, or `http/protobuf`, the
///   default), `OTEL_SERVICE_NAME` (else `service`), `OTEL_RESOURCE_ATTRIBUTES`,
///   and `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`. With no endpoint,
///   nothing is exported and spans cost next to nothing.
///
/// # Panics
///
/// If the OTLP exporter cannot be built from the environment.
#[must_use]
pub fn init(service: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let json = std::env::var("TASKER_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let provider = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .map(|_| provider(service));
    if let Some(p) = &provider {
        // For the spans recorded with the OpenTelemetry API directly.
        opentelemetry::global::set_tracer_provider(p.clone());
        EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // Spans are exported whatever `RUST_LOG` says: it filters the logs only.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("tasker"))
            // The libraries' own spans (lapin's I/O loop, the exporter's
            // HTTP and gRPC stacks) would only be noise in a task's trace.
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_default(tracing_subscriber::filter::LevelFilter::INFO)
                    .with_target("lapin", tracing_subscriber::filter::LevelFilter::OFF)
                    .with_target("h2", tracing_subscriber::filter::LevelFilter::OFF)
                    .with_target("hyper", tracing_subscriber::filter::LevelFilter::OFF)
                    .with_target("hyper_util", tracing_subscriber::filter::LevelFilter::OFF)
                    .with_target("tonic", tracing_subscriber::filter::LevelFilter::OFF)
                    .with_target("tower", tracing_subscriber::filter::LevelFilter::OFF)
                    .with_target("opentelemetry", tracing_subscriber::filter::LevelFilter::OFF)
                    .with_target("opentelemetry_sdk", tracing_subscriber::filter::LevelFilter::OFF)
                    .with_target("opentelemetry_otlp", tracing_subscriber::filter::LevelFilter::OFF),
            )
    });
    let registry = tracing_subscriber::registry().with(otel);
    if json {
        let logs = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr);
        registry.with(logs.with_filter(filter)).init();
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .init();
    }
    Telemetry { provider }
}

fn provider(service: &str) -> SdkTracerProvider {
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or_else(|_| "http/protobuf".into());
    let exporter = match protocol.as_str() {
        "grpc" => opentelemetry_otlp::SpanExporter::builder().with_tonic().build(),
        _ => opentelemetry_otlp::SpanExporter::builder().with_http().build(),
    }
    .unwrap_or_else(|e| panic!("cannot export spans to OTEL_EXPORTER_OTLP_ENDPOINT over {protocol}: {e}"));
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_owned());
    }
    // Batches are exported on the Tokio runtime: the HTTP client needs its
    // reactor, which the SDK's own batch thread does not have.
    let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource.build())
        .build()
}

/// Adds the W3C trace context of `span` (`traceparent`, `tracestate`) to
/// AMQP headers.
pub fn inject(span: &tracing::Span, headers: &mut FieldTable) {
    for (k, v) in trace_fields(span) {
        headers.insert(k.into(), AMQPValue::LongString(v.into()));
    }
}

/// Makes `span` a child of the trace context in AMQP `headers`, if they
/// carry one.
pub fn continue_from(span: &tracing::Span, headers: Option<&FieldTable>) {
    let Some(headers) = headers else { return };
    let fields: HashMap<String, String> = headers
        .inner()
        .iter()
        .filter_map(|(k, v)| match v {
            AMQPValue::LongString(s) => Some((k.to_string(), s.to_string())),
            _ => None,
        })
        .collect();
    let _ = span.set_parent(context_from(fields));
}

/// The W3C `traceparent` of `span`, when it is being traced: to carry a
/// trace through a store rather than a message.
#[must_use]
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    trace_fields(span).remove("traceparent")
}

/// Makes `span` a child of the W3C `traceparent` given.
pub fn continue_from_traceparent(span: &tracing::Span, traceparent: &str) {
    let _ = span.set_parent(context_from(HashMap::from([(
        "traceparent".to_owned(),
        traceparent.to_owned(),
    )])));
}

/// Names `span` `name` in the trace, once what it is about is known: its
/// `otel.name` field only names a span whose trace context has not been
/// made yet.
pub fn rename(span: &tracing::Span, name: String) {
    use opentelemetry::trace::TraceContextExt as _;
    span.context().span().update_name(name);
}

/// Records the span's own trace and span ids as its `trace_id` and
/// `span_id` fields, so that JSON logs of events inside it carry them.
/// The span must declare both fields (as `tracing::field::Empty`).
pub fn record_ids(span: &tracing::Span) {
    use opentelemetry::trace::TraceContextExt as _;
    let cx = span.context();
    let context = cx.span().span_context().clone();
    if context.is_valid() {
        span.record("trace_id", context.trace_id().to_string());
        span.record("span_id", context.span_id().to_string());
    }
}

/// Records a span that already ended, with its own start and end: for the
/// life of a task, which no single process sees from start to end. Its
/// parent is `traceparent`. Does nothing when spans are not exported.
pub fn record_finished_span(
    name: &str,
    traceparent: &str,
    start: std::time::SystemTime,
    end: std::time::SystemTime,
    attributes: Vec<(&'static str, String)>,
    error: bool,
) {
    use opentelemetry::trace::{Span as _, Tracer as _};
    let parent = context_from(HashMap::from([(
        "traceparent".to_owned(),
        traceparent.to_owned(),
    )]));
    let tracer = opentelemetry::global::tracer("tasker");
    let mut span = tracer
        .span_builder(name.to_owned())
        .with_start_time(start)
        .with_attributes(
            attributes
                .into_iter()
                .map(|(k, v)| opentelemetry::KeyValue::new(k, v)),
        )
        .start_with_context(&tracer, &parent);
    if error {
        span.set_status(opentelemetry::trace::Status::error("the task failed"));
    }
    span.end_with_timestamp(end);
}

/// Links `span` to the spans with these W3C traceparents.
pub fn add_links<'a>(span: &tracing::Span, traceparents: impl IntoIterator<Item = &'a String>) {
    use opentelemetry::trace::TraceContextExt as _;
    for tp in traceparents {
        let cx = context_from(HashMap::from([("traceparent".to_owned(), tp.clone())]));
        span.add_link(cx.span().span_context().clone());
    }
}

/// Whether spans are exported: work done only for traces can be skipped
/// when they are not.
#[must_use]
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The trace id of `span`, as 32 hex digits, when it is being traced.
#[must_use]
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    let cx = span.context();
    let id = cx.span().span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}

/// The W3C fields of `span`'s context; none when spans are not exported,
/// so that publishing pays nothing for tracing that is off.
fn trace_fields(span: &tracing::Span) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    if exporting() {
        TraceContextPropagator::new().inject_context(&span.context(), &mut Fields(&mut fields));
    }
    fields
}

/// The context that W3C `fields` describe.
fn context_from(mut fields: HashMap<String, String>) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&Fields(&mut fields))
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Injector for Fields<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

impl Extractor for Fields<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// A token that is cancelled on the first SIGINT or SIGTERM. A second
/// signal exits at once, for when a graceful stop takes too long.
#[must_use]
pub fn shutdown_on_signal() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        signal().await;
        tracing::info!("shutting down; signal again to stop at once");
        cancel.cancel();
        signal().await;
        tracing::warn!("second signal: stopping now");
        std::process::exit(130);
    });
    token
}

async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

//! Prometheus metrics, served as text on `/metrics` beside the health
//! endpoints.
//!
//! One registry per process, like Prometheus's default registry: the
//! coordinator and the worker record into the same families, and each
//! exports what it recorded. Labels are namespaces, template names, step
//! names and fixed codes: bounded by the templates, never a task id.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A task's template.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    /// The namespace.
    pub namespace: String,
    /// The template's name.
    pub template: String,
}

/// A task outcome: `accepted`, `complete`, `failed` or `rejected`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskOutcomeLabels {
    /// The namespace; `unknown` for a rejected request of a namespace this
    /// process does not serve.
    pub namespace: String,
    /// The template's name; `unknown` for a rejected request of a template
    /// this process does not load.
    pub template: String,
    /// What happened.
    pub outcome: String,
}

/// A step of a template.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// The namespace.
    pub namespace: String,
    /// The template's name.
    pub template: String,
    /// The step's name.
    pub step: String,
}

/// A step outcome: `completed`, `failed` (for good) or `retried`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepOutcomeLabels {
    /// The namespace.
    pub namespace: String,
    /// The template's name.
    pub template: String,
    /// The step's name.
    pub step: String,
    /// What happened.
    pub outcome: String,
}

/// Where a message was dead-lettered from, and why, as a code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLetterLabels {
    /// The queue the message was taken from.
    pub queue: String,
    /// A short, fixed code such as `not_json` or `redelivery_limit`.
    pub reason: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric Tasker records.
pub struct Metrics {
    registry: Registry,
    /// Tasks by outcome, by namespace and template (coordinator).
    pub tasks: Family<TaskOutcomeLabels, Counter>,
    /// Tasks accepted and not yet finished by this coordinator; sum it over
    /// coordinators, since one may accept a task another finishes.
    pub tasks_in_flight: Family<TaskLabels, Gauge>,
    /// Step outcomes, by step (coordinator).
    pub steps: Family<StepOutcomeLabels, Counter>,
    /// How long handlers ran, by step (worker).
    pub step_duration: Histograms<StepLabels>,
    /// From a step's publish to its handler's start, by step (worker).
    pub queue_wait: Histograms<StepLabels>,
    /// From a join's first predecessor finishing to its last (coordinator).
    pub join_wait: Histograms<StepLabels>,
    /// Messages moved to the dead-letter queue (both).
    pub dead_letters: Family<DeadLetterLabels, Counter>,
    /// Steps that found no service serving their callable, and began to
    /// wait for a worker (coordinator).
    pub steps_without_worker: Family<CallableLabels, Counter>,
    /// Steps waiting for a worker now, by namespace, as the store counts
    /// them (coordinator; every coordinator reports the same count).
    pub steps_waiting_for_worker: Family<NamespaceLabels, Gauge>,
}

fn seconds_histogram() -> Histogram {
    // 0.5 ms to about 35 min.
    Histogram::new(exponential_buckets(0.0005, 2.0, 22))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("tasker");
        let m = Self {
            tasks: Family::default(),
            tasks_in_flight: Family::default(),
            steps: Family::default(),
            step_duration: Family::new_with_constructor(seconds_histogram),
            queue_wait: Family::new_with_constructor(seconds_histogram),
            join_wait: Family::new_with_constructor(seconds_histogram),
            dead_letters: Family::default(),
            steps_without_worker: Family::default(),
            steps_waiting_for_worker: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "tasks",
            "Tasks by outcome: accepted, complete, failed, rejected",
            m.tasks.clone(),
        );
        registry.register(
            "tasks_in_flight",
            "Tasks accepted and not yet finished by this coordinator (sum over coordinators)",
            m.tasks_in_flight.clone(),
        );
        registry.register(
            "steps",
            "Step outcomes: completed, failed (for good), retried",
            m.steps.clone(),
        );
        registry.register(
            "step_duration_seconds",
            "How long step handlers ran",
            m.step_duration.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "From a step's publish to its handler's start",
            m.queue_wait.clone(),
        );
        registry.register(
            "join_wait_seconds",
            "From a join's first predecessor finishing to its last",
            m.join_wait.clone(),
        );
        registry.register(
            "dead_letters",
            "Messages moved to the dead-letter queue",
            m.dead_letters.clone(),
        );
        registry.register(
            "steps_without_worker",
            "Steps whose callable no service served when they were published: each began to wait for a worker",
            m.steps_without_worker.clone(),
        );
        registry.register(
            "steps_waiting_for_worker",
            "Steps waiting now for a worker that serves their callable",
            m.steps_waiting_for_worker.clone(),
        );
        Self { registry, ..m }
    }

    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Labels of a metric per namespace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    /// The namespace.
    pub namespace: String,
}

/// Labels of a metric per handler.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallableLabels {
    /// The namespace.
    pub namespace: String,
    /// The handler's callable, as the template names it.
    pub callable: String,
}

/// Shorthand for [`NamespaceLabels`].
#[must_use]
pub fn namespace(namespace: &str) -> NamespaceLabels {
    NamespaceLabels {
        namespace: namespace.to_owned(),
    }
}

/// Shorthand for [`CallableLabels`].
#[must_use]
pub fn callable(namespace: &str, callable: &str) -> CallableLabels {
    CallableLabels {
        namespace: namespace.to_owned(),
        callable: callable.to_owned(),
    }
}

/// Shorthand for [`TaskLabels`].
#[must_use]
pub fn task(namespace: &str, template: &str) -> TaskLabels {
    TaskLabels {
        namespace: namespace.to_owned(),
        template: template.to_owned(),
    }
}

/// Shorthand for [`TaskOutcomeLabels`].
#[must_use]
pub fn task_outcome(namespace: &str, template: &str, outcome: &str) -> TaskOutcomeLabels {
    TaskOutcomeLabels {
        namespace: namespace.to_owned(),
        template: template.to_owned(),
        outcome: outcome.to_owned(),
    }
}

/// Shorthand for [`StepLabels`].
#[must_use]
pub fn step(namespace: &str, template: &str, step: &str) -> StepLabels {
    StepLabels {
        namespace: namespace.to_owned(),
        template: template.to_owned(),
        step: step.to_owned(),
    }
}

/// Shorthand for [`StepOutcomeLabels`].
#[must_use]
pub fn step_outcome(namespace: &str, template: &str, step: &str, outcome: &str) -> StepOutcomeLabels {
    StepOutcomeLabels {
        namespace: namespace.to_owned(),
        template: template.to_owned(),
        step: step.to_owned(),
        outcome: outcome.to_owned(),
    }
}

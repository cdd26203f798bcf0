/**
 * Prometheus metrics of a worker, served on `/metrics` beside the health
 * endpoints in the OpenMetrics text format (which Prometheus scrapes as its
 * own): the same families, labels and buckets as the Rust and Python
 * workers record, so one dashboard shows every service. Labels are
 * namespaces, template names, step names and fixed codes, bounded by the
 * templates, never a task id.
 *
 * A few dozen lines rather than a client library: two histograms and a
 * counter need no more.
 */

/** The content type of {@link Metrics.render}'s text. */
export const CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/** 0.5 ms to about 35 min, as the Rust worker's buckets. */
export const BUCKETS: readonly number[] = Object.freeze(
  Array.from({ length: 22 }, (_, i) => 0.0005 * 2 ** i),
);

/** The labels of a step's metrics. */
export interface StepLabels {
  readonly namespace: string;
  /** The template's name. */
  readonly template: string;
  readonly step: string;
}

/** The labels of a dead letter: where it was taken from, and why, as a code such as `not_json`. */
export interface DeadLetterLabels {
  readonly queue: string;
  readonly reason: string;
}

/** Label values by name: every key of `L` is a label. */
type Labels<L> = Readonly<Record<keyof L, string>>;

/** One family of metrics: a series per distinct set of label values, in the order they were first seen. */
abstract class Family<L extends Labels<L>, S> {
  readonly name: string;
  readonly help: string;
  readonly #labelNames: readonly (keyof L & string)[];
  readonly #series = new Map<string, { labels: string; value: S }>();

  constructor(name: string, help: string, labelNames: readonly (keyof L & string)[]) {
    this.name = name;
    this.help = help;
    this.#labelNames = labelNames;
  }

  protected abstract fresh(): S;

  protected series(labels: L): S {
    const text = this.#labelNames.map((name) => `${name}="${escapeLabel(labels[name])}"`).join(",");
    let entry = this.#series.get(text);
    if (entry === undefined) {
      entry = { labels: text, value: this.fresh() };
      this.#series.set(text, entry);
    }
    return entry.value;
  }

  protected entries(): IterableIterator<{ labels: string; value: S }> {
    return this.#series.values();
  }

  abstract render(): string;
}

/** A counter family; OpenMetrics names its samples `<name>_total`. */
export class Counter<L extends Labels<L>> extends Family<L, { count: number }> {
  protected fresh(): { count: number } {
    return { count: 0 };
  }

  /** Adds `by` (1 by default) to the series of `labels`. */
  inc(labels: L, by = 1): void {
    this.series(labels).count += by;
  }

  /** The count of `labels`' series. */
  get(labels: L): number {
    return this.series(labels).count;
  }

  render(): string {
    let text = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    for (const { labels, value } of this.entries()) {
      text += `${this.name}_total{${labels}} ${formatNumber(value.count)}\n`;
    }
    return text;
  }
}

interface HistogramSeries {
  readonly buckets: number[];
  count: number;
  sum: number;
}

/** A histogram family with {@link BUCKETS}. */
export class Histogram<L extends Labels<L>> extends Family<L, HistogramSeries> {
  protected fresh(): HistogramSeries {
    return { buckets: BUCKETS.map(() => 0), count: 0, sum: 0 };
  }

  /** Records `seconds` in the series of `labels`. */
  observe(labels: L, seconds: number): void {
    const series = this.series(labels);
    const at = BUCKETS.findIndex((bound) => seconds <= bound);
    if (at >= 0) series.buckets[at] = (series.buckets[at] ?? 0) + 1;
    series.count += 1;
    series.sum += seconds;
  }

  /** How many values `labels`' series recorded. */
  count(labels: L): number {
    return this.series(labels).count;
  }

  render(): string {
    let text = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    for (const { labels, value } of this.entries()) {
      let cumulative = 0;
      BUCKETS.forEach((bound, i) => {
        cumulative += value.buckets[i] ?? 0;
        text += `${this.name}_bucket{${labels},le="${formatNumber(bound)}"} ${cumulative}\n`;
      });
      text += `${this.name}_bucket{${labels},le="+Inf"} ${value.count}\n`;
      text += `${this.name}_count{${labels}} ${value.count}\n`;
      text += `${this.name}_sum{${labels}} ${formatNumber(value.sum)}\n`;
    }
    return text;
  }
}

/** Every metric a worker records. */
export class Metrics {
  /** How long step handlers ran, by step. */
  readonly stepDuration = new Histogram<StepLabels>(
    "tasker_step_duration_seconds",
    "How long step handlers ran",
    ["namespace", "template", "step"],
  );
  /** From a step's publish (its `x-tasker-published-at-ms`) to its handler's start, by step. */
  readonly queueWait = new Histogram<StepLabels>(
    "tasker_queue_wait_seconds",
    "From a step's publish to its handler's start",
    ["namespace", "template", "step"],
  );
  /** Messages moved to the dead-letter queue, by queue and reason. */
  readonly deadLetters = new Counter<DeadLetterLabels>(
    "tasker_dead_letters",
    "Messages moved to the dead-letter queue",
    ["queue", "reason"],
  );

  /** The OpenMetrics text of every metric, ending with `# EOF`. */
  render(): string {
    return `${this.stepDuration.render()}${this.queueWait.render()}${this.deadLetters.render()}# EOF\n`;
  }
}

/** The process's metrics, like Prometheus's default registry: one per process. */
export const METRICS = new Metrics();

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function formatNumber(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (Number.isNaN(value)) return "NaN";
  return String(value);
}

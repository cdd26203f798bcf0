/**
 * The simulated latency of a service call: a number of milliseconds picked
 * at random from a range, as the Rust example's `Latency`. Zero for tests
 * and benchmarks; a little for demos, so that the parallel branches show.
 */

import { ConfigError, StepHandler } from "tasker-worker";

/** Milliseconds from `low` (included) to `high` (excluded); an empty range waits not at all. */
export class Latency {
  readonly low: number;
  readonly high: number;

  constructor(low: number, high: number) {
    this.low = low;
    this.high = high;
  }

  /** No latency. */
  static none(): Latency {
    return new Latency(0, 0);
  }

  /**
   * From `MIN..MAX` milliseconds, as `TASKER_DEMO_LATENCY_MS` writes it.
   *
   * @throws ConfigError saying how to write it.
   */
  static parse(text: string): Latency {
    const at = text.indexOf("..");
    if (at < 0) {
      throw new ConfigError(`${JSON.stringify(text)} is not MIN..MAX, for example 40..120`);
    }
    const bounds = [text.slice(0, at), text.slice(at + 2)].map((part) => {
      if (!/^\d+$/.test(part.trim())) {
        throw new ConfigError(
          `${JSON.stringify(part)} in ${JSON.stringify(text)} is not a number of milliseconds`,
        );
      }
      return Number(part.trim());
    });
    return new Latency(bounds[0] ?? 0, bounds[1] ?? 0);
  }

  /** Sleeps as long as one call to the service takes. */
  async wait(): Promise<void> {
    if (this.high <= this.low) return;
    const ms = this.low + Math.floor(Math.random() * (this.high - this.low));
    await new Promise((resolve) => setTimeout(resolve, ms));
  }
}

/** A handler of a simulated service: each call waits its `latency`. */
export abstract class SimulatedHandler extends StepHandler {
  readonly latency: Latency;

  constructor(latency: Latency = Latency.none()) {
    super();
    this.latency = latency;
  }
}

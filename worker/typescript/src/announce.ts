/**
 * The worker's announcements: once it has declared its queues and consumes,
 * every `announceEvery` seconds after, and once more with `leaving` when it
 * stops on purpose. Coordinators keep them as the list of live workers and
 * count a worker gone after three silent intervals. Announcements are not
 * mandatory: a coordinator that is not there yet hears the next one.
 */

import { hostname } from "node:os";

import { properties, type Publisher } from "./broker.js";
import { encode, timestamp } from "./messages.js";
import {
  EVENTS_EXCHANGE,
  MessageType,
  PROTOCOL_VERSION,
  WORKER_ANNOUNCE_ROUTING_KEY,
} from "./topology.js";
import { SDK_VERSION } from "./version.js";

export const LANGUAGE = "typescript";

/**
 * One namespace a worker serves: its service queue (or, when its steps are
 * split over several queues, the service's exchange of the same name), its
 * callables, and how many queues the steps are split over (1 when left out).
 */
export interface ServedNamespace {
  readonly namespace: string;
  readonly queue: string;
  readonly callables: readonly string[];
  readonly partitions?: number;
}

/** Who this worker process is, for its announcements. */
export class Identity {
  constructor(
    readonly workerId: string,
    readonly service: string,
    readonly concurrency: number,
    readonly startedAt: Date,
    readonly every: number,
  ) {}

  /** The announcement of a worker serving `serves`. */
  announcement(serves: readonly ServedNamespace[], leaving: boolean): Record<string, unknown> {
    const body: Record<string, unknown> = {
      protocol_version: PROTOCOL_VERSION,
      worker_id: this.workerId,
      service: this.service,
      serves: serves.map((s) => ({
        namespace: s.namespace,
        queue: s.queue,
        callables: [...s.callables],
        // Only when split: a single queue announces itself as before.
        ...(s.partitions !== undefined && s.partitions > 1 ? { partitions: s.partitions } : {}),
      })),
      language: LANGUAGE,
      sdk_version: SDK_VERSION,
      host: hostname() || "unknown",
      pid: process.pid,
      concurrency: this.concurrency,
      started_at: timestamp(this.startedAt),
      sent_at: timestamp(new Date()),
      every_seconds: this.every,
    };
    if (leaving) {
      body["leaving"] = true;
    }
    return body;
  }

  /**
   * Publishes one announcement and waits for its confirm.
   *
   * @throws BrokerError if it was not sent.
   */
  async announce(
    publisher: Publisher,
    serves: readonly ServedNamespace[],
    leaving: boolean,
  ): Promise<void> {
    await publisher.publish(
      EVENTS_EXCHANGE,
      WORKER_ANNOUNCE_ROUTING_KEY,
      encode(this.announcement(serves, leaving)),
      properties(MessageType.WORKER_ANNOUNCEMENT),
      false,
    );
  }
}

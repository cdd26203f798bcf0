/**
 * Whether the worker is connected to what it needs, served over HTTP for
 * probes, as the Python SDK does:
 *
 * - `GET /healthz`: 200 while the process runs (liveness);
 * - `GET /readyz`: 200 when every dependency is connected, 503 otherwise
 *   (readiness; a worker is not ready while it has no broker connection);
 * - `GET /metrics`: the process's {@link METRICS} as OpenMetrics text.
 *
 * Both health bodies are plain text, one `name: up|down` line per dependency.
 */

import * as http from "node:http";

import type { Logger } from "./broker.js";
import { ConfigError } from "./errors.js";
import { CONTENT_TYPE as METRICS_CONTENT_TYPE, METRICS } from "./metrics.js";

/** The broker, as the health bodies name it. */
export const RABBITMQ = "rabbitmq";

const TEXT = "text/plain; charset=utf-8";

/**
 * The connection state of each dependency; `undefined` until the first
 * attempt to connect.
 */
export class Health {
  readonly #state = new Map<string, boolean | undefined>();
  readonly #log: Logger | undefined;

  constructor(dependencies: readonly string[], log?: Logger) {
    for (const name of dependencies) this.#state.set(name, undefined);
    this.#log = log;
  }

  /** Records that `dependency` works; logs only when it was down. */
  up(dependency: string): void {
    const was = this.#state.get(dependency);
    this.#state.set(dependency, true);
    if (was === false) this.#log?.info("connected", { dependency });
  }

  /** Records that `dependency` failed; logs once per outage. */
  down(dependency: string, error: unknown): void {
    const was = this.#state.get(dependency);
    this.#state.set(dependency, false);
    if (was !== false) {
      this.#log?.warn("lost connection; retrying until it is back", {
        dependency,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /** Whether every dependency is up. */
  get isReady(): boolean {
    return [...this.#state.values()].every((up) => up === true);
  }

  /** One `name: up|down` line per dependency, sorted by name. */
  report(): string {
    return [...this.#state.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, up]) => `${name}: ${up === true ? "up" : "down"}\n`)
      .join("");
  }
}

/** The status, content type and body of the answer to `method path`. */
export function route(method: string, path: string, health: Health): [number, string, string] {
  if (method !== "GET" && method !== "HEAD") return [405, TEXT, "use GET\n"];
  if (path === "/healthz") return [200, TEXT, health.report()];
  if (path === "/readyz") return [health.isReady ? 200 : 503, TEXT, health.report()];
  if (path === "/metrics") return [200, METRICS_CONTENT_TYPE, METRICS.render()];
  return [404, TEXT, "not found; try /healthz, /readyz or /metrics\n"];
}

/**
 * Starts serving the endpoints on `host:port`; close the returned server to
 * stop. Rejects if the address cannot be bound.
 */
export function serve(
  host: string,
  port: number,
  health: Health,
  log?: Logger,
): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    const method = request.method ?? "GET";
    const path = (request.url ?? "/").split("?")[0] ?? "/";
    const [status, contentType, body] = route(method, path, health);
    const bytes = Buffer.from(body, "utf8");
    response.writeHead(status, {
      "Content-Type": contentType,
      "Content-Length": bytes.length,
      Connection: "close",
    });
    response.end(method === "HEAD" ? undefined : bytes);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const address = server.address();
      const bound =
        typeof address === "object" && address !== null
          ? `${address.address}:${address.port}`
          : String(address);
      log?.info("health endpoints listening", { address: bound });
      resolve(server);
    });
  });
}

/** Stops `server`, dropping idle keep-alive connections. */
export function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * `host:port` (or `[v6]:port`) as `[host, port]`.
 *
 * @throws ConfigError when it has no port.
 */
export function parseAddress(text: string, what: string): [string, number] {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text.trim());
  const port = match === null ? NaN : Number(match[3]);
  if (match === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(
      `${what}=${JSON.stringify(text)} is not an address; give host:port, such as 0.0.0.0:9104`,
    );
  }
  return [match[1] ?? match[2] ?? "", port];
}

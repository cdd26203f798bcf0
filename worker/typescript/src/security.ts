/**
 * Credentials and TLS for the broker connections of the worker and the
 * client, with the same variables as the Rust and Python SDKs: a password
 * given beside the URL rather than in it (`TASKER_AMQP_PASSWORD`, or the
 * file `TASKER_AMQP_PASSWORD_FILE` names, as containers mount secrets), and
 * the CA and client certificate of `amqps://` connections
 * (`TASKER_TLS_CA_FILE`, `TASKER_TLS_CERT_FILE`, `TASKER_TLS_KEY_FILE`).
 *
 * No error here ever holds a secret: they name the variable and the file.
 */

import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import * as tls from "node:tls";

import { ConfigError } from "./errors.js";

/** How a connection to RabbitMQ proves who it is, and whom it trusts. */
export interface ConnectionSecurity {
  /**
   * The password of every broker URL, in place of any written in it:
   * a password kept out of the URL, which is often logged or shown.
   */
  amqpPassword?: string | undefined;
  /**
   * A PEM file of CA certificates trusted for `amqps://` connections, on top
   * of the system's roots: a broker with a certificate of a private CA.
   */
  tlsCaFile?: string | undefined;
  /** The client certificate (PEM) of `amqps://` connections, for a broker that asks for one. */
  tlsCertFile?: string | undefined;
  /** The private key (PEM) of {@link tlsCertFile}. */
  tlsKeyFile?: string | undefined;
}

/** The fields of {@link ConnectionSecurity}, to copy them out of a larger object. */
export const SECURITY_FIELDS = ["amqpPassword", "tlsCaFile", "tlsCertFile", "tlsKeyFile"] as const;

/** What to check when a TLS handshake failed, for error messages. */
export const TLS_HINT =
  "check that TASKER_TLS_CA_FILE holds the CA that signed the broker's certificate, and " +
  "TASKER_TLS_CERT_FILE/TASKER_TLS_KEY_FILE if it asks for a client certificate";

/**
 * The settings of {@link ConnectionSecurity} that `env` gives.
 *
 * @throws ConfigError if both `TASKER_AMQP_PASSWORD` and
 *   `TASKER_AMQP_PASSWORD_FILE` are set, the file cannot be read, or only
 *   one of the client certificate and its key is set.
 */
export function securityFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
): ConnectionSecurity {
  const security: ConnectionSecurity = {};
  const password = secretFromEnv("TASKER_AMQP_PASSWORD", "password", env);
  if (password !== undefined) security.amqpPassword = password;
  const ca = env["TASKER_TLS_CA_FILE"];
  if (ca !== undefined) security.tlsCaFile = ca;
  const cert = env["TASKER_TLS_CERT_FILE"];
  if (cert !== undefined) security.tlsCertFile = cert;
  const key = env["TASKER_TLS_KEY_FILE"];
  if (key !== undefined) security.tlsKeyFile = key;
  checkSecurity(security);
  return security;
}

/** The fields of {@link ConnectionSecurity} that `from` has (set, or set to `undefined`). */
export function securityOf(from: Readonly<ConnectionSecurity>): ConnectionSecurity {
  const security: Record<string, string | undefined> = {};
  for (const field of SECURITY_FIELDS) {
    if (field in from) security[field] = from[field];
  }
  return security;
}

/** @throws ConfigError if only one of the client certificate and its key is given. */
export function checkSecurity(security: Readonly<ConnectionSecurity>): void {
  if ((security.tlsCertFile === undefined) !== (security.tlsKeyFile === undefined)) {
    throw new ConfigError(
      "set both TASKER_TLS_CERT_FILE and TASKER_TLS_KEY_FILE (tlsCertFile and tlsKeyFile) for a " +
        "client certificate, or neither",
    );
  }
}

/**
 * The secret in variable `name`, or in the file that `<name>_FILE` names
 * (without its trailing line breaks); `undefined` if neither is set.
 */
function secretFromEnv(
  name: string,
  what: string,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  const fileVar = `${name}_FILE`;
  const secret = env[name];
  const path = env[fileVar];
  if (secret !== undefined && path !== undefined) {
    throw new ConfigError(
      `both ${name} and ${fileVar} are set; set one: the ${what} itself, or the file that holds it`,
    );
  }
  if (path === undefined) return secret;
  try {
    return readFileSync(path, "utf8").replace(/[\r\n]+$/, "");
  } catch (e) {
    throw new ConfigError(`${fileVar}=${path}: cannot read the file: ${reason(e)}`);
  }
}

/**
 * `url` with `password` in it, percent-encoded, in place of any it had. A
 * URL that cannot be read is left as it is, for the URL check to refuse.
 */
export function withPassword(url: string, password: string): string {
  if (!URL.canParse(url)) return url;
  const parsed = new URL(url);
  // encodeURIComponent, unlike the setter, also encodes '%' and ',' (which separates a cluster's URLs).
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

/**
 * The user and password of `url`, decoded, for the broker's login; none if
 * the URL names neither (the broker's default, guest). amqplib would decode
 * them byte by byte, which garbles a password beyond ASCII.
 */
export function urlCredentials(url: string): { username: string; password: string } | undefined {
  if (!URL.canParse(url)) return undefined;
  const parsed = new URL(url);
  if (parsed.username === "" && parsed.password === "") return undefined;
  return { username: decode(parsed.username), password: decode(parsed.password) };
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text; // not percent-encoded after all
  }
}

/** The socket options of an `amqps://` connection: the CAs to trust, and the client certificate. */
export interface TlsOptions {
  ca?: string[];
  cert?: Buffer;
  key?: Buffer;
}

/**
 * The TLS socket options that `security` names, its files read now (so
 * that a certificate renewed on disk is used at the next connection).
 *
 * @throws ConfigError naming the variable and the path of a file that
 *   cannot be read or holds no certificate (or key) in PEM.
 */
export async function tlsOptions(security: Readonly<ConnectionSecurity>): Promise<TlsOptions> {
  checkSecurity(security);
  const options: TlsOptions = {};
  if (security.tlsCaFile !== undefined) {
    const pem = (await read("TASKER_TLS_CA_FILE", security.tlsCaFile)).toString("utf8");
    try {
      new X509Certificate(pem); // the first of them, at least, is a certificate
    } catch (e) {
      throw new ConfigError(
        `TASKER_TLS_CA_FILE=${security.tlsCaFile}: no CA certificate in PEM in the file: ${reason(e)}`,
      );
    }
    // In addition to the roots Node.js trusts, as the other SDKs do.
    options.ca = [...tls.rootCertificates, pem];
  }
  if (security.tlsCertFile !== undefined && security.tlsKeyFile !== undefined) {
    const cert = await read("TASKER_TLS_CERT_FILE", security.tlsCertFile);
    const key = await read("TASKER_TLS_KEY_FILE", security.tlsKeyFile);
    try {
      tls.createSecureContext({ cert, key });
    } catch (e) {
      throw new ConfigError(
        `TASKER_TLS_CERT_FILE=${security.tlsCertFile} and TASKER_TLS_KEY_FILE=${security.tlsKeyFile} ` +
          `are not a certificate and its private key in PEM: ${reason(e)}`,
      );
    }
    options.cert = cert;
    options.key = key;
  }
  return options;
}

async function read(variable: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new ConfigError(`${variable}=${path}: cannot read the file: ${reason(e)}`);
  }
}

/** The codes Node.js gives a certificate that did not verify. */
const CERTIFICATE_CODES = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "CERT_CHAIN_TOO_LONG",
  "CERT_REVOKED",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "INVALID_CA",
  "INVALID_PURPOSE",
  "PATH_LENGTH_EXCEEDED",
  "HOSTNAME_MISMATCH",
  "ERROR_IN_CERT_NOT_BEFORE_FIELD",
  "ERROR_IN_CERT_NOT_AFTER_FIELD",
]);

/**
 * Why the TLS handshake failed, if `e` says it did: a certificate that did
 * not verify, or an alert from the broker (such as the one refusing a
 * connection without a client certificate).
 */
export function tlsFailure(e: unknown): string | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const code = "code" in e && typeof e.code === "string" ? e.code : undefined;
  if (code === undefined) return undefined;
  if (!CERTIFICATE_CODES.has(code) && !/^ERR_(SSL|TLS)_/.test(code)) return undefined;
  // OpenSSL's message carries its source file and line; its reason alone reads better.
  const text = "reason" in e && typeof e.reason === "string" ? e.reason : reason(e);
  return `${text.trim()} (${code})`;
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

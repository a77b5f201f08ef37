/**
 * Signed session tickets (issue 14): a server started with a ticket key admits a WebSocket upgrade
 * only with a valid JWT (RFC 7519) signed by that key, and each session's policy is the server
 * policy narrowed by the ticket's claims. Runtime-neutral: every server adapter reaches it through
 * `server/app.ts` before it upgrades; JWTs are verified and signed with npm `jose` (WebCrypto on
 * Deno and Bun).
 *
 * - **Keys** ({@linkcode parseTicketKey}): an HMAC-SHA256 secret as text (trimmed, at least 32
 *   bytes of UTF-8) → `HS256`; or an Ed25519 public key in PEM (`-----BEGIN PUBLIC KEY-----`) →
 *   `EdDSA`. Only that one algorithm is accepted: `alg: none`, any other algorithm (also `HS256`
 *   signed with the public key's text, the classic key-confusion forgery), a wrong key, an altered
 *   header, payload or signature, a missing or expired `exp`, or an `nbf` in the future are
 *   refused, with no clock leeway unless one is configured.
 * - **Where** ({@linkcode findTicket}): `?ticket=TOKEN` on the WebSocket URL, or a
 *   `Sec-WebSocket-Protocol` entry `wasmnet.ticket.TOKEN` (browsers cannot set other headers; a
 *   JWT's characters are all valid in a subprotocol token). One ticket per upgrade.
 * - **Claims** ({@linkcode TicketClaims}): `exp` (required), `sub` (the tenant, in logs),
 *   `allow` (policy allow rules that narrow the server policy), `max_connections`, `mbps`.
 *
 * @module
 */
import {
  decodeProtectedHeader,
  errors,
  importPKCS8,
  importSPKI,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from "jose";
import { Policy, PolicyError } from "../policy/mod.ts";
import { MAX_BANDWIDTH_LIMIT, MAX_CONNECTIONS_LIMIT } from "../policy/mod.ts";

/** The `Sec-WebSocket-Protocol` entry prefix that carries a ticket: `wasmnet.ticket.<jwt>`. */
export const TICKET_PROTOCOL_PREFIX = "wasmnet.ticket.";

/** The query parameter that carries a ticket: `ws://host/?ticket=<jwt>`. */
export const TICKET_QUERY_PARAM = "ticket";

/** The shortest HMAC secret accepted, in bytes (RFC 7518 §3.2: at least the hash size). */
export const MIN_SECRET_BYTES = 32;

/** The longest ticket read, in characters (a larger one is refused unread). */
export const MAX_TICKET_CHARS = 16 * 1024;

/** The longest `sub` claim, in characters. */
const MAX_SUB_CHARS = 255;

/** A key file that cannot be used; `message` is one line naming the file. */
export class TicketKeyError extends Error {
  /** Stable code. */
  readonly code = "ETICKETKEY";
  /** @param message one line, e.g. `key file "k.txt": the secret is 12 bytes (...)`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TicketKeyError";
  }
}

/** A key `jose` imported (its `CryptoKey` type, which may differ from the global one's typing). */
type ImportedKey = Awaited<ReturnType<typeof importSPKI>>;

/** A key that verifies (or, from {@linkcode parseSigningKey}, signs) tickets. */
export interface TicketKey {
  /** The one JWS algorithm accepted with this key. */
  readonly alg: "HS256" | "EdDSA";
  /** The HMAC secret's bytes, or the imported Ed25519 key (a WebCrypto `CryptoKey`). */
  readonly key: Uint8Array | ImportedKey;
  /**
   * The key file's text as given (for a server started as a child process with the same key;
   * never logged).
   */
  readonly text: string;
}

/** The ticket settings of a server (`WasmnetOptions.tickets`). */
export interface TicketOptions {
  /** The verification key ({@linkcode parseTicketKey}). */
  readonly key: TicketKey;
  /** Clock leeway for `exp` and `nbf`, in seconds (default 0: none). */
  readonly leewaySecs?: number | undefined;
}

/** The claims of a verified ticket, validated. */
export interface TicketClaims {
  /** Expiry, seconds since the epoch (required). */
  readonly exp: number;
  /** The tenant (`sub`), if given: 1–255 characters, no control characters. */
  readonly sub?: string | undefined;
  /**
   * `allow`: policy allow rules (the policy file's syntax) that narrow the server policy for the
   * session ({@linkcode Policy.narrow}); undefined: no narrowing by rules.
   */
  readonly allow?: readonly string[] | undefined;
  /** `max_connections`: the session's cap is the smaller of the server's and this. */
  readonly maxConnections?: number | undefined;
  /** `mbps`: the session's own bandwidth cap per direction is the smaller of the server's and this. */
  readonly mbps?: number | undefined;
}

/** A verified ticket of one upgrade. */
export interface Ticket {
  /** Its claims. */
  readonly claims: TicketClaims;
  /** Names it in denials and logs: `sub alice` (`no sub` without one). */
  readonly label: string;
  /** The `Sec-WebSocket-Protocol` entry that carried it, to echo; undefined for `?ticket=`. */
  readonly protocol?: string | undefined;
}

/** The outcome of a ticket check: the ticket, or why the upgrade is refused (HTTP 401). */
export type TicketCheck =
  | { readonly ok: true; readonly ticket: Ticket }
  | { readonly ok: false; readonly reason: string };

/** Trims and decodes a key file; `source` names it in errors. */
function keyText(text: string, source: string): { trimmed: string; pem: string | undefined } {
  const trimmed = text.trim();
  if (trimmed === "") throw new TicketKeyError(`key file ${JSON.stringify(source)} is empty`);
  const pem = /^-----BEGIN ([A-Z0-9 ]+)-----/.exec(trimmed)?.[1];
  return { trimmed, pem };
}

/** The secret's bytes. @throws {TicketKeyError} when shorter than {@linkcode MIN_SECRET_BYTES}. */
function secretOf(trimmed: string, source: string): Uint8Array {
  const bytes = new TextEncoder().encode(trimmed);
  if (bytes.byteLength < MIN_SECRET_BYTES) {
    throw new TicketKeyError(
      `key file ${JSON.stringify(source)}: the secret is ${bytes.byteLength} bytes ` +
        `(an HMAC-SHA256 secret needs at least ${MIN_SECRET_BYTES})`,
    );
  }
  return bytes;
}

/**
 * Reads a server's ticket key from a key file's text: a PEM Ed25519 public key
 * (`-----BEGIN PUBLIC KEY-----`, SPKI) → `EdDSA`; otherwise the trimmed text is an HMAC-SHA256
 * secret → `HS256`.
 *
 * @param text the file's contents
 * @param source the file name, for messages
 * @throws {TicketKeyError} with one line: an empty file, a secret under 32 bytes, a private key
 *   (the server needs the public one), a PEM that is not an Ed25519 public key.
 */
export async function parseTicketKey(text: string, source: string): Promise<TicketKey> {
  const { trimmed, pem } = keyText(text, source);
  if (pem === undefined) return { alg: "HS256", key: secretOf(trimmed, source), text };
  if (pem !== "PUBLIC KEY") {
    throw new TicketKeyError(
      `key file ${JSON.stringify(source)} holds a ${pem}: the server needs an Ed25519 ` +
        "PUBLIC KEY (PEM) or an HMAC secret (keep the private key where tickets are minted)",
    );
  }
  try {
    return { alg: "EdDSA", key: await importSPKI(trimmed, "EdDSA"), text };
  } catch (e) {
    throw new TicketKeyError(
      `key file ${JSON.stringify(source)} is not an Ed25519 public key (${(e as Error).message})`,
      { cause: e },
    );
  }
}

/**
 * Reads a minting key from a key file's text: an HMAC-SHA256 secret (as {@linkcode parseTicketKey})
 * or an Ed25519 PRIVATE key in PEM (`-----BEGIN PRIVATE KEY-----`, PKCS8).
 *
 * @throws {TicketKeyError} with one line: an empty file, a short secret, a public key (minting
 *   needs the private key), a PEM that is not an Ed25519 private key.
 */
export async function parseSigningKey(text: string, source: string): Promise<TicketKey> {
  const { trimmed, pem } = keyText(text, source);
  if (pem === undefined) return { alg: "HS256", key: secretOf(trimmed, source), text };
  if (pem !== "PRIVATE KEY") {
    throw new TicketKeyError(
      `key file ${
        JSON.stringify(source)
      } holds a ${pem}: minting a ticket needs the HMAC secret or ` +
        "the Ed25519 PRIVATE KEY (PKCS8 PEM) whose public key the server has",
    );
  }
  try {
    return { alg: "EdDSA", key: await importPKCS8(trimmed, "EdDSA"), text };
  } catch (e) {
    throw new TicketKeyError(
      `key file ${JSON.stringify(source)} is not an Ed25519 private key (${(e as Error).message})`,
      { cause: e },
    );
  }
}

/** What {@linkcode mintTicket} puts in a ticket besides `iat` and `exp`. */
export interface MintClaims {
  /** The tenant. */
  readonly sub?: string | undefined;
  /** Allow rules (policy file syntax). */
  readonly allow?: readonly string[] | undefined;
  /** `max_connections`. */
  readonly maxConnections?: number | undefined;
  /** `mbps`. */
  readonly mbps?: number | undefined;
}

/**
 * Signs a ticket (compact JWS, header `{"alg": key.alg, "typ": "JWT"}`) valid for `ttlSecs`
 * seconds from `nowSecs`, with claims `sub`, `allow`, `max_connections`, `mbps`, `iat`, `exp`.
 *
 * @param key a minting key ({@linkcode parseSigningKey})
 * @param claims the claims to carry (validated as the server will: bad ones throw)
 * @param ttlSecs lifetime in seconds, a positive integer
 * @param nowSecs the issue time (default: now)
 * @throws {TypeError} for a claim the server would refuse (see {@linkcode validateClaims})
 */
export async function mintTicket(
  key: TicketKey,
  claims: MintClaims,
  ttlSecs: number,
  nowSecs: number = Math.floor(Date.now() / 1000),
): Promise<string> {
  if (!Number.isSafeInteger(ttlSecs) || ttlSecs < 1) {
    throw new TypeError(`ttl ${ttlSecs} is not a positive whole number of seconds`);
  }
  const payload: JWTPayload = {
    ...(claims.sub !== undefined ? { sub: claims.sub } : {}),
    ...(claims.allow !== undefined ? { allow: [...claims.allow] } : {}),
    ...(claims.maxConnections !== undefined ? { max_connections: claims.maxConnections } : {}),
    ...(claims.mbps !== undefined ? { mbps: claims.mbps } : {}),
  };
  const checked = validateClaims({ ...payload, exp: nowSecs + ttlSecs });
  if (typeof checked === "string") throw new TypeError(checked);
  return await new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, typ: "JWT" })
    .setIssuedAt(nowSecs)
    .setExpirationTime(nowSecs + ttlSecs)
    .sign(key.key);
}

/**
 * Finds the ticket of an upgrade: the `ticket` query parameter of `url`, or a
 * `Sec-WebSocket-Protocol` entry starting with {@linkcode TICKET_PROTOCOL_PREFIX}.
 *
 * @param url the request URL (absolute, or a path with its query)
 * @param protocols the `Sec-WebSocket-Protocol` header (comma-separated), if any
 * @returns the token and the protocol entry that carried it; `undefined` when there is none; a
 *   string (the refusal reason) for more than one ticket, or one longer than
 *   {@linkcode MAX_TICKET_CHARS}
 */
export function findTicket(
  url: string,
  protocols: string | undefined,
): { token: string; protocol: string | undefined } | string | undefined {
  let fromQuery: string[] = [];
  try {
    fromQuery = new URL(url, "http://localhost").searchParams.getAll(TICKET_QUERY_PARAM);
  } catch {
    // not a URL: no query ticket
  }
  const entries = (protocols ?? "").split(",").map((p) => p.trim())
    .filter((p) => p.startsWith(TICKET_PROTOCOL_PREFIX));
  const found = [
    ...fromQuery.map((token) => ({ token, protocol: undefined })),
    ...entries.map((p) => ({ token: p.slice(TICKET_PROTOCOL_PREFIX.length), protocol: p })),
  ];
  if (found.length === 0) return undefined;
  if (found.length > 1) return `more than one ticket (${found.length}) in the upgrade`;
  const first = found[0] as { token: string; protocol: string | undefined };
  if (first.token.length > MAX_TICKET_CHARS) {
    return `ticket longer than ${MAX_TICKET_CHARS} characters`;
  }
  return first;
}

/**
 * Validates a verified payload's claims. Returns the claims, or the reason (one line) they are
 * refused: `exp` not a number; `sub` not a string of 1–255 characters without control
 * characters; `allow` not an array of valid allow rules; `max_connections` not an integer from 1
 * to 1000000; `mbps` not a number above 0 and at most 1000000.
 */
export function validateClaims(payload: JWTPayload): TicketClaims | string {
  const { exp, sub } = payload;
  if (typeof exp !== "number" || !Number.isFinite(exp)) return 'missing or bad "exp" claim';
  if (
    sub !== undefined &&
    (typeof sub !== "string" || sub.length === 0 || sub.length > MAX_SUB_CHARS ||
      // deno-lint-ignore no-control-regex
      /[\u0000-\u001f\u007f]/.test(sub))
  ) {
    return `bad "sub" claim (expected 1 to ${MAX_SUB_CHARS} characters, no control characters)`;
  }
  const allow = payload["allow"];
  const max = payload["max_connections"];
  const mbps = payload["mbps"];
  if (
    allow !== undefined &&
    (!Array.isArray(allow) || !allow.every((rule: unknown) => typeof rule === "string"))
  ) {
    return 'bad "allow" claim (expected an array of policy rule strings)';
  }
  if (
    max !== undefined &&
    (typeof max !== "number" || !Number.isInteger(max) || max < 1 || max > MAX_CONNECTIONS_LIMIT)
  ) {
    return `bad "max_connections" claim (expected an integer from 1 to ${MAX_CONNECTIONS_LIMIT})`;
  }
  if (
    mbps !== undefined &&
    (typeof mbps !== "number" || !Number.isFinite(mbps) || mbps <= 0 || mbps > MAX_BANDWIDTH_LIMIT)
  ) {
    return `bad "mbps" claim (expected a number above 0, at most ${MAX_BANDWIDTH_LIMIT})`;
  }
  const claims: TicketClaims = {
    exp,
    ...(sub !== undefined ? { sub } : {}),
    ...(allow !== undefined ? { allow: allow as string[] } : {}),
    ...(max !== undefined ? { maxConnections: max } : {}),
    ...(mbps !== undefined ? { mbps } : {}),
  };
  try {
    // The rules are compiled now, so a session never meets a bad one.
    Policy.allowAll().narrow(narrowingOf(claims, labelOf(claims)));
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    return `bad "allow" claim: ${e.message.replace(/^Cannot load policy "[^"]*": /, "")}`;
  }
  return claims;
}

/** `sub alice`, or `no sub`. */
function labelOf(claims: TicketClaims): string {
  return claims.sub === undefined ? "no sub" : `sub ${claims.sub}`;
}

/** The {@linkcode Policy.narrow} argument of a ticket. */
function narrowingOf(
  claims: TicketClaims,
  label: string,
): { label: string; allow: readonly string[] | undefined; maxConnections: number | undefined } {
  return { label, allow: claims.allow, maxConnections: claims.maxConnections };
}

/** A refusal reason from a `jose` verification error. */
function reasonOf(e: unknown, leewaySecs: number): string {
  if (e instanceof errors.JWTExpired) {
    const exp = (e.payload as JWTPayload).exp;
    const at = typeof exp === "number" ? ` at ${new Date(exp * 1000).toISOString()}` : "";
    return `ticket expired${at}${leewaySecs > 0 ? ` (leeway ${leewaySecs} s)` : ""}`;
  }
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === "exp" && e.reason === "missing") return 'ticket has no "exp" claim';
    if (e.claim === "nbf") return "ticket not valid yet (nbf)";
    return `bad "${e.claim}" claim (${e.message})`;
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return "bad ticket signature (wrong key, or the ticket was altered)";
  }
  if (e instanceof errors.JOSEAlgNotAllowed) return "ticket algorithm not accepted";
  if (e instanceof errors.JOSEError) return `malformed ticket (${e.message})`;
  return `ticket check failed (${(e as Error)?.message ?? String(e)})`;
}

/**
 * Builds the ticket check of a server: a function of an upgrade's URL and
 * `Sec-WebSocket-Protocol` header that finds the ticket ({@linkcode findTicket}), verifies it with
 * the key's one algorithm (no leeway unless `leewaySecs`), requires `exp`, validates the claims
 * ({@linkcode validateClaims}) and returns the {@linkcode Ticket}, or the reason to refuse the
 * upgrade. Never throws.
 */
export function ticketChecker(
  options: TicketOptions,
): (url: string, protocols: string | undefined) => Promise<TicketCheck> {
  const { key } = options;
  const leewaySecs = options.leewaySecs ?? 0;
  return async (url, protocols) => {
    const found = findTicket(url, protocols);
    if (found === undefined) {
      return {
        ok: false,
        reason: `no ticket (expected ?${TICKET_QUERY_PARAM}=<jwt> or a Sec-WebSocket-Protocol ` +
          `entry ${TICKET_PROTOCOL_PREFIX}<jwt>)`,
      };
    }
    if (typeof found === "string") return { ok: false, reason: found };
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(found.token).alg;
    } catch {
      return { ok: false, reason: "malformed ticket (not a signed JWT)" };
    }
    if (alg !== key.alg) {
      return {
        ok: false,
        reason: `ticket algorithm ${JSON.stringify(alg)} not accepted (expected ${key.alg})`,
      };
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(found.token, key.key, {
        algorithms: [key.alg],
        requiredClaims: ["exp"],
        clockTolerance: leewaySecs,
      }));
    } catch (e) {
      return { ok: false, reason: reasonOf(e, leewaySecs) };
    }
    const claims = validateClaims(payload);
    if (typeof claims === "string") return { ok: false, reason: claims };
    return { ok: true, ticket: { claims, label: labelOf(claims), protocol: found.protocol } };
  };
}

/**
 * The policy function of a session with `ticket`: the policy in force (`base()`, which a reload
 * may swap) narrowed by the ticket ({@linkcode Policy.narrow}). The narrowed policy is cached per
 * base policy object, so a reload costs one narrowing on the next check, nothing else does.
 */
export function ticketPolicy(base: () => Policy, ticket: Ticket): () => Policy {
  const narrowing = narrowingOf(ticket.claims, ticket.label);
  let from: Policy | undefined;
  let narrowed: Policy | undefined;
  return () => {
    const now = base();
    if (now !== from || narrowed === undefined) {
      narrowed = now.narrow(narrowing);
      from = now;
    }
    return narrowed;
  };
}

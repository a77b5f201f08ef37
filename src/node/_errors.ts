/**
 * Node-style errors (`code`, `errno`, `syscall`, `address`, `port`) made from the wasmnet client's
 * `WasmnetError`s and the server's error texts (README, "Error messages").
 *
 * Private to `src/node/`.
 *
 * @module
 */
import { WasmnetError } from "../client/mod.ts";

/** An `Error` with the properties Node's system errors carry (Node 22 `SystemError`). */
export interface NodeSystemError extends Error {
  /** The error code, e.g. `ECONNREFUSED`. */
  code: string;
  /** The negated libuv error number, when the code has one (e.g. -111). */
  errno?: number;
  /** The failed operation: `connect`, `getaddrinfo`, `read`, `write`, `bind`, `send`, ... */
  syscall?: string;
  /** The remote address the operation concerned. */
  address?: string;
  /** The remote port the operation concerned. */
  port?: number;
  /** The host name of a failed lookup. */
  hostname?: string;
}

/** libuv error numbers (Linux) of the codes this module produces. */
const ERRNO: Readonly<Record<string, number>> = {
  EPERM: -1,
  EACCES: -13,
  EINVAL: -22,
  EMFILE: -24,
  EPIPE: -32,
  EMSGSIZE: -90,
  EADDRINUSE: -98,
  EADDRNOTAVAIL: -99,
  ENETUNREACH: -101,
  ECONNABORTED: -103,
  ECONNRESET: -104,
  ENOBUFS: -105,
  ETIMEDOUT: -110,
  ECONNREFUSED: -111,
  EHOSTUNREACH: -113,
  EAI_AGAIN: -3001,
  ENOTFOUND: -3008,
  EIO: -5,
};

/** Linux `os error N` numbers (as Deno and Rust word OS errors) → Node codes. */
const OS_ERROR: Readonly<Record<number, string>> = {
  1: "EPERM",
  13: "EACCES",
  32: "EPIPE",
  90: "EMSGSIZE",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  101: "ENETUNREACH",
  103: "ECONNABORTED",
  104: "ECONNRESET",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  113: "EHOSTUNREACH",
};

/** Where an error happened: decides the code of a WebSocket failure and the default. */
export type Phase = "connect" | "io" | "lookup" | "bind" | "send";

/** Details of a Node error. */
export interface ErrorDetails {
  /** The syscall name Node would report. */
  syscall?: string;
  /** The remote address. */
  address?: string;
  /** The remote port. */
  port?: number;
  /** The host name (lookups). */
  hostname?: string;
  /** The original error. */
  cause?: unknown;
}

/**
 * Makes a Node-style error: `message`, `code`, the code's `errno`, and the details that are set.
 */
export function nodeError(
  code: string,
  message: string,
  details: ErrorDetails = {},
): NodeSystemError {
  const err = new Error(
    message,
    details.cause === undefined ? undefined : { cause: details.cause },
  );
  const out = err as NodeSystemError;
  out.code = code;
  const errno = ERRNO[code];
  if (errno !== undefined) out.errno = errno;
  if (details.syscall !== undefined) out.syscall = details.syscall;
  if (details.address !== undefined) out.address = details.address;
  if (details.port !== undefined) out.port = details.port;
  if (details.hostname !== undefined) out.hostname = details.hostname;
  return out;
}

/**
 * The Node code for a server error text:
 * - a trailing `(CODE)` (the TLS handshake texts: `(UNABLE_TO_VERIFY_LEAF_SIGNATURE)`,
 *   `(ECONNRESET)`, ...) gives `CODE`;
 * - `(os error N)` gives the code of Linux errno N (`Connection refused (os error 111)` →
 *   `ECONNREFUSED`);
 * - `DNS lookup failed`, `invalid address` → `ENOTFOUND`; `connection timed out` → `ETIMEDOUT`;
 *   `max connections reached` → `EMFILE`; `send queue full` → `ENOBUFS`;
 * - words: `refused` → `ECONNREFUSED`, `reset` → `ECONNRESET`, `timed out` → `ETIMEDOUT`,
 *   `broken pipe` → `EPIPE`;
 * - otherwise `undefined`.
 */
export function codeOfServerText(msg: string): string | undefined {
  const trailing = /\(([A-Z][A-Z0-9_]+)\)\s*$/.exec(msg);
  if (trailing?.[1] !== undefined) return trailing[1];
  if (msg.startsWith("DNS lookup failed") || msg.startsWith("invalid address")) return "ENOTFOUND";
  if (msg.startsWith("connection timed out")) return "ETIMEDOUT";
  if (msg.startsWith("max connections reached")) return "EMFILE";
  if (msg.startsWith("send queue full")) return "ENOBUFS";
  const os = /\(os error (\d+)\)/.exec(msg);
  if (os?.[1] !== undefined) {
    const code = OS_ERROR[Number(os[1])];
    if (code !== undefined) return code;
  }
  if (/refused/i.test(msg)) return "ECONNREFUSED";
  if (/reset/i.test(msg)) return "ECONNRESET";
  if (/timed out/i.test(msg)) return "ETIMEDOUT";
  if (/broken pipe/i.test(msg)) return "EPIPE";
  return undefined;
}

/**
 * The Node code for any error of the client in `phase`:
 * `EDENIED` → `EACCES`; `ESERVER` → {@linkcode codeOfServerText} (default `EIO`, `ECONNREFUSED`
 * while connecting); `EWEBSOCKET` → `ECONNREFUSED` while connecting, `ECONNRESET` after;
 * `EOVERFLOW` → `ENOBUFS`; `ECLOSED` → `EPIPE`; an error that already has a string `code` keeps it.
 */
export function codeOf(err: unknown, phase: Phase): string {
  if (err instanceof WasmnetError) {
    switch (err.code) {
      case "EDENIED":
        return "EACCES";
      case "ESERVER":
        return codeOfServerText(err.message) ?? (phase === "connect" ? "ECONNREFUSED" : "EIO");
      case "EWEBSOCKET":
        return phase === "connect" || phase === "lookup" || phase === "bind"
          ? "ECONNREFUSED"
          : "ECONNRESET";
      case "EOVERFLOW":
        return "ENOBUFS";
      case "ECLOSED":
        return "EPIPE";
      default:
        return String((err as { code: unknown }).code);
    }
  }
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "EIO";
}

/** The `message` of any thrown value. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `host:port`, with brackets around an IPv6 address. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A Node error for `err` raised by `syscall` on `host:port`: the message is Node's
 * (`connect ECONNREFUSED 127.0.0.1:1`, `getaddrinfo ENOTFOUND name`) followed by
 * ` - wasmnet: <the server's text>`, so a policy denial names its rule.
 */
export function toNodeError(
  err: unknown,
  phase: Phase,
  syscall: string,
  host?: string,
  port?: number,
): NodeSystemError {
  const code = codeOf(err, phase);
  const details: ErrorDetails = { syscall, cause: err };
  let where = "";
  if (code === "ENOTFOUND" && host !== undefined) {
    details.syscall = "getaddrinfo";
    details.hostname = host;
    where = ` ${host}`;
  } else if (host !== undefined) {
    details.address = host;
    if (port !== undefined) details.port = port;
    where = ` ${port === undefined ? host : hostPort(host, port)}`;
  }
  const text = messageOf(err);
  return nodeError(code, `${details.syscall} ${code}${where} - wasmnet: ${text}`, details);
}

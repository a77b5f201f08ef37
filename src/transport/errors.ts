/**
 * Runtime-neutral errors of the transport seam: the session and clients see the same error names
 * and texts whichever runtime's transport made them.
 *
 * @module
 */

/**
 * The error of an operation on a closed connection or socket (the name Deno's own
 * `Deno.errors.BadResource` has, which the session recognises by `name`).
 */
export class BadResource extends Error {
  /** @param message e.g. `the TLS connection is closed`. */
  constructor(message: string) {
    super(message);
    this.name = "BadResource";
  }
}

/**
 * Node/libuv error codes → the name and message Deno gives the same OS error on Linux (Deno
 * 2.9.6 `Deno.errors` classes; messages as `std::io::Error` prints them).
 */
const OS_ERRORS: Readonly<Record<string, readonly [name: string, message: string]>> = {
  ECONNREFUSED: ["ConnectionRefused", "Connection refused (os error 111)"],
  ECONNRESET: ["ConnectionReset", "Connection reset by peer (os error 104)"],
  ECONNABORTED: ["ConnectionAborted", "Software caused connection abort (os error 103)"],
  ETIMEDOUT: ["TimedOut", "Connection timed out (os error 110)"],
  EHOSTUNREACH: ["NetworkUnreachable", "No route to host (os error 113)"],
  ENETUNREACH: ["NetworkUnreachable", "Network is unreachable (os error 101)"],
  EADDRINUSE: ["AddrInUse", "Address already in use (os error 98)"],
  EADDRNOTAVAIL: ["AddrNotAvailable", "Cannot assign requested address (os error 99)"],
  EACCES: ["PermissionDenied", "Permission denied (os error 13)"],
  EPERM: ["PermissionDenied", "Operation not permitted (os error 1)"],
  EPIPE: ["BrokenPipe", "Broken pipe (os error 32)"],
  EMSGSIZE: ["Error", "Message too long (os error 90)"],
};

/**
 * Re-words a `node:net`/`node:dgram` error (`connect ECONNREFUSED 127.0.0.1:1`, `code`
 * `ECONNREFUSED`) as Deno words the same OS error: an `Error` named `ConnectionRefused` with
 * message `Connection refused (os error 111)`, keeping `code` and the original as `cause`. An
 * error with an unknown code is returned unchanged.
 */
export function osError(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const code = (e as { code?: unknown }).code;
  const known = typeof code === "string" ? OS_ERRORS[code] : undefined;
  if (known === undefined) return e;
  const out = new Error(known[1], { cause: e });
  out.name = known[0];
  (out as Error & { code: string }).code = code as string;
  return out;
}

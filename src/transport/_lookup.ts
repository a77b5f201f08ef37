/**
 * Host name lookup shared by the runtimes' transports: the system resolver (getaddrinfo through
 * `node:dns`, which honours `/etc/hosts`; Node 22 API, as Deno 2.9 and Bun 1.4 implement it), or
 * a name server queried directly by the runtime's own query function, with the transport's
 * lookup bound and cancellation.
 *
 * @module
 */
import { lookup as systemLookup } from "node:dns/promises";
import type { NameServer } from "./types.ts";
import type { Slots } from "./slots.ts";

/** Options of a transport's `lookupHost`. */
export interface LookupOptions {
  /** Query this name server directly instead of the system resolver. */
  nameServer?: NameServer | undefined;
  /** Cancels the lookup; the promise rejects with `signal.reason`. */
  signal: AbortSignal;
  /**
   * Bounds lookups in flight (shared by every lookup of a transport), each held until the
   * resolver has finished; default: unbounded. Beyond it the lookup fails at once with the
   * slots' error (`too many DNS lookups in flight (limit N)` for the transport's).
   */
  slots?: Slots | undefined;
}

/**
 * A runtime's direct query of `server` for the A and AAAA records of `name`, IPv4 first,
 * cancelled (where the runtime can) when `signal` aborts.
 */
export type NameServerQuery = (
  name: string,
  server: NameServer,
  signal: AbortSignal,
) => Promise<string[]>;

/**
 * Resolves `name` to IP addresses (A and AAAA), deduplicated: through `query` when
 * `options.nameServer` is given (IPv4 first), else the system resolver (getaddrinfo's order).
 * With `slots`, the resolver's work holds one slot until it finishes, even after `signal` aborted
 * (getaddrinfo cannot be cancelled); the caller stops waiting at once on abort.
 *
 * @throws {Error} `no addresses for "name"` when the name exists without A/AAAA records; the
 * resolver's error otherwise (`getaddrinfo ENOTFOUND name`, the query's); `signal.reason` when
 * aborted.
 */
export async function lookupWith(
  name: string,
  options: LookupOptions,
  query: NameServerQuery,
): Promise<string[]> {
  const { signal, nameServer, slots } = options;
  signal.throwIfAborted();
  const resolve = (): Promise<string[]> =>
    nameServer ? query(name, nameServer, signal) : system(name);
  const addrs = await raceSignal(slots ? slots.hold(resolve) : resolve(), signal);
  const unique = [...new Set(addrs)];
  if (unique.length === 0) throw new Error(`no addresses for "${name}"`);
  return unique;
}

/** getaddrinfo through `node:dns` (honours `/etc/hosts`); it cannot be cancelled. */
async function system(name: string): Promise<string[]> {
  const found = await systemLookup(name, { all: true, verbatim: true });
  return found.map((r) => r.address);
}

function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Host name lookup: the system resolver (getaddrinfo through `node:dns`, which honours
 * `/etc/hosts`), or a given name server queried directly with `Deno.resolveDns`.
 *
 * @module
 */
import { lookup as systemLookup } from "node:dns/promises";
import type { NameServer } from "./types.ts";

/** Options of {@linkcode lookupHost}. */
export interface LookupOptions {
  /** Query this name server directly instead of the system resolver. */
  nameServer?: NameServer | undefined;
  /** Cancels the lookup; the promise rejects with `signal.reason`. */
  signal: AbortSignal;
  /** Bounds lookups in flight (shared by every lookup of a transport); default: unbounded. */
  slots?: LookupSlots | undefined;
}

/**
 * A bound on DNS lookups in flight, counted until the resolver itself has finished (getaddrinfo
 * cannot be cancelled: an abandoned lookup still holds a resolver thread and its sockets until it
 * returns). A lookup beyond the bound fails at once instead of queueing behind the others.
 */
export class LookupSlots {
  /** The most lookups in flight at once. */
  readonly max: number;
  #inFlight = 0;

  /**
   * @param max the most lookups in flight at once (an integer ≥ 1).
   * @throws {RangeError} when `max` is not an integer ≥ 1.
   */
  constructor(max: number) {
    if (!(Number.isInteger(max) && max >= 1)) {
      throw new RangeError(`Cannot bound lookups: max ${max} must be an integer >= 1`);
    }
    this.max = max;
  }

  /** Lookups in flight now (including abandoned ones the resolver has not finished). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Runs `lookup` in a slot that is held until the promise it returns settles.
   *
   * @throws {Error} `too many DNS lookups in flight (limit N)` when every slot is taken.
   */
  hold<T>(lookup: () => Promise<T>): Promise<T> {
    if (this.#inFlight >= this.max) {
      return Promise.reject(new Error(`too many DNS lookups in flight (limit ${this.max})`));
    }
    this.#inFlight++;
    const running = lookup();
    running.then(() => this.#inFlight--, () => this.#inFlight--);
    return running;
  }
}

/**
 * Resolves `name` to IP addresses (A and AAAA), deduplicated, IPv4 first when a name server is
 * given, in getaddrinfo's order otherwise. With `slots`, the resolver's work holds one slot until
 * it finishes, even after `signal` aborted.
 *
 * @throws {Error} `no addresses for "name"` when the name exists without A/AAAA records, the
 * resolver's error (e.g. `getaddrinfo ENOTFOUND name`, `Deno.errors.NotFound`) otherwise, or
 * `signal.reason` when aborted.
 */
export async function lookupHost(name: string, options: LookupOptions): Promise<string[]> {
  const { signal, nameServer, slots } = options;
  signal.throwIfAborted();
  const resolve = (): Promise<string[]> =>
    nameServer ? query(name, nameServer, signal) : system(name);
  // The resolver's own promise holds the slot; the caller stops waiting at once on abort.
  const addrs = await raceSignal(slots ? slots.hold(resolve) : resolve(), signal);
  const unique = [...new Set(addrs)];
  if (unique.length === 0) throw new Error(`no addresses for "${name}"`);
  return unique;
}

/** A and AAAA from `server` directly (`Deno.resolveDns`), IPv4 first. */
async function query(name: string, server: NameServer, signal: AbortSignal): Promise<string[]> {
  const opts = { nameServer: { ipAddr: server.ipAddr, port: server.port ?? 53 }, signal };
  const [a, aaaa] = await Promise.allSettled([
    Deno.resolveDns(name, "A", opts),
    Deno.resolveDns(name, "AAAA", opts),
  ]);
  if (a.status === "rejected" && aaaa.status === "rejected") throw a.reason;
  return [
    ...(a.status === "fulfilled" ? a.value : []),
    ...(aaaa.status === "fulfilled" ? aaaa.value : []),
  ];
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

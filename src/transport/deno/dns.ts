/**
 * Host name lookup: the system resolver (getaddrinfo through `node:dns`, which honours
 * `/etc/hosts`), or a given name server queried directly with `Deno.resolveDns`.
 *
 * @module
 */
import { lookup as systemLookup } from "node:dns/promises";
import type { NameServer } from "../types.ts";
import type { Slots } from "../slots.ts";

/** Options of {@linkcode lookupHost}. */
export interface LookupOptions {
  /** Query this name server directly instead of the system resolver. */
  nameServer?: NameServer | undefined;
  /** Cancels the lookup; the promise rejects with `signal.reason`. */
  signal: AbortSignal;
  /**
   * Bounds lookups in flight (shared by every lookup of a transport), each held until the resolver
   * has finished; default: unbounded. Beyond it the lookup fails at once with the slots' error
   * (`too many DNS lookups in flight (limit N)` for the transport's).
   */
  slots?: Slots | undefined;
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

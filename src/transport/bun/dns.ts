/**
 * Host name lookup through `node:dns` (Node 22 API, as Bun implements it): the system resolver
 * (`dns.promises.lookup`, getaddrinfo, honours `/etc/hosts`), or a given name server queried
 * directly with a `dns.promises.Resolver`.
 *
 * @module
 */
import { lookup as systemLookup, Resolver } from "node:dns/promises";
import type { NameServer } from "../types.ts";
import type { Slots } from "../slots.ts";

/** Options of {@linkcode lookupHost}. */
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
 * Resolves `name` to IP addresses (A and AAAA), deduplicated, IPv4 first when a name server is
 * given, in getaddrinfo's order otherwise. With `slots`, the resolver's work holds one slot
 * until it finishes, even after `signal` aborted (a name server query is cancelled on abort,
 * getaddrinfo cannot be).
 *
 * @throws {Error} `no addresses for "name"` when the name exists without A/AAAA records (system
 * resolver); with a name server, an `Error` named `NotFound` worded as Deno's
 * (`proto error: no records found for Query { name: Name("x.test."), query_type: A, query_class:
 * IN }`) when it has neither A nor AAAA records (NXDOMAIN or NODATA), the resolver's error
 * otherwise (e.g. `queryA ETIMEOUT x.test`); the system resolver's error (`getaddrinfo
 * ENOTFOUND name`); `signal.reason` when aborted.
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

/** A and AAAA from `server` directly, IPv4 first; cancelled when `signal` aborts. */
async function query(name: string, server: NameServer, signal: AbortSignal): Promise<string[]> {
  const resolver = new Resolver();
  const port = server.port ?? 53;
  const host = server.ipAddr.includes(":") ? `[${server.ipAddr}]` : server.ipAddr;
  resolver.setServers([`${host}:${port}`]);
  const cancel = (): void => resolver.cancel();
  signal.addEventListener("abort", cancel, { once: true });
  try {
    const [a, aaaa] = await Promise.allSettled([
      resolver.resolve4(name),
      resolver.resolve6(name),
    ]);
    if (a.status === "rejected" && aaaa.status === "rejected") throw notFound(a.reason, name);
    return [
      ...(a.status === "fulfilled" ? a.value : []),
      ...(aaaa.status === "fulfilled" ? aaaa.value : []),
    ];
  } finally {
    signal.removeEventListener("abort", cancel);
  }
}

/**
 * NXDOMAIN/NODATA (`ENOTFOUND`, `ENODATA`) as Deno's `Deno.resolveDns` words them (an error
 * named `NotFound`); other errors unchanged.
 */
function notFound(e: unknown, name: string): unknown {
  const code = (e as { code?: unknown } | null)?.code;
  if (code !== "ENOTFOUND" && code !== "ENODATA") return e;
  const fqdn = name.endsWith(".") ? name : `${name}.`;
  const out = new Error(
    `proto error: no records found for Query { name: Name("${fqdn}"), query_type: A, query_class: IN }`,
    { cause: e },
  );
  out.name = "NotFound";
  return out;
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

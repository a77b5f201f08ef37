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
}

/**
 * Resolves `name` to IP addresses (A and AAAA), deduplicated, IPv4 first when a name server is
 * given, in getaddrinfo's order otherwise.
 *
 * @throws {Error} `no addresses for "name"` when the name exists without A/AAAA records, the
 * resolver's error (e.g. `getaddrinfo ENOTFOUND name`, `Deno.errors.NotFound`) otherwise, or
 * `signal.reason` when aborted.
 */
export async function lookupHost(name: string, options: LookupOptions): Promise<string[]> {
  const { signal, nameServer } = options;
  signal.throwIfAborted();
  let addrs: string[];
  if (nameServer) {
    const opts = { nameServer: { ipAddr: nameServer.ipAddr, port: nameServer.port ?? 53 }, signal };
    const [a, aaaa] = await Promise.allSettled([
      Deno.resolveDns(name, "A", opts),
      Deno.resolveDns(name, "AAAA", opts),
    ]);
    signal.throwIfAborted();
    if (a.status === "rejected" && aaaa.status === "rejected") throw a.reason;
    addrs = [
      ...(a.status === "fulfilled" ? a.value : []),
      ...(aaaa.status === "fulfilled" ? aaaa.value : []),
    ];
  } else {
    // getaddrinfo cannot be cancelled: race it with the signal and drop a late answer.
    const found = await raceSignal(systemLookup(name, { all: true, verbatim: true }), signal);
    addrs = found.map((r) => r.address);
  }
  const unique = [...new Set(addrs)];
  if (unique.length === 0) throw new Error(`no addresses for "${name}"`);
  return unique;
}

function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Host name lookup: the system resolver (getaddrinfo through `node:dns`, which honours
 * `/etc/hosts`), or a given name server queried directly with `Deno.resolveDns`.
 *
 * @module
 */
import type { NameServer } from "../types.ts";
import { type LookupOptions, lookupWith } from "../_lookup.ts";

export type { LookupOptions } from "../_lookup.ts";

/**
 * Resolves `name` to IP addresses (A and AAAA), deduplicated, IPv4 first when a name server is
 * given, in getaddrinfo's order otherwise (see `lookupWith` in `_lookup.ts`). With `slots`, the
 * resolver's work holds one slot until it finishes, even after `signal` aborted.
 *
 * @throws {Error} `no addresses for "name"` when the name exists without A/AAAA records, the
 * resolver's error (e.g. `getaddrinfo ENOTFOUND name`, `Deno.errors.NotFound`) otherwise, or
 * `signal.reason` when aborted.
 */
export function lookupHost(name: string, options: LookupOptions): Promise<string[]> {
  return lookupWith(name, options, query);
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

/**
 * Host name lookup through `node:dns` (Node 22 API, as Bun implements it): the system resolver
 * (`dns.promises.lookup`, getaddrinfo, honours `/etc/hosts`), or a given name server queried
 * directly with a `dns.promises.Resolver`.
 *
 * @module
 */
import { Resolver } from "node:dns/promises";
import type { NameServer } from "../types.ts";
import { type LookupOptions, lookupWith } from "../_lookup.ts";

export type { LookupOptions } from "../_lookup.ts";

/**
 * Resolves `name` to IP addresses (A and AAAA), deduplicated, IPv4 first when a name server is
 * given, in getaddrinfo's order otherwise (see `lookupWith` in `_lookup.ts`; a name server query
 * is cancelled on abort, getaddrinfo cannot be).
 *
 * @throws {Error} `no addresses for "name"` when the name exists without A/AAAA records (system
 * resolver); with a name server, an `Error` named `NotFound` worded as Deno's
 * (`proto error: no records found for Query { name: Name("x.test."), query_type: A, query_class:
 * IN }`) when it has neither A nor AAAA records (NXDOMAIN or NODATA), the resolver's error
 * otherwise (e.g. `queryA ETIMEOUT x.test`); the system resolver's error (`getaddrinfo
 * ENOTFOUND name`); `signal.reason` when aborted.
 */
export function lookupHost(name: string, options: LookupOptions): Promise<string[]> {
  return lookupWith(name, options, query);
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

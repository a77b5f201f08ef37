/**
 * The only module that calls Deno networking APIs (`Deno.connect`, `Deno.resolveDns`, ...).
 *
 * @module
 */
import { lookupHost } from "./dns.ts";
import { connectTcp } from "./tcp.ts";
import type { NameServer, Transport } from "./types.ts";

export type { NameServer, StreamConn, Transport } from "./types.ts";
export { lookupHost } from "./dns.ts";
export { connectTcp } from "./tcp.ts";

/** Options of {@linkcode denoTransport}. */
export interface DenoTransportOptions {
  /** Query this name server directly instead of the system resolver (getaddrinfo). */
  nameServer?: NameServer | undefined;
}

/** The real transport: Deno's TCP and DNS. */
export function denoTransport(options: DenoTransportOptions = {}): Transport {
  return {
    lookup: (name, signal) => lookupHost(name, { signal, nameServer: options.nameServer }),
    connectTcp,
  };
}

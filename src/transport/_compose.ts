/**
 * Building a runtime's {@linkcode Transport} from its parts, so every runtime's transport has the
 * same bounds, the same TLS layer and the same option handling.
 *
 * @module
 */
import type { StreamConn, Transport, TransportOptions } from "./types.ts";
import type { LookupOptions } from "./_lookup.ts";
import { DEFAULT_MAX_DIALS, DEFAULT_MAX_LOOKUPS } from "./_defaults.ts";
import { Slots } from "./slots.ts";
import { tlsContext, upgradeTls } from "./tls.ts";
import { announceIcmp, type IcmpProvider } from "./icmp/mod.ts";

/** The runtime-specific parts of a transport. */
export interface TransportParts {
  /** Resolves a name (see `lookupWith` in `_lookup.ts`), honouring `options.slots`. */
  lookupHost(name: string, options: LookupOptions): Promise<string[]>;
  /** Dials `ip:port`, holding a slot of `options.slots` until the runtime's dial settles. */
  connectTcp(
    ip: string,
    port: number,
    signal: AbortSignal,
    options: { slots?: Slots | undefined },
  ): Promise<StreamConn>;
  /** See {@linkcode Transport.openUdp}. */
  openUdp: Transport["openUdp"];
  /** See {@linkcode Transport.listenTcp}. */
  listenTcp: Transport["listenTcp"];
  /** ICMP echo (`transport/icmp/`): the transport gets `openIcmp` from it. Optional. */
  icmp?: IcmpProvider | undefined;
}

/**
 * A transport from a runtime's parts and the neutral options: one lookup bound (`maxLookups`,
 * default 256) and one dial bound (`maxDials`, default 1024) per transport, TLS through the shared
 * `node:tls` layer (`upgradeTls`) with `caCerts` checked now, not at the first `connect_tls`;
 * with `parts.icmp`, `openIcmp` with the mechanism detected at first use, and `announceIcmp`,
 * which the server calls once it listens (`icmp mechanism=dgram`: nothing is logged before the
 * server listens, so a start that fails prints its one error line only).
 *
 * @throws {RangeError} when `maxLookups` or `maxDials` is not an integer ≥ 1.
 * @throws {TypeError} `Cannot use CA certificate file N: ...` when a `caCerts` entry holds no
 * certificate or one that does not parse (see `parseCaCerts`).
 */
export function composeTransport(parts: TransportParts, options: TransportOptions): Transport {
  const lookups = new Slots(options.maxLookups ?? DEFAULT_MAX_LOOKUPS, "DNS lookups");
  const dials = new Slots(options.maxDials ?? DEFAULT_MAX_DIALS, "connection attempts");
  const caCerts = options.caCerts?.length ? [...options.caCerts] : undefined;
  tlsContext(caCerts);
  const icmp = parts.icmp;
  return {
    lookup: (name, signal) =>
      parts.lookupHost(name, { signal, nameServer: options.nameServer, slots: lookups }),
    connectTcp: (ip, port, signal) => parts.connectTcp(ip, port, signal, { slots: dials }),
    startTls: (conn, serverName, signal) => upgradeTls(conn, { serverName, caCerts, signal }),
    openUdp: parts.openUdp,
    listenTcp: parts.listenTcp,
    ...(icmp
      ? {
        openIcmp: (family: 4 | 6) => icmp.open(family),
        announceIcmp: () => announceIcmp(icmp),
      }
      : {}),
  };
}

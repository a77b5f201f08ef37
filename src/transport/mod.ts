/**
 * The seam between the session and the runtime's networking: runtime-neutral types
 * ({@linkcode Transport}, {@linkcode StreamConn}, ...), the dial/lookup bound ({@linkcode Slots})
 * and TLS over any {@linkcode StreamConn} (`node:tls`, which Deno and Bun both run). The
 * implementations live beside it: `transport/deno/` (`Deno.connect`, `Deno.listenDatagram`, ...)
 * and `transport/bun/` (`node:net`, `node:dgram`, `node:dns`); only the runtime adapter of the
 * CLI (`src/cli/runtime.ts`) picks one.
 *
 * @module
 */
export type {
  AcceptedConn,
  DatagramConn,
  IcmpEchoReply,
  IcmpMechanism,
  IcmpSocket,
  NameServer,
  NetAddr,
  StreamConn,
  StreamListener,
  TlsClientSettings,
  Transport,
  TransportOptions,
} from "./types.ts";
export { Slots } from "./slots.ts";
export { BadResource, osError } from "./errors.ts";
export {
  describeTlsFailure,
  parseCaCerts,
  TlsConn,
  tlsContext,
  TlsError,
  type TlsOptions,
  upgradeTls,
} from "./tls.ts";

export { DEFAULT_MAX_DIALS, DEFAULT_MAX_LOOKUPS } from "./_defaults.ts";
export { composeTransport, type TransportParts } from "./_compose.ts";

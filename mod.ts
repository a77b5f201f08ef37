/**
 * wasmnet for Deno: a networking proxy that lets browser programs (WebAssembly or JavaScript)
 * use real TCP, TLS, UDP and DNS over one WebSocket, under a policy. Wire-compatible with the
 * Rust wasmnet 0.1.3 protocol.
 *
 * Run it: `deno run -A mod.ts` (flags: `--help`). Use it as a library:
 *
 * @example
 * ```ts ignore
 * import { Policy, startServer } from "./mod.ts";
 * await using server = await startServer({ hostname: "127.0.0.1", port: 0, policy: Policy.defaults() });
 * // clients connect to server.url
 * ```
 *
 * @module
 */
import { main } from "./src/cli/main.ts";

export { main } from "./src/cli/main.ts";
export {
  type AppOptions,
  createApp,
  type ServerOptions,
  SessionRegistry,
  startServer,
  wasmnet,
  type WasmnetOptions,
  type WasmnetServer,
} from "./src/server/mod.ts";
export {
  DEFAULT_SESSION_LIMITS,
  SERVER_ID_BASE,
  Session,
  type SessionLimits,
  type SessionOptions,
  type WireChannel,
  WireError,
} from "./src/session/mod.ts";
export { Policy, PolicyError } from "./src/policy/mod.ts";
export {
  denoTransport,
  type NameServer,
  type StreamConn,
  type Transport,
} from "./src/transport/mod.ts";
export { getLogger, type Logger, type LogLevel, setLogLevel } from "./src/log/mod.ts";
export {
  ConnectionPool,
  type ConnectionPoolOptions,
  pooledTransport,
  type PoolStats,
} from "./src/pool/mod.ts";
export { RateLimiter, TokenBucket } from "./src/limit/mod.ts";
export * as protocol from "./src/protocol/mod.ts";
export { PROTOCOL_VERSION, VERSION } from "./src/version.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

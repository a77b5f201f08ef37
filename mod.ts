/**
 * wasmnet for Deno: a networking proxy that lets browser programs (WebAssembly or JavaScript)
 * use real TCP, TLS, UDP and DNS over one WebSocket, under a policy. Wire-compatible with the
 * Rust wasmnet 0.1.3 protocol.
 *
 * Run it: `deno run -A mod.ts` or `bun run mod.ts` (flags: `--help`). Use it as a library:
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
import { run } from "./src/cli/main.ts";

export { main, run } from "./src/cli/main.ts";
export { type StartOptions, startServer } from "./src/cli/start.ts";
export {
  currentRuntime,
  detectRuntime,
  type Runtime,
  type RuntimeName,
} from "./src/cli/runtime.ts";
export {
  type AppOptions,
  createApp,
  type ServerAdapter,
  type ServerOptions,
  SessionRegistry,
  type WasmnetOptions,
  type WasmnetServer,
  type WispServerOptions,
} from "./src/server/mod.ts";
export { canUseWs, denoAdapter, type DenoAdapterOptions, wasmnet } from "./src/server/deno/mod.ts";
export { bunAdapter } from "./src/server/bun/mod.ts";
export {
  DEFAULT_SESSION_LIMITS,
  SERVER_ID_BASE,
  Session,
  type SessionLimits,
  type SessionOptions,
  type SessionWire,
  type WireChannel,
  WireError,
  WispSession,
  type WispSettings,
  WsproxySession,
} from "./src/session/mod.ts";
export * as wisp from "./src/wisp/mod.ts";
export { Policy, PolicyError } from "./src/policy/mod.ts";
export {
  type NameServer,
  type StreamConn,
  type Transport,
  type TransportOptions,
} from "./src/transport/mod.ts";
export { denoTransport } from "./src/transport/deno/mod.ts";
export { bunTransport } from "./src/transport/bun/mod.ts";
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

if (import.meta.main) await run();

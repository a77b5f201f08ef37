/**
 * The wasmnet HTTP server, runtime-neutral: the Hono app, admission and session factory, the
 * adapter seam and start/stop. The runtime adapters are `server/deno/` and `server/bun/`.
 *
 * @module
 */
export {
  admission,
  type AppOptions,
  type CloseChannel,
  createApp,
  isUpgrade,
  type Refusal,
  sessionFactory,
  SessionRegistry,
  type WasmnetOptions,
} from "./app.ts";
export type { Listening, ListenRequest, ServerAdapter } from "./adapter.ts";
export { type ServerOptions, startServer, type WasmnetServer } from "./serve.ts";

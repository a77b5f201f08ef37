/**
 * The wasmnet HTTP server: Hono app, WebSocket upgrade handler, start/stop.
 *
 * @module
 */
export {
  type AppOptions,
  createApp,
  SessionRegistry,
  wasmnet,
  type WasmnetOptions,
} from "./app.ts";
export { type ServerOptions, startServer, type WasmnetServer } from "./serve.ts";

/**
 * The wasmnet HTTP server, runtime-neutral: the Hono app, admission and session factory, the
 * adapter seam and start/stop. The runtime adapters are `server/deno/` and `server/bun/`.
 *
 * @module
 */
export {
  admission,
  type AppOptions,
  type ClientSession,
  type CloseChannel,
  createApp,
  DEFAULT_WISP_PREFIX,
  isRefusal,
  isUpgrade,
  type ProtocolName,
  type Refusal,
  type Route,
  router,
  sessionFactory,
  SessionRegistry,
  ticketGate,
  type WasmnetOptions,
  type WispServerOptions,
} from "./app.ts";
export type { Listening, ListenRequest, ServerAdapter, TlsFiles } from "./adapter.ts";
export { type ServerOptions, startServer, type WasmnetServer } from "./serve.ts";
export {
  findTicket,
  type MintClaims,
  mintTicket,
  parseSigningKey,
  parseTicketKey,
  type Ticket,
  TICKET_PROTOCOL_PREFIX,
  TICKET_QUERY_PARAM,
  type TicketCheck,
  ticketChecker,
  type TicketClaims,
  type TicketKey,
  TicketKeyError,
  type TicketOptions,
  ticketPolicy,
} from "./tickets.ts";
export {
  listenMetrics,
  metricsAllowed,
  type MetricsListener,
  ServerMetrics,
  type ServerMetricsOptions,
} from "./metrics.ts";
export { checkTlsFiles } from "./tls_files.ts";

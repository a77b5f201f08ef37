/**
 * Sessions: one per WebSocket. See {@linkcode Session}.
 *
 * @module
 */
export {
  Session,
  type SessionOptions,
  type SessionStats,
  type SessionWire,
  type WireChannel,
} from "./session.ts";
export { DEFAULT_SESSION_LIMITS, SERVER_ID_BASE, type SessionLimits } from "./options.ts";
export { WireError } from "./wire_errors.ts";
export type { Cause, SessionBandwidth } from "./types.ts";
export {
  type DialResult,
  dialResult,
  type Direction,
  NO_METRICS,
  type SessionMetrics,
  type SocketKind,
} from "./metrics.ts";
export {
  DEFAULT_WISP_BUFFER_PACKETS,
  DEFAULT_WISP_STREAM_BUDGET_BYTES,
  WISP_MAX_PAYLOAD_BYTES,
  WispSession,
  type WispSessionOptions,
  type WispSettings,
} from "./wisp_session.ts";
export { type WsproxyOptions, WsproxySession } from "./wsproxy_session.ts";

/**
 * Sessions: one per WebSocket. See {@linkcode Session}.
 *
 * @module
 */
export { Session, type SessionOptions, type SessionStats, type WireChannel } from "./session.ts";
export { DEFAULT_SESSION_LIMITS, SERVER_ID_BASE, type SessionLimits } from "./options.ts";
export { WireError } from "./wire_errors.ts";
export type { SessionBandwidth } from "./types.ts";

/**
 * Wisp (MercuryWorkshop/wisp-protocol v1.2 and 2.0 draft 6): the pure packet codec. The server's
 * Wisp personality is `session/wisp_session.ts`.
 *
 * @module
 */
export * from "./codec.ts";

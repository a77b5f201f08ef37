/**
 * The wasmnet wire protocol (DESIGN.md §3, compatible with wasmnet 0.1.3): message types, the JSON
 * codec and the binary codec. Pure and browser-safe: no `Deno.*`.
 *
 * @example
 * ```ts
 * import { decodeRequest, encodeEvent } from "./mod.ts";
 * const req = decodeRequest('{"op":"close","id":1}'); // { op: "close", id: 1 }
 * encodeEvent({ ev: "closed", id: req.id }, "json"); // '{"ev":"closed","id":1}'
 * ```
 *
 * @module
 */
import {
  decodeEventBinary,
  decodeRequestBinary,
  encodeEventBinary,
  encodeRequestBinary,
} from "./binary.ts";
import { decodeEventJson, decodeRequestJson, encodeEventJson, encodeRequestJson } from "./json.ts";
import type { Framing, Request, WireEvent } from "./messages.ts";

export * from "./messages.ts";
export { decodeBase64, encodeBase64 } from "./base64.ts";
export { formatHostPort, hostOfHostPort, type HostPort, parseHostPort } from "./host_port.ts";
export {
  decodeEventBinary,
  decodeRequestBinary,
  encodeEventBinary,
  encodeRequestBinary,
  writeHeader,
} from "./binary.ts";
export { decodeEventJson, decodeRequestJson, encodeEventJson, encodeRequestJson } from "./json.ts";

/**
 * Decodes a request from a WebSocket message: a string is JSON, bytes are a binary frame.
 *
 * @throws {ProtocolError} when the message cannot be decoded.
 */
export function decodeRequest(message: string | Uint8Array): Request {
  return typeof message === "string" ? decodeRequestJson(message) : decodeRequestBinary(message);
}

/** Encodes an event in the given framing: JSON text or a binary frame. */
export function encodeEvent(ev: WireEvent, framing: Framing): string | Uint8Array {
  return framing === "json" ? encodeEventJson(ev) : encodeEventBinary(ev);
}

/** Encodes a request in the given framing: JSON text or a binary frame. */
export function encodeRequest(req: Request, framing: Framing): string | Uint8Array {
  return framing === "json" ? encodeRequestJson(req) : encodeRequestBinary(req);
}

/**
 * Decodes an event from a WebSocket message: a string is JSON, bytes are a binary frame.
 *
 * @throws {ProtocolError} when the message cannot be decoded.
 */
export function decodeEvent(message: string | Uint8Array): WireEvent {
  return typeof message === "string" ? decodeEventJson(message) : decodeEventBinary(message);
}

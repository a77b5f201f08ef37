/**
 * Binary framing (WebSocket binary messages) of the wasmnet 0.1.3 protocol (`src/binary.rs`):
 * `[type u8][id u64 big-endian][payload]`, all integers big-endian, strings UTF-8, payload bytes
 * raw. Decoders accept any `Uint8Array` view (honouring `byteOffset`) and never copy payload bytes:
 * `data` fields of decoded messages are sub-views of the input.
 *
 * @module
 */
import {
  DEFAULT_BACKLOG,
  HEADER_BYTES,
  MAX_ID,
  MAX_PING_TIMEOUT_MS,
  MsgType,
  ProtocolError,
  type Request,
  unreachable,
  type WireEvent,
} from "./messages.ts";

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function fail(detail: string): never {
  throw new ProtocolError("binary", detail);
}

function view(u8: Uint8Array): DataView {
  return new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
}

function readId(dv: DataView, at: number, what: string): number {
  const id = dv.getBigUint64(at);
  if (id > BigInt(MAX_ID)) fail(`${what} ${id} is above 2^53-1 (${MAX_ID})`);
  return Number(id);
}

function text(bytes: Uint8Array, what: string): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    return fail(`${what} is not valid UTF-8`);
  }
}

function header(type: number, id: number, payloadBytes: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payloadBytes);
  writeHeader(out, type, id);
  return out;
}

/**
 * Writes a 9-byte frame header (type, id) at the start of `frame`. Lets a reader fill the payload
 * at offset 9 of one buffer and send it without a copy.
 */
export function writeHeader(frame: Uint8Array, type: number, id: number): void {
  // Called for every outgoing data chunk: plain byte stores, no DataView or BigInt allocation.
  // `id` ≤ 2^53-1, so its high 32 bits are exact as a number.
  const hi = Math.floor(id / 0x1_0000_0000);
  const lo = id >>> 0;
  frame[0] = type;
  frame[1] = hi >>> 24;
  frame[2] = (hi >>> 16) & 0xff;
  frame[3] = (hi >>> 8) & 0xff;
  frame[4] = hi & 0xff;
  frame[5] = lo >>> 24;
  frame[6] = (lo >>> 16) & 0xff;
  frame[7] = (lo >>> 8) & 0xff;
  frame[8] = lo & 0xff;
}

/**
 * Decodes one binary request.
 *
 * @throws {ProtocolError} message `invalid binary frame: ...`: frame shorter than 9 bytes
 * (`binary frame too short`), unknown type byte (`unknown message type: 0x42`), id above 2^53-1,
 * a payload too short for its fields (`frame missing port`, `send_to frame too short`,
 * `send_to addr truncated`), a `listen` payload that is not 0 or 4 bytes, a `shutdown` payload
 * that is not empty, or strings that are not UTF-8. The extensions `start_tls` (0x0A, payload:
 * the servername, empty for "the socket's host"), `shutdown` (0x0B) and `ping` (0x0C: seq u16,
 * timeout_ms u32 from 1 to 60000, addr_len u16, addr, data; `ping frame too short`, `ping addr
 * truncated`) are decoded too.
 *
 * @example
 * ```ts
 * import { decodeRequestBinary } from "./binary.ts";
 * const frame = Uint8Array.from([1, 0, 0, 0, 0, 0, 0, 0, 42, 0x01, 0xbb, 0x61]);
 * decodeRequestBinary(frame); // { op: "connect", id: 42, addr: "a", port: 443 }
 * ```
 */
export function decodeRequestBinary(frame: Uint8Array): Request {
  if (frame.byteLength < HEADER_BYTES) {
    fail(`binary frame too short (${frame.byteLength} bytes, need at least ${HEADER_BYTES})`);
  }
  const dv = view(frame);
  const type = dv.getUint8(0);
  const payload = frame.subarray(HEADER_BYTES);
  const pv = view(payload);
  const opOf = (): Request["op"] | undefined => {
    switch (type) {
      case MsgType.connect:
        return "connect";
      case MsgType.bind:
        return "bind";
      case MsgType.listen:
        return "listen";
      case MsgType.send:
        return "send";
      case MsgType.close:
        return "close";
      case MsgType.connect_udp:
        return "connect_udp";
      case MsgType.send_to:
        return "send_to";
      case MsgType.resolve:
        return "resolve";
      case MsgType.connect_tls:
        return "connect_tls";
      case MsgType.start_tls:
        return "start_tls";
      case MsgType.shutdown:
        return "shutdown";
      case MsgType.ping:
        return "ping";
    }
    return undefined;
  };
  const op = opOf();
  if (op === undefined) fail(`unknown message type: 0x${type.toString(16).padStart(2, "0")}`);
  const id = readId(dv, 1, "id");
  switch (op) {
    case "connect":
    case "bind":
    case "connect_udp":
    case "connect_tls":
      if (payload.byteLength < 2) fail("frame missing port");
      return { op, id, port: pv.getUint16(0), addr: text(payload.subarray(2), "addr") };
    case "listen":
      if (payload.byteLength === 0) return { op, id, backlog: DEFAULT_BACKLOG };
      if (payload.byteLength !== 4) {
        fail(`listen payload must be 0 or 4 bytes (backlog u32), got ${payload.byteLength}`);
      }
      return { op, id, backlog: pv.getUint32(0) };
    case "send":
      return { op, id, data: payload };
    case "close":
      return { op, id };
    case "send_to": {
      if (payload.byteLength < 4) fail("send_to frame too short");
      const addrLen = pv.getUint16(2);
      if (payload.byteLength < 4 + addrLen) fail("send_to addr truncated");
      return {
        op,
        id,
        port: pv.getUint16(0),
        addr: text(payload.subarray(4, 4 + addrLen), "addr"),
        data: payload.subarray(4 + addrLen),
      };
    }
    case "resolve":
      return { op, id, name: text(payload, "name") };
    case "start_tls": {
      const servername = text(payload, "servername");
      return servername ? { op, id, servername } : { op, id };
    }
    case "shutdown":
      if (payload.byteLength !== 0) {
        fail(`shutdown payload must be empty, got ${payload.byteLength} bytes`);
      }
      return { op, id };
    case "ping": {
      if (payload.byteLength < 8) fail("ping frame too short");
      const timeout = pv.getUint32(2);
      if (timeout < 1 || timeout > MAX_PING_TIMEOUT_MS) {
        fail(`ping timeout_ms must be from 1 to ${MAX_PING_TIMEOUT_MS}, got ${timeout}`);
      }
      const addrLen = pv.getUint16(6);
      if (payload.byteLength < 8 + addrLen) fail("ping addr truncated");
      return {
        op,
        id,
        addr: text(payload.subarray(8, 8 + addrLen), "addr"),
        seq: pv.getUint16(0),
        data: payload.subarray(8 + addrLen),
        timeout_ms: timeout,
      };
    }
    default:
      return unreachable(op);
  }
}

/**
 * Encodes one request as a binary frame (used by the client library).
 *
 * @throws {RangeError} when an address is longer than 65535 UTF-8 bytes in `send_to` or `ping`.
 */
export function encodeRequestBinary(req: Request): Uint8Array {
  switch (req.op) {
    case "connect":
    case "bind":
    case "connect_udp":
    case "connect_tls": {
      const addr = utf8.encode(req.addr);
      const out = header(MsgType[req.op], req.id, 2 + addr.byteLength);
      view(out).setUint16(HEADER_BYTES, req.port);
      out.set(addr, HEADER_BYTES + 2);
      return out;
    }
    case "listen": {
      const out = header(MsgType.listen, req.id, 4);
      view(out).setUint32(HEADER_BYTES, req.backlog);
      return out;
    }
    case "send": {
      const out = header(MsgType.send, req.id, req.data.byteLength);
      out.set(req.data, HEADER_BYTES);
      return out;
    }
    case "close":
      return header(MsgType.close, req.id, 0);
    case "send_to":
      return addrPayloadFrame(MsgType.send_to, req.id, req.port, req.addr, req.data);
    case "resolve":
      return bytesFrame(MsgType.resolve, req.id, utf8.encode(req.name));
    case "start_tls":
      return bytesFrame(MsgType.start_tls, req.id, utf8.encode(req.servername ?? ""));
    case "shutdown":
      return header(MsgType.shutdown, req.id, 0);
    case "ping": {
      const addr = utf8.encode(req.addr);
      if (addr.byteLength > 0xffff) throw new RangeError("address longer than 65535 bytes");
      const out = header(MsgType.ping, req.id, 8 + addr.byteLength + req.data.byteLength);
      const dv = view(out);
      dv.setUint16(HEADER_BYTES, req.seq);
      dv.setUint32(HEADER_BYTES + 2, req.timeout_ms);
      dv.setUint16(HEADER_BYTES + 6, addr.byteLength);
      out.set(addr, HEADER_BYTES + 8);
      out.set(req.data, HEADER_BYTES + 8 + addr.byteLength);
      return out;
    }
    default:
      return unreachable(req);
  }
}

function addrPayloadFrame(
  type: number,
  id: number,
  port: number,
  addrText: string,
  data: Uint8Array,
): Uint8Array {
  const addr = utf8.encode(addrText);
  if (addr.byteLength > 0xffff) throw new RangeError("address longer than 65535 bytes");
  const out = header(type, id, 4 + addr.byteLength + data.byteLength);
  const dv = view(out);
  dv.setUint16(HEADER_BYTES, port);
  dv.setUint16(HEADER_BYTES + 2, addr.byteLength);
  out.set(addr, HEADER_BYTES + 4);
  out.set(data, HEADER_BYTES + 4 + addr.byteLength);
  return out;
}

function u16Frame(type: number, id: number, value: number): Uint8Array {
  const out = header(type, id, 2);
  view(out).setUint16(HEADER_BYTES, value);
  return out;
}

function bytesFrame(type: number, id: number, payload: Uint8Array): Uint8Array {
  const out = header(type, id, payload.byteLength);
  out.set(payload, HEADER_BYTES);
  return out;
}

/**
 * Encodes one event as a binary frame, byte-identical to wasmnet 0.1.3's `encode_event`.
 * `resolved` carries its addresses as JSON array text, as wasmnet does.
 *
 * @example
 * ```ts
 * import { encodeEventBinary } from "./binary.ts";
 * encodeEventBinary({ ev: "closed", id: 1 }); // Uint8Array [0x85, 0,0,0,0,0,0,0,1]
 * ```
 */
export function encodeEventBinary(ev: WireEvent): Uint8Array {
  switch (ev.ev) {
    case "connected":
    case "closed":
      return header(MsgType[ev.ev], ev.id, 0);
    case "data":
      return bytesFrame(MsgType.data, ev.id, ev.data);
    case "listening":
    case "udp_bound":
      return u16Frame(MsgType[ev.ev], ev.id, ev.port);
    case "accepted": {
      const remote = utf8.encode(ev.remote);
      const out = header(MsgType.accepted, ev.id, 8 + remote.byteLength);
      view(out).setBigUint64(HEADER_BYTES, BigInt(ev.conn_id));
      out.set(remote, HEADER_BYTES + 8);
      return out;
    }
    case "error":
    case "denied":
      return bytesFrame(MsgType[ev.ev], ev.id, utf8.encode(ev.msg));
    case "data_from":
      return addrPayloadFrame(MsgType.data_from, ev.id, ev.port, ev.addr, ev.data);
    case "resolved":
      return bytesFrame(MsgType.resolved, ev.id, utf8.encode(JSON.stringify(ev.addrs)));
    case "pong": {
      const source = utf8.encode(ev.source);
      const out = header(MsgType.pong, ev.id, 14 + source.byteLength + ev.data.byteLength);
      const dv = view(out);
      dv.setUint16(HEADER_BYTES, ev.seq);
      dv.setUint8(HEADER_BYTES + 2, ev.type);
      dv.setUint8(HEADER_BYTES + 3, ev.code);
      dv.setFloat64(HEADER_BYTES + 4, ev.rtt_ms);
      dv.setUint16(HEADER_BYTES + 12, source.byteLength);
      out.set(source, HEADER_BYTES + 14);
      out.set(ev.data, HEADER_BYTES + 14 + source.byteLength);
      return out;
    }
    default:
      return unreachable(ev);
  }
}

/**
 * Decodes one binary event (used by the client library). `data` fields are sub-views of `frame`.
 *
 * @throws {ProtocolError} message `invalid binary frame: ...` for short frames, unknown type
 * bytes, ids above 2^53-1, truncated payloads or bad UTF-8.
 */
export function decodeEventBinary(frame: Uint8Array): WireEvent {
  if (frame.byteLength < HEADER_BYTES) {
    fail(`binary frame too short (${frame.byteLength} bytes, need at least ${HEADER_BYTES})`);
  }
  const dv = view(frame);
  const type = dv.getUint8(0);
  const id = readId(dv, 1, "id");
  const payload = frame.subarray(HEADER_BYTES);
  const pv = view(payload);
  const need = (n: number, what: string): void => {
    if (payload.byteLength < n) fail(`${what} frame too short`);
  };
  switch (type) {
    case MsgType.connected:
      return { ev: "connected", id };
    case MsgType.closed:
      return { ev: "closed", id };
    case MsgType.data:
      return { ev: "data", id, data: payload };
    case MsgType.listening:
      need(2, "listening");
      return { ev: "listening", id, port: pv.getUint16(0) };
    case MsgType.udp_bound:
      need(2, "udp_bound");
      return { ev: "udp_bound", id, port: pv.getUint16(0) };
    case MsgType.accepted:
      need(8, "accepted");
      return {
        ev: "accepted",
        id,
        conn_id: readId(pv, 0, "conn_id"),
        remote: text(payload.subarray(8), "remote"),
      };
    case MsgType.error:
      return { ev: "error", id, msg: text(payload, "msg") };
    case MsgType.denied:
      return { ev: "denied", id, msg: text(payload, "msg") };
    case MsgType.data_from: {
      need(4, "data_from");
      const addrLen = pv.getUint16(2);
      if (payload.byteLength < 4 + addrLen) fail("data_from addr truncated");
      return {
        ev: "data_from",
        id,
        port: pv.getUint16(0),
        addr: text(payload.subarray(4, 4 + addrLen), "addr"),
        data: payload.subarray(4 + addrLen),
      };
    }
    case MsgType.resolved: {
      let addrs: unknown;
      try {
        addrs = JSON.parse(text(payload, "addrs"));
      } catch (e) {
        if (e instanceof ProtocolError) throw e;
        fail("resolved payload is not a JSON array");
      }
      if (!Array.isArray(addrs) || !addrs.every((a) => typeof a === "string")) {
        fail("resolved payload is not a JSON array of strings");
      }
      return { ev: "resolved", id, addrs: addrs as string[] };
    }
    case MsgType.pong: {
      need(14, "pong");
      const sourceLen = pv.getUint16(12);
      if (payload.byteLength < 14 + sourceLen) fail("pong source truncated");
      return {
        ev: "pong",
        id,
        source: text(payload.subarray(14, 14 + sourceLen), "source"),
        seq: pv.getUint16(0),
        type: pv.getUint8(2),
        code: pv.getUint8(3),
        rtt_ms: pv.getFloat64(4),
        data: payload.subarray(14 + sourceLen),
      };
    }
    default:
      return fail(`unknown message type: 0x${type.toString(16).padStart(2, "0")}`);
  }
}

/**
 * JSON framing (WebSocket text messages) of the wasmnet 0.1.3 protocol: requests are objects
 * tagged by `op`, events objects tagged by `ev`; payload bytes are standard padded base64.
 * Events are written with their keys in wasmnet's order (`ev` first, then the fields in the order
 * of `src/protocol.rs`), so output is byte-identical to the Rust server's.
 *
 * @module
 */
import { encodeBase64 } from "./base64.ts";
import { Fields, parseObject, show } from "./_fields.ts";
import {
  DEFAULT_BACKLOG,
  DEFAULT_PING_TIMEOUT_MS,
  MAX_PING_TIMEOUT_MS,
  ProtocolError,
  type Request,
  unreachable,
  type WireEvent,
} from "./messages.ts";

/**
 * Decodes one JSON request. Unknown extra fields are ignored (as serde does in wasmnet). The
 * extensions `start_tls` (`servername` optional; absent, null and `""` all mean "the socket's
 * host"), `shutdown` and `ping` (`seq` default 0, `data` default empty, `timeout_ms` default
 * 1000, at most 60000) are decoded too.
 *
 * @throws {ProtocolError} message `invalid request: ...` when the text is not JSON, not an
 * object, has an unknown `op`, or a field is missing, of the wrong type or out of range
 * (ids above 2^53-1 included), or `data` is not valid base64.
 *
 * @example
 * ```ts
 * import { decodeRequestJson } from "./json.ts";
 * decodeRequestJson('{"op":"connect","id":7,"addr":"example.com","port":80}');
 * // { op: "connect", id: 7, addr: "example.com", port: 80 }
 * ```
 */
export function decodeRequestJson(text: string): Request {
  const f = new Fields(parseObject(text));
  const op = f.obj.op;
  switch (op) {
    case "connect":
    case "connect_tls":
    case "connect_udp":
    case "bind":
      return { op, id: f.id(), addr: f.string("addr"), port: f.port() };
    case "listen":
      return { op, id: f.id(), backlog: f.u32("backlog", DEFAULT_BACKLOG) };
    case "send":
      return { op, id: f.id(), data: f.bytes() };
    case "send_to":
      return { op, id: f.id(), addr: f.string("addr"), port: f.port(), data: f.bytes() };
    case "close":
      return { op, id: f.id() };
    case "resolve":
      return { op, id: f.id(), name: f.string("name") };
    case "start_tls": {
      const id = f.id();
      const servername = f.optionalString("servername");
      return servername ? { op, id, servername } : { op, id };
    }
    case "shutdown":
      return { op, id: f.id() };
    case "ping":
      return {
        op,
        id: f.id(),
        addr: f.string("addr"),
        seq: f.int("seq", 0, 0xffff, 0),
        data: f.optionalBytes(),
        timeout_ms: f.int("timeout_ms", 1, MAX_PING_TIMEOUT_MS, DEFAULT_PING_TIMEOUT_MS),
      };
    case undefined:
      throw new ProtocolError("json", 'missing field "op"');
    default:
      throw new ProtocolError("json", `unknown op ${show(op)}`);
  }
}

/**
 * Encodes one request as JSON text (used by the client library).
 *
 * @example
 * ```ts
 * import { encodeRequestJson } from "./json.ts";
 * encodeRequestJson({ op: "close", id: 3 }); // '{"op":"close","id":3}'
 * ```
 */
export function encodeRequestJson(req: Request): string {
  switch (req.op) {
    case "connect":
    case "connect_tls":
    case "connect_udp":
    case "bind":
      return JSON.stringify({ op: req.op, id: req.id, addr: req.addr, port: req.port });
    case "listen":
      return JSON.stringify({ op: req.op, id: req.id, backlog: req.backlog });
    case "send":
      return JSON.stringify({ op: req.op, id: req.id, data: encodeBase64(req.data) });
    case "send_to":
      return JSON.stringify({
        op: req.op,
        id: req.id,
        addr: req.addr,
        port: req.port,
        data: encodeBase64(req.data),
      });
    case "close":
      return JSON.stringify({ op: req.op, id: req.id });
    case "resolve":
      return JSON.stringify({ op: req.op, id: req.id, name: req.name });
    case "start_tls":
      return JSON.stringify(
        req.servername ? { op: req.op, id: req.id, servername: req.servername } : {
          op: req.op,
          id: req.id,
        },
      );
    case "shutdown":
      return JSON.stringify({ op: req.op, id: req.id });
    case "ping":
      return JSON.stringify({
        op: req.op,
        id: req.id,
        addr: req.addr,
        seq: req.seq,
        data: encodeBase64(req.data),
        timeout_ms: req.timeout_ms,
      });
    default:
      return unreachable(req);
  }
}

/**
 * Encodes one event as JSON text, keys in wasmnet 0.1.3's order.
 *
 * @example
 * ```ts
 * import { encodeEventJson } from "./json.ts";
 * encodeEventJson({ ev: "connected", id: 7 }); // '{"ev":"connected","id":7}'
 * ```
 */
export function encodeEventJson(ev: WireEvent): string {
  switch (ev.ev) {
    case "connected":
    case "closed":
      return `{"ev":"${ev.ev}","id":${ev.id}}`;
    case "data":
      return `{"ev":"data","id":${ev.id},"data":"${encodeBase64(ev.data)}"}`;
    case "listening":
    case "udp_bound":
      return `{"ev":"${ev.ev}","id":${ev.id},"port":${ev.port}}`;
    case "accepted":
      return JSON.stringify({ ev: ev.ev, id: ev.id, conn_id: ev.conn_id, remote: ev.remote });
    case "error":
    case "denied":
      return JSON.stringify({ ev: ev.ev, id: ev.id, msg: ev.msg });
    case "data_from":
      return JSON.stringify({
        ev: ev.ev,
        id: ev.id,
        data: encodeBase64(ev.data),
        addr: ev.addr,
        port: ev.port,
      });
    case "resolved":
      return JSON.stringify({ ev: ev.ev, id: ev.id, addrs: ev.addrs });
    case "pong":
      return JSON.stringify({
        ev: ev.ev,
        id: ev.id,
        source: ev.source,
        seq: ev.seq,
        type: ev.type,
        code: ev.code,
        rtt_ms: ev.rtt_ms,
        data: encodeBase64(ev.data),
      });
    default:
      return unreachable(ev);
  }
}

/**
 * Decodes one JSON event (used by the client library).
 *
 * @throws {ProtocolError} message `invalid request: ...` when the text is not a valid event.
 */
export function decodeEventJson(text: string): WireEvent {
  const f = new Fields(parseObject(text));
  const ev = f.obj.ev;
  switch (ev) {
    case "connected":
    case "closed":
      return { ev, id: f.id() };
    case "data":
      return { ev, id: f.id(), data: f.bytes() };
    case "listening":
    case "udp_bound":
      return { ev, id: f.id(), port: f.port() };
    case "accepted":
      return { ev, id: f.id(), conn_id: f.id("conn_id"), remote: f.string("remote") };
    case "error":
    case "denied":
      return { ev, id: f.id(), msg: f.string("msg") };
    case "data_from":
      return { ev, id: f.id(), data: f.bytes(), addr: f.string("addr"), port: f.port() };
    case "resolved":
      return { ev, id: f.id(), addrs: f.strings("addrs") };
    case "pong":
      return {
        ev,
        id: f.id(),
        source: f.string("source"),
        seq: f.int("seq", 0, 0xffff),
        type: f.int("type", 0, 0xff),
        code: f.int("code", 0, 0xff),
        rtt_ms: f.nonNegative("rtt_ms"),
        data: f.optionalBytes(),
      };
    case undefined:
      throw new ProtocolError("json", 'missing field "ev"');
    default:
      throw new ProtocolError("json", `unknown ev ${show(ev)}`);
  }
}

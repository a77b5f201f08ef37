// deno-lint-ignore-file explicit-function-return-type
/**
 * The benchmark's floor: a naive wasmnet server, what a user writes in an afternoon from the
 * protocol tables in README.md. Plain Node 20 + npm `ws` over `node:http`; no policy, no limits,
 * no DNS checks, no pool. It speaks `connect`, `send` and `close` over TCP in both framings
 * (replies in the framing of the client's latest message) and answers `connected`, `data`,
 * `closed` and `error`.
 *
 * Flow control, both ways, the idiomatic Node way: while an upstream write is pending (`write()`
 * returned false, until `drain`) it stops reading the client (`ws.pause()`), so uploads never fail
 * and never pile up; while more than 4 MiB wait in the WebSocket's send buffer it stops reading
 * the upstream socket until that send completes.
 *
 * Usage: `WASMNET_BENCH_NODE_MODULES=<dir with ws> node bench/naive_server.mjs -H 127.0.0.1 -p 0`;
 * prints `listening addr=HOST:PORT` once it listens. Written for the benchmark from README.md;
 * no third-party code is copied here.
 *
 * @module
 */
import http from "node:http";
import net from "node:net";
import process from "node:process";
import { Buffer } from "node:buffer";
import { createRequire } from "node:module";

const { WebSocketServer } = createRequire(
  `${process.env.WASMNET_BENCH_NODE_MODULES ?? process.cwd()}/`,
)("ws");

const OPS = { 0x01: "connect", 0x04: "send", 0x05: "close" };
const EVS = { connected: 0x81, data: 0x82, closed: 0x85, error: 0x86 };
const SEND_HIGH_WATER = 4 * 1024 * 1024;

/** A binary request frame: `[type u8][id u64 BE][payload]`. */
function decodeBinary(buf) {
  if (buf.length < 9) throw new Error(`binary frame too short (${buf.length} bytes)`);
  const op = OPS[buf[0]];
  if (!op) throw new Error(`unknown message type: 0x${buf[0].toString(16)}`);
  const id = Number(buf.readBigUInt64BE(1));
  const payload = buf.subarray(9);
  if (op === "connect") {
    return { op, id, port: payload.readUInt16BE(0), addr: payload.subarray(2).toString() };
  }
  return { op, id, data: payload };
}

/** A JSON request: `{"op":"send","id":1,"data":"<base64>"}`. */
function decodeJson(text) {
  const m = JSON.parse(text);
  return { ...m, data: typeof m.data === "string" ? Buffer.from(m.data, "base64") : undefined };
}

function session(ws) {
  const sockets = new Map(); // id → { sock, blocked, error }
  let binary = false; // replies use the framing of the client's latest message
  let blocked = 0; // sockets whose upstream write is pending

  const emit = (ev, id, bytes, msg, onSent) => {
    if (ws.readyState !== ws.OPEN) return;
    if (binary) {
      const body = bytes ?? Buffer.from(msg ?? "");
      const frame = Buffer.allocUnsafe(9 + body.length);
      frame[0] = EVS[ev];
      frame.writeBigUInt64BE(BigInt(id), 1);
      body.copy(frame, 9);
      ws.send(frame, onSent);
    } else {
      const obj = bytes ? { ev, id, data: bytes.toString("base64") } : { ev, id };
      if (msg !== undefined) obj.msg = msg;
      ws.send(JSON.stringify(obj), onSent);
    }
  };
  const unblock = (entry) => {
    if (!entry.blocked) return;
    entry.blocked = false;
    if (--blocked === 0) ws.resume();
  };

  const connect = (id, addr, port) => {
    if (sockets.has(id)) return emit("error", id, undefined, `id ${id} is already in use`);
    const sock = net.connect({ host: addr, port, noDelay: true });
    const entry = { sock, blocked: false, error: undefined };
    sockets.set(id, entry);
    sock.on("connect", () => emit("connected", id));
    sock.on("data", (chunk) => {
      if (ws.bufferedAmount < SEND_HIGH_WATER) return emit("data", id, chunk);
      sock.pause(); // the client reads slower than upstream sends: wait for this send
      emit("data", id, chunk, undefined, () => sock.resume());
    });
    sock.on("drain", () => unblock(entry));
    sock.on("error", (e) => entry.error = `connection error: ${e.message}`);
    sock.on("close", () => {
      unblock(entry);
      sockets.delete(id);
      if (entry.error) emit("error", id, undefined, entry.error);
      else emit("closed", id);
    });
  };

  ws.on("message", (data, isBinary) => {
    binary = isBinary;
    let req;
    try {
      req = isBinary ? decodeBinary(data) : decodeJson(data.toString());
    } catch (e) {
      const kind = isBinary ? "invalid binary frame" : "invalid request";
      return emit("error", 0, undefined, `${kind}: ${e.message}`);
    }
    const entry = sockets.get(req.id);
    switch (req.op) {
      case "connect":
        return connect(req.id, req.addr, req.port);
      case "send":
        if (!entry) return emit("error", req.id, undefined, `unknown id ${req.id}`);
        if (!entry.sock.write(req.data) && !entry.blocked) {
          entry.blocked = true; // upstream is slower: stop reading the client until it drains
          if (blocked++ === 0) ws.pause();
        }
        return;
      case "close":
        if (!entry) return emit("error", req.id, undefined, `unknown id ${req.id}`);
        return entry.sock.end(); // "closed" follows when the connection has closed
      default:
        return emit("error", req.id ?? 0, undefined, `op "${req.op}" is not supported`);
    }
  });
  ws.on("error", () => {});
  ws.on("close", () => {
    for (const { sock } of sockets.values()) sock.destroy();
    sockets.clear();
  });
}

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const server = http.createServer((_req, res) => res.writeHead(426).end("WebSocket only\n"));
new WebSocketServer({ server }).on("connection", session);
server.listen(Number(flag("-p", "9000")), flag("-H", "127.0.0.1"), () => {
  const { address, port } = server.address();
  process.stdout.write(`listening addr=${address}:${port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));

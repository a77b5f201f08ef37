// deno-lint-ignore-file explicit-function-return-type
/**
 * The independent load generator: Node 20 + the npm `ws` client (what a browser's WebSocket
 * behaves like: no Nagle stall on large messages, a `bufferedAmount` that grows while the server
 * does not read). Runs one scenario against one system and prints one JSON line,
 * `{"result": ScenarioResult}` or `{"error": "..."}`, like `driver.ts`.
 *
 * Systems: `raw` (node:net straight to the upstream peer), `wasmnet` (one WebSocket, the wasmnet
 * protocol spoken on the wire, `binary` or `json` framing: the wasmnet server and the naive one),
 * `ws1` (one WebSocket per socket, raw binary messages: websockify).
 *
 * Scenarios:
 * - `up` with `free: true`: free-running upload. The client sends 64 KiB messages while its
 *   WebSocket's `bufferedAmount` is under 4 MiB and waits (for its own sends to complete) above;
 *   nothing is acknowledged. The upstream peer answers once, when the last byte arrived (mode `U`);
 *   timed until then. A `closed`/`error` for the socket or a closed WebSocket ends the run with
 *   `errors: 1` and the message in `failure`.
 * - `up` (acknowledged): at most 4 MiB unacknowledged by the upstream sink (mode `S`).
 * - `down`: the upstream writes N bytes; timed until the last arrived. JSON `data` events are
 *   parsed and their base64 decoded (`Buffer.from(s, "base64")`), as a Node wasmnet client does.
 * - `rtt`: sequential 64-byte echoes; `connect_rate`: 16 loops of connect, one echoed byte, close
 *   (until `closed`).
 * - `idle_sessions` (wasmnet): N sessions (WebSockets) with no sockets, held while `run.ts`
 *   measures the server's memory (driven over stdin/stdout).
 *
 * The scenarios (timing, warm-ups, pacing, percentiles) are in `_scenarios.mjs`, shared with
 * `driver_wisp.mjs`; this file only opens sessions and streams of its systems. `up`/`down` use
 * `streams` streams of one session (default 1; `run.ts` and `profile.ts` pass 1).
 *
 * Usage: `WASMNET_BENCH_NODE_MODULES=<dir with ws> node bench/loadgen_node.mjs '<DriverConfig>'`
 *
 * @module
 */
import net from "node:net";
import process from "node:process";
import { Buffer } from "node:buffer";
import { createRequire } from "node:module";
import { main, noop, wakeup } from "./_scenarios.mjs";

const WebSocket = createRequire(`${process.env.WASMNET_BENCH_NODE_MODULES ?? process.cwd()}/`)(
  "ws",
);

/**
 * Send-buffer waiting for the free-running upload: `sent()` (a send completed, or the socket
 * closed) wakes `waitBelow(limit)`, which resolves once `bufferedOf()` is under `limit` bytes.
 */
function flow(bufferedOf) {
  const w = wakeup();
  return {
    sent: w.wake,
    async waitBelow(limit) {
      while (bufferedOf() >= limit) await w.wait();
    },
  };
}

/**
 * A stream (the interface of `_scenarios.mjs`) whose socket carries the payload as is (raw TCP,
 * websockify): `write(bytes)` sends, `shut()` closes, `closed` settles once the socket closed.
 * `ended(why)` is for the socket's close event: it reports `why` unless the stream was closed.
 */
function plainStream(f, write, shut, closed) {
  let closing = false;
  const stream = {
    onData: noop,
    onEnd: noop,
    prepare: (b) => Buffer.from(b),
    send: write,
    waitBelow: f.waitBelow,
    close() {
      closing = true;
      shut();
      return closed;
    },
  };
  const ended = (why) => {
    f.sent();
    if (!closing) stream.onEnd(why);
  };
  return { stream, ended };
}

function opened(ws) {
  return new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
}

function rawSession(host, port) {
  return {
    open() {
      return new Promise((resolve, reject) => {
        const sock = net.connect({ host, port, noDelay: true });
        const f = flow(() => sock.writableLength);
        sock.on("drain", f.sent);
        const closed = new Promise((r) => sock.once("close", r));
        const { stream, ended } = plainStream(
          f,
          (b) => void sock.write(b),
          () => sock.destroy(),
          closed,
        );
        sock.on("data", (b) => stream.onData(b));
        sock.on("error", (e) => reject(e));
        sock.once("close", () => ended("connection closed"));
        sock.once("connect", () => resolve(stream));
      });
    },
    close: () => Promise.resolve(),
  };
}

function ws1Session(url) {
  return {
    async open() {
      const ws = new WebSocket(url, ["binary"], { perMessageDeflate: false });
      const f = flow(() => ws.bufferedAmount);
      const closed = new Promise((r) => ws.once("close", r));
      await opened(ws);
      const { stream, ended } = plainStream(f, (b) => ws.send(b, f.sent), () => ws.close(), closed);
      ws.on("message", (b) => stream.onData(b));
      ws.once("close", () => ended("WebSocket closed"));
      return stream;
    },
    close: () => Promise.resolve(),
  };
}

function frame(type, id, payload) {
  const out = Buffer.allocUnsafe(9 + payload.length);
  out[0] = type;
  out.writeBigUInt64BE(BigInt(id), 1);
  out.set(payload, 9);
  return out;
}

async function wasmnetSession(url, framing, host, port) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const f = flow(() => ws.bufferedAmount);
  const closedWs = new Promise((r) => ws.once("close", r));
  await opened(ws);
  const binary = framing === "binary";
  const streams = new Map(); // id → { stream, connected, failed, closed }
  let nextId = 1;
  let closing = false;
  const end = (id, failure) => {
    const s = streams.get(id);
    if (!s) {
      if (id === 0) { for (const t of streams.values()) t.stream.onEnd(failure); // undecodable
       }
      return;
    }
    streams.delete(id);
    if (s.failed) return s.failed(new Error(failure ?? "closed before connected"));
    s.closed();
    if (!s.closing || failure !== undefined) s.stream.onEnd(failure);
  };
  ws.on("message", (data, isBinary) => {
    if (isBinary) {
      const id = Number(data.readBigUInt64BE(1));
      const type = data[0];
      if (type === 0x82) streams.get(id)?.stream.onData(data.subarray(9));
      else if (type === 0x81) streams.get(id)?.connected?.();
      else if (type === 0x85) end(id);
      else if (type === 0x86 || type === 0x87) end(id, data.subarray(9).toString());
      return;
    }
    const ev = JSON.parse(data.toString());
    if (ev.ev === "data") streams.get(ev.id)?.stream.onData(Buffer.from(ev.data, "base64"));
    else if (ev.ev === "connected") streams.get(ev.id)?.connected?.();
    else if (ev.ev === "closed") end(ev.id);
    else if (ev.ev === "error" || ev.ev === "denied") end(ev.id, ev.msg);
  });
  ws.once("close", (code) => {
    f.sent();
    if (closing) return;
    for (const id of [...streams.keys()]) end(id, `WebSocket closed (${code})`);
  });
  const connectFrame = (id) => {
    if (!binary) return JSON.stringify({ op: "connect", id, addr: host, port });
    const a = Buffer.from(host);
    const p = Buffer.allocUnsafe(2 + a.length);
    p.writeUInt16BE(port, 0);
    a.copy(p, 2);
    return frame(0x01, id, p);
  };
  return {
    open() {
      const id = nextId++;
      let closedResolve = noop;
      const closedP = new Promise((r) => closedResolve = r);
      let closeSent = false;
      const stream = {
        onData: noop,
        onEnd: noop,
        prepare: (b) =>
          binary
            ? frame(0x04, id, b)
            : `{"op":"send","id":${id},"data":"${Buffer.from(b).toString("base64")}"}`,
        send: (p) => ws.send(p, f.sent),
        waitBelow: f.waitBelow,
        close() {
          if (!closeSent) {
            closeSent = true;
            state.closing = true;
            ws.send(binary ? frame(0x05, id, Buffer.alloc(0)) : `{"op":"close","id":${id}}`);
          }
          return closedP;
        },
      };
      const state = {
        stream,
        closing: false,
        connected: () => {
          state.connected = undefined;
          state.failed = undefined;
          resolveOpen(stream);
        },
        failed: (e) => rejectOpen(e),
        closed: closedResolve,
      };
      let resolveOpen = noop;
      let rejectOpen = noop;
      return new Promise((resolve, reject) => {
        resolveOpen = resolve;
        rejectOpen = reject;
        streams.set(id, state);
        ws.send(connectFrame(id));
      });
    },
    close() {
      closing = true;
      ws.close();
      return closedWs;
    },
    isOpen: () => ws.readyState === WebSocket.OPEN,
  };
}

function session(sys) {
  if (sys.kind === "raw") return Promise.resolve(rawSession(sys.host, sys.port));
  if (sys.kind === "ws1") return Promise.resolve(ws1Session(sys.url));
  if (sys.kind === "wasmnet") return wasmnetSession(sys.url, sys.framing, sys.host, sys.port);
  throw new Error(`unknown system ${sys.kind}`);
}

await main(session, ["up", "down", "rtt", "connect_rate", "idle_sessions"]);

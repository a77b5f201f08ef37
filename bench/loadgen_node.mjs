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
 *
 * Usage: `WASMNET_BENCH_NODE_MODULES=<dir with ws> node bench/loadgen_node.mjs '<DriverConfig>'`
 *
 * @module
 */
import net from "node:net";
import process from "node:process";
import { Buffer } from "node:buffer";
import { performance } from "node:perf_hooks";
import { createRequire } from "node:module";

const WebSocket = createRequire(`${process.env.WASMNET_BENCH_NODE_MODULES ?? process.cwd()}/`)(
  "ws",
);

const MODE_ECHO = 0x45;
const MODE_SINK = 0x53;
const MODE_UPLOAD = 0x55;
const MODE_DOWNLOAD = 0x44;
const CHUNK_BYTES = 64 * 1024;
const UPLOAD_WINDOW = 4 * 1024 * 1024;
/** Free-running upload: send while `bufferedAmount` is below this. */
const SEND_HIGH_WATER = 4 * 1024 * 1024;
const noop = () => {};

/**
 * A stream is `{ onData(buf), onEnd(failure?), prepare(bytes), send(prepared), buffered(),
 * waitBelow(n), close() }`; `onEnd` reports a socket that ended without being asked to.
 */
function flow(bufferedOf) {
  let wake;
  const sent = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  return {
    sent,
    async waitBelow(limit) {
      while (bufferedOf() >= limit) await new Promise((r) => wake = r);
    },
  };
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
        let closing = false;
        const closed = new Promise((r) => sock.once("close", r));
        const stream = {
          onData: noop,
          onEnd: noop,
          prepare: (b) => Buffer.from(b),
          send: (b) => void sock.write(b),
          waitBelow: f.waitBelow,
          close() {
            closing = true;
            sock.destroy();
            return closed;
          },
        };
        sock.on("data", (b) => stream.onData(b));
        sock.on("error", (e) => reject(e));
        sock.once("close", () => {
          f.sent();
          if (!closing) stream.onEnd("connection closed");
        });
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
      let closing = false;
      const closed = new Promise((r) => ws.once("close", r));
      await opened(ws);
      const stream = {
        onData: noop,
        onEnd: noop,
        prepare: (b) => Buffer.from(b),
        send: (b) => ws.send(b, f.sent),
        waitBelow: f.waitBelow,
        close() {
          closing = true;
          ws.close();
          return closed;
        },
      };
      ws.on("message", (b) => stream.onData(b));
      ws.once("close", () => {
        f.sent();
        if (!closing) stream.onEnd("WebSocket closed");
      });
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
  };
}

function session(sys) {
  if (sys.kind === "raw") return Promise.resolve(rawSession(sys.host, sys.port));
  if (sys.kind === "ws1") return Promise.resolve(ws1Session(sys.url));
  if (sys.kind === "wasmnet") return wasmnetSession(sys.url, sys.framing, sys.host, sys.port);
  throw new Error(`unknown system ${sys.kind}`);
}

function header(mode, n) {
  const h = Buffer.alloc(9);
  h[0] = mode;
  h.writeBigUInt64BE(BigInt(n), 1);
  return h;
}

const CHUNK = new Uint8Array(CHUNK_BYTES).fill(0x62);

/** Reads the upstream's u64 acknowledgements; `onAck(total)` for each. */
function ackReader(onAck) {
  const ack = Buffer.alloc(8);
  let fill = 0;
  return (b) => {
    for (let i = 0; i < b.length; i++) {
      ack[fill++] = b[i];
      if (fill === 8) {
        fill = 0;
        onAck(Number(ack.readBigUInt64BE(0)));
      }
    }
  };
}

/** Free-running (`free`) or acknowledged upload of `total` bytes; resolves with a failure or undefined. */
async function upload(s, total, free) {
  let acked = 0;
  let failure;
  let wake;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  s.onData = ackReader((n) => {
    acked = n;
    poke();
  });
  s.onEnd = (why) => {
    failure = why ?? "socket closed by the server";
    poke();
  };
  s.send(s.prepare(header(free ? MODE_UPLOAD : MODE_SINK, total)));
  const prepared = s.prepare(CHUNK);
  let sent = 0;
  while (sent < total && failure === undefined) {
    if (free) await s.waitBelow(SEND_HIGH_WATER);
    else while (sent - acked >= UPLOAD_WINDOW && !failure) await new Promise((r) => wake = r);
    if (failure !== undefined) break;
    const k = Math.min(CHUNK_BYTES, total - sent);
    s.send(k === CHUNK_BYTES ? prepared : s.prepare(CHUNK.subarray(0, k)));
    sent += k;
  }
  while (acked < total && failure === undefined) await new Promise((r) => wake = r);
  return failure;
}

async function download(s, total) {
  let got = 0;
  let done;
  const finished = new Promise((r) => done = r);
  s.onData = (b) => {
    got += b.length;
    if (got >= total) done();
  };
  s.onEnd = (why) => done(why ?? "closed before the last byte");
  s.send(s.prepare(header(MODE_DOWNLOAD, total)));
  return await finished;
}

function roundTrip(s, msg, expect = msg.length) {
  return new Promise((resolve, reject) => {
    let got = 0;
    s.onData = (b) => {
      got += b.length;
      if (got >= expect) resolve();
    };
    s.onEnd = (why) => reject(new Error(why ?? "closed during a round trip"));
    s.send(s.prepare(msg));
  });
}

function latencies(samples) {
  const a = Float64Array.from(samples).sort();
  const at = (p) => a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))] * 1000 : NaN;
  return { p50Us: at(0.5), p99Us: at(0.99) };
}

async function throughput(sys, dir, bytes, free, warmup = Math.min(bytes, 16 * 1024 * 1024)) {
  const run = async (total) => {
    const sess = await session(sys);
    const s = await sess.open();
    const n = Math.floor(total / CHUNK_BYTES) * CHUNK_BYTES;
    const t0 = performance.now();
    const failure = dir === "up" ? await upload(s, n, free) : await download(s, n);
    const secs = (performance.now() - t0) / 1000;
    if (failure === undefined) await s.close();
    await sess.close();
    return { secs, failure };
  };
  if (warmup > 0) {
    const w = await run(warmup); // JIT, buffers; not measured
    if (w.failure !== undefined) return { n: 0, secs: w.secs, errors: 1, failure: w.failure };
  }
  const { secs, failure } = await run(bytes);
  if (failure !== undefined) return { n: 0, secs, errors: 1, failure };
  return { rate: bytes / (1024 * 1024) / secs, n: bytes, secs, errors: 0 };
}

async function rtt(sys, size, count) {
  const sess = await session(sys);
  const s = await sess.open();
  s.send(s.prepare(Uint8Array.of(MODE_ECHO)));
  const msg = new Uint8Array(size).fill(0x63);
  const samples = [];
  const warm = Math.min(500, count);
  const t0 = performance.now();
  for (let i = 0; i < warm + count; i++) {
    const a = performance.now();
    await roundTrip(s, msg);
    if (i >= warm) samples.push(performance.now() - a);
  }
  const secs = (performance.now() - t0) / 1000;
  await s.close();
  await sess.close();
  return { ...latencies(samples), rate: count / secs, n: count, secs, errors: 0 };
}

const PROBE = Uint8Array.of(MODE_ECHO, 0x78);

async function connectRate(sys, secs, concurrency) {
  const sess = await session(sys);
  for (let i = 0; i < 20; i++) {
    const s = await sess.open();
    await roundTrip(s, PROBE, 1);
    await s.close();
  }
  let ops = 0;
  let errors = 0;
  const samples = [];
  const closes = [];
  const t0 = performance.now();
  const end = t0 + secs * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const a = performance.now();
      try {
        const s = await sess.open();
        await roundTrip(s, PROBE, 1);
        samples.push(performance.now() - a);
        closes.push(s.close());
        ops++;
      } catch {
        errors++;
      }
    }
  }));
  await Promise.all(closes); // a connect+close cycle ends when its close completed
  const elapsed = (performance.now() - t0) / 1000;
  await sess.close();
  return { rate: ops / elapsed, ...latencies(samples), n: ops, secs: elapsed, errors };
}

function runScenario(cfg) {
  const sc = cfg.scenario;
  switch (sc.name) {
    case "up":
    case "down":
      return throughput(cfg.system, sc.name, sc.bytes, sc.free === true, sc.warmup);
    case "rtt":
      return rtt(cfg.system, sc.size, sc.count);
    case "connect_rate":
      return connectRate(cfg.system, sc.secs, sc.concurrency);
  }
  throw new Error(`unknown scenario ${sc.name}`);
}

const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
try {
  const result = await runScenario(JSON.parse(process.argv[2] ?? "{}"));
  say({ result });
  process.exit(0);
} catch (e) {
  say({ error: String(e?.stack ?? e) });
  process.exit(1);
}

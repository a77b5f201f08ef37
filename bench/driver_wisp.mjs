// deno-lint-ignore-file explicit-function-return-type
/**
 * The Node load generator, for the Wisp peer: drives a Wisp server with the
 * `@mercuryworkshop/wisp-js` package's own client (which needs Node's `ws`), and raw TCP from Node
 * (to show what this generator can do without a proxy). Same scenarios, same upstream modes and
 * the same JSON output line as `driver.ts`, plus the free-running upload of `loadgen_node.mjs`
 * (`{name: "up", free: true}`: no acknowledgements; it sends while the WebSocket buffer plus the
 * stream's credit-starved queue hold under 4 MiB).
 *
 * Usage: `WISP_JS=/path/to/wisp-js node bench/driver_wisp.mjs '<DriverConfig JSON>'`
 * where `DriverConfig.system` is `{kind:"wisp", url, host, port}` or `{kind:"raw", host, port}`.
 *
 * Only runs the package; nothing of it is copied here.
 *
 * @module
 */
import net from "node:net";
import process from "node:process";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { createInterface } from "node:readline";

const MODE_ECHO = 0x45;
const MODE_SINK = 0x53;
const MODE_UPLOAD = 0x55;
const MODE_DOWNLOAD = 0x44;
const CHUNK_BYTES = 64 * 1024;
const UPLOAD_WINDOW = 4 * 1024 * 1024;
/** Free-running upload: send while the client's buffers hold less than this. */
const SEND_HIGH_WATER = 4 * 1024 * 1024;
const noop = () => {};

function rawSession(host, port) {
  return {
    open() {
      return new Promise((resolve, reject) => {
        const sock = net.connect({ host, port, noDelay: true });
        const stream = {
          onData: noop,
          send(b) {
            if (sock.write(b)) return;
            return new Promise((r) => sock.once("drain", r));
          },
          close() {
            sock.destroy();
            return Promise.resolve();
          },
        };
        sock.on("data", (b) => stream.onData(b));
        sock.on("error", (e) => reject(e));
        sock.once("connect", () => resolve(stream));
      });
    },
    close: () => Promise.resolve(),
  };
}

let wisp;
async function wispSession(url, host, port) {
  if (!wisp) {
    const dir = process.env.WISP_JS;
    if (!dir) throw new Error("set WISP_JS to the wisp-js package directory");
    wisp = (await import(pathToFileURL(`${dir}/src/entrypoints/client.mjs`).href)).client;
  }
  const conn = new wisp.ClientConnection(url);
  await new Promise((resolve, reject) => {
    conn.onopen = resolve;
    conn.onerror = () => reject(new Error("wisp connection error"));
  });
  // Free-running uploads wait for the client's own sends to complete (as loadgen_node.mjs does):
  // every WebSocket send of the client gets a completion callback that wakes the waiter.
  let wake;
  const sent = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const wsSend = conn.ws.send.bind(conn.ws);
  conn.ws.send = (data, cb) => wsSend(data, cb ?? sent);
  return {
    open() {
      const s = conn.create_stream(host, port);
      const stream = {
        onData: noop,
        send: (b) => s.send(b),
        /** Waits while the WebSocket buffer plus the stream's credit-starved queue hold `limit`. */
        async waitBelow(limit) {
          const queued = () => s.send_buffer.reduce((n, b) => n + b.byteLength, 0);
          while (conn.ws.bufferedAmount + queued() >= limit) await new Promise((r) => wake = r);
        },
        close() {
          s.close();
          return Promise.resolve(); // Wisp has no acknowledgement of a client's CLOSE
        },
      };
      s.onmessage = (b) => stream.onData(b);
      s.onclose = (reason) => {
        if (reason !== 0x02 && reason !== 0x01) stream.onData = noop;
      };
      return Promise.resolve(stream); // streams are usable at once (no connect ack in Wisp)
    },
    close() {
      conn.close();
      return Promise.resolve();
    },
  };
}

function session(sys) {
  if (sys.kind === "raw") return Promise.resolve(rawSession(sys.host, sys.port));
  if (sys.kind === "wisp") return wispSession(sys.url, sys.host, sys.port);
  throw new Error(`unknown system ${sys.kind}`);
}

function header(mode, n) {
  const h = new Uint8Array(9);
  h[0] = mode;
  new DataView(h.buffer).setBigUint64(1, BigInt(n));
  return h;
}

const CHUNK = new Uint8Array(CHUNK_BYTES).fill(0x62);

/** Free-running upload: no acknowledgements, only the client's buffer bound; one ack at the end. */
async function uploadFree(s, total) {
  let acked = 0;
  let wake;
  const ack = new Uint8Array(8);
  let fill = 0;
  s.onData = (b) => {
    for (let i = 0; i < b.byteLength; i++) {
      ack[fill++] = b[i];
      if (fill === 8) {
        fill = 0;
        acked = Number(new DataView(ack.buffer).getBigUint64(0));
      }
    }
    const w = wake;
    wake = undefined;
    w?.();
  };
  s.send(header(MODE_UPLOAD, total));
  let sent = 0;
  while (sent < total) {
    await s.waitBelow(SEND_HIGH_WATER);
    const k = Math.min(CHUNK_BYTES, total - sent);
    s.send(k === CHUNK_BYTES ? CHUNK : CHUNK.subarray(0, k));
    sent += k;
  }
  while (acked < total) await new Promise((r) => wake = r);
}

async function upload(s, total) {
  let acked = 0;
  let wake;
  const ack = new Uint8Array(8);
  let fill = 0;
  s.onData = (b) => {
    for (let i = 0; i < b.byteLength; i++) {
      ack[fill++] = b[i];
      if (fill === 8) {
        fill = 0;
        acked = Number(new DataView(ack.buffer).getBigUint64(0));
      }
    }
    const w = wake;
    wake = undefined;
    w?.();
  };
  await s.send(header(MODE_SINK, total));
  let sent = 0;
  while (sent < total) {
    while (sent - acked >= UPLOAD_WINDOW) await new Promise((r) => wake = r);
    const k = Math.min(CHUNK_BYTES, total - sent);
    await s.send(k === CHUNK_BYTES ? CHUNK : CHUNK.subarray(0, k));
    sent += k;
  }
  while (acked < total) await new Promise((r) => wake = r);
}

async function download(s, total) {
  let got = 0;
  let done;
  const finished = new Promise((r) => done = r);
  s.onData = (b) => {
    got += b.byteLength;
    if (got >= total) done();
  };
  await s.send(header(MODE_DOWNLOAD, total));
  await finished;
}

function roundTrip(s, msg, expect = msg.byteLength) {
  return new Promise((resolve) => {
    let got = 0;
    s.onData = (b) => {
      got += b.byteLength;
      if (got >= expect) resolve();
    };
    void s.send(msg);
  });
}

function latencies(samples) {
  const a = Float64Array.from(samples).sort();
  const at = (p) => a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))] * 1000 : NaN;
  return { p50Us: at(0.5), p99Us: at(0.99) };
}

async function throughput(
  sys,
  dir,
  bytes,
  nStreams,
  warmup = Math.min(bytes, 16 * 1024 * 1024),
  free = false,
) {
  const run = async (total) => {
    const sess = await session(sys);
    const streams = await Promise.all(Array.from({ length: nStreams }, () => sess.open()));
    const per = Math.floor(total / nStreams / CHUNK_BYTES) * CHUNK_BYTES;
    const t0 = performance.now();
    await Promise.all(
      streams.map((s) =>
        dir === "down" ? download(s, per) : free ? uploadFree(s, per) : upload(s, per)
      ),
    );
    const secs = (performance.now() - t0) / 1000;
    await Promise.all(streams.map((s) => s.close()));
    await sess.close();
    return secs;
  };
  if (warmup > 0) await run(warmup);
  const secs = await run(bytes);
  return { rate: bytes / (1024 * 1024) / secs, n: bytes, secs, errors: 0 };
}

async function rtt(sys, size, count) {
  const sess = await session(sys);
  const s = await sess.open();
  await s.send(Uint8Array.of(MODE_ECHO));
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

async function connectLatency(sys, count) {
  const sess = await session(sys);
  const samples = [];
  const warm = Math.min(50, count);
  const t0 = performance.now();
  for (let i = 0; i < warm + count; i++) {
    const a = performance.now();
    const s = await sess.open();
    await roundTrip(s, PROBE, 1);
    const ms = performance.now() - a;
    await s.close();
    if (i >= warm) samples.push(ms);
  }
  const secs = (performance.now() - t0) / 1000;
  await sess.close();
  return { ...latencies(samples), n: count, secs, errors: 0 };
}

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
  await Promise.all(closes);
  const elapsed = (performance.now() - t0) / 1000;
  await sess.close();
  return { rate: ops / elapsed, ...latencies(samples), n: ops, secs: elapsed, errors };
}

async function sessions(sys, nSessions, size, secs) {
  const all = await Promise.all(Array.from({ length: nSessions }, async () => {
    const sess = await session(sys);
    const s = await sess.open();
    await s.send(Uint8Array.of(MODE_ECHO));
    return { sess, s };
  }));
  const msg = new Uint8Array(size).fill(0x64);
  const samples = [];
  let ops = 0;
  await Promise.all(all.map(async ({ s }) => {
    for (let i = 0; i < 5; i++) await roundTrip(s, msg);
  }));
  const t0 = performance.now();
  const end = t0 + secs * 1000;
  await Promise.all(all.map(async ({ s }) => {
    while (performance.now() < end) {
      const a = performance.now();
      await roundTrip(s, msg);
      samples.push(performance.now() - a);
      ops++;
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  await Promise.all(all.map(async ({ sess, s }) => {
    await s.close();
    await sess.close();
  }));
  return { rate: ops / elapsed, ...latencies(samples), n: ops, secs: elapsed, errors: 0 };
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

async function idle(sys, n) {
  const sess = await session(sys);
  for (let i = 0; i < 50; i++) {
    const s = await sess.open();
    await roundTrip(s, PROBE, 1);
    await s.close();
  }
  await new Promise((r) => setTimeout(r, 500));
  say({ phase: "base" });
  await lines.next();
  const t0 = performance.now();
  const open = [];
  for (let i = 0; i < n; i++) {
    const s = await sess.open();
    open.push(s);
    // Wisp has no connect ack: prove each stream is dialled with one echoed byte.
    await roundTrip(s, PROBE, 1);
  }
  const secs = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  say({ phase: "loaded" });
  await lines.next();
  await Promise.all(open.map((s) => s.close()));
  await sess.close();
  return { n: open.length, secs, errors: 0 };
}

function runScenario(cfg) {
  const sc = cfg.scenario;
  switch (sc.name) {
    case "up":
    case "down":
      return throughput(cfg.system, sc.name, sc.bytes, sc.streams ?? 1, sc.warmup, sc.free);
    case "rtt":
      return rtt(cfg.system, sc.size, sc.count);
    case "connect_latency":
      return connectLatency(cfg.system, sc.count);
    case "connect_rate":
      return connectRate(cfg.system, sc.secs, sc.concurrency);
    case "sessions":
      return sessions(cfg.system, sc.sessions, sc.size, sc.secs);
    case "idle":
      return idle(cfg.system, sc.sockets);
  }
  throw new Error(`unknown scenario ${sc.name}`);
}

try {
  const result = await runScenario(JSON.parse(process.argv[2] ?? "{}"));
  say({ result });
  process.exit(0);
} catch (e) {
  say({ error: String(e?.stack ?? e) });
  process.exit(1);
}

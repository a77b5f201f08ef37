/**
 * The Deno load generator: runs one scenario against one system and prints one JSON line
 * (`ScenarioResult`) on stdout. Run by `run.ts` in its own process, never inside a server.
 *
 * Systems: `raw` (TCP straight to the upstream peer), `wasmnet` (one WebSocket, many sockets,
 * binary or JSON framing, spoken directly on the wire), `ws1` (one WebSocket per socket with
 * raw binary messages: websockify, and the direct WebSocket ceiling of `upstream.ts`).
 *
 * Usage: `deno run -A bench/driver.ts '<DriverConfig JSON>'`
 *
 * @module
 */
import { CHUNK_BYTES, MODE_DOWNLOAD, MODE_ECHO, MODE_SINK, UPLOAD_WINDOW } from "./_wire.ts";

/** Which system the driver talks to. */
export type SystemConfig =
  | { kind: "raw"; host: string; port: number }
  | { kind: "wasmnet"; url: string; framing: "binary" | "json"; host: string; port: number }
  | { kind: "ws1"; url: string };

/** Scenario names and their parameters. */
export type ScenarioConfig =
  | { name: "up" | "down"; bytes: number; streams: number; warmup?: number }
  | { name: "rtt"; size: number; count: number }
  | { name: "connect_latency"; count: number }
  | { name: "connect_rate"; secs: number; concurrency: number }
  | { name: "sessions"; sessions: number; size: number; secs: number }
  | { name: "idle"; sockets: number };

/** The driver's command line (one JSON argument). */
export interface DriverConfig {
  system: SystemConfig;
  scenario: ScenarioConfig;
}

/** What the driver prints. */
export interface ScenarioResult {
  /** MiB/s for up/down; round trips/s for sessions; ops/s for connect_rate. */
  rate?: number;
  p50Us?: number;
  p99Us?: number;
  /** Operations measured. */
  n: number;
  secs: number;
  errors: number;
  /** Why the run failed (`loadgen_node.mjs`: the server's `error` message for an upload). */
  failure?: string;
  /** What the client spoke (`driver_wisp.mjs`: `Wisp v2`, or `Wisp v1` after a fallback). */
  protocol?: string;
}

interface Stream {
  /** Called with every received chunk (a view valid only during the call). */
  onData: (bytes: Uint8Array) => void;
  /** Turns a payload into what `sendPrepared` sends (built once, sent many times). */
  prepare(bytes: Uint8Array): unknown;
  sendPrepared(prepared: unknown): Promise<void> | void;
  send(bytes: Uint8Array): Promise<void> | void;
  /** Asks to close; resolves when the close is complete (`closed`, close event). */
  close(): Promise<void>;
}

interface Session {
  open(): Promise<Stream>;
  close(): Promise<void>;
}

const noop = (): void => {};

// ---------------------------------------------------------------------------------------------
// raw TCP

function rawSession(host: string, port: number): Session {
  return {
    async open(): Promise<Stream> {
      const conn = await Deno.connect({ hostname: host, port });
      conn.setNoDelay(true);
      let closed = false;
      const writeAll = async (b: Uint8Array): Promise<void> => {
        let off = 0;
        while (off < b.byteLength) off += await conn.write(off === 0 ? b : b.subarray(off));
      };
      const stream: Stream = {
        onData: noop,
        prepare: (b) => b,
        sendPrepared: (p) => writeAll(p as Uint8Array),
        send: writeAll,
        close(): Promise<void> {
          if (!closed) {
            closed = true;
            conn.close();
          }
          return Promise.resolve();
        },
      };
      void (async () => {
        const buf = new Uint8Array(256 * 1024);
        try {
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) break;
            stream.onData(buf.subarray(0, n));
          }
        } catch {
          // closed by us
        }
      })();
      return stream;
    },
    close: () => Promise.resolve(),
  };
}

// ---------------------------------------------------------------------------------------------
// one WebSocket per socket (websockify)

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = (e) => reject(new Error(`WebSocket error: ${(e as ErrorEvent).message ?? e}`));
  });
}

function ws1Session(url: string): Session {
  return {
    async open(): Promise<Stream> {
      const ws = new WebSocket(url, ["binary"]);
      ws.binaryType = "arraybuffer";
      const closedP = new Promise<void>((resolve) => ws.addEventListener("close", () => resolve()));
      await opened(ws);
      const stream: Stream = {
        onData: noop,
        prepare: (b) => b,
        sendPrepared: (p) => ws.send(p as Uint8Array),
        send: (b) => ws.send(b),
        close(): Promise<void> {
          ws.close();
          return closedP;
        },
      };
      ws.onmessage = (e: MessageEvent<ArrayBuffer>) => stream.onData(new Uint8Array(e.data));
      return stream;
    },
    close: () => Promise.resolve(),
  };
}

// ---------------------------------------------------------------------------------------------
// wasmnet (the wire protocol, spoken directly)

const utf8 = new TextEncoder();

interface WasmnetStreamState {
  stream: Stream;
  connected: (() => void) | undefined;
  failed: ((e: Error) => void) | undefined;
  closed: () => void;
}

function frame(type: number, id: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + payload.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, type);
  dv.setUint32(5, id); // ids stay below 2^32 here
  out.set(payload, 9);
  return out;
}

async function wasmnetSession(
  url: string,
  framing: "binary" | "json",
  host: string,
  port: number,
): Promise<Session> {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const wsClosed = new Promise<void>((resolve) => ws.addEventListener("close", () => resolve()));
  await opened(ws);
  const streams = new Map<number, WasmnetStreamState>();
  let nextId = 1;
  const binary = framing === "binary";
  const fail = (id: number, msg: string): void => {
    const s = streams.get(id);
    if (s?.failed) s.failed(new Error(msg));
    else if (id === 0 || !s) throw new Error(`wasmnet error id ${id}: ${msg}`);
    else {
      streams.delete(id);
      s.closed();
    }
  };
  ws.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
    if (typeof e.data !== "string") {
      const u8 = new Uint8Array(e.data);
      const type = u8[0];
      const id = new DataView(e.data).getUint32(5);
      if (type === 0x82) streams.get(id)?.stream.onData(u8.subarray(9));
      else if (type === 0x81) {
        const s = streams.get(id);
        s?.connected?.();
      } else if (type === 0x85) {
        const s = streams.get(id);
        streams.delete(id);
        s?.closed();
      } else if (type === 0x86 || type === 0x87) {
        fail(id, new TextDecoder().decode(u8.subarray(9)));
      }
      return;
    }
    const ev = JSON.parse(e.data) as { ev: string; id: number; data?: string; msg?: string };
    if (ev.ev === "data") {
      // deno-lint-ignore no-explicit-any
      streams.get(ev.id)?.stream.onData((Uint8Array as any).fromBase64(ev.data ?? ""));
    } else if (ev.ev === "connected") streams.get(ev.id)?.connected?.();
    else if (ev.ev === "closed") {
      const s = streams.get(ev.id);
      streams.delete(ev.id);
      s?.closed();
    } else if (ev.ev === "error" || ev.ev === "denied") fail(ev.id, ev.msg ?? "");
  };
  const connectFrame = (id: number): string | Uint8Array =>
    binary
      ? frame(
        0x01,
        id,
        (() => {
          const a = utf8.encode(host);
          const p = new Uint8Array(2 + a.byteLength);
          new DataView(p.buffer).setUint16(0, port);
          p.set(a, 2);
          return p;
        })(),
      )
      : JSON.stringify({ op: "connect", id, addr: host, port });
  return {
    open(): Promise<Stream> {
      const id = nextId++;
      const prepare = (b: Uint8Array): string | Uint8Array =>
        binary
          ? frame(0x04, id, b)
          // deno-lint-ignore no-explicit-any
          : `{"op":"send","id":${id},"data":"${(b as any).toBase64()}"}`;
      let closedResolve = noop;
      const closedP = new Promise<void>((r) => closedResolve = r);
      let closeSent = false;
      const stream: Stream = {
        onData: noop,
        prepare,
        sendPrepared: (p) => ws.send(p as string | Uint8Array),
        send: (b) => ws.send(prepare(b)),
        close(): Promise<void> {
          if (!closeSent) {
            closeSent = true;
            ws.send(binary ? frame(0x05, id, new Uint8Array(0)) : `{"op":"close","id":${id}}`);
          }
          return closedP;
        },
      };
      return new Promise<Stream>((resolve, reject) => {
        const state: WasmnetStreamState = {
          stream,
          connected: () => {
            state.connected = undefined;
            state.failed = undefined;
            resolve(stream);
          },
          failed: (e) => {
            streams.delete(id);
            reject(e);
          },
          closed: closedResolve,
        };
        streams.set(id, state);
        ws.send(connectFrame(id));
      });
    },
    close(): Promise<void> {
      ws.close();
      return wsClosed;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// scenarios

async function session(sys: SystemConfig): Promise<Session> {
  switch (sys.kind) {
    case "raw":
      return rawSession(sys.host, sys.port);
    case "ws1":
      return ws1Session(sys.url);
    case "wasmnet":
      return await wasmnetSession(sys.url, sys.framing, sys.host, sys.port);
  }
}

function header(mode: number, n: number): Uint8Array {
  const h = new Uint8Array(9);
  h[0] = mode;
  new DataView(h.buffer).setBigUint64(1, BigInt(n));
  return h;
}

const CHUNK = new Uint8Array(CHUNK_BYTES).fill(0x62);

async function upload(s: Stream, total: number): Promise<void> {
  let acked = 0;
  let wake: (() => void) | undefined;
  const ack = new Uint8Array(8);
  let fill = 0;
  s.onData = (b) => {
    for (let i = 0; i < b.byteLength; i++) {
      ack[fill++] = b[i] ?? 0;
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
  const prepared = s.prepare(CHUNK);
  let sent = 0;
  while (sent < total) {
    while (sent - acked >= UPLOAD_WINDOW) await new Promise<void>((r) => wake = r);
    const k = Math.min(CHUNK_BYTES, total - sent);
    if (k === CHUNK_BYTES) await s.sendPrepared(prepared);
    else await s.send(CHUNK.subarray(0, k));
    sent += k;
  }
  while (acked < total) await new Promise<void>((r) => wake = r);
}

async function download(s: Stream, total: number): Promise<void> {
  let got = 0;
  let done = noop;
  const finished = new Promise<void>((r) => done = r);
  s.onData = (b) => {
    got += b.byteLength;
    if (got >= total) done();
  };
  await s.send(header(MODE_DOWNLOAD, total));
  await finished;
}

/** Sends `msg` and resolves when `expect` bytes came back (echo mode). */
function roundTrip(s: Stream, msg: Uint8Array, expect = msg.byteLength): Promise<void> {
  return new Promise<void>((resolve) => {
    let got = 0;
    s.onData = (b) => {
      got += b.byteLength;
      if (got >= expect) resolve();
    };
    void s.send(msg);
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

function latencies(samples: number[]): { p50Us: number; p99Us: number } {
  const a = Float64Array.from(samples).sort();
  return { p50Us: percentile(a, 0.5) * 1000, p99Us: percentile(a, 0.99) * 1000 };
}

async function throughput(
  sys: SystemConfig,
  dir: "up" | "down",
  bytes: number,
  nStreams: number,
  warmup = Math.min(bytes, 16 * 1024 * 1024),
): Promise<ScenarioResult> {
  const run = async (total: number): Promise<number> => {
    const sess = await session(sys);
    const streams = await Promise.all(Array.from({ length: nStreams }, () => sess.open()));
    const per = Math.floor(total / nStreams / CHUNK_BYTES) * CHUNK_BYTES;
    const t0 = performance.now();
    await Promise.all(streams.map((s) => dir === "up" ? upload(s, per) : download(s, per)));
    const secs = (performance.now() - t0) / 1000;
    await Promise.all(streams.map((s) => s.close()));
    await sess.close();
    return secs;
  };
  if (warmup > 0) await run(warmup); // warm-up (JIT, buffers), not measured
  const secs = await run(bytes);
  return { rate: bytes / (1024 * 1024) / secs, n: bytes, secs, errors: 0 };
}

async function rtt(sys: SystemConfig, size: number, count: number): Promise<ScenarioResult> {
  const sess = await session(sys);
  const s = await sess.open();
  await s.send(Uint8Array.of(MODE_ECHO));
  const msg = new Uint8Array(size).fill(0x63);
  const samples: number[] = [];
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

async function connectLatency(sys: SystemConfig, count: number): Promise<ScenarioResult> {
  const sess = await session(sys);
  const samples: number[] = [];
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

async function connectRate(
  sys: SystemConfig,
  secs: number,
  concurrency: number,
): Promise<ScenarioResult> {
  const sess = await session(sys);
  for (let i = 0; i < 20; i++) { // warm-up
    const s = await sess.open();
    await roundTrip(s, PROBE, 1);
    await s.close();
  }
  let ops = 0;
  let errors = 0;
  const closes: Promise<void>[] = [];
  const samples: number[] = [];
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
  await Promise.all(closes); // a connect+close cycle ends when the close completed
  const elapsed = (performance.now() - t0) / 1000;
  await sess.close();
  return { rate: ops / elapsed, ...latencies(samples), n: ops, secs: elapsed, errors };
}

async function sessions(
  sys: SystemConfig,
  nSessions: number,
  size: number,
  secs: number,
): Promise<ScenarioResult> {
  const all = await Promise.all(Array.from({ length: nSessions }, async () => {
    const sess = await session(sys);
    const s = await sess.open();
    await s.send(Uint8Array.of(MODE_ECHO));
    return { sess, s };
  }));
  const msg = new Uint8Array(size).fill(0x64);
  const samples: number[] = [];
  let ops = 0;
  // warm-up: a few round trips each
  await Promise.all(all.map(async ({ s }) => {
    for (let i = 0; i < 5; i++) await roundTrip(s, msg);
  }));
  const t0 = performance.now();
  const end = t0 + secs * 1000;
  let errors = 0;
  await Promise.all(all.map(async ({ s }) => {
    while (performance.now() < end) {
      const a = performance.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ok = await Promise.race([
        roundTrip(s, msg).then(() => true),
        new Promise<false>((r) => timer = setTimeout(() => r(false), 10_000)),
      ]);
      clearTimeout(timer);
      if (!ok) {
        errors++;
        break;
      }
      samples.push(performance.now() - a);
      ops++;
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  if (errors) return { rate: ops / elapsed, ...latencies(samples), n: ops, secs: elapsed, errors };
  await Promise.all(all.map(async ({ sess, s }) => {
    await s.close();
    await sess.close();
  }));
  return { rate: ops / elapsed, ...latencies(samples), n: ops, secs: elapsed, errors: 0 };
}

const stdinLines = (async function* (): AsyncGenerator<string> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of Deno.stdin.readable) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
})();

async function say(obj: unknown): Promise<void> {
  await Deno.stdout.write(utf8.encode(JSON.stringify(obj) + "\n"));
}

/** Opens `n` idle sockets on one session; reports `base` and `loaded`, each after a stdin line. */
async function idle(sys: SystemConfig, n: number): Promise<ScenarioResult> {
  const sess = await session(sys);
  for (let i = 0; i < 50; i++) { // warm-up: the server's code paths and buffers
    const s = await sess.open();
    await roundTrip(s, PROBE, 1);
    await s.close();
  }
  await new Promise((r) => setTimeout(r, 500));
  await say({ phase: "base" });
  await stdinLines.next();
  const t0 = performance.now();
  const open: Stream[] = [];
  for (let i = 0; i < n; i += 50) {
    open.push(
      ...await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => sess.open())),
    );
  }
  const secs = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  await say({ phase: "loaded" });
  await stdinLines.next();
  await Promise.all(open.map((s) => s.close()));
  await sess.close();
  return { n: open.length, secs, errors: 0 };
}

async function runScenario(cfg: DriverConfig): Promise<ScenarioResult> {
  const sc = cfg.scenario;
  switch (sc.name) {
    case "up":
    case "down":
      return await throughput(cfg.system, sc.name, sc.bytes, sc.streams, sc.warmup);
    case "rtt":
      return await rtt(cfg.system, sc.size, sc.count);
    case "connect_latency":
      return await connectLatency(cfg.system, sc.count);
    case "connect_rate":
      return await connectRate(cfg.system, sc.secs, sc.concurrency);
    case "sessions":
      return await sessions(cfg.system, sc.sessions, sc.size, sc.secs);
    case "idle":
      return await idle(cfg.system, sc.sockets);
  }
}

if (import.meta.main) {
  const cfg = JSON.parse(Deno.args[0] ?? "{}") as DriverConfig;
  try {
    const result = await runScenario(cfg);
    await say({ result });
    Deno.exit(0);
  } catch (e) {
    await say({ error: String((e as Error)?.stack ?? e) });
    Deno.exit(1);
  }
}

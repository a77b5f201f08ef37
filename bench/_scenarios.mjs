// deno-lint-ignore-file explicit-function-return-type
/**
 * The benchmark scenarios of the Node load generators (`loadgen_node.mjs`, `driver_wisp.mjs`),
 * free of any protocol: timing loops, warm-ups, upload pacing, round-trip sampling, connect rate
 * and latency percentiles. A driver supplies only how to reach its system, as a {@link Connect}
 * function, and calls {@link main}. Plain Node ES module (Node 20, no dependencies); the upstream
 * modes repeat `_wire.ts`, which Node cannot import.
 *
 * The interface a driver implements (JSDoc types, checked by nothing but the runs):
 *
 * - `Connect = (system) => Promise<Session>`: one session with the system of the `DriverConfig`
 *   (a WebSocket, or nothing for raw TCP).
 * - `Session = { open(): Promise<Stream>, close(): Promise<void>, isOpen?(): boolean }`: `open`
 *   dials the upstream peer through the session and resolves once the stream may send (rejects
 *   when the dial fails); `close` ends the session after its streams were closed; `isOpen`
 *   (optional) says whether the session's connection is still open (`idle_sessions` checks it).
 * - `Stream`:
 *   - `onData(bytes: Uint8Array)`, `onEnd(failure?: string)`: set by the scenario; the driver calls
 *     `onData` for every received payload and may call `onEnd` when the stream ended without
 *     being asked to (`failure`: why; `undefined`: the server closed it cleanly). A driver that
 *     never calls `onEnd` makes a failed run hang until `run.ts` times it out.
 *   - `prepare?(bytes: Uint8Array): unknown`: optional; encodes a payload for `send` (a wasmnet
 *     frame, a JSON `send` op). Throughput loops prepare the 64 KiB chunk once; round trips
 *     prepare every message. Without it `send` gets the bytes.
 *   - `send(prepared): void | Promise<void>`: queues a payload. A returned promise resolves when
 *     the transport takes more; the acknowledged upload, `download`, `rtt` and `sessions` await
 *     it, the free-running upload and round trips do not.
 *   - `waitBelow(limit: number): Promise<void>`: resolves once the client's own send buffers
 *     hold less than `limit` bytes (only the free-running upload calls it).
 *   - `close(): Promise<void>`: closes the stream; resolves when the close completed (wasmnet:
 *     the server's `closed`; a protocol without an acknowledgement resolves at once).
 *
 * Every scenario resolves with a `ScenarioResult` of `driver.ts` (rates per second, latencies in
 * µs, `secs` in seconds); {@link main} prints it as one line `{"result": …}`, or `{"error": …}`.
 *
 * @module
 */
import process from "node:process";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";

/** First byte: echo mode. */
export const MODE_ECHO = 0x45;
/** First byte: sink mode (u64 BE total follows; acks the running total as u64 BE). */
export const MODE_SINK = 0x53;
/** First byte: upload mode (u64 BE total follows; one u64 BE answer when all arrived). */
export const MODE_UPLOAD = 0x55;
/** First byte: download mode (u64 BE byte count follows). */
export const MODE_DOWNLOAD = 0x44;
/** Message / write size of the throughput scenarios. */
export const CHUNK_BYTES = 64 * 1024;
/** Acknowledged upload: most unacknowledged bytes in flight per stream. */
export const UPLOAD_WINDOW = 4 * 1024 * 1024;
/** Free-running upload: send while the client's own buffers hold less than this. */
export const SEND_HIGH_WATER = 4 * 1024 * 1024;
/** Does nothing (the default `onData` / `onEnd` of a driver's stream). */
export const noop = () => {};

const CHUNK = new Uint8Array(CHUNK_BYTES).fill(0x62);
/** Echo mode and one byte: the connect scenarios' proof that a stream reached the peer. */
const PROBE = Uint8Array.of(MODE_ECHO, 0x78);

/** Prints one JSON line on stdout (what `run.ts` reads). */
export const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

/**
 * A wake-up: every pending `wait()` resolves at the next `wake()` (several streams of one
 * session may wait on their session's send completions at once).
 */
export function wakeup() {
  let pending = [];
  return {
    wake() {
      const ws = pending;
      pending = [];
      for (const w of ws) w();
    },
    wait: () => new Promise((r) => pending.push(r)),
  };
}

const prep = (s, bytes) => s.prepare ? s.prepare(bytes) : bytes;

/** The 9-byte mode header: the mode byte, then `n` as u64 BE. */
function header(mode, n) {
  const h = new Uint8Array(9);
  h[0] = mode;
  new DataView(h.buffer).setBigUint64(1, BigInt(n));
  return h;
}

/** Reads the upstream's u64 BE acknowledgements from any split of the bytes; `onAck(total)`. */
function ackReader(onAck) {
  const ack = new Uint8Array(8);
  const view = new DataView(ack.buffer);
  let fill = 0;
  return (b) => {
    for (let i = 0; i < b.byteLength; i++) {
      ack[fill++] = b[i];
      if (fill === 8) {
        fill = 0;
        onAck(Number(view.getBigUint64(0)));
      }
    }
  };
}

/**
 * Uploads `total` bytes in 64 KiB chunks. Free-running (`free`, upstream mode `U`): sends while
 * `waitBelow(SEND_HIGH_WATER)` lets it, nothing acknowledged until the end. Acknowledged (mode
 * `S`): at most `UPLOAD_WINDOW` bytes unacknowledged, every send awaited. Resolves when the
 * upstream acknowledged `total`, with `undefined`, or with the failure that ended the stream.
 */
async function upload(s, total, free) {
  let acked = 0;
  let failure;
  const w = wakeup();
  s.onData = ackReader((n) => {
    acked = n;
    w.wake();
  });
  s.onEnd = (why) => {
    failure = why ?? "socket closed by the server";
    w.wake();
  };
  const first = s.send(prep(s, header(free ? MODE_UPLOAD : MODE_SINK, total)));
  if (!free) await first;
  const prepared = prep(s, CHUNK);
  let sent = 0;
  while (sent < total && failure === undefined) {
    if (free) await s.waitBelow(SEND_HIGH_WATER);
    else while (sent - acked >= UPLOAD_WINDOW && failure === undefined) await w.wait();
    if (failure !== undefined) break;
    const k = Math.min(CHUNK_BYTES, total - sent);
    const pending = s.send(k === CHUNK_BYTES ? prepared : prep(s, CHUNK.subarray(0, k)));
    if (!free) await pending;
    sent += k;
  }
  while (acked < total && failure === undefined) await w.wait();
  return failure;
}

/** Has the upstream write `total` bytes; resolves when they arrived (`undefined`) or the failure. */
async function download(s, total) {
  let got = 0;
  let done;
  const finished = new Promise((r) => done = r);
  s.onData = (b) => {
    got += b.byteLength;
    if (got >= total) done();
  };
  s.onEnd = (why) => done(why ?? "closed before the last byte");
  await s.send(prep(s, header(MODE_DOWNLOAD, total)));
  return await finished;
}

/** Sends `msg` and resolves once `expect` bytes came back; rejects if the stream ends first. */
function roundTrip(s, msg, expect = msg.byteLength) {
  return new Promise((resolve, reject) => {
    let got = 0;
    s.onData = (b) => {
      got += b.byteLength;
      if (got >= expect) resolve();
    };
    s.onEnd = (why) => reject(new Error(why ?? "closed during a round trip"));
    void s.send(prep(s, msg));
  });
}

/** p50 and p99 in µs of `samples` in ms (`NaN` without samples). */
function latencies(samples) {
  const a = Float64Array.from(samples).sort();
  const at = (p) => a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))] * 1000 : NaN;
  return { p50Us: at(0.5), p99Us: at(0.99) };
}

/**
 * `up`/`down`: `bytes` over `streams` streams of one session, timed from the first header to the
 * last byte (download) or acknowledgement (upload), after an unmeasured warm-up run of `warmup`
 * bytes (default: `bytes`, at most 16 MiB). A stream's failure makes the result
 * `{n: 0, errors: 1, failure}`; failed streams are not closed.
 */
async function throughput(
  connect,
  dir,
  bytes,
  streams,
  free,
  warmup = Math.min(bytes, 16 * 1024 * 1024),
) {
  const run = async (total) => {
    const sess = await connect();
    const all = await Promise.all(Array.from({ length: streams }, () => sess.open()));
    const per = Math.floor(total / streams / CHUNK_BYTES) * CHUNK_BYTES;
    const t0 = performance.now();
    const failures = await Promise.all(
      all.map((s) => dir === "up" ? upload(s, per, free) : download(s, per)),
    );
    const secs = (performance.now() - t0) / 1000;
    await Promise.all(all.map((s, i) => failures[i] === undefined ? s.close() : undefined));
    await sess.close();
    return { secs, failure: failures.find((f) => f !== undefined) };
  };
  if (warmup > 0) {
    const w = await run(warmup); // JIT, buffers; not measured
    if (w.failure !== undefined) return { n: 0, secs: w.secs, errors: 1, failure: w.failure };
  }
  const { secs, failure } = await run(bytes);
  if (failure !== undefined) return { n: 0, secs, errors: 1, failure };
  return { rate: bytes / (1024 * 1024) / secs, n: bytes, secs, errors: 0 };
}

/** `rtt`: `count` sequential echoes of `size` bytes on one stream, after min(500, count) unmeasured. */
async function rtt(connect, size, count) {
  const sess = await connect();
  const s = await sess.open();
  await s.send(prep(s, Uint8Array.of(MODE_ECHO)));
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

/** Opens a stream, proves it with one echoed byte and closes it; `n` times, one after another. */
async function warmUp(sess, n) {
  for (let i = 0; i < n; i++) {
    const s = await sess.open();
    await roundTrip(s, PROBE, 1);
    await s.close();
  }
}

/**
 * `connect_latency`: `count` sequential open + one echoed byte, timed (the close is not), after
 * min(50, count) unmeasured.
 */
async function connectLatency(connect, count) {
  const sess = await connect();
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

/**
 * `connect_rate`: `concurrency` loops on one session for `secs` s of open, one echoed byte,
 * close; the run ends when every close completed. 20 unmeasured cycles first.
 */
async function connectRate(connect, secs, concurrency) {
  const sess = await connect();
  await warmUp(sess, 20);
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

/**
 * `sessions`: `nSessions` sessions with one echo stream each, round trips of `size` bytes on all
 * at once for `secs` s (5 unmeasured per stream first).
 */
async function sessions(connect, nSessions, size, secs) {
  const all = await Promise.all(Array.from({ length: nSessions }, async () => {
    const sess = await connect();
    const s = await sess.open();
    await s.send(prep(s, Uint8Array.of(MODE_ECHO)));
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

/**
 * `idle`, driven by `run.ts` over stdin/stdout: 50 warm-up streams, then `{"phase":"base"}` and
 * wait for a line; open `n` streams (each proven with one echoed byte, for protocols without a
 * connect acknowledgement), `{"phase":"loaded"}`, wait for a line; close all. `secs`: the opening.
 */
async function idle(connect, n) {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const sess = await connect();
  await warmUp(sess, 50);
  await new Promise((r) => setTimeout(r, 500));
  say({ phase: "base" });
  await lines.next();
  const t0 = performance.now();
  const open = [];
  for (let i = 0; i < n; i++) {
    const s = await sess.open();
    open.push(s);
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

/**
 * `idle_sessions`, driven by `run.ts` over stdin/stdout like `idle`: 100 sessions opened and
 * closed (warm-up), then `{"phase":"base"}` and wait for a line; open `n` sessions with no
 * streams, 100 at a time, wait 1 s, fail if the server closed any (`isOpen`), `{"phase":"loaded"}`,
 * wait for a line; close all. `secs`: the opening.
 */
async function idleSessions(connect, n) {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const batch = (k) => Promise.all(Array.from({ length: k }, () => connect()));
  await Promise.all((await batch(100)).map((s) => s.close()));
  await new Promise((r) => setTimeout(r, 500));
  say({ phase: "base" });
  await lines.next();
  const t0 = performance.now();
  const open = [];
  for (let i = 0; i < n; i += 100) open.push(...await batch(Math.min(100, n - i)));
  const secs = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  const lost = open.filter((s) => s.isOpen?.() === false).length;
  if (lost > 0) throw new Error(`the server closed ${lost} of ${n} idle sessions`);
  say({ phase: "loaded" });
  await lines.next();
  await Promise.all(open.map((s) => s.close()));
  return { n: open.length, secs, errors: 0 };
}

/** The scenarios by `DriverConfig.scenario.name`, each reading its fields from the config. */
const SCENARIOS = {
  up: (c, sc) => throughput(c, "up", sc.bytes, sc.streams ?? 1, sc.free === true, sc.warmup),
  down: (c, sc) => throughput(c, "down", sc.bytes, sc.streams ?? 1, false, sc.warmup),
  rtt: (c, sc) => rtt(c, sc.size, sc.count),
  connect_latency: (c, sc) => connectLatency(c, sc.count),
  connect_rate: (c, sc) => connectRate(c, sc.secs, sc.concurrency),
  sessions: (c, sc) => sessions(c, sc.sessions, sc.size, sc.secs),
  idle: (c, sc) => idle(c, sc.sockets),
  idle_sessions: (c, sc) => idleSessions(c, sc.sessions),
};

/**
 * Runs the scenario of the `DriverConfig` JSON in `process.argv[2]` against `connect(system)`,
 * prints `{"result": ScenarioResult}` (exit 0) or `{"error": "<stack>"}` (exit 1).
 *
 * @param connect `(system) => Promise<Session>`, see the module doc.
 * @param names the scenario names this driver accepts (others: `unknown scenario <name>`).
 * @param describe `() => object`: fields added to the result (what the driver learned about the
 *   system, e.g. `{protocol: "Wisp v2"}`); default none.
 */
export async function main(connect, names, describe = () => ({})) {
  try {
    const cfg = JSON.parse(process.argv[2] ?? "{}");
    const sc = cfg.scenario;
    const run = names.includes(sc.name) ? SCENARIOS[sc.name] : undefined;
    if (!run) throw new Error(`unknown scenario ${sc.name}`);
    const result = await run(() => connect(cfg.system), sc);
    say({ result: { ...result, ...describe() } });
    process.exit(0);
  } catch (e) {
    say({ error: String(e?.stack ?? e) });
    process.exit(1);
  }
}

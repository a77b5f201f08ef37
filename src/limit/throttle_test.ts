import assert from "node:assert/strict";
import { FakeClock } from "./fake_clock.ts";
import { DEFAULT_MAX_CHUNK_BYTES } from "./rate_limiter.ts";
import { throttle } from "./throttle.ts";
import { TokenBucket } from "./token_bucket.ts";

const KiB = 1024;
const EPS = 1e-6;

async function* fromChunks(chunks: Uint8Array[]): AsyncGenerator<Uint8Array, void, undefined> {
  for (const chunk of chunks) yield chunk;
}

/** Advances the fake clock in `stepMs` steps until `done()` holds (bounded). */
async function driveUntil(clock: FakeClock, done: () => boolean, stepMs = 1): Promise<void> {
  for (let i = 0; i < 100_000 && !done(); i++) await clock.advance(stepMs);
  assert(done(), "condition not reached");
}

function pattern(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => i % 251);
}

Deno.test("throttle splits large chunks into subarray views of the same buffer", async () => {
  const backing = pattern(50_000);
  const chunk = backing.subarray(1000, 41_000); // a view with a byteOffset
  const free = new TokenBucket({ rateBytesPerSec: Infinity, burstBytes: 0 });
  const pieces: Uint8Array[] = [];
  for await (const piece of throttle(fromChunks([chunk]), [free], { maxChunkBytes: 16 * KiB })) {
    pieces.push(piece);
  }
  assert.deepEqual(pieces.map((p) => p.byteLength), [16 * KiB, 16 * KiB, 40_000 - 32 * KiB]);
  let offset = 1000;
  for (const piece of pieces) {
    assert.equal(piece.buffer, backing.buffer, "no copy");
    assert.equal(piece.byteOffset, offset);
    offset += piece.byteLength;
  }
  assert.deepEqual(pieces.flatMap((p) => [...p]), [...chunk]);
});

Deno.test("throttle passes small chunks through unchanged and drops empty ones", async () => {
  const free = new TokenBucket({ rateBytesPerSec: Infinity, burstBytes: 0 });
  const a = pattern(10);
  const b = pattern(100_000);
  const out: Uint8Array[] = [];
  for await (const piece of throttle(fromChunks([a, new Uint8Array(0), b]), [free])) {
    out.push(piece);
  }
  assert.equal(out.length, 2, "unlimited chain: no splitting at all");
  assert.equal(out[0], a);
  assert.equal(out[1], b);
});

Deno.test("throttle's default piece is the smallest burst, capped at 16 KiB", async () => {
  const clock = new FakeClock();
  const small = new TokenBucket({ rateBytesPerSec: 1e9, burstBytes: 5000, clock });
  const big = new TokenBucket({ rateBytesPerSec: 1e9, burstBytes: 1e6, clock });
  const sizes = async (buckets: TokenBucket[]): Promise<number[]> => {
    const out: number[] = [];
    const it = throttle(fromChunks([pattern(40_000)]), buckets);
    const collect = (async (): Promise<void> => {
      for await (const p of it) out.push(p.byteLength);
    })();
    await driveUntil(clock, () => out.reduce((a, b) => a + b, 0) === 40_000);
    await collect;
    return out;
  };
  assert.deepEqual(await sizes([big]), [
    DEFAULT_MAX_CHUNK_BYTES,
    DEFAULT_MAX_CHUNK_BYTES,
    40_000 - 2 * DEFAULT_MAX_CHUNK_BYTES,
  ]);
  assert.deepEqual(await sizes([big, small]), [...Array(8)].map(() => 5000));
  assert.throws(() => throttle(fromChunks([]), [big], { maxChunkBytes: 0 }), RangeError);
  assert.throws(() => throttle(fromChunks([]), [big], { maxChunkBytes: 1.5 }), RangeError);
  assert.equal(clock.pending, 0);
});

Deno.test("throttle forwards at the bucket rate: 1 MB/s, 16 KiB burst", async () => {
  const clock = new FakeClock();
  const rate = 1_000_000;
  const burst = 16 * KiB;
  const bucket = new TokenBucket({ rateBytesPerSec: rate, burstBytes: burst, clock });
  const total = 300 * KiB;
  const log: { at: number; bytes: number }[] = [];
  const consume = (async (): Promise<void> => {
    const source = fromChunks([pattern(100 * KiB), pattern(7), pattern(200 * KiB - 7)]);
    for await (const piece of throttle(source, [bucket])) {
      assert(piece.byteLength <= burst);
      log.push({ at: clock.now(), bytes: piece.byteLength });
    }
  })();
  await driveUntil(clock, () => log.reduce((a, e) => a + e.bytes, 0) === total, 5);
  await consume;
  let sum = 0;
  for (const { at, bytes } of log) {
    sum += bytes;
    assert(sum <= burst + rate * at / 1000 + EPS, `${sum} bytes by ${at} ms`);
  }
  const last = log.at(-1)?.at ?? 0;
  const ideal = (total - burst) * 1000 / rate;
  assert(last >= ideal - EPS && last <= ideal + 5, `done at ${last} ms, ideal ${ideal} ms`);
  assert.equal(clock.pending, 0);
});

Deno.test("fairness: two throttles on one bucket alternate 16 KiB pieces", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rateBytesPerSec: 160 * KiB, burstBytes: 16 * KiB, clock });
  const order: string[] = [];
  const run = async (name: string, bytes: number): Promise<void> => {
    // Each source delivers one big chunk at once: a bulk transfer.
    for await (const _ of throttle(fromChunks([pattern(bytes)]), [bucket])) order.push(name);
  };
  const both = Promise.all([run("A", 320 * KiB), run("B", 160 * KiB)]);
  await driveUntil(clock, () => order.length === 30, 100);
  await both;
  // While both are active (B's 10 pieces), neither gets two turns in a row beyond the start.
  const firstTwenty = order.slice(0, 21);
  for (let i = 0; i < firstTwenty.length; i++) {
    const prefix = firstTwenty.slice(0, i + 1);
    const a = prefix.filter((x) => x === "A").length;
    const b = prefix.length - a;
    assert(Math.abs(a - b) <= 1, `unfair prefix ${prefix.join("")}`);
  }
  assert.equal(order.filter((x) => x === "B").length, 10);
  assert.deepEqual(order.slice(21), Array(9).fill("A"), "A continues alone after B is done");
  assert.equal(clock.pending, 0);
});

Deno.test("throttle: abort mid-wait rejects next(), closes the source, leaves no timer", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rateBytesPerSec: 1000, burstBytes: 100, clock });
  let sourceClosed = false;
  async function* source(): AsyncGenerator<Uint8Array, void, undefined> {
    try {
      yield pattern(1000);
    } finally {
      sourceClosed = true;
    }
  }
  const ac = new AbortController();
  const reason = new Error("session closed");
  const it = throttle(source(), [bucket], { signal: ac.signal });
  const first = await it.next();
  assert.equal(first.value?.byteLength, 100);
  const second = it.next();
  await clock.advance(50);
  assert.equal(clock.pending, 1);
  ac.abort(reason);
  await assert.rejects(second, (e: unknown) => e === reason);
  assert(sourceClosed);
  assert.equal(clock.pending, 0);
  assert.equal(bucket.waiting, 0);
  assert(Math.abs(bucket.tokens - 50) < EPS, "the aborted reservation was returned");
});

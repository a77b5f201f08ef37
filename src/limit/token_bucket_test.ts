import assert from "node:assert/strict";
import { FakeClock } from "./fake_clock.ts";
import { systemClock } from "./clock.ts";
import {
  DEFAULT_BURST_MS,
  mbpsToBytesPerSec,
  MIN_BURST_BYTES,
  TokenBucket,
} from "./token_bucket.ts";

const KiB = 1024;
const EPS = 1e-6;

/** Records when a promise settles (in fake ms) without awaiting it. */
function track(clock: FakeClock, p: Promise<void>): { at: number | undefined; error: unknown } {
  const state: { at: number | undefined; error: unknown } = { at: undefined, error: undefined };
  p.then(
    () => state.at = clock.now(),
    (error: unknown) => {
      state.at = clock.now();
      state.error = error;
    },
  );
  return state;
}

function bucket(clock: FakeClock, rateBytesPerSec = 1_000_000, burstBytes = 16 * KiB): TokenBucket {
  return new TokenBucket({ rateBytesPerSec, burstBytes, clock });
}

Deno.test("TokenBucket rejects invalid options and byte counts", async () => {
  const clock = new FakeClock();
  assert.throws(() => new TokenBucket({ rateBytesPerSec: 0, burstBytes: 1, clock }), RangeError);
  assert.throws(() => new TokenBucket({ rateBytesPerSec: NaN, burstBytes: 1, clock }), RangeError);
  assert.throws(() => new TokenBucket({ rateBytesPerSec: 1, burstBytes: 0, clock }), RangeError);
  assert.throws(
    () => new TokenBucket({ rateBytesPerSec: 1, burstBytes: Infinity, clock }),
    RangeError,
  );
  const b = bucket(clock);
  await b.take(-1).then(
    () => assert.fail("negative take must reject"),
    (e: unknown) => assert(e instanceof RangeError),
  );
  await assert.rejects(b.take(NaN), RangeError);
  assert.throws(() => b.refund(Infinity), RangeError);
  assert.deepEqual(clock.pending, 0);
});

Deno.test("mbpsToBytesPerSec and fromMbps use 10^6 bits/s of payload", () => {
  assert.deepEqual(mbpsToBytesPerSec(8), 1_000_000);
  assert.deepEqual(mbpsToBytesPerSec(1), 125_000);
  assert.deepEqual(mbpsToBytesPerSec(Infinity), Infinity);
  assert.throws(() => mbpsToBytesPerSec(0), RangeError);
  assert.throws(() => mbpsToBytesPerSec(-1), RangeError);

  const clock = new FakeClock();
  const fast = TokenBucket.fromMbps(80, { burstMs: 100, clock });
  assert.deepEqual(fast.rateBytesPerSec, 10_000_000);
  assert.deepEqual(fast.burstBytes, 1_000_000);
  const slow = TokenBucket.fromMbps(1, { clock });
  assert.deepEqual(slow.burstBytes, Math.max(MIN_BURST_BYTES, 125_000 * DEFAULT_BURST_MS / 1000));
  assert.deepEqual(slow.burstBytes, MIN_BURST_BYTES);
  assert(TokenBucket.fromMbps(Infinity).unlimited);
  assert.throws(() => TokenBucket.fromMbps(1, { burstMs: -1 }), RangeError);
});

Deno.test("TokenBucket starts full and admits a burst without timers", async () => {
  const clock = new FakeClock();
  const b = bucket(clock, 1000, 500);
  await b.take(300);
  await b.take(200);
  assert.deepEqual(b.tokens, 0);
  assert.deepEqual(clock.pending, 0);
  await clock.advance(100); // 100 bytes accrue
  assert(Math.abs(b.tokens - 100) < EPS);
  await b.take(100);
  assert.deepEqual(clock.pending, 0, "a covered take needs no timer");
});

Deno.test("TokenBucket refill is capped at the burst after idling", async () => {
  const clock = new FakeClock();
  const b = bucket(clock, 1000, 500);
  await b.take(500);
  await clock.advance(10_000);
  assert.deepEqual(b.tokens, 500, "never more than the burst");
});

Deno.test("1 MB/s bucket admits ~1 MB per simulated second after the burst", async () => {
  const clock = new FakeClock();
  const b = bucket(clock, 1_000_000, 16 * KiB);
  const stop = new AbortController();
  let admitted = 0;
  const consumer = (async (): Promise<void> => {
    for (;;) {
      await b.take(16 * KiB, stop.signal);
      admitted += 16 * KiB;
    }
  })().catch(() => {});
  for (let second = 1; second <= 3; second++) {
    await clock.advance(1000);
    const limit = 16 * KiB + 1_000_000 * second;
    assert(admitted <= limit, `${admitted} > ${limit} after ${second}s`);
    assert(admitted >= limit - 16 * KiB, `${admitted} too low after ${second}s`);
  }
  stop.abort();
  await consumer;
  assert.deepEqual(clock.pending, 0, "no timer after the last waiter aborted");
});

Deno.test("deficit: concurrent consumers never exceed rate*t + burst", async () => {
  const clock = new FakeClock();
  const rate = 100_000;
  const burst = 4000;
  const b = bucket(clock, rate, burst);
  const log: { at: number; bytes: number }[] = [];
  const sizes = [3000, 9000, 1, 4000, 12_345, 500, 4000, 7777];
  const consumer = async (offset: number): Promise<void> => {
    for (let i = 0; i < sizes.length; i++) {
      const bytes = sizes[(i + offset) % sizes.length] ?? 0;
      await b.take(bytes);
      log.push({ at: clock.now(), bytes });
    }
  };
  const both = Promise.all([consumer(0), consumer(3), consumer(5)]);
  // The balance goes negative while reservations are queued.
  await clock.flush();
  assert(b.tokens < 0, `expected a deficit, got ${b.tokens}`);
  for (let i = 0; i < 200 && clock.pending > 0; i++) await clock.advance(10);
  await both;
  const total = sizes.reduce((a, s) => a + s, 0) * 3;
  assert.deepEqual(log.reduce((a, e) => a + e.bytes, 0), total);
  let sum = 0;
  for (const { at, bytes } of log) {
    sum += bytes;
    assert(sum <= burst + rate * at / 1000 + EPS, `${sum} bytes admitted by ${at} ms`);
  }
  // Long-run rate is met, not undershot by much: the last byte leaves near (total - burst) / rate.
  const last = log.at(-1)?.at ?? 0;
  const ideal = (total - burst) * 1000 / rate;
  assert(last >= ideal - EPS && last <= ideal + 10, `finished at ${last} ms, ideal ${ideal} ms`);
  assert.deepEqual(clock.pending, 0);
});

Deno.test("waiters are served FIFO: a small take never overtakes a queued large one", async () => {
  const clock = new FakeClock();
  const b = bucket(clock, 1000, 1000);
  await b.take(1000);
  const order: string[] = [];
  const big = b.take(800).then(() => order.push("big"));
  await clock.advance(500);
  assert.equal(order.length, 0, "500 bytes accrued; the 800-byte head still waits");
  const small = b.take(10).then(() => order.push("small"));
  const mid = b.take(100).then(() => order.push("mid"));
  assert.deepEqual(b.waiting, 3, "the 500 accrued bytes do not let small takes barge");
  await clock.flush();
  assert.equal(order.length, 0);
  await clock.advance(300);
  assert.deepEqual(order, ["big"]);
  await clock.advance(10);
  assert.deepEqual(order, ["big", "small"]);
  await clock.advance(100);
  await Promise.all([big, small, mid]);
  assert.deepEqual(order, ["big", "small", "mid"]);
  assert.deepEqual(clock.pending, 0);
});

Deno.test("a take larger than the burst is admitted as a deficit", async () => {
  const clock = new FakeClock();
  const b = bucket(clock, 1000, 100);
  const state = track(clock, b.take(350));
  assert(Math.abs(b.tokens - -250) < EPS);
  await clock.advance(249);
  assert.deepEqual(state.at, undefined);
  await clock.advance(1);
  assert.deepEqual(state.at, 250, "waits for (350 - 100) bytes at 1000 B/s");
  assert.deepEqual(clock.pending, 0);
  assert(Math.abs(b.tokens) < EPS);
});

Deno.test("abort mid-wait rejects with the reason, returns the reservation, leaves no timer", async () => {
  const clock = new FakeClock();
  const b = bucket(clock, 1000, 100);
  await b.take(100);
  const ac = new AbortController();
  const reason = new Error("session closed");
  const state = track(clock, b.take(50, ac.signal));
  await clock.advance(20);
  assert.deepEqual(clock.pending, 1);
  ac.abort(reason);
  await clock.flush();
  assert.deepEqual(state.at, 20);
  assert.equal(state.error, reason);
  assert.deepEqual(clock.pending, 0, "timer cleared");
  assert.deepEqual(b.waiting, 0);
  assert(Math.abs(b.tokens - 20) < EPS, "the 20 bytes accrued during the wait stay");
});

Deno.test("abort of the head releases the next waiter as if the head never asked", async () => {
  const clock = new FakeClock();
  const b = bucket(clock, 1000, 100);
  await b.take(100);
  const ac = new AbortController();
  const head = track(clock, b.take(80, ac.signal));
  const next = track(clock, b.take(30));
  await clock.advance(40);
  ac.abort();
  await clock.flush();
  assert(head.error instanceof DOMException && head.error.name === "AbortError");
  assert.deepEqual(next.at, 40, "40 accrued bytes cover the 30-byte waiter at once");
  assert.deepEqual(clock.pending, 0);
});

Deno.test("abort of the head re-plans the timer for the next waiter", async () => {
  const clock = new FakeClock();
  const b = bucket(clock, 1000, 100);
  await b.take(100);
  const ac = new AbortController();
  const head = track(clock, b.take(80, ac.signal)); // would be due at 80 ms
  const next = track(clock, b.take(50));
  await clock.advance(10);
  ac.abort();
  await clock.advance(39);
  assert.equal(next.at, undefined);
  await clock.advance(1);
  assert(head.error instanceof DOMException);
  assert.equal(next.at, 50, "10 bytes accrued + 40 ms for the remaining 40 bytes");
  assert.equal(clock.pending, 0);
});

Deno.test("abort of a middle waiter shortens the wait of those behind it", async () => {
  const clock = new FakeClock();
  const b = bucket(clock, 1000, 100);
  await b.take(100);
  const ac = new AbortController();
  const first = track(clock, b.take(50));
  const middle = track(clock, b.take(500, ac.signal));
  const last = track(clock, b.take(50));
  await clock.advance(10);
  ac.abort("gone");
  await clock.advance(90);
  assert.deepEqual(first.at, 50);
  assert.deepEqual(middle.error, "gone");
  assert.deepEqual(last.at, 100, "served right after the first, not after 600 ms");
  assert.deepEqual(clock.pending, 0);
});

Deno.test("an already-aborted signal rejects at once and consumes nothing", async () => {
  const clock = new FakeClock();
  const b = bucket(clock, 1000, 100);
  const reason = new Error("already");
  const p = b.take(10, AbortSignal.abort(reason));
  await p.then(() => assert.fail("must reject"), (e: unknown) => assert.equal(e, reason));
  assert.deepEqual(b.tokens, 100);
  assert.deepEqual(clock.pending, 0);
});

Deno.test("refund returns admitted bytes, capped at the burst", async () => {
  const clock = new FakeClock();
  const b = bucket(clock, 1000, 100);
  await b.take(100);
  const waiter = track(clock, b.take(60));
  b.refund(60);
  await clock.flush();
  assert.deepEqual(waiter.at, 0, "a refund releases a waiter it pays for");
  b.refund(1000);
  assert.deepEqual(b.tokens, 100);
  assert.deepEqual(clock.pending, 0);
});

Deno.test("an Infinity-rate bucket is a no-op without timers", async () => {
  const clock = new FakeClock();
  const b = new TokenBucket({ rateBytesPerSec: Infinity, burstBytes: 0, clock });
  assert(b.unlimited);
  assert.deepEqual(b.burstBytes, Infinity);
  for (let i = 0; i < 100; i++) await b.take(1 << 20);
  await b.take(Number.MAX_SAFE_INTEGER);
  assert.deepEqual(b.tokens, Infinity);
  assert.deepEqual(b.waiting, 0);
  assert.deepEqual(clock.pending, 0);
  const reason = new Error("x");
  await b.take(1, AbortSignal.abort(reason)).then(
    () => assert.fail("must reject"),
    (e: unknown) => assert.equal(e, reason),
  );
});

Deno.test("systemClock: a real 100 kB/s bucket takes roughly 190 ms for 20 kB (loose bounds)", async () => {
  const b = new TokenBucket({ rateBytesPerSec: 100_000, burstBytes: 1000 });
  const start = performance.now();
  await Promise.all([
    (async (): Promise<void> => {
      for (let i = 0; i < 10; i++) await b.take(1000);
    })(),
    (async (): Promise<void> => {
      for (let i = 0; i < 10; i++) await b.take(1000);
    })(),
  ]);
  const elapsed = performance.now() - start;
  // Ideal: (20_000 - 1000) / 100_000 s = 190 ms. Never faster; slack for loaded machines.
  assert(elapsed >= 150, `too fast: ${elapsed} ms`);
  assert(elapsed < 5000, `far too slow: ${elapsed} ms`);
});

Deno.test("systemClock.sleep clears its timer on abort and rejects with the reason", async () => {
  const ac = new AbortController();
  const reason = new Error("stop");
  const p = systemClock.sleep(60_000, ac.signal);
  ac.abort(reason);
  await p.then(() => assert.fail("must reject"), (e: unknown) => assert.equal(e, reason));
  await systemClock.sleep(60_000, AbortSignal.abort(reason)).then(
    () => assert.fail("must reject"),
    (e: unknown) => assert.equal(e, reason),
  );
  const before = systemClock.now();
  await systemClock.sleep(5);
  assert(systemClock.now() >= before);
  // The op sanitizer fails this test if the 60 s timer were still pending.
});

import assert from "node:assert/strict";
import { FakeClock } from "./fake_clock.ts";
import { RateLimiter } from "./rate_limiter.ts";
import { TokenBucket } from "./token_bucket.ts";

const EPS = 1e-6;

Deno.test("RateLimiter: the server bucket caps the sum, session buckets cap each session", async () => {
  const clock = new FakeClock();
  const server = new TokenBucket({ rateBytesPerSec: 2000, burstBytes: 200, clock });
  const sessions = [1500, 1500, 300].map((rateBytesPerSec) =>
    new TokenBucket({ rateBytesPerSec, burstBytes: 200, clock })
  );
  const admitted = sessions.map(() => 0);
  const stop = new AbortController();
  const loops = sessions.map(async (session, i) => {
    const limiter = new RateLimiter([session, server]);
    for (;;) {
      await limiter.take(100, stop.signal);
      admitted[i] = (admitted[i] ?? 0) + 100;
    }
  }).map((p) => p.catch(() => {}));
  for (let second = 1; second <= 3; second++) {
    await clock.advance(1000);
    const total = admitted.reduce((a, b) => a + b, 0);
    assert(total <= 200 + 2000 * second + EPS, `server cap exceeded: ${total} after ${second}s`);
    assert(total >= 2000 * second - 200, `server underused: ${total} after ${second}s`);
    assert((admitted[2] ?? 0) <= 200 + 300 * second, `slow session exceeded its own rate`);
    assert((admitted[2] ?? 0) >= 300 * second - 100, `slow session starved`);
  }
  stop.abort();
  await Promise.all(loops);
  assert.equal(clock.pending, 0);
});

Deno.test("RateLimiter: abort while waiting on a later bucket refunds the earlier ones", async () => {
  const clock = new FakeClock();
  const session = new TokenBucket({ rateBytesPerSec: 1000, burstBytes: 100, clock });
  const server = new TokenBucket({ rateBytesPerSec: 1000, burstBytes: 100, clock });
  await server.take(100);
  const limiter = new RateLimiter([session, server]);
  const ac = new AbortController();
  const reason = new Error("closed");
  const p = limiter.take(80, ac.signal);
  await clock.flush();
  assert(Math.abs(session.tokens - 20) < EPS, "session admitted its 80 bytes");
  assert.equal(server.waiting, 1);
  ac.abort(reason);
  await assert.rejects(p, (e: unknown) => e === reason);
  assert.equal(session.tokens, 100, "refunded");
  assert.equal(server.waiting, 0);
  assert.equal(clock.pending, 0);
});

Deno.test("RateLimiter: onWait reports each take that waited, once, and not one that passed", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rateBytesPerSec: 1000, burstBytes: 100, clock });
  const waits: number[] = [];
  const limiter = new RateLimiter([bucket], { onWait: (seconds) => waits.push(seconds) });
  await limiter.take(100); // the bucket starts full
  assert.deepEqual(waits, []);
  const later = limiter.take(50); // 50 ms at 1000 B/s
  await clock.advance(50);
  await later;
  assert.equal(waits.length, 1);
  assert.ok((waits[0] ?? -1) >= 0);
  const stop = new AbortController();
  const aborted = limiter.take(500, stop.signal);
  stop.abort(new Error("stop"));
  await assert.rejects(aborted, /stop/);
  assert.equal(waits.length, 1, "an aborted wait is not reported");
});

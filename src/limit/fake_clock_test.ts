import assert from "node:assert/strict";
import { FakeClock } from "./fake_clock.ts";

Deno.test("FakeClock fires sleepers in deadline order, each at its own time", async () => {
  const clock = new FakeClock(1000);
  const fired: string[] = [];
  const at = (name: string, ms: number): Promise<void> =>
    clock.sleep(ms).then(() => {
      fired.push(`${name}@${clock.now()}`);
    });
  const all = Promise.all([at("c", 30), at("a", 10), at("b", 10), at("zero", 0)]);
  assert.equal(clock.pending, 4);
  await clock.advance(20);
  assert.deepEqual(fired, ["zero@1000", "a@1010", "b@1010"]);
  assert.equal(clock.now(), 1020);
  await clock.advance(10);
  await all;
  assert.deepEqual(fired, ["zero@1000", "a@1010", "b@1010", "c@1030"]);
  assert.equal(clock.pending, 0);
});

Deno.test("FakeClock fires sleeps started by woken code within the same advance", async () => {
  const clock = new FakeClock();
  const times: number[] = [];
  const loop = (async (): Promise<void> => {
    for (let i = 0; i < 5; i++) {
      await clock.sleep(7);
      times.push(clock.now());
    }
  })();
  await clock.advance(30);
  assert.deepEqual(times, [7, 14, 21, 28]);
  await clock.advance(10);
  await loop;
  assert.deepEqual(times, [7, 14, 21, 28, 35]);
});

Deno.test("FakeClock: an aborted sleep is removed and rejects with the reason", async () => {
  const clock = new FakeClock();
  const ac = new AbortController();
  const reason = new Error("abort");
  const p = clock.sleep(100, ac.signal);
  assert.equal(clock.pending, 1);
  ac.abort(reason);
  await assert.rejects(p, (e: unknown) => e === reason);
  assert.equal(clock.pending, 0);
  await assert.rejects(clock.sleep(1, ac.signal), (e: unknown) => e === reason);
  assert.equal(clock.pending, 0);
  await assert.rejects(clock.advance(-1), RangeError);
  assert.throws(() => new FakeClock(NaN), RangeError);
});

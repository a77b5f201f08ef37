import assert from "node:assert/strict";
import { DrainPoller } from "./drain.ts";

Deno.test("DrainPoller: resolves at once when drained, else on the poll that sees it drained", async () => {
  const buf = { bufferedAmount: 10 };
  const poller = new DrainPoller(buf, { lowWaterMark: 10, pollMs: 1 });
  await poller.wait(); // at the mark: no wait
  buf.bufferedAmount = 11;
  let done = false;
  const waits = [poller.wait().then(() => done = true), poller.wait()];
  assert.equal(poller.waiting, 2);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(done, false, "still above the mark");
  buf.bufferedAmount = 3;
  await Promise.all(waits);
  assert.equal(poller.waiting, 0);
});

Deno.test("DrainPoller: an aborted wait rejects with the reason and stops the timer", async () => {
  const poller = new DrainPoller({ bufferedAmount: 100 }, { lowWaterMark: 0, pollMs: 1 });
  const ac = new AbortController();
  const waiting = poller.wait(ac.signal);
  ac.abort(new Error("gone"));
  await assert.rejects(waiting, /gone/);
  assert.equal(poller.waiting, 0);
  await assert.rejects(poller.wait(AbortSignal.abort(new Error("early"))), /early/);
});

Deno.test("DrainPoller.close releases or rejects every waiter, now and later", async () => {
  const a = new DrainPoller({ bufferedAmount: 100 }, { lowWaterMark: 0, pollMs: 1 });
  const w = a.wait();
  a.close();
  await w;
  await a.wait();
  const b = new DrainPoller({ bufferedAmount: 100 }, { lowWaterMark: 0, pollMs: 1 });
  const v = b.wait();
  b.close(new Error("closed"));
  await assert.rejects(v, /closed/);
  await assert.rejects(b.wait(), /closed/);
  assert.throws(
    () => new DrainPoller({ bufferedAmount: 0 }, { lowWaterMark: -1, pollMs: 1 }),
    RangeError,
  );
});

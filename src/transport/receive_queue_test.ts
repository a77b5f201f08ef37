import assert from "node:assert/strict";
import { ReceiveQueue } from "./_receive_queue.ts";
import { BadResource } from "./errors.ts";

/** A queue whose flow-control calls are recorded. */
function queue(high = 8): { q: ReceiveQueue; calls: string[] } {
  const calls: string[] = [];
  const q = new ReceiveQueue(
    {
      stop: () => calls.push("stop"),
      restart: () => calls.push("restart"),
    },
    "the test connection is closed",
    high,
  );
  return { q, calls };
}

Deno.test("ReceiveQueue.readChunk: what is queued, up to max, after 16-byte-aligned headroom", async () => {
  const { q } = queue(1024);
  q.push(Uint8Array.of(1, 2, 3));
  q.push(Uint8Array.of(4, 5));
  const all = await q.readChunk(16, 64);
  assert.deepEqual([...(all ?? [])], [1, 2, 3, 4, 5]);
  assert.equal(all?.byteOffset, 16);
  assert.equal(all?.buffer.byteLength, 16 + 5, "sized to what arrived, not to max");
  q.push(Uint8Array.of(6, 7, 8, 9));
  const part = await q.readChunk(9, 3);
  assert.deepEqual([...(part ?? [])], [6, 7, 8]);
  assert.equal(part?.byteOffset, 9);
  assert.deepEqual([...(await q.readChunk(9, 3) ?? [])], [9], "the rest stays queued");
});

Deno.test("ReceiveQueue.readChunk: waits for bytes, null at the end, BadResource once closed", async () => {
  const { q } = queue();
  const waiting = q.readChunk(16, 64);
  q.push(Uint8Array.of(42));
  assert.deepEqual([...(await waiting ?? [])], [42]);
  q.end();
  assert.equal(await q.readChunk(16, 64), null);
  const { q: closed } = queue();
  const pending = closed.readChunk(16, 64);
  closed.close();
  await assert.rejects(pending, BadResource);
});

Deno.test("ReceiveQueue.readChunk: the source is stopped at the mark and restarted below half", async () => {
  const { q, calls } = queue(8);
  q.push(new Uint8Array(5));
  q.push(new Uint8Array(5));
  assert.deepEqual(calls, ["stop"]);
  await q.readChunk(16, 4); // 6 left: not below half of 8
  assert.deepEqual(calls, ["stop"]);
  await q.readChunk(16, 4); // 2 left
  assert.deepEqual(calls, ["stop", "restart"]);
});

Deno.test("ReceiveQueue.readChunk: a failure after the queued bytes", async () => {
  const { q } = queue();
  q.push(Uint8Array.of(1));
  q.fail(new Error("reset"));
  assert.deepEqual([...(await q.readChunk(16, 64) ?? [])], [1]);
  await assert.rejects(q.readChunk(16, 64), /reset/);
});

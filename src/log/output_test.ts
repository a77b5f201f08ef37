import assert from "node:assert/strict";
import { BoundedWriter } from "./output.ts";

Deno.test("BoundedWriter: a line written while the pump is finishing is written too", async () => {
  // A line can arrive after the pump's loop saw an empty queue but before the pump's promise
  // settled (a microtask later). Try every depth of microtasks after a write completes.
  for (let depth = 0; depth < 8; depth++) {
    const seen: string[] = [];
    let late = true;
    const out: BoundedWriter = new BoundedWriter((bytes) => {
      seen.push(new TextDecoder().decode(bytes));
      if (late) {
        late = false;
        let hop: () => void = () => out.write("late\n");
        for (let i = 0; i < depth; i++) {
          const next = hop;
          hop = () => queueMicrotask(next);
        }
        queueMicrotask(hop);
      }
      return Promise.resolve(bytes.byteLength);
    });
    out.write("first\n");
    assert.ok(await out.flush(1000), `depth ${depth}: flush timed out`);
    // Nothing else is ever written: the late line must not wait for another one.
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(seen.join(""), "first\nlate\n", `depth ${depth}`);
  }
});

Deno.test("BoundedWriter: lines beyond the bound are dropped, the rest keep their order", async () => {
  const seen: string[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => release = r);
  const out = new BoundedWriter(async (bytes) => {
    await gate;
    seen.push(new TextDecoder().decode(bytes));
    return bytes.byteLength;
  }, { maxBufferedBytes: 8 });
  out.write("a\n");
  out.write("b\n");
  out.write("toolong\n"); // 8 bytes more than fit next to the 4 queued
  out.write("c\n");
  release();
  assert.ok(await out.flush(1000));
  assert.equal(seen.join(""), "a\nb\nc\n");
});

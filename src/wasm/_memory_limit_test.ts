import assert from "node:assert/strict";
import { compileWat } from "../../examples/plugins/build.ts";
import { limitMemory, MemoryLimitError } from "./_memory_limit.ts";

const memoryOf = async (wasm: Uint8Array): Promise<WebAssembly.MemoryDescriptor | undefined> => {
  const { instance: { exports } } = await WebAssembly.instantiate(wasm as Uint8Array<ArrayBuffer>);
  const memory = exports.memory as WebAssembly.Memory;
  const pages = memory.buffer.byteLength / 65_536;
  let max = pages;
  while (growOk(memory)) max++;
  return { initial: pages, maximum: max };
};

Deno.test("limitMemory caps a memory without a maximum and lowers a larger maximum", async () => {
  for (
    const wat of [
      '(module (memory (export "memory") 2))',
      '(module (memory (export "memory") 2 100))',
    ]
  ) {
    const limited = limitMemory(await compileWat(wat), 5);
    assert.deepEqual(await memoryOf(limited), { initial: 2, maximum: 5 });
  }
});

Deno.test("limitMemory keeps a smaller maximum and modules without memory", async () => {
  const small = limitMemory(await compileWat('(module (memory (export "memory") 1 3))'), 5);
  assert.deepEqual(await memoryOf(small), { initial: 1, maximum: 3 });
  const none = await compileWat('(module (func (export "f")))');
  assert.deepEqual(limitMemory(none, 5), none);
});

Deno.test("limitMemory keeps the sections after the memory section intact", async () => {
  const wasm = await compileWat(
    '(module (memory (export "memory") 1) (data (i32.const 0) "hi") (func (export "f") (result i32) (i32.load8_u (i32.const 1))))',
  );
  const { instance: { exports } } = await WebAssembly.instantiate(
    limitMemory(wasm, 2) as Uint8Array<ArrayBuffer>,
  );
  assert.equal((exports.f as () => number)(), 105);
});

Deno.test("limitMemory refuses non-wasm and an initial size above the limit", async () => {
  assert.throws(
    () => limitMemory(new TextEncoder().encode("not wasm"), 5),
    (e: unknown) => e instanceof MemoryLimitError && e.code === "invalid",
  );
  const big = await compileWat("(module (memory 10))");
  assert.throws(
    () => limitMemory(big, 5),
    (e: unknown) => e instanceof MemoryLimitError && e.code === "too-large",
  );
});

function growOk(memory: WebAssembly.Memory): boolean {
  try {
    memory.grow(1);
    return true;
  } catch {
    return false;
  }
}

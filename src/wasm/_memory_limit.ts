/**
 * A hard cap on a module's own linear memory: the `max` of every memory the module defines is
 * lowered to a page count before it is compiled, so `memory.grow` beyond it returns -1 (and a
 * language runtime traps with "out of memory") instead of taking gigabytes from the host.
 * Extism's `memory.maxPages` only bounds the host-side blocks (input, output, received data), not
 * the module's memory, hence this. Pure and browser-safe.
 *
 * @module
 */

/** Bytes in a WebAssembly page (64 KiB). */
export const WASM_PAGE_BYTES = 65_536;

/** Why a module cannot be limited (not WebAssembly, or its memory starts above the limit). */
export class MemoryLimitError extends Error {
  /** `invalid` (not a WebAssembly binary) or `too-large` (initial memory above the limit). */
  readonly code: "invalid" | "too-large";
  /**
   * @param code What went wrong.
   * @param message One line naming it.
   */
  constructor(code: "invalid" | "too-large", message: string) {
    super(message);
    this.name = "MemoryLimitError";
    this.code = code;
  }
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const MEMORY_SECTION = 5;

/** True when `bytes` starts with the WebAssembly magic number and version 1. */
export function isWasmBinary(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && MAGIC.every((b, i) => bytes[i] === b) && bytes[4] === 1 &&
    bytes[5] === 0 && bytes[6] === 0 && bytes[7] === 0;
}

/**
 * Returns a copy of the module `wasm` whose defined memories have `max ≤ maxPages` (a memory
 * without a maximum gets `maxPages`). Imported memories are left alone (an Extism host provides
 * none, so such a module does not instantiate anyway). The module is otherwise unchanged.
 *
 * @param wasm A WebAssembly binary (version 1).
 * @param maxPages Page cap (64 KiB pages), ≥ 1.
 * @throws {MemoryLimitError} `invalid` when `wasm` is not a well-formed binary up to its memory
 *   section; `too-large` when a memory's initial size is above `maxPages`.
 */
export function limitMemory(wasm: Uint8Array, maxPages: number): Uint8Array {
  if (!isWasmBinary(wasm)) {
    throw new MemoryLimitError("invalid", "not a WebAssembly module (bad magic number)");
  }
  let at = 8;
  while (at < wasm.length) {
    const id = wasm[at] as number;
    const [size, sizeEnd] = readLeb(wasm, at + 1);
    const start = sizeEnd;
    const end = start + size;
    if (end > wasm.length) throw new MemoryLimitError("invalid", "truncated WebAssembly module");
    if (id === MEMORY_SECTION) {
      const body = rewriteMemories(wasm.subarray(start, end), maxPages);
      const header = [MEMORY_SECTION, ...writeLeb(body.length)];
      const out = new Uint8Array(at + header.length + body.length + (wasm.length - end));
      out.set(wasm.subarray(0, at), 0);
      out.set(header, at);
      out.set(body, at + header.length);
      out.set(wasm.subarray(end), at + header.length + body.length);
      return out;
    }
    at = end;
  }
  return wasm;
}

function rewriteMemories(section: Uint8Array, maxPages: number): Uint8Array {
  const [count, afterCount] = readLeb(section, 0);
  const out: number[] = [...writeLeb(count)];
  let at = afterCount;
  for (let i = 0; i < count; i++) {
    const flags = section[at];
    if (flags === undefined || flags > 0x07) {
      throw new MemoryLimitError("invalid", `unknown memory limits flags ${flags}`);
    }
    const [min, afterMin] = readLeb(section, at + 1);
    at = afterMin;
    let max = Infinity;
    if (flags & 0x01) [max, at] = readLeb(section, at);
    if (min > maxPages) {
      throw new MemoryLimitError(
        "too-large",
        `initial memory of ${min} pages is above the limit of ${maxPages} pages`,
      );
    }
    out.push(flags | 0x01, ...writeLeb(min), ...writeLeb(Math.min(max, maxPages)));
  }
  out.push(...section.subarray(at));
  return new Uint8Array(out);
}

function readLeb(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    const b = bytes[at + i];
    if (b === undefined) throw new MemoryLimitError("invalid", "truncated WebAssembly module");
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return [value, at + i + 1];
  }
  throw new MemoryLimitError("invalid", "malformed LEB128 number");
}

function writeLeb(value: number): number[] {
  const out: number[] = [];
  do {
    let b = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) b |= 0x80;
    out.push(b);
  } while (value > 0);
  return out;
}

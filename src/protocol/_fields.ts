// Shared field readers for the JSON codec: each validates one field of a decoded object and
// throws a ProtocolError naming the field.
import { type Framing, isValidId, isValidPort, MAX_ID, ProtocolError } from "./messages.ts";
import { decodeBase64 } from "./base64.ts";

/** A JSON object being decoded, with the framing used for error messages. */
export class Fields {
  constructor(readonly obj: Record<string, unknown>, readonly framing: Framing = "json") {}

  #fail(detail: string): never {
    throw new ProtocolError(this.framing, detail);
  }

  /** Reads a required id in `[0, 2^53-1]`. */
  id(key = "id"): number {
    const v = this.obj[key];
    if (v === undefined) this.#fail(`missing field "${key}"`);
    if (!isValidId(v)) {
      this.#fail(`field "${key}" must be an integer from 0 to ${MAX_ID}, got ${show(v)}`);
    }
    return v;
  }

  /** Reads a required port in `[0, 65535]`. */
  port(key = "port"): number {
    const v = this.obj[key];
    if (v === undefined) this.#fail(`missing field "${key}"`);
    if (!isValidPort(v)) {
      this.#fail(`field "${key}" must be an integer from 0 to 65535, got ${show(v)}`);
    }
    return v;
  }

  /** Reads a required string. */
  string(key: string): string {
    const v = this.obj[key];
    if (v === undefined) this.#fail(`missing field "${key}"`);
    if (typeof v !== "string") this.#fail(`field "${key}" must be a string, got ${show(v)}`);
    return v;
  }

  /** Reads an optional string: undefined when absent or null. */
  optionalString(key: string): string | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") this.#fail(`field "${key}" must be a string, got ${show(v)}`);
    return v;
  }

  /** Reads an optional unsigned 32-bit integer, `fallback` when absent or null. */
  u32(key: string, fallback: number): number {
    const v = this.obj[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      this.#fail(`field "${key}" must be an integer from 0 to 4294967295, got ${show(v)}`);
    }
    return v;
  }

  /**
   * Reads an integer in `[min, max]`: required when `fallback` is undefined, else `fallback` when
   * absent or null.
   */
  int(key: string, min: number, max: number, fallback?: number): number {
    const v = this.obj[key];
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (v === undefined) this.#fail(`missing field "${key}"`);
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.#fail(`field "${key}" must be an integer from ${min} to ${max}, got ${show(v)}`);
    }
    return v;
  }

  /** Reads a required finite number ≥ 0. */
  nonNegative(key: string): number {
    const v = this.obj[key];
    if (v === undefined) this.#fail(`missing field "${key}"`);
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      this.#fail(`field "${key}" must be a number ≥ 0, got ${show(v)}`);
    }
    return v;
  }

  /** Reads an optional base64 field as bytes: empty when absent or null. */
  optionalBytes(key = "data"): Uint8Array {
    const v = this.obj[key];
    return v === undefined || v === null ? new Uint8Array() : this.bytes(key);
  }

  /** Reads a required base64 field as bytes. */
  bytes(key = "data"): Uint8Array {
    const text = this.string(key);
    const bytes = decodeBase64(text);
    if (bytes === undefined) this.#fail(`field "${key}" is not valid base64`);
    return bytes;
  }

  /** Reads a required array of strings. */
  strings(key: string): string[] {
    const v = this.obj[key];
    if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
      this.#fail(`field "${key}" must be an array of strings`);
    }
    return v as string[];
  }
}

/** Parses JSON text into an object, or throws a ProtocolError. */
export function parseObject(text: string): Record<string, unknown> {
  const tooComplex = jsonShapeError(text);
  if (tooComplex !== undefined) throw new ProtocolError("json", tooComplex);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ProtocolError("json", `not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("json", `expected a JSON object, got ${show(value)}`);
  }
  return value as Record<string, unknown>;
}

/**
 * Deepest nesting of arrays and objects a JSON message may have: serde_json's default recursion
 * limit, so every message the Rust wasmnet 0.1.3 accepted is still accepted.
 */
export const MAX_JSON_DEPTH = 128;
/**
 * Most structural tokens (`{`, `}`, `[`, `]`, `,`, `:` outside strings) a JSON message may have. A
 * wasmnet message is a small object whose bulk is inside one string (base64 `data`), so this only
 * refuses messages built to make the parser allocate millions of values.
 */
export const MAX_JSON_TOKENS = 4096;

/**
 * Refuses, before `JSON.parse` runs, a text whose shape no wasmnet message has: nesting deeper than
 * {@linkcode MAX_JSON_DEPTH} or more than {@linkcode MAX_JSON_TOKENS} structural tokens. One linear
 * pass that jumps over strings with `indexOf`, so a 4 MB `[[[[…` costs microseconds instead of
 * seconds of parsing on the event loop. Malformed text it cannot judge (an unterminated string) is
 * left to `JSON.parse` to report.
 *
 * @returns a one-line reason (`nesting deeper than 128 levels`), or undefined when the shape is fine.
 */
export function jsonShapeError(text: string): string | undefined {
  let depth = 0;
  let tokens = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) { // a string: jump to its closing quote (one not escaped by a backslash)
      let end = i;
      for (;;) {
        end = text.indexOf('"', end + 1);
        if (end < 0) return undefined;
        let backslashes = 0;
        while (text.charCodeAt(end - 1 - backslashes) === 0x5c) backslashes++;
        if (backslashes % 2 === 0) break;
      }
      i = end;
      continue;
    }
    if (c === 0x7b || c === 0x5b) { // { [
      if (++depth > MAX_JSON_DEPTH) return `nesting deeper than ${MAX_JSON_DEPTH} levels`;
    } else if (c === 0x7d || c === 0x5d) depth--; // } ]
    else if (c !== 0x2c && c !== 0x3a) continue; // , :
    if (++tokens > MAX_JSON_TOKENS) {
      return `more than ${MAX_JSON_TOKENS} JSON tokens (a message is one small object)`;
    }
  }
  return undefined;
}

/** A short, safe rendering of a value for an error message (at most 40 characters). */
export function show(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  const s = typeof v === "string" ? JSON.stringify(v) : String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

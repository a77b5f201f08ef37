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

  /** Reads an optional unsigned 32-bit integer, `fallback` when absent or null. */
  u32(key: string, fallback: number): number {
    const v = this.obj[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      this.#fail(`field "${key}" must be an integer from 0 to 4294967295, got ${show(v)}`);
    }
    return v;
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

/** A short, safe rendering of a value for an error message (at most 40 characters). */
export function show(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  const s = typeof v === "string" ? JSON.stringify(v) : String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

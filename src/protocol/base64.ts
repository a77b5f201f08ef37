/**
 * Standard-alphabet, padded base64 (RFC 4648 §4) for the JSON framing. Uses the native
 * `Uint8Array.fromBase64` / `toBase64` where the runtime has them (Deno 2, Chromium 140+) and a
 * portable fallback elsewhere (Node 22).
 *
 * @module
 */

type Native = {
  fromBase64?: (s: string) => Uint8Array;
};
type NativeProto = { toBase64?: () => string };

const native = Uint8Array as unknown as Native;
const nativeProto = Uint8Array.prototype as unknown as NativeProto;
const hasNative = typeof native.fromBase64 === "function" &&
  typeof nativeProto.toBase64 === "function";

const VALID = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Encodes bytes as standard padded base64.
 *
 * @example
 * ```ts
 * import { encodeBase64 } from "./base64.ts";
 * encodeBase64(new Uint8Array([104, 105])); // "aGk="
 * ```
 */
export function encodeBase64(bytes: Uint8Array): string {
  if (hasNative) return (bytes as unknown as Required<NativeProto>).toBase64();
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/**
 * Decodes standard base64 (padding optional, no whitespace, no URL-safe alphabet).
 *
 * @returns the bytes, or `undefined` when `text` is not valid base64.
 */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (!VALID.test(text) || text.length % 4 === 1) return undefined;
  try {
    if (hasNative) return (native as Required<Native>).fromBase64(text);
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return undefined;
  }
}

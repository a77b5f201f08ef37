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
 * Validation costs O(1) beyond the decode itself: the decoders reject characters outside the
 * alphabet and misplaced padding, and accept ASCII whitespace, which the length check below
 * refuses (whitespace makes the output shorter than the input length implies).
 *
 * @returns the bytes, or `undefined` when `text` is not valid base64.
 */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (text.length % 4 === 1) return undefined;
  let out: Uint8Array;
  try {
    if (hasNative) {
      out = (native as Required<Native>).fromBase64(text);
    } else {
      const bin = atob(text);
      out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    }
  } catch {
    return undefined;
  }
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  return out.byteLength === Math.floor((text.length * 3) / 4) - padding ? out : undefined;
}

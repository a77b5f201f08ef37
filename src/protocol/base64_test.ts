// Unit tests of base64.ts: the native path (Uint8Array.fromBase64/toBase64, present in Deno 2)
// and the portable fallback (a second instance of the module loaded while the natives are hidden)
// against a reference encoder, for every length 0..10, all byte values and 1 MiB of random bytes.
import assert from "node:assert/strict";
import * as nativeMod from "./base64.ts";

type Base64 = typeof nativeMod;

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Reference RFC 4648 §4 encoder, padded, written out bit by bit. */
function referenceEncode(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = bytes.length - i;
    const b0 = bytes[i] ?? 0;
    const b1 = bytes[i + 1] ?? 0;
    const b2 = bytes[i + 2] ?? 0;
    const v = (b0 << 16) | (b1 << 8) | b2;
    out += ALPHABET[(v >> 18) & 63];
    out += ALPHABET[(v >> 12) & 63];
    out += n > 1 ? ALPHABET[(v >> 6) & 63] : "=";
    out += n > 2 ? ALPHABET[v & 63] : "=";
  }
  return out;
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/**
 * Loads a second instance of base64.ts while `Uint8Array.fromBase64` and
 * `Uint8Array.prototype.toBase64` are hidden, so it takes its fallback path for good.
 */
async function loadFallback(): Promise<Base64> {
  const ctor = Uint8Array as unknown as Record<string, unknown>;
  const proto = Uint8Array.prototype as unknown as Record<string, unknown>;
  const from = Object.getOwnPropertyDescriptor(ctor, "fromBase64");
  const to = Object.getOwnPropertyDescriptor(proto, "toBase64");
  delete ctor.fromBase64;
  delete proto.toBase64;
  try {
    return await import("./base64.ts?fallback");
  } finally {
    if (from) Object.defineProperty(ctor, "fromBase64", from);
    if (to) Object.defineProperty(proto, "toBase64", to);
  }
}

/** Runs `fn` with the natives replaced by functions that throw, proving they are not called. */
function withoutNatives(fn: () => void): void {
  const ctor = Uint8Array as unknown as Record<string, unknown>;
  const proto = Uint8Array.prototype as unknown as Record<string, unknown>;
  const from = Object.getOwnPropertyDescriptor(ctor, "fromBase64");
  const to = Object.getOwnPropertyDescriptor(proto, "toBase64");
  const boom = (): never => {
    throw new Error("native base64 called");
  };
  Object.defineProperty(ctor, "fromBase64", { value: boom, configurable: true, writable: true });
  Object.defineProperty(proto, "toBase64", { value: boom, configurable: true, writable: true });
  try {
    fn();
  } finally {
    if (from) Object.defineProperty(ctor, "fromBase64", from);
    if (to) Object.defineProperty(proto, "toBase64", to);
  }
}

const fallbackMod = await loadFallback();

const impls: [string, Base64][] = [["native", nativeMod], ["fallback", fallbackMod]];

const INVALID = [
  "@@@",
  "abcde", // length % 4 == 1
  "a",
  "aGk==",
  "a===",
  "====",
  "==",
  "=",
  "aG=",
  "ab=c",
  "aGk=aGk=",
  "aGk=a",
  " aGk=",
  "aGk= ",
  "aGk=\n",
  "aG\nk=",
  "aG-_", // URL-safe alphabet
  "aGk.",
  "ü",
  "aGk\u0000",
  "\uFEFFaGk=",
];

Deno.test("base64: this runtime has the native methods, so both paths are exercised", (): void => {
  const ctor = Uint8Array as unknown as Record<string, unknown>;
  const proto = Uint8Array.prototype as unknown as Record<string, unknown>;
  assert.equal(typeof ctor.fromBase64, "function");
  assert.equal(typeof proto.toBase64, "function");
  assert.notEqual(fallbackMod, nativeMod);
});

Deno.test("base64 fallback: never calls the native methods", (): void => {
  withoutNatives(() => {
    assert.equal(fallbackMod.encodeBase64(new TextEncoder().encode("hi")), "aGk=");
    assert.deepStrictEqual(fallbackMod.decodeBase64("aGk="), new TextEncoder().encode("hi"));
    assert.equal(fallbackMod.decodeBase64("@@@"), undefined);
  });
});

for (const [name, b64] of impls) {
  Deno.test(`base64 ${name}: RFC 4648 test vectors`, (): void => {
    const vectors: [string, string][] = [
      ["", ""],
      ["f", "Zg=="],
      ["fo", "Zm8="],
      ["foo", "Zm9v"],
      ["foob", "Zm9vYg=="],
      ["fooba", "Zm9vYmE="],
      ["foobar", "Zm9vYmFy"],
    ];
    const te = new TextEncoder();
    for (const [plain, encoded] of vectors) {
      assert.equal(b64.encodeBase64(te.encode(plain)), encoded);
      assert.deepStrictEqual(b64.decodeBase64(encoded), te.encode(plain));
    }
  });

  Deno.test(`base64 ${name}: lengths 0..10 match the reference, both ways`, (): void => {
    for (let len = 0; len <= 10; len++) {
      for (let trial = 0; trial < 20; trial++) {
        const data = randomBytes(len);
        const text = b64.encodeBase64(data);
        assert.equal(text, referenceEncode(data), `length ${len}`);
        assert.equal(text.length, 4 * Math.ceil(len / 3));
        const back = b64.decodeBase64(text);
        assert.ok(back instanceof Uint8Array);
        assert.deepStrictEqual(back, data);
        // Padding is optional on input.
        assert.deepStrictEqual(b64.decodeBase64(text.replace(/=+$/, "")), data);
      }
    }
  });

  Deno.test(`base64 ${name}: all-zero, all-0xff and every byte value`, (): void => {
    for (let len = 0; len <= 10; len++) {
      for (const fill of [0x00, 0xff]) {
        const data = new Uint8Array(len).fill(fill);
        assert.equal(b64.encodeBase64(data), referenceEncode(data));
        assert.deepStrictEqual(b64.decodeBase64(referenceEncode(data)), data);
      }
    }
    const all = new Uint8Array(256).map((_, i) => i);
    assert.equal(b64.encodeBase64(all), referenceEncode(all));
    assert.deepStrictEqual(b64.decodeBase64(referenceEncode(all)), all);
    assert.equal(b64.encodeBase64(Uint8Array.of(0xfb, 0xff, 0xbf)), "+/+/");
    assert.deepStrictEqual(b64.decodeBase64("+/+/"), Uint8Array.of(0xfb, 0xff, 0xbf));
  });

  Deno.test(`base64 ${name}: 1 MiB of random bytes`, (): void => {
    const data = randomBytes(1 << 20);
    const text = b64.encodeBase64(data);
    assert.equal(text.length, 4 * Math.ceil((1 << 20) / 3));
    assert.equal(text, referenceEncode(data));
    assert.deepStrictEqual(b64.decodeBase64(text), data);
    // An odd length crosses the fallback's 0x8000 chunking at a non-multiple of 3.
    const odd = data.subarray(7, 7 + 0x8000 * 3 + 2);
    assert.equal(b64.encodeBase64(odd), referenceEncode(odd));
    assert.deepStrictEqual(b64.decodeBase64(b64.encodeBase64(odd)), odd);
  });

  Deno.test(`base64 ${name}: encodes only the bytes of a sub-view`, (): void => {
    const big = Uint8Array.of(0xff, 0xff, 0x68, 0x69, 0xff, 0xff);
    assert.equal(b64.encodeBase64(big.subarray(2, 4)), "aGk=");
    assert.equal(b64.encodeBase64(big.subarray(3, 3)), "");
    assert.equal(b64.encodeBase64(big.subarray(1, 5)), referenceEncode(big.subarray(1, 5)));
  });

  Deno.test(`base64 ${name}: unpadded input decodes; "abc" (length 3) is valid`, (): void => {
    assert.deepStrictEqual(b64.decodeBase64("aGk"), Uint8Array.of(0x68, 0x69));
    assert.deepStrictEqual(b64.decodeBase64("Zg"), Uint8Array.of(0x66));
    assert.deepStrictEqual(b64.decodeBase64("abc"), Uint8Array.of(0x69, 0xb7));
    assert.deepStrictEqual(b64.decodeBase64(""), new Uint8Array(0));
  });

  Deno.test(`base64 ${name}: invalid inputs decode to undefined`, (): void => {
    for (const text of INVALID) {
      assert.equal(b64.decodeBase64(text), undefined, JSON.stringify(text));
    }
  });
}

Deno.test("base64: native and fallback agree on every input, valid or not", (): void => {
  const inputs = [
    ...INVALID,
    "",
    "aGk",
    "aGk=",
    "aGl=", // non-zero trailing bits
    "Zh==",
    "Zg=",
    "abc",
    "abcd",
    "AAAA",
    "////",
    "++++",
  ];
  for (const text of inputs) {
    assert.deepStrictEqual(
      fallbackMod.decodeBase64(text),
      nativeMod.decodeBase64(text),
      JSON.stringify(text),
    );
  }
  for (let len = 0; len <= 10; len++) {
    const data = randomBytes(len);
    assert.equal(fallbackMod.encodeBase64(data), nativeMod.encodeBase64(data));
  }
});

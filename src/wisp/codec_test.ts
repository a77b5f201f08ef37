/**
 * Unit tests of the Wisp codec (`codec.ts`): round trips of every packet type, decoding from
 * sub-views of larger buffers, DATA payloads as views, every malformed form, the two credential
 * layouts, and a fast-check property (decode ∘ encode = identity) with a fixed seed.
 *
 * @module
 */
import { deepStrictEqual as eq, ok, strictEqual, throws } from "node:assert/strict";
import fc from "fast-check";
import {
  CloseReason,
  decodeCredentials,
  decodePacket,
  encodeClose,
  encodeContinue,
  encodeCredentials,
  encodeData,
  encodeInfo,
  encodePacket,
  ExtensionId,
  PacketType,
  StreamType,
  utf8Bytes,
  WISP_HEADER_BYTES,
  WispError,
  type WispPacket,
} from "./mod.ts";

const RUNS = { numRuns: 500, seed: 0x5715_0001 };
const enc = new TextEncoder();

/** `bytes` copied into the middle of a larger buffer (garbage around it); returns the sub-view. */
function embedded(bytes: Uint8Array, before = 7, after = 11): Uint8Array {
  const big = new Uint8Array(before + bytes.byteLength + after).fill(0xee);
  big.set(bytes, before);
  return big.subarray(before, before + bytes.byteLength);
}

/** A raw packet: header + payload bytes. */
function raw(type: number, stream: number, ...payload: number[]): Uint8Array {
  const out = new Uint8Array(WISP_HEADER_BYTES + payload.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, stream, true);
  out.set(payload, WISP_HEADER_BYTES);
  return out;
}

/** Asserts that decoding `bytes` throws a WispError naming `stream` (and a message matching `re`). */
function assertMalformed(bytes: Uint8Array, stream: number | undefined, re: RegExp): void {
  let caught: unknown;
  try {
    decodePacket(bytes);
  } catch (e) {
    caught = e;
  }
  ok(caught instanceof WispError, `expected a WispError, got ${String(caught)}`);
  strictEqual(caught.stream, stream);
  strictEqual(caught.name, "WispError");
  ok(re.test(caught.message), `message ${JSON.stringify(caught.message)} does not match ${re}`);
}

/** Round trip through plain and embedded buffers; returns the bytes. */
function roundTrip(p: WispPacket): Uint8Array {
  const bytes = encodePacket(p);
  eq(decodePacket(bytes), p);
  eq(decodePacket(embedded(bytes)), p);
  return bytes;
}

// --- round trips ------------------------------------------------------------------------------

Deno.test("wisp codec: CONNECT round trips (tcp/udp, IPv4, IPv6, names, UTF-8 hosts)", () => {
  const hosts = [
    "example.com",
    "203.0.113.10",
    "2001:db8::1",
    "[2001:db8::1]",
    "::ffff:192.0.2.1",
    "bücher.example",
    "例え.テスト",
    "😀.test",
    "",
  ];
  for (const streamType of [StreamType.tcp, StreamType.udp, 0x7f]) {
    for (const host of hosts) {
      for (const port of [0, 1, 80, 443, 65535]) {
        const bytes = roundTrip({ type: "connect", stream: 0xdeadbeef, streamType, port, host });
        strictEqual(bytes[0], PacketType.connect);
        strictEqual(bytes.byteLength, WISP_HEADER_BYTES + 3 + enc.encode(host).byteLength);
      }
    }
  }
  // The exact layout: [type][stream LE][stream type][port LE][host].
  eq(
    [...encodePacket({
      type: "connect",
      stream: 0x01020304,
      streamType: 2,
      port: 0x1bb,
      host: "ä",
    })],
    [0x01, 0x04, 0x03, 0x02, 0x01, 0x02, 0xbb, 0x01, 0xc3, 0xa4],
  );
});

Deno.test("wisp codec: DATA round trips, empty included, and encodeData agrees", () => {
  for (
    const payload of [
      new Uint8Array(0),
      Uint8Array.of(0),
      enc.encode("hello"),
      new Uint8Array(70_000).fill(9),
    ]
  ) {
    const bytes = roundTrip({ type: "data", stream: 3, payload });
    eq(bytes, encodeData(3, payload));
    strictEqual(bytes.byteLength, WISP_HEADER_BYTES + payload.byteLength);
  }
  eq([...encodeData(0xffffffff, Uint8Array.of(7, 8))], [0x02, 0xff, 0xff, 0xff, 0xff, 7, 8]);
});

Deno.test("wisp codec: CONTINUE and CLOSE round trip with their full ranges", () => {
  for (const remaining of [0, 1, 64, 0x7fffffff, 0xffffffff]) {
    const bytes = roundTrip({ type: "continue", stream: 0, remaining });
    eq(bytes, encodeContinue(0, remaining));
  }
  eq([...encodeContinue(5, 0x01020304)], [0x03, 5, 0, 0, 0, 0x04, 0x03, 0x02, 0x01]);
  for (const reason of [0, ...Object.values(CloseReason), 0xff]) {
    const bytes = roundTrip({ type: "close", stream: 42, reason });
    eq(bytes, encodeClose(42, reason));
  }
  eq([...encodeClose(1, CloseReason.blocked)], [0x04, 1, 0, 0, 0, 0x48]);
});

Deno.test("wisp codec: INFO round trips with 0 to 3 extensions", () => {
  const exts = [
    { id: ExtensionId.udp, payload: new Uint8Array(0) },
    { id: ExtensionId.password, payload: Uint8Array.of(1) },
    { id: ExtensionId.motd, payload: utf8Bytes("welcome ✓") },
  ];
  for (let n = 0; n <= exts.length; n++) {
    const extensions = exts.slice(0, n);
    for (const stream of [0, 9]) {
      const bytes = roundTrip({ type: "info", stream, major: 2, minor: 0, extensions });
      eq(bytes, encodeInfo(2, 0, extensions, stream));
    }
  }
  eq(
    [...encodeInfo(2, 1, [{ id: 4, payload: Uint8Array.of(0x61, 0x62) }, {
      id: 5,
      payload: new Uint8Array(0),
    }])],
    [0x05, 0, 0, 0, 0, 2, 1, 4, 2, 0, 0, 0, 0x61, 0x62, 5, 0, 0, 0, 0],
  );
});

Deno.test("wisp codec: decoding a sub-view (byteOffset ≠ 0) reads the view, not its buffer", () => {
  // The garbage around the view would be read if the codec ignored byteOffset or byteLength.
  const packets: WispPacket[] = [
    { type: "connect", stream: 1, streamType: 1, port: 8080, host: "a.test" },
    { type: "data", stream: 2, payload: enc.encode("xyz") },
    { type: "continue", stream: 3, remaining: 77 },
    { type: "close", stream: 4, reason: 2 },
    {
      type: "info",
      stream: 0,
      major: 2,
      minor: 0,
      extensions: [{ id: 5, payload: Uint8Array.of() }],
    },
  ];
  for (const p of packets) {
    for (const before of [1, 3, 5, 8]) {
      const view = embedded(encodePacket(p), before, 13);
      ok(view.byteOffset === before && view.buffer.byteLength > view.byteLength);
      eq(decodePacket(view), p);
    }
  }
  // Odd offsets for the u32/u16 fields, and trailing garbage that would be an extra extension.
  const info = embedded(encodeInfo(2, 0, [{ id: 1, payload: new Uint8Array(0) }]), 3, 40);
  eq(decodePacket(info), {
    type: "info",
    stream: 0,
    major: 2,
    minor: 0,
    extensions: [{ id: 1, payload: new Uint8Array(0) }],
  });
});

Deno.test("wisp codec: a DATA payload is a view of the input (no copy)", () => {
  const view = embedded(encodeData(6, enc.encode("payload")), 10, 4);
  const p = decodePacket(view);
  ok(p.type === "data");
  strictEqual(p.payload.buffer, view.buffer);
  strictEqual(p.payload.byteOffset, view.byteOffset + WISP_HEADER_BYTES);
  strictEqual(p.payload.byteLength, 7);
  view[WISP_HEADER_BYTES] = 0x50; // 'P'
  strictEqual(new TextDecoder().decode(p.payload), "Payload");
  // INFO extension payloads are views too.
  const infoView = embedded(encodeInfo(2, 0, [{ id: 4, payload: enc.encode("hi") }]), 2, 2);
  const info = decodePacket(infoView);
  ok(info.type === "info");
  strictEqual(info.extensions[0]?.payload.buffer, infoView.buffer);
});

// --- malformed packets ------------------------------------------------------------------------

Deno.test("wisp codec: a header shorter than 5 bytes → WispError without a stream", () => {
  for (let n = 0; n <= 4; n++) {
    assertMalformed(new Uint8Array(n).fill(1), undefined, new RegExp(`packet of ${n} bytes`));
    // The same inside a larger buffer: the view's length counts, not the buffer's.
    assertMalformed(embedded(new Uint8Array(n).fill(2), 3, 20), undefined, /header needs 5/);
  }
});

Deno.test("wisp codec: an unknown packet type → WispError naming the stream", () => {
  for (const type of [0x00, 0x06, 0x09, 0x7f, 0xff]) {
    assertMalformed(raw(type, 5), 5, /unknown packet type/);
    assertMalformed(raw(type, 0xfffffffe, 1, 2, 3), 0xfffffffe, /unknown packet type/);
  }
});

Deno.test("wisp codec: CONNECT with fewer than 3 payload bytes → WispError", () => {
  assertMalformed(raw(PacketType.connect, 7), 7, /CONNECT payload of 0 bytes/);
  assertMalformed(raw(PacketType.connect, 7, 1), 7, /CONNECT payload of 1 bytes/);
  assertMalformed(raw(PacketType.connect, 7, 1, 80), 7, /CONNECT payload of 2 bytes/);
  // Three bytes is a CONNECT with an empty host (refused later by the policy layer, not here).
  eq(decodePacket(raw(PacketType.connect, 7, 1, 80, 0)), {
    type: "connect",
    stream: 7,
    streamType: 1,
    port: 80,
    host: "",
  });
});

Deno.test("wisp codec: a CONNECT host that is not valid UTF-8 → WispError", () => {
  const bad = [
    [0xff],
    [0x61, 0xc3], // truncated sequence
    [0xc0, 0xaf], // overlong
    [0xed, 0xa0, 0x80], // a surrogate
    [0x61, 0x80, 0x62], // stray continuation byte
  ];
  for (const host of bad) {
    assertMalformed(raw(PacketType.connect, 8, 1, 80, 0, ...host), 8, /not valid UTF-8/);
  }
});

Deno.test("wisp codec: CONTINUE and CLOSE of the wrong length → WispError", () => {
  for (const n of [0, 1, 2, 3, 5, 8]) {
    assertMalformed(
      raw(PacketType.continue, 9, ...new Array<number>(n).fill(0)),
      9,
      new RegExp(`CONTINUE payload of ${n} bytes`),
    );
  }
  for (const n of [0, 2, 4]) {
    assertMalformed(
      raw(PacketType.close, 10, ...new Array<number>(n).fill(2)),
      10,
      new RegExp(`CLOSE payload of ${n} bytes`),
    );
  }
});

Deno.test("wisp codec: INFO shorter than 2 bytes, truncated extensions, overflowing lengths → WispError", () => {
  assertMalformed(raw(PacketType.info, 0), 0, /INFO payload of 0 bytes/);
  assertMalformed(raw(PacketType.info, 0, 2), 0, /INFO payload of 1 bytes/);
  // A version alone is fine.
  eq(decodePacket(raw(PacketType.info, 0, 2, 0)), {
    type: "info",
    stream: 0,
    major: 2,
    minor: 0,
    extensions: [],
  });
  // Extension headers of 1 to 4 bytes (they need 5), after a good extension too.
  for (let k = 1; k <= 4; k++) {
    const head = [5, 0, 0, 0, 0].slice(0, k);
    assertMalformed(raw(PacketType.info, 0, 2, 0, ...head), 0, /extension header is truncated/);
    assertMalformed(
      raw(PacketType.info, 3, 2, 0, 1, 0, 0, 0, 0, ...head),
      3,
      /extension header is truncated/,
    );
  }
  // A length that runs past the packet: by one byte, and by 2^32 − 1.
  assertMalformed(
    raw(PacketType.info, 0, 2, 0, 4, 3, 0, 0, 0, 0x61, 0x62),
    0,
    /extension 0x04 claims 3 bytes/,
  );
  assertMalformed(
    raw(PacketType.info, 0, 2, 0, 0xab, 0xff, 0xff, 0xff, 0xff),
    0,
    /extension 0xab claims 4294967295 bytes/,
  );
  // Inside a larger buffer whose tail would satisfy the claimed length.
  assertMalformed(
    embedded(raw(PacketType.info, 0, 2, 0, 4, 3, 0, 0, 0, 0x61), 0, 30),
    0,
    /claims 3 bytes/,
  );
});

// --- credentials ------------------------------------------------------------------------------

/** The wisp-js 0.5 layout: `[user len u8][pass len u16 LE][user][pass]`. */
function wispJsCredentials(user: string, password: string): Uint8Array {
  const u = enc.encode(user);
  const p = enc.encode(password);
  const out = new Uint8Array(3 + u.byteLength + p.byteLength);
  out[0] = u.byteLength;
  new DataView(out.buffer).setUint16(1, p.byteLength, true);
  out.set(u, 3);
  out.set(p, 3 + u.byteLength);
  return out;
}

Deno.test("wisp codec: decodeCredentials reads both layouts", () => {
  const cases: [string, string][] = [
    ["alice", "s3cret"],
    ["", ""],
    ["bob", ""],
    ["", "pw"],
    ["jürgen", "pässwörd ✓"],
    ["u".repeat(255), "p".repeat(300)],
  ];
  for (const [user, password] of cases) {
    eq(decodeCredentials(wispJsCredentials(user, password)), { user, password }, `wisp-js ${user}`);
    eq(decodeCredentials(encodeCredentials(user, password)), { user, password }, `draft-6 ${user}`);
    eq(decodeCredentials(embedded(wispJsCredentials(user, password), 5, 9)), { user, password });
    eq(decodeCredentials(embedded(encodeCredentials(user, password), 5, 9)), { user, password });
  }
  eq([...encodeCredentials("ab", "cd")], [2, 0x61, 0x62, 0x63, 0x64]);
  throws(() => encodeCredentials("x".repeat(256), ""), RangeError);
});

Deno.test("wisp codec: empty, truncated or non-UTF-8 credentials → WispError (stream 0)", () => {
  const bad: [number[], RegExp][] = [
    [[], /empty/],
    [[1], /truncated/],
    [[5, 0x61, 0x62], /truncated/],
    // Neither layout fits: wisp-js claims 3 + 10 + 2 bytes, draft-6 a 10-byte user.
    [[10, 2, 0, 0x61, 0x62], /truncated/],
    [[1, 0xff], /UTF-8/],
    [[1, 0x61, 0xff], /UTF-8/],
    [[1, 1, 0, 0xff, 0x61], /UTF-8/], // wisp-js layout, bad user
    [[1, 1, 0, 0x61, 0xc3], /UTF-8/], // wisp-js layout, bad password
  ];
  for (const [bytes, re] of bad) {
    let caught: unknown;
    try {
      decodeCredentials(Uint8Array.from(bytes));
    } catch (e) {
      caught = e;
    }
    ok(caught instanceof WispError, `${JSON.stringify(bytes)}: ${String(caught)}`);
    strictEqual(caught.stream, 0);
    ok(re.test(caught.message), `${JSON.stringify(bytes)}: ${caught.message}`);
  }
});

// --- found by review: a leading U+FEFF --------------------------------------------------------

Deno.test({
  name: "wisp codec: a leading U+FEFF in a host or credentials survives decoding",
  // A `TextDecoder` strips a leading U+FEFF unless `ignoreBOM` is set: the codec sets it.
  fn(): void {
    const host = "\uFEFFa.test";
    const p = decodePacket(
      encodePacket({ type: "connect", stream: 1, streamType: 1, port: 80, host }),
    );
    ok(p.type === "connect");
    strictEqual(p.host, host);
    eq(decodeCredentials(encodeCredentials("\uFEFFalice", "\uFEFFpw")), {
      user: "\uFEFFalice",
      password: "\uFEFFpw",
    });
  },
});

// --- property ---------------------------------------------------------------------------------

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u8 = fc.integer({ min: 0, max: 0xff });
/** Strings of any code point (a leading U+FEFF included). */
const hostArb = fc.string({ unit: "binary", maxLength: 40 });
const bytesArb = fc.uint8Array({ maxLength: 300 });

const packetArb: fc.Arbitrary<WispPacket> = fc.oneof(
  fc.record({
    type: fc.constant("connect" as const),
    stream: u32,
    streamType: u8,
    port: fc.integer({ min: 0, max: 0xffff }),
    host: hostArb,
  }),
  fc.record({ type: fc.constant("data" as const), stream: u32, payload: bytesArb }),
  fc.record({ type: fc.constant("continue" as const), stream: u32, remaining: u32 }),
  fc.record({ type: fc.constant("close" as const), stream: u32, reason: u8 }),
  fc.record({
    type: fc.constant("info" as const),
    stream: u32,
    major: u8,
    minor: u8,
    extensions: fc.array(fc.record({ id: u8, payload: fc.uint8Array({ maxLength: 40 }) }), {
      maxLength: 5,
    }),
  }),
  // fc.record builds null-prototype objects; the decoder returns plain ones.
).map((p) => ({
  ...p,
  ...(p.type === "info" ? { extensions: p.extensions.map((e) => ({ ...e })) } : {}),
}));

Deno.test("wisp codec: property: decode(encode(p)) deep-equals p, also from a sub-view", () => {
  fc.assert(
    fc.property(packetArb, fc.nat(16), fc.nat(16), (p, before, after) => {
      const bytes = encodePacket(p);
      eq(decodePacket(bytes), p);
      eq(decodePacket(embedded(bytes, before, after)), p);
      // Re-encoding what was decoded gives the same bytes.
      eq(encodePacket(decodePacket(bytes)), bytes);
    }),
    RUNS,
  );
});

Deno.test("wisp codec: property: decoding arbitrary bytes returns a packet or throws WispError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        const p = decodePacket(bytes);
        // Whatever decodes re-encodes to the same bytes.
        eq(encodePacket(p), bytes);
      } catch (e) {
        ok(e instanceof WispError, String(e));
        strictEqual(e.stream === undefined, bytes.byteLength < WISP_HEADER_BYTES);
      }
    }),
    RUNS,
  );
});

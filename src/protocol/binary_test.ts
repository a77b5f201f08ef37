// Unit tests of the binary framing (binary.ts) against DESIGN.md §3: exact bytes of every request
// and event, round trips, decoding of sub-views with junk around them (STYLE.md habit 9), id
// ranges and every refusal message; and of the framing dispatch in mod.ts.
import assert from "node:assert/strict";
import {
  decodeEventBinary,
  decodeRequestBinary,
  encodeEventBinary,
  encodeRequestBinary,
  writeHeader,
} from "./binary.ts";
import {
  decodeEvent,
  decodeEventJson,
  decodeRequest,
  decodeRequestJson,
  encodeEvent,
  encodeEventJson,
  encodeRequest,
  encodeRequestJson,
} from "./mod.ts";
import { HEADER_BYTES, MAX_ID, MsgType, type Request, type WireEvent } from "./messages.ts";

const te = new TextEncoder();

/** Bytes from hex text; spaces are ignored. */
function fromHex(hex: string): Uint8Array {
  const t = hex.replace(/\s+/g, "");
  assert.equal(t.length % 2, 0, `odd hex length: ${hex}`);
  const out = new Uint8Array(t.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(t.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Upper-case hex of bytes, no spaces. */
function toHex(u8: Uint8Array): string {
  return Array.from(u8, (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
}

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/** A frame of `type` and `id` (a bigint, to reach 2^64-1) followed by `payload`. */
function frame(type: number, id: bigint | number, payload: Uint8Array = bytes()): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, type);
  dv.setBigUint64(1, BigInt(id));
  out.set(payload, HEADER_BYTES);
  return out;
}

/**
 * Copies `f` into a larger buffer between junk bytes and returns the sub-view holding it. The junk
 * is 0xFF before (a wrong offset reads a huge id) and 0xAA after (invalid UTF-8 if over-read).
 */
function embed(f: Uint8Array, before = 5, after = 7): { big: Uint8Array; sub: Uint8Array } {
  const big = new Uint8Array(before + f.byteLength + after).fill(0xaa);
  big.fill(0xff, 0, before);
  big.set(f, before);
  const sub = big.subarray(before, before + f.byteLength);
  assert.equal(sub.byteOffset, before);
  return { big, sub };
}

/** Asserts that `fn` throws a binary ProtocolError with `message`. */
function refuses(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, { name: "ProtocolError", code: "EPROTOCOL", framing: "binary", message });
}

/** Payload bytes of a decoded message, if it has any. */
function dataOf(m: Request | WireEvent): Uint8Array | undefined {
  return "data" in m ? m.data : undefined;
}

// ---------------------------------------------------------------------------------------------
// Type codes.

Deno.test("binary type codes match DESIGN.md §3", (): void => {
  assert.equal(HEADER_BYTES, 9);
  assert.deepStrictEqual({ ...MsgType }, {
    connect: 0x01,
    bind: 0x02,
    listen: 0x03,
    send: 0x04,
    close: 0x05,
    connect_udp: 0x06,
    send_to: 0x07,
    resolve: 0x08,
    connect_tls: 0x09,
    start_tls: 0x0a,
    shutdown: 0x0b,
    ping: 0x0c,
    connected: 0x81,
    data: 0x82,
    listening: 0x83,
    accepted: 0x84,
    closed: 0x85,
    error: 0x86,
    denied: 0x87,
    data_from: 0x88,
    resolved: 0x89,
    udp_bound: 0x8a,
    pong: 0x8b,
  });
});

// ---------------------------------------------------------------------------------------------
// Requests: exact bytes, round trips and sub-views, one per op (9, and the extensions start_tls,
// shutdown, ping).

const requestCases: { req: Request; hex: string }[] = [
  {
    req: { op: "connect", id: 42, addr: "example.com", port: 443 },
    hex: "01 00000000 0000002A 01BB 6578616D706C652E636F6D",
  },
  {
    req: { op: "bind", id: 3, addr: "0.0.0.0", port: 8080 },
    hex: "02 0000000000000003 1F90 302E302E302E30",
  },
  { req: { op: "listen", id: 3, backlog: 16 }, hex: "03 0000000000000003 00000010" },
  { req: { op: "send", id: 1, data: te.encode("hi") }, hex: "04 0000000000000001 6869" },
  { req: { op: "close", id: 1 }, hex: "05 0000000000000001" },
  {
    req: { op: "connect_udp", id: 5, addr: "8.8.8.8", port: 53 },
    hex: "06 0000000000000005 0035 382E382E382E38",
  },
  {
    req: { op: "send_to", id: 5, addr: "1.1.1.1", port: 53, data: bytes(0xde, 0xad) },
    hex: "07 0000000000000005 0035 0007 312E312E312E31 DEAD",
  },
  { req: { op: "resolve", id: 7, name: "a.b" }, hex: "08 0000000000000007 612E62" },
  {
    req: { op: "connect_tls", id: 9, addr: "x.io", port: 443 },
    hex: "09 0000000000000009 01BB 782E696F",
  },
  {
    req: { op: "start_tls", id: 9, servername: "db.example.com" },
    hex: "0A 0000000000000009 64622E6578616D706C652E636F6D",
  },
  { req: { op: "start_tls", id: 9 }, hex: "0A 0000000000000009" },
  { req: { op: "shutdown", id: 9 }, hex: "0B 0000000000000009" },
  {
    req: { op: "ping", id: 9, addr: "::1", seq: 258, data: bytes(0xca, 0xfe), timeout_ms: 1000 },
    hex: "0C 0000000000000009 0102 000003E8 0003 3A3A31 CAFE",
  },
  {
    req: { op: "ping", id: 9, addr: "a.io", seq: 0, data: bytes(), timeout_ms: 60000 },
    hex: "0C 0000000000000009 0000 0000EA60 0004 612E696F",
  },
];

Deno.test("binary requests: the cases cover all 9 ops and the 3 extensions", (): void => {
  assert.equal(new Set(requestCases.map((c) => c.req.op)).size, 12);
});

for (const { req, hex } of requestCases) {
  Deno.test(`binary request ${req.op}: exact bytes, decode and round trip`, (): void => {
    const expected = fromHex(hex);
    assert.equal(toHex(encodeRequestBinary(req)), toHex(expected));
    assert.deepStrictEqual(decodeRequestBinary(expected), req);
    assert.deepStrictEqual(decodeRequestBinary(encodeRequestBinary(req)), req);
  });

  Deno.test(`binary request ${req.op}: decodes from a sub-view with junk around it`, (): void => {
    for (const [before, after] of [[1, 0], [3, 5], [8, 1], [13, 64]] as const) {
      const { big, sub } = embed(fromHex(hex), before, after);
      const got = decodeRequestBinary(sub);
      assert.deepStrictEqual(got, req);
      const data = dataOf(got);
      if (data !== undefined) {
        // A view into the caller's buffer, inside the frame, not a copy.
        assert.equal(data.buffer, big.buffer);
        assert.equal(data.byteOffset + data.byteLength, before + sub.byteLength);
        if (data.byteLength > 0) {
          const was = big[data.byteOffset];
          big[data.byteOffset] = 0x5a;
          assert.equal(data[0], 0x5a);
          big[data.byteOffset] = was ?? 0;
        }
      }
    }
  });
}

Deno.test("binary request listen: empty payload means backlog 128", (): void => {
  assert.deepStrictEqual(decodeRequestBinary(fromHex("03 0000000000000004")), {
    op: "listen",
    id: 4,
    backlog: 128,
  });
  assert.deepStrictEqual(decodeRequestBinary(embed(fromHex("03 0000000000000004")).sub), {
    op: "listen",
    id: 4,
    backlog: 128,
  });
});

Deno.test("binary request listen: backlog 0 and 2^32-1", (): void => {
  for (const backlog of [0, 0xffffffff]) {
    const req: Request = { op: "listen", id: 1, backlog };
    assert.deepStrictEqual(decodeRequestBinary(encodeRequestBinary(req)), req);
  }
  assert.equal(
    toHex(encodeRequestBinary({ op: "listen", id: 1, backlog: 0xffffffff })),
    "030000000000000001FFFFFFFF",
  );
});

Deno.test("binary request send_to: sub-view data is the bytes after addr", (): void => {
  const { big, sub } = embed(fromHex("07 0000000000000005 0035 0003 612E62 010203"), 11, 9);
  const got = decodeRequestBinary(sub);
  assert.deepStrictEqual(got, {
    op: "send_to",
    id: 5,
    addr: "a.b",
    port: 53,
    data: bytes(1, 2, 3),
  });
  const data = dataOf(got);
  assert.ok(data);
  assert.equal(data.buffer, big.buffer);
  assert.equal(data.byteOffset, 11 + 9 + 4 + 3);
  assert.equal(data.byteLength, 3);
});

// ---------------------------------------------------------------------------------------------
// Events: exact bytes, round trips and sub-views, one per event (10).

const eventCases: { ev: WireEvent; hex: string }[] = [
  { ev: { ev: "connected", id: 1 }, hex: "81 0000000000000001" },
  { ev: { ev: "data", id: 1, data: te.encode("hi") }, hex: "82 0000000000000001 6869" },
  { ev: { ev: "listening", id: 1, port: 8080 }, hex: "83 0000000000000001 1F90" },
  {
    ev: { ev: "accepted", id: 1, conn_id: 2, remote: "[::1]:5" },
    hex: "84 0000000000000001 0000000000000002 5B3A3A315D3A35",
  },
  { ev: { ev: "closed", id: 1 }, hex: "85 0000000000000001" },
  { ev: { ev: "error", id: 1, msg: "boom" }, hex: "86 0000000000000001 626F6F6D" },
  { ev: { ev: "denied", id: 1, msg: "no" }, hex: "87 0000000000000001 6E6F" },
  {
    ev: { ev: "data_from", id: 1, data: te.encode("hi"), addr: "1.2.3.4", port: 53 },
    hex: "88 0000000000000001 0035 0007 312E322E332E34 6869",
  },
  {
    // Payload is the JSON array text ["1.2.3.4"].
    ev: { ev: "resolved", id: 1, addrs: ["1.2.3.4"] },
    hex: "89 0000000000000001 5B22312E322E332E34225D",
  },
  { ev: { ev: "udp_bound", id: 1, port: 5353 }, hex: "8A 0000000000000001 14E9" },
  {
    // seq 7, type 0, code 0, rtt_ms 0.5 (f64), source "1.2.3.4", data "hi".
    ev: {
      ev: "pong",
      id: 1,
      source: "1.2.3.4",
      seq: 7,
      type: 0,
      code: 0,
      rtt_ms: 0.5,
      data: te.encode("hi"),
    },
    hex: "8B 0000000000000001 0007 00 00 3FE0000000000000 0007 312E322E332E34 6869",
  },
];

Deno.test("binary events: the cases cover all 10 events and the pong extension", (): void => {
  assert.equal(new Set(eventCases.map((c) => c.ev.ev)).size, 11);
});

for (const { ev, hex } of eventCases) {
  Deno.test(`binary event ${ev.ev}: exact bytes, decode and round trip`, (): void => {
    const expected = fromHex(hex);
    assert.equal(toHex(encodeEventBinary(ev)), toHex(expected));
    assert.deepStrictEqual(decodeEventBinary(expected), ev);
    assert.deepStrictEqual(decodeEventBinary(encodeEventBinary(ev)), ev);
  });

  Deno.test(`binary event ${ev.ev}: decodes from a sub-view with junk around it`, (): void => {
    for (const [before, after] of [[1, 0], [3, 5], [8, 1], [13, 64]] as const) {
      const { big, sub } = embed(fromHex(hex), before, after);
      const got = decodeEventBinary(sub);
      assert.deepStrictEqual(got, ev);
      const data = dataOf(got);
      if (data !== undefined) {
        assert.equal(data.buffer, big.buffer);
        assert.equal(data.byteOffset + data.byteLength, before + sub.byteLength);
      }
    }
  });
}

Deno.test("binary event resolved: payload is JSON array text", (): void => {
  const f = encodeEventBinary({ ev: "resolved", id: 2, addrs: ["1.2.3.4", "::1"] });
  assert.equal(new TextDecoder().decode(f.subarray(HEADER_BYTES)), '["1.2.3.4","::1"]');
  const empty = encodeEventBinary({ ev: "resolved", id: 2, addrs: [] });
  assert.equal(toHex(empty), "8900000000000000025B5D");
  assert.deepStrictEqual(decodeEventBinary(empty), { ev: "resolved", id: 2, addrs: [] });
});

Deno.test("binary event accepted: conn_id u64 then remote, IPv4 and large ids", (): void => {
  const ev: WireEvent = { ev: "accepted", id: 7, conn_id: MAX_ID, remote: "1.2.3.4:5678" };
  const f = encodeEventBinary(ev);
  assert.equal(
    toHex(f),
    "84" + "0000000000000007" + "001FFFFFFFFFFFFF" + toHex(te.encode("1.2.3.4:5678")),
  );
  assert.deepStrictEqual(decodeEventBinary(f), ev);
});

Deno.test("binary event data_from: empty addr and data", (): void => {
  const ev: WireEvent = { ev: "data_from", id: 3, data: bytes(), addr: "", port: 0 };
  assert.equal(toHex(encodeEventBinary(ev)), "88000000000000000300000000");
  assert.deepStrictEqual(decodeEventBinary(encodeEventBinary(ev)), ev);
});

Deno.test("binary encoders write only the bytes of a sub-view", (): void => {
  const { sub } = embed(bytes(0x68, 0x69));
  assert.equal(
    toHex(encodeRequestBinary({ op: "send", id: 1, data: sub })),
    "0400000000000000016869",
  );
  assert.equal(
    toHex(encodeEventBinary({ ev: "data", id: 1, data: sub })),
    "8200000000000000016869",
  );
  assert.equal(
    toHex(encodeEventBinary({ ev: "data_from", id: 1, data: sub, addr: "a", port: 1 })),
    toHex(fromHex("88 0000000000000001 0001 0001 61 6869")),
  );
});

// ---------------------------------------------------------------------------------------------
// writeHeader.

Deno.test("writeHeader writes type and id at the start of a sub-view only", (): void => {
  const { big, sub } = embed(new Uint8Array(12), 3, 4);
  writeHeader(sub, MsgType.data, 2 ** 32 + 5);
  assert.equal(toHex(sub), "82" + "0000000100000005" + "000000");
  assert.equal(toHex(big.subarray(0, 3)), "FFFFFF");
  assert.equal(toHex(big.subarray(15)), "AAAAAAAA");
  sub.set(te.encode("hey"), HEADER_BYTES);
  assert.deepStrictEqual(decodeEventBinary(sub), {
    ev: "data",
    id: 2 ** 32 + 5,
    data: te.encode("hey"),
  });
});

// ---------------------------------------------------------------------------------------------
// ids.

const goodIds: [number, string][] = [
  [0, "0000000000000000"],
  [1, "0000000000000001"],
  [2 ** 32, "0000000100000000"],
  [MAX_ID, "001FFFFFFFFFFFFF"],
];

Deno.test("binary ids 0, 1, 2^32 and 2^53-1: exact header bytes and round trips", (): void => {
  for (const [id, idHex] of goodIds) {
    const reqs: Request[] = [
      { op: "close", id },
      { op: "connect", id, addr: "a", port: 1 },
      { op: "send", id, data: bytes(1) },
      { op: "send_to", id, addr: "a", port: 1, data: bytes(1) },
    ];
    for (const req of reqs) {
      const f = encodeRequestBinary(req);
      assert.equal(toHex(f.subarray(1, 9)), idHex);
      assert.deepStrictEqual(decodeRequestBinary(f), req);
      assert.deepStrictEqual(decodeRequestBinary(embed(f).sub), req);
    }
    const evs: WireEvent[] = [
      { ev: "closed", id },
      { ev: "accepted", id, conn_id: id, remote: "[::1]:5" },
      { ev: "data", id, data: bytes(1) },
    ];
    for (const ev of evs) {
      const f = encodeEventBinary(ev);
      assert.equal(toHex(f.subarray(1, 9)), idHex);
      assert.deepStrictEqual(decodeEventBinary(f), ev);
      assert.deepStrictEqual(decodeEventBinary(embed(f).sub), ev);
    }
    assert.equal(
      toHex(encodeEventBinary({ ev: "accepted", id: 1, conn_id: id, remote: "" })).slice(18, 34),
      idHex,
    );
  }
});

Deno.test("binary ids 2^53 and 2^64-1 are refused, never rounded", (): void => {
  const cases: [bigint, string][] = [
    [2n ** 53n, "9007199254740992"],
    [2n ** 53n + 1n, "9007199254740993"],
    [2n ** 64n - 1n, "18446744073709551615"],
  ];
  for (const [id, shown] of cases) {
    const message = `invalid binary frame: id ${shown} is above 2^53-1 (9007199254740991)`;
    for (const type of [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09]) {
      refuses(() => decodeRequestBinary(frame(type, id, fromHex("0050 0000 61"))), message);
      refuses(() => decodeRequestBinary(embed(frame(type, id)).sub), /id .* above 2\^53-1/);
    }
    for (const type of [0x81, 0x82, 0x85]) {
      refuses(() => decodeEventBinary(frame(type, id)), message);
    }
    refuses(
      () => decodeEventBinary(frame(0x84, 1, fromHex(id.toString(16).padStart(16, "0")))),
      `invalid binary frame: conn_id ${shown} is above 2^53-1 (9007199254740991)`,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Request refusals.

Deno.test("binary request refusal: frames shorter than the 9-byte header", (): void => {
  refuses(
    () => decodeRequestBinary(new Uint8Array(0)),
    "invalid binary frame: binary frame too short (0 bytes, need at least 9)",
  );
  refuses(
    () => decodeRequestBinary(fromHex("05 00000000000000")),
    "invalid binary frame: binary frame too short (8 bytes, need at least 9)",
  );
  for (let n = 1; n < 9; n++) {
    refuses(() => decodeRequestBinary(new Uint8Array(n).fill(1)), /binary frame too short/);
  }
  // A short sub-view of a long buffer is short, whatever the buffer holds.
  const big = frame(0x05, 1, new Uint8Array(32));
  refuses(() => decodeRequestBinary(big.subarray(0, 8)), /too short \(8 bytes/);
  refuses(() => decodeRequestBinary(big.subarray(20, 20)), /too short \(0 bytes/);
});

Deno.test("binary request refusal: unknown type bytes, events included", (): void => {
  const unknown = [0x00, 0x0d, 0x10, 0x42, 0x7f, 0x80, 0x81, 0x82, 0x89, 0x8a, 0x8b, 0xff];
  for (const type of unknown) {
    const hex = type.toString(16).padStart(2, "0");
    refuses(
      () => decodeRequestBinary(frame(type, 1, bytes(0, 80, 97))),
      `invalid binary frame: unknown message type: 0x${hex}`,
    );
  }
  refuses(
    () => decodeRequestBinary(frame(0x42, 1)),
    "invalid binary frame: unknown message type: 0x42",
  );
  refuses(
    () => decodeRequestBinary(frame(0x0d, 1)),
    "invalid binary frame: unknown message type: 0x0d",
  );
  refuses(
    () => decodeRequestBinary(frame(0x81, 1)),
    "invalid binary frame: unknown message type: 0x81",
  );
});

Deno.test("binary request refusal: addr ops with 0 or 1 payload bytes miss the port", (): void => {
  for (const type of [0x01, 0x02, 0x06, 0x09]) {
    for (const payload of [bytes(), bytes(0x01)]) {
      refuses(
        () => decodeRequestBinary(frame(type, 1, payload)),
        "invalid binary frame: frame missing port",
      );
      refuses(
        () => decodeRequestBinary(embed(frame(type, 1, payload)).sub),
        "invalid binary frame: frame missing port",
      );
    }
  }
});

Deno.test("binary request: addr ops with exactly the port have an empty addr", (): void => {
  for (const op of ["connect", "bind", "connect_udp", "connect_tls"] as const) {
    const f = frame(MsgType[op], 1, bytes(0x00, 0x50));
    assert.deepStrictEqual(decodeRequestBinary(f), { op, id: 1, addr: "", port: 80 });
    assert.deepStrictEqual(encodeRequestBinary({ op, id: 1, addr: "", port: 80 }), f);
  }
});

Deno.test("binary request refusal: send_to with fewer than 4 payload bytes", (): void => {
  for (let n = 0; n < 4; n++) {
    refuses(
      () => decodeRequestBinary(frame(0x07, 1, new Uint8Array(n))),
      "invalid binary frame: send_to frame too short",
    );
    // Junk after the sub-view must not be read as the missing bytes.
    refuses(
      () => decodeRequestBinary(embed(frame(0x07, 1, new Uint8Array(n)), 2, 16).sub),
      "invalid binary frame: send_to frame too short",
    );
  }
});

Deno.test("binary request refusal: send_to addr_len beyond the payload", (): void => {
  for (const payload of ["0035 0001", "0035 0008 312E322E332E34", "0035 FFFF 61"]) {
    refuses(
      () => decodeRequestBinary(frame(0x07, 1, fromHex(payload))),
      "invalid binary frame: send_to addr truncated",
    );
    refuses(
      () => decodeRequestBinary(embed(frame(0x07, 1, fromHex(payload)), 4, 100).sub),
      "invalid binary frame: send_to addr truncated",
    );
  }
  // addr_len equal to the rest of the payload is fine: empty data.
  assert.deepStrictEqual(decodeRequestBinary(frame(0x07, 1, fromHex("0035 0001 61"))), {
    op: "send_to",
    id: 1,
    addr: "a",
    port: 53,
    data: bytes(),
  });
});

Deno.test("binary request refusal: listen payload that is not 0 or 4 bytes", (): void => {
  for (const n of [1, 2, 3, 5, 8]) {
    refuses(
      () => decodeRequestBinary(frame(0x03, 1, new Uint8Array(n))),
      `invalid binary frame: listen payload must be 0 or 4 bytes (backlog u32), got ${n}`,
    );
  }
});

Deno.test("binary request refusal: addr and name that are not UTF-8", (): void => {
  const bad = ["FF FE", "C3", "80", "ED A0 80", "C0 AF", "F8 88 80 80 80", "61 FF 62"];
  for (const b of bad) {
    for (const type of [0x01, 0x02, 0x06, 0x09]) {
      refuses(
        () => decodeRequestBinary(frame(type, 1, fromHex(`01BB ${b}`))),
        "invalid binary frame: addr is not valid UTF-8",
      );
    }
    const len = fromHex(b).byteLength.toString(16).padStart(4, "0");
    refuses(
      () => decodeRequestBinary(frame(0x07, 1, fromHex(`0035 ${len} ${b} 00`))),
      "invalid binary frame: addr is not valid UTF-8",
    );
    refuses(
      () => decodeRequestBinary(frame(0x08, 1, fromHex(b))),
      "invalid binary frame: name is not valid UTF-8",
    );
  }
});

Deno.test("binary request: send_to data is raw bytes, not UTF-8 checked", (): void => {
  const req = decodeRequestBinary(frame(0x07, 1, fromHex("0035 0001 61 FF FE 00")));
  assert.deepStrictEqual(req, {
    op: "send_to",
    id: 1,
    addr: "a",
    port: 53,
    data: bytes(0xff, 0xfe, 0x00),
  });
  assert.deepStrictEqual(decodeRequestBinary(frame(0x04, 1, bytes(0xff, 0xfe))), {
    op: "send",
    id: 1,
    data: bytes(0xff, 0xfe),
  });
});

Deno.test("binary request: close ignores trailing payload bytes", (): void => {
  assert.deepStrictEqual(decodeRequestBinary(frame(0x05, 1, bytes(1, 2, 3))), {
    op: "close",
    id: 1,
  });
});

// ---------------------------------------------------------------------------------------------
// Event refusals.

Deno.test("binary event refusal: short frames, unknown types, short payloads", (): void => {
  refuses(() => decodeEventBinary(new Uint8Array(0)), /binary frame too short \(0 bytes/);
  refuses(() => decodeEventBinary(new Uint8Array(8)), /binary frame too short \(8 bytes/);
  for (const type of [0x00, 0x01, 0x09, 0x42, 0x80, 0x8c, 0xff]) {
    const hex = type.toString(16).padStart(2, "0");
    refuses(
      () => decodeEventBinary(frame(type, 1)),
      `invalid binary frame: unknown message type: 0x${hex}`,
    );
  }
  refuses(
    () => decodeEventBinary(frame(0x83, 1, bytes(1))),
    "invalid binary frame: listening frame too short",
  );
  refuses(
    () => decodeEventBinary(frame(0x8a, 1)),
    "invalid binary frame: udp_bound frame too short",
  );
  refuses(
    () => decodeEventBinary(frame(0x84, 1, new Uint8Array(7))),
    "invalid binary frame: accepted frame too short",
  );
  refuses(
    () => decodeEventBinary(frame(0x88, 1, bytes(0, 1, 0))),
    "invalid binary frame: data_from frame too short",
  );
  refuses(
    () => decodeEventBinary(frame(0x88, 1, fromHex("0035 0002 61"))),
    "invalid binary frame: data_from addr truncated",
  );
  refuses(
    () => decodeEventBinary(embed(frame(0x88, 1, fromHex("0035 0002 61")), 1, 30).sub),
    "invalid binary frame: data_from addr truncated",
  );
});

Deno.test("binary event refusal: bad UTF-8 and bad resolved payloads", (): void => {
  refuses(
    () => decodeEventBinary(frame(0x86, 1, bytes(0xff, 0xfe))),
    "invalid binary frame: msg is not valid UTF-8",
  );
  refuses(
    () => decodeEventBinary(frame(0x87, 1, bytes(0xc3))),
    "invalid binary frame: msg is not valid UTF-8",
  );
  refuses(
    () => decodeEventBinary(frame(0x84, 1, fromHex("0000000000000002 FF"))),
    "invalid binary frame: remote is not valid UTF-8",
  );
  refuses(
    () => decodeEventBinary(frame(0x88, 1, fromHex("0035 0001 FF"))),
    "invalid binary frame: addr is not valid UTF-8",
  );
  refuses(
    () => decodeEventBinary(frame(0x89, 1, bytes(0xff))),
    "invalid binary frame: addrs is not valid UTF-8",
  );
  for (const text of ["", "[", "nope", "{}", '"1.2.3.4"', "[1]", '["a",null]', "null"]) {
    refuses(
      () => decodeEventBinary(frame(0x89, 1, te.encode(text))),
      /^invalid binary frame: resolved payload is not a JSON array/,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Payload sizes and text.

Deno.test("binary: empty send payload", (): void => {
  const req: Request = { op: "send", id: 1, data: bytes() };
  assert.equal(toHex(encodeRequestBinary(req)), "040000000000000001");
  assert.deepStrictEqual(decodeRequestBinary(fromHex("04 0000000000000001")), req);
  const got = decodeRequestBinary(embed(fromHex("04 0000000000000001"), 2, 10).sub);
  assert.deepStrictEqual(got, req);
  const ev: WireEvent = { ev: "data", id: 1, data: bytes() };
  assert.deepStrictEqual(decodeEventBinary(encodeEventBinary(ev)), ev);
});

Deno.test("binary: empty addr and name", (): void => {
  const sendTo: Request = { op: "send_to", id: 1, addr: "", port: 0, data: bytes() };
  assert.equal(toHex(encodeRequestBinary(sendTo)), "07000000000000000100000000");
  assert.deepStrictEqual(decodeRequestBinary(encodeRequestBinary(sendTo)), sendTo);
  const resolve: Request = { op: "resolve", id: 1, name: "" };
  assert.equal(toHex(encodeRequestBinary(resolve)), "080000000000000001");
  assert.deepStrictEqual(decodeRequestBinary(encodeRequestBinary(resolve)), resolve);
  const err: WireEvent = { ev: "error", id: 0, msg: "" };
  assert.deepStrictEqual(decodeEventBinary(encodeEventBinary(err)), err);
});

Deno.test("binary: 64 KiB payloads round trip, from sub-views too", (): void => {
  const data = randomBytes(65536);
  const cases: (Request | WireEvent)[] = [
    { op: "send", id: 1, data },
    { op: "send_to", id: 1, addr: "::1", port: 9, data },
    { ev: "data", id: 2, data },
    { ev: "data_from", id: 2, data, addr: "1.2.3.4", port: 53 },
  ];
  for (const m of cases) {
    if ("op" in m) {
      const f = encodeRequestBinary(m);
      assert.deepStrictEqual(decodeRequestBinary(f), m);
      assert.deepStrictEqual(decodeRequestBinary(embed(f, 7, 3).sub), m);
    } else {
      const f = encodeEventBinary(m);
      assert.deepStrictEqual(decodeEventBinary(f), m);
      assert.deepStrictEqual(decodeEventBinary(embed(f, 7, 3).sub), m);
    }
  }
  assert.equal(encodeRequestBinary({ op: "send", id: 1, data }).byteLength, 9 + 65536);
});

Deno.test("binary: unicode addr is UTF-8 and addr_len counts bytes", (): void => {
  assert.equal(
    toHex(encodeRequestBinary({ op: "send_to", id: 1, addr: "é", port: 1, data: bytes(1) })),
    "070000000000000001" + "0001" + "0002" + "C3A9" + "01",
  );
  const addr = "bücher.例え.jp";
  const connect: Request = { op: "connect", id: 1, addr, port: 80 };
  const f = encodeRequestBinary(connect);
  assert.equal(toHex(f), "010000000000000001" + "0050" + toHex(te.encode(addr)));
  assert.deepStrictEqual(decodeRequestBinary(f), connect);
  assert.deepStrictEqual(decodeRequestBinary(embed(f).sub), connect);
  const cases: (Request | WireEvent)[] = [
    { op: "send_to", id: 1, addr: "☃.例え", port: 1, data: bytes(0xe2, 0x98) },
    { op: "resolve", id: 1, name: "😀.example" },
    { op: "bind", id: 1, addr: "ü", port: 1 },
    { ev: "data_from", id: 1, data: bytes(1), addr: "😀", port: 1 },
    { ev: "accepted", id: 1, conn_id: 2, remote: "[fe80::1%ü]:5" },
    { ev: "error", id: 1, msg: "résumé ✓" },
    { ev: "denied", id: 1, msg: "例え" },
    { ev: "resolved", id: 1, addrs: ["ü", "例"] },
  ];
  for (const m of cases) {
    if ("op" in m) assert.deepStrictEqual(decodeRequestBinary(encodeRequestBinary(m)), m);
    else assert.deepStrictEqual(decodeEventBinary(encodeEventBinary(m)), m);
  }
});

Deno.test("binary send_to: the longest addr (65535 bytes) fits, one more is a RangeError", (): void => {
  const addr = "a".repeat(65535);
  const req: Request = { op: "send_to", id: 1, addr, port: 1, data: bytes(7) };
  const f = encodeRequestBinary(req);
  assert.equal(toHex(f.subarray(9, 13)), "0001FFFF");
  assert.deepStrictEqual(decodeRequestBinary(f), req);
  assert.throws(
    () => encodeRequestBinary({ op: "send_to", id: 1, addr: addr + "a", port: 1, data: bytes() }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeEventBinary({
        ev: "data_from",
        id: 1,
        addr: "é".repeat(32768),
        port: 1,
        data: bytes(),
      }),
    RangeError,
  );
});

Deno.test("binary decoders do not modify the frame", (): void => {
  for (const { hex } of requestCases) {
    const { big, sub } = embed(fromHex(hex));
    const copy = big.slice();
    decodeRequestBinary(sub);
    assert.deepStrictEqual(big, copy);
  }
  for (const { hex } of eventCases) {
    const { big, sub } = embed(fromHex(hex));
    const copy = big.slice();
    decodeEventBinary(sub);
    assert.deepStrictEqual(big, copy);
  }
});

// BUG (binary.ts line 21): `new TextDecoder("utf-8", { fatal: true })` strips a leading U+FEFF
// (byte order mark), because `ignoreBOM` defaults to false. Strings that start with U+FEFF do not
// round trip, the binary framing disagrees with the JSON framing, and wasmnet 0.1.3 (Rust
// `String::from_utf8`) keeps the character. Fix: add `ignoreBOM: true` to the decoder options.
Deno.test("binary: a leading U+FEFF in addr, name and msg is kept (as in JSON and wasmnet)", (): void => {
  const addr = "\uFEFFexample.com";
  const connect: Request = { op: "connect", id: 1, addr, port: 80 };
  assert.deepStrictEqual(decodeRequestJson(encodeRequestJson(connect)), connect);
  assert.equal(
    toHex(encodeRequestBinary(connect)),
    "010000000000000001" + "0050" + "EFBBBF" + toHex(te.encode("example.com")),
  );
  assert.deepStrictEqual(decodeRequestBinary(encodeRequestBinary(connect)), connect);
  const resolve: Request = { op: "resolve", id: 1, name: "\uFEFF" };
  assert.deepStrictEqual(decodeRequestBinary(encodeRequestBinary(resolve)), resolve);
  const err: WireEvent = { ev: "error", id: 1, msg: "\uFEFFboom" };
  assert.deepStrictEqual(decodeEventBinary(encodeEventBinary(err)), err);
});

// ---------------------------------------------------------------------------------------------
// Extensions: start_tls (0x0A) and shutdown (0x0B).

Deno.test("binary start_tls: an empty payload means the socket's host", (): void => {
  assert.deepStrictEqual(decodeRequestBinary(frame(0x0a, 7)), { op: "start_tls", id: 7 });
  assert.ok(!("servername" in decodeRequestBinary(frame(0x0a, 7))));
  assert.equal(
    toHex(encodeRequestBinary({ op: "start_tls", id: 7, servername: "" })),
    "0A0000000000000007",
  );
  const ip: Request = { op: "start_tls", id: 7, servername: "::1" };
  assert.equal(toHex(encodeRequestBinary(ip)), "0A0000000000000007" + "3A3A31");
  const idn: Request = { op: "start_tls", id: MAX_ID, servername: "bücher.example" };
  assert.deepStrictEqual(decodeRequestBinary(encodeRequestBinary(idn)), idn);
  assert.deepStrictEqual(decodeRequestBinary(embed(encodeRequestBinary(idn), 3, 2).sub), idn);
});

Deno.test("binary start_tls and shutdown refusals: bad UTF-8, payload, id", (): void => {
  refuses(
    () => decodeRequestBinary(frame(0x0a, 1, bytes(0x61, 0xff))),
    "invalid binary frame: servername is not valid UTF-8",
  );
  refuses(
    () => decodeRequestBinary(frame(0x0a, 1, bytes(0xc3))),
    "invalid binary frame: servername is not valid UTF-8",
  );
  refuses(
    () => decodeRequestBinary(frame(0x0b, 1, bytes(0))),
    "invalid binary frame: shutdown payload must be empty, got 1 bytes",
  );
  refuses(
    () => decodeRequestBinary(frame(0x0b, 1, te.encode("both"))),
    "invalid binary frame: shutdown payload must be empty, got 4 bytes",
  );
  for (const type of [0x0a, 0x0b]) {
    refuses(
      () => decodeRequestBinary(frame(type, 2n ** 53n)),
      /^invalid binary frame: id 9007199254740992 is above 2\^53-1/,
    );
    refuses(
      () => decodeRequestBinary(frame(type, 0).subarray(0, 8)),
      "invalid binary frame: binary frame too short (8 bytes, need at least 9)",
    );
  }
  // A sub-view whose junk after it is not UTF-8 (0xAA) decodes: nothing past the view is read.
  assert.deepStrictEqual(decodeRequestBinary(embed(fromHex("0B 0000000000000003"), 4, 9).sub), {
    op: "shutdown",
    id: 3,
  });
});

// ---------------------------------------------------------------------------------------------
// mod.ts: framing dispatch by message type.

Deno.test("mod decodeRequest: a string is JSON, bytes are a binary frame", (): void => {
  const req: Request = { op: "connect", id: 42, addr: "example.com", port: 443 };
  assert.deepStrictEqual(
    decodeRequest('{"op":"connect","id":42,"addr":"example.com","port":443}'),
    req,
  );
  assert.deepStrictEqual(decodeRequest(fromHex(requestCases[0]?.hex ?? "")), req);
  assert.deepStrictEqual(decodeRequest(embed(fromHex(requestCases[0]?.hex ?? "")).sub), req);
  // The framing of the error follows the message type, even for empty messages.
  refuses(() => decodeRequest(new Uint8Array(0)), /^invalid binary frame: binary frame too short/);
  assert.throws(() => decodeRequest(""), {
    name: "ProtocolError",
    framing: "json",
    message: /^invalid request: not valid JSON/,
  });
  // JSON text sent as bytes is a binary frame ('{' = 0x7b is not a type byte).
  refuses(
    () => decodeRequest(te.encode('{"op":"close","id":1}')),
    "invalid binary frame: unknown message type: 0x7b",
  );
});

Deno.test("mod encodeEvent / decodeEvent: dispatch by framing and message type", (): void => {
  for (const { ev, hex } of eventCases) {
    const json = encodeEvent(ev, "json");
    assert.equal(typeof json, "string");
    assert.equal(json, encodeEventJson(ev));
    const bin = encodeEvent(ev, "binary");
    assert.ok(bin instanceof Uint8Array);
    assert.equal(toHex(bin), toHex(fromHex(hex)));
    assert.deepStrictEqual(decodeEvent(json), ev);
    assert.deepStrictEqual(decodeEvent(bin), ev);
    assert.deepStrictEqual(decodeEvent(embed(bin).sub), ev);
    assert.deepStrictEqual(decodeEventJson(json as string), ev);
  }
  assert.throws(() => decodeEvent("[]"), { name: "ProtocolError", framing: "json" });
  refuses(() => decodeEvent(bytes(0x85)), /binary frame too short \(1 bytes/);
});

Deno.test("mod encodeRequest: dispatch by framing", (): void => {
  for (const { req, hex } of requestCases) {
    const json = encodeRequest(req, "json");
    assert.equal(json, encodeRequestJson(req));
    const bin = encodeRequest(req, "binary");
    assert.ok(bin instanceof Uint8Array);
    assert.equal(toHex(bin), toHex(fromHex(hex)));
    assert.deepStrictEqual(decodeRequest(json), req);
    assert.deepStrictEqual(decodeRequest(bin), req);
  }
});

// ---------------------------------------------------------------------------------------------
// Extension ping / pong: malformed forms.

Deno.test("binary ping refusal: short payload, timeout out of range, truncated addr", (): void => {
  refuses(
    () => decodeRequestBinary(frame(0x0c, 1, new Uint8Array(7))),
    "invalid binary frame: ping frame too short",
  );
  refuses(
    () => decodeRequestBinary(frame(0x0c, 1, fromHex("0001 00000000 0000"))),
    "invalid binary frame: ping timeout_ms must be from 1 to 60000, got 0",
  );
  refuses(
    () => decodeRequestBinary(frame(0x0c, 1, fromHex("0001 0000EA61 0000"))),
    "invalid binary frame: ping timeout_ms must be from 1 to 60000, got 60001",
  );
  refuses(
    () => decodeRequestBinary(frame(0x0c, 1, fromHex("0001 000003E8 0005 6162"))),
    "invalid binary frame: ping addr truncated",
  );
  refuses(
    () => decodeRequestBinary(frame(0x0c, 1, fromHex("0001 000003E8 0002 FFFE"))),
    "invalid binary frame: addr is not valid UTF-8",
  );
});

Deno.test("binary pong refusal: short payload, truncated source", (): void => {
  refuses(
    () => decodeEventBinary(frame(0x8b, 1, new Uint8Array(13))),
    "invalid binary frame: pong frame too short",
  );
  refuses(
    () => decodeEventBinary(frame(0x8b, 1, fromHex("0007 00 00 3FE0000000000000 0009 31"))),
    "invalid binary frame: pong source truncated",
  );
});

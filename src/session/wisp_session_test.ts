/**
 * Unit tests of {@linkcode WispSession} over the session core's fake transport
 * (`_fake_transport_test_util.ts`) and a fake WebSocket that decodes every message as a Wisp
 * packet: the v1 and v2 handshakes, password authentication, streams and their CLOSE reasons,
 * malformed input, and per-stream CONTINUE credit (spec "0x03 - CONTINUE"; MercuryWorkshop
 * wisp-protocol v1.2 and 2.0 draft 6). No sockets, no WebSocket.
 *
 * Every harness, when disposed, closes the session and asserts that the fake transport has no
 * connection left open and that the session logged no error.
 *
 * @module
 */
import { deepStrictEqual as eq, ok, strictEqual } from "node:assert/strict";
import { Policy, type PolicyConfig } from "../policy/mod.ts";
import type { Logger } from "../log/mod.ts";
import {
  CloseReason,
  decodePacket,
  encodeCredentials,
  encodePacket,
  ExtensionId,
  StreamType,
  utf8Bytes,
  type WispExtension,
  type WispPacket,
} from "../wisp/mod.ts";
import type { WireChannel } from "./session.ts";
import type { SessionLimits } from "./options.ts";
import { DEFAULT_WISP_BUFFER_PACKETS, WispSession, type WispSettings } from "./wisp_session.ts";
import { type FakeConn, FakeTransport, refused, tick, until } from "./_fake_transport_test_util.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const OK_IP = "203.0.113.10";
const OK_IP2 = "203.0.113.11";
const DENIED_IP = "198.51.100.66";
const DENIED_NAME = "bad.test";
const NONE = new Uint8Array(0);

interface PolicyOptions extends Partial<PolicyConfig> {
  /** Overrides `connectionTimeoutMs` (the config's minimum is 1 s). */
  timeoutMs?: number;
}

/** A permissive policy (deny only `DENIED_IP` and `DENIED_NAME`); `timeoutMs` shortens dials. */
function testPolicy(options: PolicyOptions = {}): Policy {
  const { timeoutMs, ...config } = options;
  const policy = Policy.fromConfig({
    deny: [DENIED_IP, DENIED_NAME],
    allow: ["*"],
    maxBandwidthMbps: 0,
    ...config,
  }, "<wisp session test>");
  if (timeoutMs === undefined) return policy;
  return new Proxy(policy, {
    get(target, prop): unknown {
      if (prop === "connectionTimeoutMs") return timeoutMs;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A logger that keeps errors (a session logs `task failed` when a task throws). */
function recordingLogger(errors: string[]): Logger {
  return {
    trace: () => {},
    debug: () => {},
    info: () => {},
    warn: () => {},
    error: (msg, fields) => errors.push(`${msg} ${JSON.stringify(fields ?? {})}`),
    enabled: () => false,
  };
}

/** A WebSocket as the Wisp session sees it: every binary message is decoded as a Wisp packet. */
class WispChannel implements WireChannel {
  bufferedAmount = 0;
  /** Every packet sent, decoded (from a copy), in order. */
  readonly packets: WispPacket[] = [];
  /** Text messages sent (there must be none). */
  readonly texts: string[] = [];
  /** Called synchronously with each packet as the session sends it. */
  onPacket: ((p: WispPacket) => void) | undefined;
  pauses = 0;
  resumes = 0;

  send(data: string | Uint8Array): void {
    if (typeof data === "string") {
      this.texts.push(data);
      return;
    }
    const p = decodePacket(data.slice());
    this.packets.push(p);
    this.onPacket?.(p);
  }

  pauseReading(): void {
    this.pauses++;
  }

  resumeReading(): void {
    this.resumes++;
  }

  /** Packets for `stream`, in order. */
  on(stream: number): WispPacket[] {
    return this.packets.filter((p) => p.stream === stream);
  }

  /** Packets for `stream` other than DATA. */
  controlOn(stream: number): WispPacket[] {
    return this.on(stream).filter((p) => p.type !== "data");
  }

  /** Concatenated DATA payloads for `stream`, as text. */
  textOn(stream: number): string {
    return this.on(stream).map((p) => p.type === "data" ? dec.decode(p.payload) : "").join("");
  }
}

interface HarnessOptions {
  version?: 1 | 2;
  wisp?: WispSettings;
  policy?: Policy;
  limits?: Partial<SessionLimits>;
}

/** A WispSession over a fake transport and a {@linkcode WispChannel}. */
class Harness implements AsyncDisposable {
  readonly transport = new FakeTransport();
  readonly channel = new WispChannel();
  readonly closes: { code: number; reason: string }[] = [];
  readonly errors: string[] = [];
  readonly session: WispSession;

  constructor(options: HarnessOptions = {}) {
    this.session = new WispSession(this.channel, {
      policy: options.policy ?? testPolicy(),
      transport: this.transport,
      log: recordingLogger(this.errors),
      version: options.version ?? 1,
      ...(options.wisp ? { wisp: options.wisp } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      closeChannel: (code, reason) => {
        this.closes.push({ code, reason });
        return Promise.resolve();
      },
    });
  }

  /** The client sends `p`. */
  send(p: WispPacket): void {
    this.session.handle(encodePacket(p));
  }

  /** The client's INFO (v2.0) with `extensions`. */
  info(extensions: WispExtension[]): void {
    this.send({ type: "info", stream: 0, major: 2, minor: 0, extensions });
  }

  connect(stream: number, host = OK_IP, port = 80, streamType: number = StreamType.tcp): void {
    this.send({ type: "connect", stream, streamType, port, host });
  }

  data(stream: number, payload: string | Uint8Array): void {
    this.send({
      type: "data",
      stream,
      payload: typeof payload === "string" ? enc.encode(payload) : payload,
    });
  }

  close(stream: number, reason: number = CloseReason.voluntary): void {
    this.send({ type: "close", stream, reason });
  }

  /** CONNECTs `stream` to an address that dials at once; returns its connection once reading. */
  async open(stream: number, host = OK_IP, port = 80): Promise<FakeConn> {
    const before = this.transport.conns.length;
    this.connect(stream, host, port);
    await until(() => this.transport.conns.length > before, `dial for stream ${stream}`);
    const conn = this.transport.conns[before];
    ok(conn !== undefined);
    await until(() => conn.reading, `stream ${stream} reading`);
    return conn;
  }

  /** Waits for a CLOSE on `stream`; returns its reason. */
  async closeReason(stream: number): Promise<number> {
    let reason: number | undefined;
    await until(() => {
      const p = this.channel.on(stream).find((p) => p.type === "close");
      if (p?.type === "close") reason = p.reason;
      return reason !== undefined;
    }, `CLOSE on ${stream} (got ${JSON.stringify(this.channel.packets.map((p) => p.type))})`);
    return reason as number;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.session.close();
    eq(this.transport.open, [], "nothing left open");
    eq(this.session.session.stats.live, 0, "no table entry left");
    eq(this.session.session.stats.queuedBytes, 0, "no queued bytes");
    eq(this.channel.texts, [], "no text message sent");
    eq(this.errors, [], "no task failed");
  }
}

/** A few macrotask turns (dials, pumps and writes settle). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await tick();
}

/** The wisp-js 0.5 credential layout `[user len u8][pass len u16 LE][user][pass]`. */
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

const cont = (stream: number, remaining: number): WispPacket => ({
  type: "continue",
  stream,
  remaining,
});
const closeP = (stream: number, reason: number): WispPacket => ({ type: "close", stream, reason });
const STREAM_OPEN: WispExtension = { id: ExtensionId.streamOpen, payload: NONE };
const USERS = new Map([["alice", "pw1"], ["bob", "hunter2"], ["carol", ""]]);

// --- handshakes -------------------------------------------------------------------------------

Deno.test("wisp session: v1 sends CONTINUE on stream 0 with the buffer, first and alone", async () => {
  {
    await using h = new Harness({ version: 1 });
    eq(h.channel.packets, [cont(0, DEFAULT_WISP_BUFFER_PACKETS)]);
  }
  await using h = new Harness({ version: 1, wisp: { bufferPackets: 16 } });
  await settle();
  eq(h.channel.packets, [cont(0, 16)]);
  strictEqual(h.session.protocol, "wisp");
});

Deno.test("wisp session: v2 sends INFO, nothing else until the client's INFO, then CONTINUE(0)", async () => {
  await using h = new Harness({ version: 2, wisp: { bufferPackets: 32 } });
  eq(h.channel.packets, [{
    type: "info",
    stream: 0,
    major: 2,
    minor: 0,
    extensions: [{ id: ExtensionId.udp, payload: NONE }, {
      id: ExtensionId.streamOpen,
      payload: NONE,
    }],
  }]);
  await settle();
  strictEqual(h.channel.packets.length, 1, "nothing before the client's INFO");
  h.info([STREAM_OPEN]);
  eq(h.channel.packets.slice(1), [cont(0, 32)]);
  eq(h.closes, []);
});

Deno.test("wisp session: v2 INFO lists password (required) and the MOTD when set; udp only when allowed", async () => {
  {
    await using h = new Harness({ version: 2, wisp: { users: USERS, motd: "hello ✓" } });
    const info = h.channel.packets[0];
    ok(info?.type === "info");
    eq(info.extensions, [
      { id: ExtensionId.udp, payload: NONE },
      { id: ExtensionId.password, payload: Uint8Array.of(1) },
      { id: ExtensionId.motd, payload: utf8Bytes("hello ✓") },
      { id: ExtensionId.streamOpen, payload: NONE },
    ]);
    strictEqual(h.channel.packets.length, 1);
  }
  {
    // An empty MOTD is not sent; no users → no password extension; udp: false → no 0x01.
    await using h = new Harness({ version: 2, wisp: { motd: "", udp: false, users: new Map() } });
    const info = h.channel.packets[0];
    ok(info?.type === "info");
    eq(info.extensions.map((e) => e.id), [ExtensionId.streamOpen]);
  }
});

// --- authentication ---------------------------------------------------------------------------

Deno.test("wisp session: auth required, INFO without credentials → CLOSE(0, 0xc2), WebSocket 1008", async () => {
  await using h = new Harness({ version: 2, wisp: { users: USERS } });
  h.info([STREAM_OPEN]);
  eq(h.channel.packets.slice(1), [closeP(0, CloseReason.authRequired)]);
  strictEqual(h.closes.length, 1);
  strictEqual(h.closes[0]?.code, 1008);
  // Nothing more is done for this client.
  h.connect(1);
  await settle();
  eq(h.transport.log, []);
  strictEqual(h.channel.packets.length, 2);
});

Deno.test("wisp session: auth required, a client that skips INFO → CLOSE(0, 0xc2)", async () => {
  await using h = new Harness({ version: 2, wisp: { users: USERS } });
  h.connect(1);
  await settle();
  eq(h.channel.packets.slice(1), [closeP(0, CloseReason.authRequired)]);
  eq(h.closes.map((c) => c.code), [1008]);
  eq(h.transport.log, []);
});

Deno.test("wisp session: wrong credentials → CLOSE(0, 0xc0), WebSocket 1008", async () => {
  const wrong: [string, Uint8Array][] = [
    ["wrong password (draft-6)", encodeCredentials("alice", "nope")],
    ["wrong password (wisp-js)", wispJsCredentials("alice", "hunter2")],
    ["unknown user", encodeCredentials("mallory", "pw1")],
    ["a prefix of the password", encodeCredentials("alice", "pw")],
    ["the password and more", encodeCredentials("alice", "pw1pw1")],
    ["an empty password", encodeCredentials("alice", "")],
    ["another user's password", encodeCredentials("alice", "hunter2")],
    ["a password for a user whose password is empty", encodeCredentials("carol", "x")],
    ["empty payload", NONE],
    ["truncated", Uint8Array.of(9, 0x61)],
    ["not UTF-8", Uint8Array.of(1, 0xff, 0x61)],
  ];
  for (const [what, payload] of wrong) {
    await using h = new Harness({ version: 2, wisp: { users: USERS } });
    h.info([{ id: ExtensionId.password, payload }, STREAM_OPEN]);
    eq(h.channel.packets.slice(1), [closeP(0, CloseReason.authInvalidPassword)], what);
    eq(h.closes.map((c) => c.code), [1008], what);
    h.connect(1);
    await settle();
    eq(h.transport.log, [], what);
  }
});

Deno.test("wisp session: right credentials in either layout → CONTINUE(0); streams open", async () => {
  const right = [
    encodeCredentials("alice", "pw1"),
    wispJsCredentials("bob", "hunter2"),
    encodeCredentials("carol", ""),
    wispJsCredentials("carol", ""),
  ];
  for (const payload of right) {
    await using h = new Harness({ version: 2, wisp: { users: USERS, bufferPackets: 10 } });
    h.info([{ id: ExtensionId.password, payload }]);
    eq(h.channel.packets.slice(1), [cont(0, 10)]);
    eq(h.closes, []);
    const conn = await h.open(1);
    h.data(1, "after auth");
    await until(() => conn.text === "after auth", "data upstream");
  }
});

Deno.test("wisp session: v1 with users set → CLOSE(0, 0xc2) at once, WebSocket 1008, no streams", async () => {
  await using h = new Harness({ version: 1, wisp: { users: USERS } });
  eq(h.channel.packets, [closeP(0, CloseReason.authRequired)]);
  eq(h.closes.map((c) => c.code), [1008]);
  h.connect(1);
  h.data(1, "x");
  await settle();
  eq(h.transport.log, []);
  strictEqual(h.channel.packets.length, 1);
});

// --- streams ----------------------------------------------------------------------------------

Deno.test("wisp session: CONNECT dials through the session; CONTINUE confirms it only with ext 0x05", async () => {
  {
    await using h = new Harness({ version: 2, wisp: { bufferPackets: 12 } });
    h.transport.answers.set("a.test", [OK_IP]);
    h.info([STREAM_OPEN]);
    await h.open(1, "a.test", 443);
    eq(h.transport.log, ["lookup a.test", `dial ${OK_IP}:443`]);
    await until(() => h.channel.on(1).length > 0, "confirmation");
    eq(h.channel.on(1), [cont(1, 12)]);
  }
  {
    // v2 without 0x05 in the client's INFO: no confirmation.
    await using h = new Harness({ version: 2, wisp: { bufferPackets: 12 } });
    h.info([{ id: ExtensionId.udp, payload: NONE }]);
    await h.open(1);
    await settle();
    eq(h.channel.on(1), []);
  }
  {
    // v1: no confirmation either.
    await using h = new Harness({ version: 1 });
    const conn = await h.open(7, OK_IP2, 22);
    await settle();
    eq(h.transport.log, [`dial ${OK_IP2}:22`]);
    eq(h.channel.on(7), []);
    strictEqual(conn.closed, false);
    strictEqual(h.session.streams, 1);
  }
});

Deno.test("wisp session: DATA goes upstream and comes back as DATA on the same stream", async () => {
  await using h = new Harness({ version: 1 });
  const a = await h.open(1);
  const b = await h.open(0xfffffff0, OK_IP2);
  h.data(1, "hello ");
  h.data(1, "world");
  h.data(1, NONE); // an empty DATA writes nothing
  h.data(0xfffffff0, "other");
  await until(() => a.text === "hello world" && b.text === "other", "upstream bytes");
  strictEqual(a.written.length, 2);
  // Echo: the peer sends back what it got.
  a.push(a.bytes);
  b.push("OTHER");
  await until(() => h.channel.textOn(1) === "hello world", "echo on 1");
  await until(() => h.channel.textOn(0xfffffff0) === "OTHER", "echo on 0xfffffff0");
  // Large payloads cross intact both ways.
  const big = new Uint8Array(200_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  h.data(1, big);
  await until(() => a.bytes.byteLength === 11 + big.byteLength, "big upstream");
  eq(a.bytes.subarray(11), big);
  a.push(big);
  await until(
    () =>
      h.channel.on(1).reduce((n, p) => n + (p.type === "data" ? p.payload.byteLength : 0), 0) ===
        11 + big.byteLength,
    "big downstream",
  );
  const down = h.channel.on(1).flatMap((p) => p.type === "data" ? [...p.payload] : []);
  eq(Uint8Array.from(down.slice(11)), big);
  eq(h.channel.controlOn(1), []);
});

/** A refusal case: how to provoke it on stream `s`, and the CLOSE reason it must give. */
interface Refusal {
  name: string;
  reason: number;
  policy?: Policy;
  run(h: Harness, s: number): Promise<void> | void;
}

const REFUSALS: Refusal[] = [
  {
    name: "policy denies the address",
    reason: CloseReason.blocked,
    run: (h, s) => h.connect(s, DENIED_IP),
  },
  {
    name: "policy denies the name",
    reason: CloseReason.blocked,
    run: (h, s) => h.connect(s, DENIED_NAME),
  },
  {
    name: "policy denies the resolved address",
    reason: CloseReason.blocked,
    run(h, s): void {
      h.transport.answers.set("evil.test", [DENIED_IP]);
      h.connect(s, "evil.test");
    },
  },
  {
    name: "connection refused",
    reason: CloseReason.refused,
    run(h, s): void {
      h.transport.dials.set("203.0.113.20", refused());
      h.connect(s, "203.0.113.20");
    },
  },
  {
    name: "DNS has no answer",
    reason: CloseReason.unreachable,
    run(h, s): void {
      h.transport.answers.set("empty.test", []);
      h.connect(s, "empty.test");
    },
  },
  {
    name: "DNS lookup fails",
    reason: CloseReason.unreachable,
    run: (h, s) => h.connect(s, "nowhere.test"),
  },
  {
    name: "dial times out",
    reason: CloseReason.timeout,
    policy: testPolicy({ timeoutMs: 30 }),
    run(h, s): void {
      h.transport.dials.set("203.0.113.21", "hold");
      h.connect(s, "203.0.113.21");
    },
  },
  { name: "empty host", reason: CloseReason.invalid, run: (h, s) => h.connect(s, "") },
  {
    name: "host with a space",
    reason: CloseReason.invalid,
    run: (h, s) => h.connect(s, "a b.test"),
  },
  {
    name: "unknown stream type",
    reason: CloseReason.invalid,
    run: (h, s) => h.connect(s, OK_IP, 80, 0x03),
  },
  {
    name: "max_connections reached",
    reason: CloseReason.throttled,
    policy: testPolicy({ maxConnections: 1 }),
    async run(h, s): Promise<void> {
      await h.open(1000);
      h.connect(s);
    },
  },
  {
    name: "the peer ends the stream (EOF)",
    reason: CloseReason.voluntary,
    async run(h, s): Promise<void> {
      const conn = await h.open(s);
      conn.pushEof();
    },
  },
  {
    name: "the upstream connection fails",
    reason: CloseReason.networkError,
    async run(h, s): Promise<void> {
      const conn = await h.open(s);
      conn.pushError(new Error("reset"));
    },
  },
];

for (const r of REFUSALS) {
  Deno.test(`wisp session: ${r.name} → CLOSE 0x${r.reason.toString(16)}`, async () => {
    await using h = new Harness({ version: 1, ...(r.policy ? { policy: r.policy } : {}) });
    await r.run(h, 5);
    strictEqual(await h.closeReason(5), r.reason);
    await settle();
    eq(h.channel.controlOn(5), [closeP(5, r.reason)], "exactly one CLOSE");
    strictEqual(h.session.streams, r.name.startsWith("max_connections") ? 1 : 0);
    eq(h.closes, [], "the WebSocket stays open");
    // Its id is free again: a new CONNECT on it works (a dial is attempted).
    const dials = h.transport.dialled.length;
    if (!r.name.startsWith("max_connections")) {
      h.connect(5, OK_IP2, 81);
      await until(() => h.transport.dialled.length > dials, "a new dial");
    }
  });
}

Deno.test("wisp session: UDP streams are refused with 0x41 when udp is off", async () => {
  await using h = new Harness({ version: 1, wisp: { udp: false } });
  h.connect(3, OK_IP, 53, StreamType.udp);
  strictEqual(await h.closeReason(3), CloseReason.invalid);
  eq(h.transport.log, []);
});

Deno.test("wisp session: a client CLOSE closes upstream and gets no CLOSE back", async () => {
  await using h = new Harness({ version: 1 });
  const conn = await h.open(2);
  h.data(2, "bye");
  await until(() => conn.text === "bye", "data upstream");
  h.close(2);
  await until(() => conn.closed, "upstream closed");
  strictEqual(h.session.streams, 0);
  // Late packets for it are dropped; late peer bytes are not forwarded.
  h.data(2, "late");
  await settle();
  strictEqual(conn.text, "bye");
  eq(h.channel.on(2), []);
  eq(h.closes, []);
});

Deno.test("wisp session: a client CLOSE while dialling cancels the dial silently", async () => {
  await using h = new Harness({ version: 1 });
  h.transport.dials.set(OK_IP, "hold");
  h.connect(4);
  const held = await h.transport.waitHeld(`dial ${OK_IP}`);
  h.close(4);
  await until(() => held.settled, "dial cancelled");
  await settle();
  eq(h.channel.on(4), []);
});

Deno.test("wisp session: DATA for an unknown stream is ignored", async () => {
  await using h = new Harness({ version: 1 });
  h.data(9, "nobody");
  h.data(0, "stream zero");
  h.close(11);
  await settle();
  eq(h.channel.packets, [cont(0, DEFAULT_WISP_BUFFER_PACKETS)]);
  eq(h.transport.log, []);
  eq(h.closes, []);
});

// --- malformed input --------------------------------------------------------------------------

Deno.test("wisp session: a packet shorter than its header closes the WebSocket with 1002", async () => {
  await using h = new Harness({ version: 1 });
  const conn = await h.open(1);
  h.session.handle(Uint8Array.of(0x02, 1, 0));
  eq(h.closes.map((c) => c.code), [1002]);
  // Nothing more is handled.
  h.data(1, "ignored");
  h.connect(2);
  await settle();
  strictEqual(conn.text, "");
  strictEqual(h.transport.conns.length, 1);
});

Deno.test("wisp session: an unknown packet type on stream 5 → CLOSE(5, 0x41); the WebSocket stays", async () => {
  await using h = new Harness({ version: 1 });
  const conn = await h.open(5);
  h.session.handle(Uint8Array.of(0x09, 5, 0, 0, 0, 1, 2, 3));
  eq(h.channel.controlOn(5), [closeP(5, CloseReason.invalid)]);
  await until(() => conn.closed, "stream 5's socket closed");
  eq(h.closes, []);
  // A malformed packet for a stream that does not exist gets its CLOSE too; others go on.
  h.session.handle(Uint8Array.of(0x03, 6, 0, 0, 0, 1)); // CONTINUE of 1 byte
  eq(h.channel.controlOn(6), [closeP(6, CloseReason.invalid)]);
  const other = await h.open(7);
  h.data(7, "fine");
  await until(() => other.text === "fine", "stream 7 works");
  await settle();
  eq(h.channel.controlOn(5), [closeP(5, CloseReason.invalid)], "no second CLOSE for 5");
});

Deno.test("wisp session: a text message closes the WebSocket with 1003", async () => {
  await using h = new Harness({ version: 2 });
  h.session.handle("hello");
  eq(h.closes.map((c) => c.code), [1003]);
  h.info([]);
  strictEqual(h.channel.packets.length, 1, "no CONTINUE after the close");
});

Deno.test("wisp session: a malformed INFO during the v2 handshake → CLOSE(0, 0x41), 1008", async () => {
  await using h = new Harness({ version: 2 });
  h.session.handle(Uint8Array.of(0x05, 0, 0, 0, 0, 2)); // INFO of 1 byte
  eq(h.channel.packets.slice(1), [closeP(0, CloseReason.invalid)]);
  eq(h.closes.map((c) => c.code), [1008]);
});

Deno.test("wisp session: an ArrayBuffer message is handled like a Uint8Array", async () => {
  await using h = new Harness({ version: 1 });
  const conn = await h.open(1);
  const bytes = encodePacket({ type: "data", stream: 1, payload: enc.encode("ab") });
  h.session.handle(bytes.buffer.slice(0) as ArrayBuffer);
  await until(() => conn.text === "ab", "data upstream");
});

// --- flow control -----------------------------------------------------------------------------

/**
 * The client's side of credit for one stream, and the invariant checked on every CONTINUE the
 * server sends for it: packets the server holds (offered upstream, not fully written) + credit
 * the client has not spent (which might be in flight) + the new credit ≤ the buffer.
 *
 * The open confirmation (ext 0x05: the stream's first CONTINUE when `confirms`) is checked
 * against the weaker bound the implementation documents at that call ("at most one buffer more,
 * once"): held + new credit ≤ buffer and held + unspent + new credit ≤ 2 × buffer — unless
 * `strictConfirmation`, which applies the full invariant to it too (see the ignored test).
 */
class CreditClient {
  credit: number;
  sent = 0;
  /** Sizes of every DATA sent, in order. */
  readonly sizes: number[] = [];
  /** Every CONTINUE value for the stream, the confirmation included. */
  readonly continues: number[] = [];
  readonly violations: string[] = [];
  /** The stream's upstream connection, once dialled. */
  conn: FakeConn | undefined;
  #confirmationPending: boolean;

  constructor(
    readonly stream: number,
    readonly buffer: number,
    initial: number,
    confirms = false,
    readonly strictConfirmation = false,
  ) {
    this.credit = initial;
    this.#confirmationPending = confirms;
  }

  /** Packets the server holds now: those whose bytes have not all been written upstream. */
  held(): number {
    const conn = this.conn;
    let written = conn ? conn.written.reduce((n, c) => n + c.byteLength, 0) : 0;
    let held = 0;
    for (const size of this.sizes) {
      if (written >= size) written -= size;
      else {
        held++;
        written = 0;
      }
    }
    return held;
  }

  /** Checks and applies a CONTINUE (the spec's client sets its remaining buffer to the value). */
  onContinue(remaining: number): void {
    const held = this.held();
    const unspent = this.credit;
    const what = `held ${held} + unspent ${unspent} + CONTINUE ${remaining}`;
    if (this.#confirmationPending && !this.strictConfirmation) {
      if (held + remaining > this.buffer) {
        this.violations.push(`confirmation: held ${held} + CONTINUE ${remaining} > ${this.buffer}`);
      }
      if (held + unspent + remaining > 2 * this.buffer) {
        this.violations.push(`confirmation: ${what} > 2 × ${this.buffer}`);
      }
    } else if (held + unspent + remaining > this.buffer) {
      this.violations.push(`${what} > ${this.buffer}`);
    }
    this.#confirmationPending = false;
    this.continues.push(remaining);
    this.credit = remaining;
  }

  /** Sends one DATA of `size` bytes if it has credit. */
  trySend(h: Harness, size: number): boolean {
    if (this.credit === 0) return false;
    const payload = new Uint8Array(size);
    for (let i = 0; i < size; i++) payload[i] = (this.sent * 31 + i) & 0xff;
    this.credit--;
    this.sent++;
    this.sizes.push(size);
    h.data(this.stream, payload);
    return true;
  }

  /** Everything sent, in order. */
  expected(): Uint8Array {
    const out: number[] = [];
    this.sizes.forEach((size, k) => {
      for (let i = 0; i < size; i++) out.push((k * 31 + i) & 0xff);
    });
    return Uint8Array.from(out);
  }
}

/** Routes the channel's CONTINUEs to the clients (stream 0 gives every new stream its buffer). */
function routeContinues(h: Harness, clients: Map<number, CreditClient>): void {
  h.channel.onPacket = (p) => {
    if (p.type === "continue" && p.stream !== 0) clients.get(p.stream)?.onContinue(p.remaining);
  };
}

Deno.test("wisp session: credit: a stalled upstream gets 8 packets, no more CONTINUE, and credit comes back within the buffer; other streams flow", async () => {
  const BUFFER = 8;
  await using h = new Harness({ version: 2, wisp: { bufferPackets: BUFFER } });
  const clients = new Map<number, CreditClient>();
  routeContinues(h, clients);
  // Stream 1's upstream completes no write until the test says so.
  h.transport.onConnect = (conn) => {
    if (h.transport.conns.length === 1) conn.manualWrites = true;
  };
  h.info([STREAM_OPEN]);
  eq(h.channel.packets.at(-1), cont(0, BUFFER));

  const c1 = new CreditClient(1, BUFFER, BUFFER, true);
  clients.set(1, c1);
  const conn1 = c1.conn = await h.open(1);
  await until(() => c1.continues.length === 1, "open confirmation");
  eq(c1.continues, [BUFFER]);

  // 8 packets: the whole buffer, none written upstream.
  const sizes = [100, 1, 2000, 37, 512, 9, 1500, 64];
  for (const size of sizes) ok(c1.trySend(h, size));
  strictEqual(c1.trySend(h, 1), false, "no credit left");
  await settle();
  eq(c1.continues, [BUFFER], "no CONTINUE while stalled");
  strictEqual(h.session.session.stats.queuedBytes, sizes.reduce((a, b) => a + b, 0));
  strictEqual(conn1.written.length, 0);
  strictEqual(conn1.pendingWrites.length, 1, "one write in progress");
  strictEqual(c1.held(), 8);

  // Another stream on the same session keeps echoing meanwhile.
  const conn2 = await h.open(2, OK_IP2);
  for (let i = 0; i < 20; i++) {
    h.data(2, `ping ${i};`);
    await until(() => conn2.text.endsWith(`ping ${i};`), `ping ${i} upstream`);
    conn2.push(`pong ${i};`);
    await until(() => h.channel.textOn(2).endsWith(`pong ${i};`), `pong ${i}`);
  }
  eq(c1.continues, [BUFFER], "still no CONTINUE for stream 1");
  strictEqual(conn1.written.length, 0);

  // Writes complete one by one; the client sends whenever it has credit, 200 packets in all.
  let size = 1;
  for (let steps = 0; c1.sent < 200 || conn1.pendingWrites.length > 0 || c1.held() > 0; steps++) {
    ok(steps < 10_000, "progress");
    if (c1.sent < 200 && c1.trySend(h, size = (size * 37 + 11) % 3000 + 1)) continue;
    const w = conn1.pendingWrites[0];
    if (w) w.complete();
    else await tick(); // the up pump issues its next write a few microtasks later
  }
  eq(c1.violations, []);
  ok(c1.continues.length > 5, `CONTINUEs: ${JSON.stringify(c1.continues)}`);
  ok(c1.continues.every((v) => v >= 1 && v <= BUFFER));
  eq(conn1.bytes, c1.expected());
  await until(() => h.session.session.stats.queuedBytes === 0, "the queue drained");
});

Deno.test("wisp session: credit: partial writes and empty DATA keep the invariant (v1, buffer 4)", async () => {
  const BUFFER = 4;
  await using h = new Harness({ version: 1, wisp: { bufferPackets: BUFFER } });
  const clients = new Map<number, CreditClient>();
  routeContinues(h, clients);
  h.transport.onConnect = (conn) => {
    conn.manualWrites = true;
  };
  const c = new CreditClient(3, BUFFER, BUFFER);
  clients.set(3, c);
  const conn = c.conn = await h.open(3);
  let seed = 7;
  for (let steps = 0; c.sent < 120 || conn.pendingWrites.length > 0 || c.held() > 0; steps++) {
    ok(steps < 20_000, "progress");
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    if (c.sent < 120 && seed % 3 !== 0 && c.trySend(h, seed % 5 === 0 ? 0 : (seed % 700) + 1)) {
      continue;
    }
    const w = conn.pendingWrites[0];
    if (w) w.complete(Math.max(1, Math.ceil(w.data.byteLength / ((seed % 3) + 1))));
    else await tick();
  }
  eq(c.violations, []);
  ok(c.continues.length > 5);
  eq(conn.bytes, c.expected());
});

Deno.test({
  name:
    "wisp session: credit: the open confirmation stays within the documented bound (held + unspent + new ≤ 2 × buffer)",
  // The confirmation cannot know which of the client's unspent packets are in flight: giving only
  // the safe credit could be 0 and stall a client that sent nothing, so it may admit up to one
  // buffer more (README, "Flow control"; `WispSession.#sendContinue`).
  async fn(): Promise<void> {
    const BUFFER = 8;
    await using h = new Harness({ version: 2, wisp: { bufferPackets: BUFFER } });
    const clients = new Map<number, CreditClient>();
    routeContinues(h, clients);
    h.info([STREAM_OPEN]);
    h.transport.dials.set(OK_IP, "hold");
    h.transport.onConnect = (conn) => {
      conn.manualWrites = true;
    };
    const c = new CreditClient(1, BUFFER, BUFFER, true);
    clients.set(1, c);
    h.connect(1);
    const held = await h.transport.waitHeld(`dial ${OK_IP}`);
    for (let i = 0; i < 3; i++) ok(c.trySend(h, 10));
    c.conn = held.open();
    await until(() => c.continues.length === 1, "open confirmation");
    eq(c.violations, []);
  },
});

Deno.test("wisp session: credit: CONTINUE is withheld while a stream holds its byte budget", async () => {
  await using h = new Harness({
    version: 1,
    wisp: { bufferPackets: 8, streamBudgetBytes: 1000 },
  });
  const clients = new Map<number, CreditClient>();
  routeContinues(h, clients);
  h.transport.onConnect = (conn) => {
    conn.manualWrites = true;
  };
  const c = new CreditClient(1, 8, 8);
  clients.set(1, c);
  const conn = c.conn = await h.open(1);
  // 8 × 400 bytes; completing writes until 1000 bytes are left held gives no CONTINUE.
  for (let i = 0; i < 8; i++) ok(c.trySend(h, 400));
  for (let i = 0; i < 5; i++) {
    await until(() => conn.pendingWrites.length === 1, "a write");
    conn.completeWrite();
    await settle();
  }
  // 3 × 400 = 1200 bytes held ≥ 1000: still nothing.
  eq(c.continues, []);
  await until(() => conn.pendingWrites.length === 1, "a write");
  conn.completeWrite();
  await settle();
  // 800 bytes held: another 400-byte packet would not fit in the 1000-byte budget.
  eq(c.continues, []);
  await until(() => conn.pendingWrites.length === 1, "a write");
  conn.completeWrite();
  await until(() => c.continues.length === 1, "CONTINUE under the budget");
  eq(c.continues, [1], "credit sized in bytes: one more 400-byte packet fits");
  eq(c.violations, []);
  while (c.held() > 0) {
    await until(() => conn.pendingWrites.length === 1, "a write");
    conn.completeWrite();
    await settle();
  }
});

Deno.test("wisp session: a client that ignores its credit hits the socket queue bound → CLOSE 0x49", async () => {
  await using h = new Harness({
    version: 1,
    wisp: { bufferPackets: 4 },
    limits: { maxSocketQueueBytes: 4096 },
  });
  h.transport.onConnect = (conn) => {
    conn.manualWrites = true;
  };
  const conn = await h.open(1);
  for (let i = 0; i < 20 && h.channel.on(1).every((p) => p.type !== "close"); i++) {
    h.data(1, new Uint8Array(1000));
  }
  strictEqual(await h.closeReason(1), CloseReason.throttled);
  await until(() => conn.closed, "upstream closed");
  eq(h.closes, []);
});

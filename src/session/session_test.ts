/**
 * Unit tests of {@linkcode Session} through its two seams, with a fake transport and a fake
 * channel (`_fake_transport_test_util.ts`): no sockets, no WebSocket, no runtime networking. They
 * check the session's ordering, slot and teardown guarantees (docs/ARCHITECTURE.md §3) in
 * milliseconds; `tests/guarantees_test.ts` checks several of them end to end with real sockets.
 *
 * Every harness, when disposed, closes its session and asserts that the fake transport has no
 * connection, UDP socket or listener left open, that no `max_connections` slot or table entry is
 * left, and that the session logged no error (a task that threw).
 */
import { deepStrictEqual as eq, match, ok, strictEqual } from "node:assert/strict";
import { encodeRequest, type Framing, type Request, type WireEvent } from "../protocol/mod.ts";
import { Policy, type PolicyConfig } from "../policy/mod.ts";
import { FakeClock, RateLimiter, TokenBucket } from "../limit/mod.ts";
import type { Logger } from "../log/mod.ts";
import { Session, type SessionOptions } from "./session.ts";
import { SERVER_ID_BASE, type SessionLimits } from "./options.ts";
import { WireError } from "./wire_errors.ts";
import {
  concat,
  FakeChannel,
  type FakeConn,
  FakeTransport,
  netError,
  refused,
  tick,
  until,
} from "./_fake_transport_test_util.ts";

const FRAMINGS: readonly Framing[] = ["json", "binary"];
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Allowed documentation addresses, a denied one, and a denied name. */
const OK_IP = "203.0.113.10";
const OK_IP2 = "203.0.113.11";
const DENIED_IP = "198.51.100.66";
const DENIED_NAME = "bad.test";

interface PolicyOptions extends Partial<PolicyConfig> {
  /** Overrides `connectionTimeoutMs` (the config's minimum is 1 s). */
  timeoutMs?: number;
}

/**
 * A permissive policy (deny only `DENIED_IP` and `DENIED_NAME`, no bandwidth cap). With
 * `timeoutMs`, a proxy that reports that dial timeout, so timeouts take milliseconds.
 */
function testPolicy(options: PolicyOptions = {}): Policy {
  const { timeoutMs, ...config } = options;
  const policy = Policy.fromConfig({
    deny: [DENIED_IP, DENIED_NAME],
    allow: ["*"],
    maxBandwidthMbps: 0,
    ...config,
  }, "<session test>");
  if (timeoutMs === undefined) return policy;
  return new Proxy(policy, {
    get(target, prop): unknown {
      if (prop === "connectionTimeoutMs") return timeoutMs;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A logger that keeps warnings and errors (a session logs `task failed` when a task throws). */
function recordingLogger(errors: string[]): Logger {
  const keep = (msg: string, fields?: Record<string, unknown>): void => {
    errors.push(`${msg} ${JSON.stringify(fields ?? {})}`);
  };
  return {
    trace: () => {},
    debug: () => {},
    info: () => {},
    warn: () => {},
    error: keep,
    enabled: () => false,
  };
}

interface HarnessOptions {
  policy?: Policy;
  limits?: Partial<SessionLimits>;
  pausable?: boolean;
  bandwidth?: SessionOptions["bandwidth"];
}

/** A session over a fake transport and a fake channel, speaking one framing. */
class Harness implements AsyncDisposable {
  readonly transport = new FakeTransport();
  readonly channel: FakeChannel;
  readonly session: Session;
  readonly errors: string[] = [];

  constructor(readonly framing: Framing, options: HarnessOptions = {}) {
    this.channel = new FakeChannel({ pausable: options.pausable ?? true });
    const sessionOptions: SessionOptions = {
      policy: options.policy ?? testPolicy(),
      transport: this.transport,
      log: recordingLogger(this.errors),
    };
    if (options.limits) sessionOptions.limits = options.limits;
    if (options.bandwidth) sessionOptions.bandwidth = options.bandwidth;
    this.session = new Session(this.channel, sessionOptions);
  }

  /** Sends one request in this harness's framing. */
  req(r: Request): void {
    this.session.handle(encodeRequest(r, this.framing));
  }

  connect(id: number, addr = OK_IP, port = 80, tls = false): void {
    this.req({ op: tls ? "connect_tls" : "connect", id, addr, port });
  }

  send(id: number, data: string | Uint8Array): void {
    this.req({ op: "send", id, data: typeof data === "string" ? enc.encode(data) : data });
  }

  close(id: number): void {
    this.req({ op: "close", id });
  }

  /** Connects `id` to an address that dials at once; returns its connection after `connected`. */
  async open(id: number, addr = OK_IP, port = 80): Promise<FakeConn> {
    const before = this.transport.conns.length;
    this.connect(id, addr, port);
    await this.channel.waitFor(id, "connected");
    const conn = this.transport.conns[before];
    ok(conn !== undefined, "a connection was made");
    return conn;
  }

  /** Waits for the terminal event of `id` (`closed`, `error`, `denied` or `resolved`). */
  async terminal(id: number): Promise<WireEvent> {
    const isEnd = (e: WireEvent): boolean =>
      e.id === id && ["closed", "error", "denied", "resolved"].includes(e.ev);
    await until(() => this.channel.events.some(isEnd), `terminal event for ${id}`);
    return this.channel.events.find(isEnd) as WireEvent;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.session.close();
    eq(this.transport.open, [], "nothing left open");
    eq(this.transport.held.filter((h) => !h.signal.aborted), [], "no live held operation");
    eq({ live: this.session.stats.live, slots: this.session.stats.slots }, { live: 0, slots: 0 });
    eq(this.session.stats.queuedBytes, 0, "no queued bytes");
    eq(this.errors, [], "no task failed");
  }
}

/** Waits a few macrotask turns, then asserts `id` got exactly `expected` non-data events. */
async function assertControl(h: Harness, id: number, expected: WireEvent[]): Promise<void> {
  for (let i = 0; i < 3; i++) await tick();
  eq(h.channel.controlFor(id), expected);
}

/** `n` bytes of a pattern that differs per `seed`. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (seed * 131 + i * 7) & 0xff;
  return out;
}

/**
 * Completes `conn`'s manual writes one after another, each with `pick(offered)` bytes, until no
 * write is pending for a while (the session issues the next write a few microtasks later).
 */
async function drainWrites(conn: FakeConn, pick: (offered: number) => number): Promise<void> {
  for (let idle = 0; idle < 50;) {
    const w = conn.pendingWrites[0];
    if (w === undefined) {
      idle++;
      await Promise.resolve();
      continue;
    }
    idle = 0;
    w.complete(pick(w.data.byteLength));
  }
}

/** A small deterministic PRNG (LCG). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
}

// --- resolve → check → dial -------------------------------------------------------------------

for (const framing of FRAMINGS) {
  Deno.test(`session: a name is resolved once, checked, and its address dialled (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.answers.set("a.test", [OK_IP]);
    h.connect(1, "a.test", 80);
    await h.channel.waitFor(1, "connected");
    eq(h.transport.log, ["lookup a.test", `dial ${OK_IP}:80`]);
    // An IP literal is dialled as given, with no lookup.
    h.connect(2, OK_IP2, 81);
    await h.channel.waitFor(2, "connected");
    eq(h.transport.log.slice(2), [`dial ${OK_IP2}:81`]);
  });

  Deno.test(`session: a denied address or name is never dialled (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.answers.set("evil.test", [DENIED_IP]);
    h.connect(1, DENIED_IP, 80); // denied before anything
    h.connect(2, DENIED_NAME, 80); // denied before DNS
    h.connect(3, "evil.test", 80); // denied after DNS
    h.connect(4, `::ffff:${DENIED_IP}`, 80); // another spelling of the denied address
    for (const id of [1, 2, 3, 4]) strictEqual((await h.terminal(id)).ev, "denied", `id ${id}`);
    eq(h.transport.log, ["lookup evil.test"]);
    eq(h.transport.dialled, []);
    match(JSON.stringify(h.channel.controlFor(3)), new RegExp(DENIED_IP.replaceAll(".", "\\.")));
  });

  Deno.test(`session: a name resolving to a mix with a denied address is denied whole (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.answers.set("mix1.test", [OK_IP, DENIED_IP]);
    h.transport.answers.set("mix2.test", [DENIED_IP, OK_IP]);
    h.connect(1, "mix1.test", 80);
    h.connect(2, "mix2.test", 80);
    strictEqual((await h.terminal(1)).ev, "denied");
    strictEqual((await h.terminal(2)).ev, "denied");
    eq(h.transport.dialled, [], "no address of a mixed name is dialled");
    // `resolve` shows the client only the allowed answers.
    h.req({ op: "resolve", id: 3, name: "mix2.test" });
    eq(await h.terminal(3), { ev: "resolved", id: 3, addrs: [OK_IP] });
    eq(h.transport.dialled, []);
  });

  Deno.test(`session: dials try the checked addresses in order until one answers (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.answers.set("two.test", [OK_IP, OK_IP2]);
    h.transport.dials.set(OK_IP, refused());
    h.connect(1, "two.test", 443);
    await h.channel.waitFor(1, "connected");
    eq(h.transport.dialled, [`${OK_IP}:443`, `${OK_IP2}:443`]);
    // Every address refusing: one error naming the target and the last failure.
    h.transport.dials.set(OK_IP2, refused());
    h.connect(2, "two.test", 443);
    eq(await h.terminal(2), {
      ev: "error",
      id: 2,
      msg: "connect to two.test:443 (2 addresses) failed: Connection refused (os error 111)",
    });
    h.connect(3, OK_IP, 443);
    eq(await h.terminal(3), {
      ev: "error",
      id: 3,
      msg: `connect to ${OK_IP}:443 failed: Connection refused (os error 111)`,
    });
  });

  Deno.test(`session: connect_tls dials the checked IP, then verifies against the name (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.answers.set("tls.test", [OK_IP]);
    h.connect(1, "tls.test", 443, true);
    await h.channel.waitFor(1, "connected");
    eq(h.transport.log, ["lookup tls.test", `dial ${OK_IP}:443`, "tls tls.test"]);
    const [tcp, tls] = h.transport.conns;
    ok(tcp && tls);
    eq([tcp.label, tls.label], [`tcp ${OK_IP}:443`, "tls tls.test"]);
    h.send(1, "over tls");
    await until(() => tls.text === "over tls", "the write on the TLS connection");
    strictEqual(tcp.written.length, 0, "bytes go through TLS, never the raw TCP connection");
    // A failed handshake: one error, and the TCP connection does not stay open.
    h.transport.handshakes.set("bad-cert.test", netError("TlsError", "certificate is not trusted"));
    h.transport.answers.set("bad-cert.test", [OK_IP2]);
    h.connect(2, "bad-cert.test", 443, true);
    eq(await h.terminal(2), {
      ev: "error",
      id: 2,
      msg: `TLS handshake with bad-cert.test (${OK_IP2}:443) failed: certificate is not trusted`,
    });
    ok(h.transport.conns.at(-1)?.closed, "the TCP connection of the failed handshake is closed");
    // Closing the socket sends close_notify first.
    h.close(1);
    eq(await h.terminal(1), { ev: "closed", id: 1 });
    strictEqual(tls.closeWriteCalls, 1);
    ok(tls.closed && tcp.closed);
  });

  Deno.test(`session: a lookup that fails or answers nothing is an error, never a dial or a denial (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.answers.set("empty.test", []);
    h.connect(1, "nowhere.test", 80);
    eq(await h.terminal(1), {
      ev: "error",
      id: 1,
      msg: 'DNS lookup failed for "nowhere.test": getaddrinfo ENOTFOUND nowhere.test',
    });
    h.connect(2, "empty.test", 80);
    const ev = await h.terminal(2);
    strictEqual(ev.ev, "error", JSON.stringify(ev));
    if (ev.ev === "error") match(ev.msg, /^DNS lookup failed for "empty\.test": /);
    // The same for `resolve` (no policy refused anything: not `denied`) and `connect_udp`.
    h.req({ op: "resolve", id: 3, name: "empty.test" });
    const resolved = await h.terminal(3);
    strictEqual(resolved.ev, "error", JSON.stringify(resolved));
    h.req({ op: "connect_udp", id: 4, addr: "empty.test", port: 53 });
    const udp = await h.terminal(4);
    strictEqual(udp.ev, "error", JSON.stringify(udp));
    eq(h.transport.dialled, []);
    eq(h.transport.udps, [], "no UDP socket opened for a name without addresses");
  });
}

// --- ordering ---------------------------------------------------------------------------------

for (const framing of FRAMINGS) {
  Deno.test(`session: connected comes before any data, sends before it wait for the dial (${framing})`, async () => {
    await using h = new Harness(framing);
    // The peer talks first, the moment the dial completes.
    h.transport.onConnect = (conn) => conn.push("banner");
    h.transport.dials.set(OK_IP, "hold");
    h.connect(1);
    h.send(1, "early ");
    h.send(1, "bytes");
    const dial = await h.transport.waitHeld("dial");
    await tick();
    eq(h.channel.eventsFor(1), [], "nothing before the dial completes");
    const conn = dial.open();
    await until(() => h.channel.eventsFor(1).length >= 2 && conn.text === "early bytes", "data");
    eq(h.channel.eventsFor(1), [
      { ev: "connected", id: 1 },
      { ev: "data", id: 1, data: enc.encode("banner") },
    ]);
  });

  Deno.test(`session: per-socket upload order holds under interleaved, partial and slow writes (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.onConnect = (conn) => conn.maxWriteBytes = 7; // every write is partial
    const fast = await h.open(1);
    const slow = await h.open(2);
    slow.manualWrites = true;
    const next = rng(42);
    const sent: Record<1 | 2, Uint8Array[]> = { 1: [], 2: [] };
    for (let i = 0; i < 300; i++) {
      const id = (next() % 2 + 1) as 1 | 2;
      const data = pattern(1 + next() % 50, i);
      sent[id].push(data);
      h.send(id, data);
      if (i % 7 === 0) await tick();
      // Complete the slow socket's writes with random partial counts.
      for (const w of slow.pendingWrites.slice(0, 1)) w.complete(1 + next() % w.data.byteLength);
    }
    await drainWrites(slow, (len) => 1 + next() % len);
    await until(() => h.session.stats.queuedBytes === 0, "every queued byte written");
    eq(fast.bytes, concat(sent[1]));
    eq(slow.bytes, concat(sent[2]));
    strictEqual(h.session.stats.bytesUp, concat(sent[1]).byteLength + concat(sent[2]).byteLength);
    eq(h.channel.controlFor(1), [{ ev: "connected", id: 1 }]);
    eq(h.channel.controlFor(2), [{ ev: "connected", id: 2 }]);
  });

  Deno.test(`session: per-socket download order holds, and EOF ends with one closed (${framing})`, async () => {
    await using h = new Harness(framing);
    const a = await h.open(1);
    const b = await h.open(2);
    const next = rng(7);
    const got: Record<1 | 2, Uint8Array[]> = { 1: [], 2: [] };
    for (let i = 0; i < 200; i++) {
      const id = (next() % 2 + 1) as 1 | 2;
      const data = pattern(1 + next() % 3000, i);
      got[id].push(data);
      (id === 1 ? a : b).push(data);
      if (i % 5 === 0) await tick();
    }
    a.pushEof();
    b.pushEof();
    await h.terminal(1);
    await h.terminal(2);
    eq(h.channel.dataFor(1), concat(got[1]));
    eq(h.channel.dataFor(2), concat(got[2]));
    await assertControl(h, 1, [{ ev: "connected", id: 1 }, { ev: "closed", id: 1 }]);
    await assertControl(h, 2, [{ ev: "connected", id: 2 }, { ev: "closed", id: 2 }]);
    ok(a.closed && b.closed);
    strictEqual(a.closeCalls, 1, "closed exactly once");
  });

  Deno.test(`session: replies use the framing of the most recent message (${framing})`, async () => {
    await using h = new Harness(framing);
    const other: Framing = framing === "json" ? "binary" : "json";
    h.session.handle(encodeRequest({ op: "close", id: 9 }, other));
    h.req({ op: "close", id: 8 });
    strictEqual(typeof h.channel.frames[0], other === "json" ? "string" : "object");
    strictEqual(typeof h.channel.frames[1], framing === "json" ? "string" : "object");
  });
}

// --- cancellation: client close while dialling -----------------------------------------------

for (const framing of FRAMINGS) {
  Deno.test(`session: close during a dial sends one closed; a late connection is closed (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.dials.set(OK_IP, "hold");
    h.connect(1);
    h.send(1, "never sent");
    const dial = await h.transport.waitHeld("dial");
    h.close(1);
    eq(h.channel.events, [{ ev: "closed", id: 1 }], "closed at once, nothing else");
    ok(dial.signal.aborted, "the dial is cancelled");
    const late = dial.open(); // the connect completes after all (the transport closes it)
    await assertControl(h, 1, [{ ev: "closed", id: 1 }]);
    ok(late.closed);
    eq(late.written, []);
  });

  Deno.test(`session: a dial completing in the same turn as close is closed by the session (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.dials.set(OK_IP, "hold");
    h.connect(1);
    const dial = await h.transport.waitHeld("dial");
    const conn = dial.open(); // resolved before the abort: the session gets the connection
    h.close(1); // ... but the client's close is handled before the session resumes
    await until(() => conn.closed, "the late connection closed");
    await assertControl(h, 1, [{ ev: "closed", id: 1 }]);
    strictEqual(conn.closeCalls, 1);
    strictEqual(conn.reads, 0, "no pump started");
  });

  Deno.test(`session: a transport that ignores the abort still has its late connection closed (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.honourAborts = false;
    h.transport.dials.set(OK_IP, "hold");
    h.connect(1);
    const dial = await h.transport.waitHeld("dial");
    h.close(1);
    await tick();
    const conn = dial.open();
    await until(() => conn.closed, "the late connection closed");
    await assertControl(h, 1, [{ ev: "closed", id: 1 }]);
  });

  Deno.test(`session: close during lookup or TLS handshake sends one closed, leaves nothing open (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.answers.set("slow.test", "hold");
    h.transport.handshakes.set("hs.test", "hold");
    h.transport.answers.set("hs.test", [OK_IP]);
    h.connect(1, "slow.test");
    h.connect(2, "hs.test", 443, true);
    const lookup = await h.transport.waitHeld("lookup slow.test");
    const hs = await h.transport.waitHeld("tls hs.test");
    h.close(1);
    h.close(2);
    ok(lookup.signal.aborted && hs.signal.aborted);
    await assertControl(h, 1, [{ ev: "closed", id: 1 }]);
    await assertControl(h, 2, [{ ev: "closed", id: 2 }]);
    eq(h.transport.open, [], "the TCP connection under the handshake is closed");
    eq(h.transport.dialled, [`${OK_IP}:443`]);
  });
}

// --- cancellation: the session ends ----------------------------------------------------------

Deno.test("session: close mid-lookup, mid-dial, mid-handshake, mid-write, mid-linger leaves nothing", async () => {
  const h = new Harness("binary", { limits: { closeLingerMs: 60_000 } });
  h.transport.answers.set("slow.test", "hold");
  h.transport.answers.set("hs.test", [OK_IP2]);
  h.transport.handshakes.set("hs.test", "hold");
  h.transport.dials.set(OK_IP, "hold");
  h.connect(1, "slow.test"); // lookup pending
  h.connect(2, OK_IP); // dial pending
  h.connect(3, "hs.test", 443, true); // handshake pending
  const writing = await h.open(4, OK_IP2, 81); // write pending
  writing.manualWrites = true;
  h.send(4, "stuck");
  const lingering = await h.open(5, OK_IP2, 82); // close waiting for its write (linger timer)
  lingering.manualWrites = true;
  h.send(5, "stuck too");
  h.close(5);
  h.req({ op: "resolve", id: 6, name: "slow.test" }); // resolve pending
  await h.transport.waitHeld("tls");
  await until(
    () => writing.pendingWrites.length === 1 && lingering.pendingWrites.length === 1,
    "writes",
  );
  strictEqual(h.transport.held.length, 4);
  const before = h.channel.events.length;
  await h.session.close(); // must not hang: every task ends
  eq(h.channel.events.length, before, "no event after the session ended");
  ok(h.transport.held.every((op) => op.signal.aborted), "every pending operation cancelled");
  eq(h.transport.open, []);
  for (const c of h.transport.conns) strictEqual(c.closeCalls, 1, `${c.label} closed once`);
  // Sanitizers: the linger timer, the dial timeouts and the drain poller are all cleared.
  await h[Symbol.asyncDispose]();
});

Deno.test("session: close while a dial ignores the abort waits for it and closes the late connection", async () => {
  await using h = new Harness("json");
  h.transport.honourAborts = false;
  h.transport.dials.set(OK_IP, "hold");
  h.connect(1);
  const dial = await h.transport.waitHeld("dial");
  let closed = false;
  const closing = h.session.close().then(() => closed = true);
  await tick();
  strictEqual(closed, false, "close waits for the dial task");
  const conn = dial.open();
  await closing;
  ok(conn.closed, "the connection that arrived after the end is closed");
  eq(h.channel.events, []);
});

Deno.test("session: close mid-upload with a bandwidth limit leaves no limiter timer (fake clock)", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rateBytesPerSec: 1000, burstBytes: 100, clock });
  const up = new RateLimiter([bucket]);
  await using h = new Harness("binary", { bandwidth: { up, down: new RateLimiter([]) } });
  const conn = await h.open(1);
  h.send(1, pattern(350, 1));
  await until(() => conn.bytes.byteLength === 100, "the burst");
  await clock.advance(100); // 100 more bytes of tokens
  await until(() => conn.bytes.byteLength === 200, "one refill");
  strictEqual(clock.pending, 1, "the throttle waits for the next piece");
  await h.session.close();
  strictEqual(clock.pending, 0, "the limiter wait is cancelled");
  strictEqual(conn.bytes.byteLength, 200);
});

// --- max_connections: one slot, released on every ending -------------------------------------

/** Limits small enough that the queue, linger and water-mark paths take a few bytes and ms. */
const SMALL_LIMITS: Partial<SessionLimits> = {
  maxSocketQueueBytes: 100,
  closeLingerMs: 20,
  uploadHighWaterBytes: 50,
  uploadLowWaterBytes: 10,
};

/** Ways a socket ends; each opens socket `id` (taking the one slot), ends it, checks the event. */
const ENDINGS: { name: string; run(h: Harness, id: number): Promise<void> }[] = [
  {
    name: "denied address",
    async run(h, id): Promise<void> {
      h.connect(id, DENIED_IP);
      strictEqual((await h.terminal(id)).ev, "denied");
    },
  },
  {
    name: "denied after the lookup",
    async run(h, id): Promise<void> {
      h.transport.answers.set("evil.test", [DENIED_IP]);
      h.connect(id, "evil.test");
      strictEqual((await h.terminal(id)).ev, "denied");
    },
  },
  {
    name: "lookup failure",
    async run(h, id): Promise<void> {
      h.connect(id, "nowhere.test");
      const ev = await h.terminal(id);
      ok(ev.ev === "error" && ev.msg.startsWith("DNS lookup failed"), JSON.stringify(ev));
    },
  },
  {
    name: "refused dial",
    async run(h, id): Promise<void> {
      h.transport.dials.set("203.0.113.20", refused());
      h.connect(id, "203.0.113.20");
      const ev = await h.terminal(id);
      ok(ev.ev === "error" && ev.msg.startsWith("connect to 203.0.113.20:80 failed"));
    },
  },
  {
    name: "dial timeout",
    async run(h, id): Promise<void> {
      h.transport.dials.set("203.0.113.21", "hold");
      h.connect(id, "203.0.113.21");
      eq(await h.terminal(id), { ev: "error", id, msg: WireError.timedOut() });
    },
  },
  {
    name: "lookup timeout",
    async run(h, id): Promise<void> {
      h.transport.answers.set("slow.test", "hold");
      h.connect(id, "slow.test");
      eq(await h.terminal(id), { ev: "error", id, msg: WireError.timedOut() });
    },
  },
  {
    name: "TLS failure",
    async run(h, id): Promise<void> {
      h.transport.handshakes.set(OK_IP, netError("TlsError", "handshake failure"));
      h.connect(id, OK_IP, 443, true);
      const ev = await h.terminal(id);
      ok(ev.ev === "error" && ev.msg.startsWith("TLS handshake with"), JSON.stringify(ev));
    },
  },
  {
    name: "TLS timeout",
    async run(h, id): Promise<void> {
      h.transport.handshakes.set(OK_IP, "hold");
      h.connect(id, OK_IP, 443, true);
      eq(await h.terminal(id), { ev: "error", id, msg: WireError.timedOut() });
    },
  },
  {
    name: "close while dialling",
    async run(h, id): Promise<void> {
      h.transport.dials.set("203.0.113.22", "hold");
      h.connect(id, "203.0.113.22");
      await h.transport.waitHeld("dial 203.0.113.22");
      h.close(id);
      eq(await h.terminal(id), { ev: "closed", id });
    },
  },
  {
    name: "close when open",
    async run(h, id): Promise<void> {
      await h.open(id);
      h.close(id);
      eq(await h.terminal(id), { ev: "closed", id });
    },
  },
  {
    name: "close with a write that never completes (linger timeout)",
    async run(h, id): Promise<void> {
      const conn = await h.open(id);
      conn.manualWrites = true;
      h.send(id, "stuck");
      h.close(id);
      await tick();
      eq(h.channel.controlFor(id), [{ ev: "connected", id }], "closing waits for the write");
      eq(await h.terminal(id), { ev: "closed", id });
      ok(conn.closed);
    },
  },
  {
    name: "remote EOF",
    async run(h, id): Promise<void> {
      const conn = await h.open(id);
      conn.pushEof();
      eq(await h.terminal(id), { ev: "closed", id });
    },
  },
  {
    name: "read error",
    async run(h, id): Promise<void> {
      const conn = await h.open(id);
      conn.pushError(netError("ConnectionReset", "Connection reset by peer (os error 104)"));
      eq(await h.terminal(id), {
        ev: "error",
        id,
        msg: "connection error: Connection reset by peer (os error 104)",
      });
    },
  },
  {
    name: "write error",
    async run(h, id): Promise<void> {
      const conn = await h.open(id);
      conn.writeError = netError("BrokenPipe", "Broken pipe (os error 32)");
      h.send(id, "x");
      eq(await h.terminal(id), {
        ev: "error",
        id,
        msg: "connection error: Broken pipe (os error 32)",
      });
    },
  },
  {
    name: "send queue overflow",
    async run(h, id): Promise<void> {
      const conn = await h.open(id);
      conn.manualWrites = true;
      h.send(id, pattern(60, 1));
      h.send(id, pattern(60, 2));
      const ev = await h.terminal(id);
      ok(ev.ev === "error" && ev.msg.startsWith("send queue full: socket"), JSON.stringify(ev));
    },
  },
];

for (const ending of ENDINGS) {
  Deno.test(`session: the max_connections slot is released by ${ending.name}`, async () => {
    for (const framing of FRAMINGS) {
      await using h = new Harness(framing, {
        policy: testPolicy({ maxConnections: 1, timeoutMs: 30 }),
        limits: SMALL_LIMITS,
      });
      for (let round = 0; round < 3; round++) {
        const id = 10 + round;
        await ending.run(h, id);
        await assertControl(h, id, h.channel.controlFor(id).slice(0, 2)); // nothing more arrives
        const terminals = h.channel.controlFor(id).filter((e) => e.ev !== "connected");
        strictEqual(
          terminals.length,
          1,
          `exactly one terminal event: ${JSON.stringify(terminals)}`,
        );
        eq({ slots: h.session.stats.slots, live: h.session.stats.live }, { slots: 0, live: 0 });
      }
      // The one slot is free: the next connect succeeds, and a second one is refused meanwhile.
      await h.open(1, OK_IP2);
      h.connect(2, OK_IP2);
      eq(await h.terminal(2), { ev: "error", id: 2, msg: WireError.maxConnections() });
      h.close(1);
      eq(await h.terminal(1), { ev: "closed", id: 1 });
      eq(h.transport.open, []);
    }
  });
}

Deno.test("session: pending dials, lookups of connects and listeners hold max_connections slots", async () => {
  await using h = new Harness("json", { policy: testPolicy({ maxConnections: 3 }) });
  h.transport.dials.set(OK_IP, "hold");
  h.transport.answers.set("slow.test", "hold");
  h.connect(1); // pending dial
  h.connect(2, "slow.test"); // pending lookup
  h.req({ op: "bind", id: 3, addr: "127.0.0.1", port: 3000 });
  await h.channel.waitFor(3, "listening");
  h.connect(4, OK_IP2);
  eq(await h.terminal(4), { ev: "error", id: 4, msg: WireError.maxConnections() });
  h.req({ op: "connect_udp", id: 5, addr: OK_IP2, port: 53 });
  eq(await h.terminal(5), { ev: "error", id: 5, msg: WireError.maxConnections() });
  // A `resolve` takes no slot.
  h.transport.answers.set("r.test", [OK_IP2]);
  h.req({ op: "resolve", id: 6, name: "r.test" });
  eq(await h.terminal(6), { ev: "resolved", id: 6, addrs: [OK_IP2] });
  strictEqual(h.session.stats.slots, 3);
  // An inbound connection beyond the cap is closed at once; none is accepted.
  const [listener] = h.transport.listeners;
  ok(listener);
  const refusedConn = listener.arrive();
  await until(() => refusedConn.closed, "the inbound connection beyond the cap closed");
  eq(h.channel.eventsFor(3), [{ ev: "listening", id: 3, port: 3000 }]);
  // Freeing one slot admits the next inbound connection.
  h.close(1);
  await h.terminal(1);
  const inbound = listener.arrive("192.0.2.9", 4444);
  const accepted = await h.channel.waitFor(3, "accepted");
  eq(accepted, { ev: "accepted", id: 3, conn_id: SERVER_ID_BASE, remote: "192.0.2.9:4444" });
  inbound.push("hi");
  const data = await h.channel.waitFor(SERVER_ID_BASE, "data");
  eq(data, { ev: "data", id: SERVER_ID_BASE, data: enc.encode("hi") });
  strictEqual(h.session.stats.slots, 3);
});

// --- lookups --------------------------------------------------------------------------------

Deno.test("session: maxPendingLookups bounds resolve, and a finished or closed lookup frees its place", async () => {
  await using h = new Harness("binary", { limits: { maxPendingLookups: 2 } });
  h.transport.answers.set("slow.test", "hold");
  h.req({ op: "resolve", id: 1, name: "slow.test" });
  h.req({ op: "resolve", id: 2, name: "slow.test" });
  h.req({ op: "resolve", id: 3, name: "slow.test" });
  eq(await h.terminal(3), { ev: "error", id: 3, msg: WireError.tooManyLookups(2) });
  strictEqual(h.transport.held.length, 2, "the third lookup never reached the transport");
  // Connects' own lookups are not `resolve`s: they are not counted here.
  h.connect(4, "slow.test");
  await until(() => h.transport.held.length === 3, "the connect's lookup");
  // An answer frees a place.
  h.transport.held[0]?.answer([OK_IP]);
  eq(await h.terminal(1), { ev: "resolved", id: 1, addrs: [OK_IP] });
  h.req({ op: "resolve", id: 3, name: "slow.test" });
  await until(() => h.transport.held.length === 3, "the admitted lookup");
  h.req({ op: "resolve", id: 5, name: "slow.test" });
  eq(await h.terminal(5), { ev: "error", id: 5, msg: WireError.tooManyLookups(2) });
  // A client close cancels the lookup and frees its place.
  h.close(2);
  eq(await h.terminal(2), { ev: "closed", id: 2 });
  await tick();
  h.req({ op: "resolve", id: 5, name: "slow.test" });
  await until(() => h.transport.held.length === 3, "the lookup admitted after the close");
  await assertControl(h, 5, [{ ev: "error", id: 5, msg: WireError.tooManyLookups(2) }]);
  h.close(3);
  h.close(5);
  h.close(4);
  await h.terminal(4);
  strictEqual(h.transport.held.length, 0, "every lookup cancelled");
});

Deno.test("session: a closed lookup the transport cannot cancel counts until it finishes", async () => {
  await using h = new Harness("json", { limits: { maxPendingLookups: 1 } });
  h.transport.honourAborts = false; // like getaddrinfo, which cannot be cancelled
  h.transport.answers.set("slow.test", "hold");
  h.req({ op: "resolve", id: 1, name: "slow.test" });
  const lookup = await h.transport.waitHeld("lookup");
  h.close(1);
  eq(await h.terminal(1), { ev: "closed", id: 1 });
  h.req({ op: "resolve", id: 2, name: "slow.test" });
  eq(await h.terminal(2), { ev: "error", id: 2, msg: WireError.tooManyLookups(1) });
  lookup.answer([OK_IP]);
  await tick();
  await assertControl(h, 1, [{ ev: "closed", id: 1 }]); // the late answer is not sent
  h.req({ op: "resolve", id: 3, name: "slow.test" });
  const next = await h.transport.waitHeld("lookup");
  next.answer([OK_IP2]);
  eq(await h.terminal(3), { ev: "resolved", id: 3, addrs: [OK_IP2] });
});

// --- upload backpressure and queue bounds -----------------------------------------------------

for (const framing of FRAMINGS) {
  Deno.test(`session: pauseReading above uploadHighWaterBytes, resumeReading at uploadLowWaterBytes (${framing})`, async () => {
    await using h = new Harness(framing, {
      limits: { uploadHighWaterBytes: 1000, uploadLowWaterBytes: 200 },
    });
    const conn = await h.open(1);
    conn.manualWrites = true;
    const queued = (): number => h.session.stats.queuedBytes;
    h.send(1, pattern(1000, 1)); // A: exactly the high mark: no pause
    strictEqual(queued(), 1000);
    strictEqual(h.channel.pauses, 0);
    h.send(1, pattern(1, 2)); // B: 1001 > high
    eq([queued(), h.channel.pauses], [1001, 1]);
    h.send(1, pattern(200, 3)); // C: still paused, no second call
    eq([queued(), h.channel.pauses], [1201, 1]);
    await until(() => conn.pendingWrites.length === 1, "write of A");
    conn.completeWrite(500); // half of A: nothing is released until a piece is fully written
    await until(() => conn.pendingWrites.length === 1, "rest of A");
    eq([queued(), h.channel.resumes], [1201, 0]);
    conn.completeWrite(); // A done: 201 > low
    await until(() => conn.pendingWrites.length === 1, "write of B");
    eq([queued(), h.channel.resumes], [201, 0]);
    conn.completeWrite(); // B done: 200 = low: resume
    await until(() => conn.pendingWrites.length === 1, "write of C");
    eq([queued(), h.channel.resumes], [200, 1]);
    conn.completeWrite(); // C done: no second resume
    await until(() => queued() === 0, "all written");
    eq([h.channel.pauses, h.channel.resumes], [1, 1]);
    // The mark is per session: two sockets' queues add up.
    const other = await h.open(2, OK_IP2);
    other.manualWrites = true;
    h.send(1, pattern(600, 4));
    h.send(2, pattern(401, 5));
    eq([queued(), h.channel.pauses], [1001, 2]);
    // Ending a socket releases its queue: 600 left > low, still paused.
    await until(() => other.pendingWrites.length === 1, "the write on socket 2");
    h.close(2); // closing waits for the write...
    other.pendingWrites[0]?.fail(netError("BrokenPipe", "Broken pipe (os error 32)"));
    eq((await h.terminal(2)).ev, "error");
    eq([queued(), h.channel.resumes], [600, 1]);
    eq(h.channel.log.filter((l) => l === "pause" || l === "resume"), [
      "pause",
      "resume",
      "pause",
    ]);
    // The session ending while paused releases everything, without a resume call to a closed
    // channel.
    await h.session.close();
    eq([queued(), h.channel.resumes], [0, 1]);
  });
}

Deno.test("session: send queue full says why: no read backpressure, ignored backpressure, or neither", async () => {
  const cases: {
    name: string;
    pausable: boolean;
    limits: Partial<SessionLimits>;
    sends: [number, number][];
    msg: string;
  }[] = [
    {
      name: "a channel that cannot pause",
      pausable: false,
      limits: { maxSocketQueueBytes: 1000, uploadHighWaterBytes: 500 },
      sends: [[1, 600], [1, 600]],
      msg: WireError.queueFull(1, 1000, WireError.noReadBackpressure()),
    },
    {
      name: "a client that ignores the pause",
      pausable: true,
      limits: { maxSocketQueueBytes: 1000, uploadHighWaterBytes: 500 },
      sends: [[1, 600], [1, 600]],
      msg: WireError.queueFull(1, 1000, WireError.ignoredBackpressure()),
    },
    {
      name: "a socket bound below the high-water mark",
      pausable: true,
      limits: { maxSocketQueueBytes: 1000, uploadHighWaterBytes: 5000 },
      sends: [[1, 600], [1, 600]],
      msg: WireError.queueFull(1, 1000),
    },
    {
      name: "the session bound",
      pausable: true,
      limits: { maxSessionQueueBytes: 1500, uploadHighWaterBytes: 500 },
      sends: [[1, 800], [2, 800]],
      msg: WireError.sessionQueueFull(2, 1500, WireError.ignoredBackpressure()),
    },
  ];
  for (const c of cases) {
    await using h = new Harness("json", { pausable: c.pausable, limits: c.limits });
    const conns = [await h.open(1), await h.open(2, OK_IP2)];
    for (const conn of conns) conn.manualWrites = true;
    for (const [id, n] of c.sends) h.send(id, pattern(n, id));
    const victim = c.sends.at(-1)?.[0] ?? 0;
    eq(await h.terminal(victim), { ev: "error", id: victim, msg: c.msg }, c.name);
    // Only that socket ended; its queue is released (and reading resumed if it was paused).
    eq(h.session.stats.queuedBytes, victim === 1 ? 0 : 800, c.name);
    eq(h.channel.paused, false, c.name);
    const survivor = victim === 1 ? 2 : 1;
    h.send(survivor, "still open");
    strictEqual(h.channel.controlFor(survivor).length, 1, c.name);
  }
  // The stable text, as the README lists it.
  strictEqual(
    WireError.queueFull(1, 1000, WireError.noReadBackpressure()),
    "send queue full: socket 1 has more than 1000 bytes waiting for its peer (this server " +
      "cannot pause reading the client: see README, Limits); socket closed",
  );
});

for (const framing of FRAMINGS) {
  Deno.test(`session: a failing write or read ends only its own socket (${framing})`, async () => {
    await using h = new Harness(framing);
    const bad = await h.open(1);
    const good = await h.open(2, OK_IP2);
    const readBad = await h.open(3, OK_IP2, 81);
    bad.manualWrites = true;
    h.send(1, "doomed");
    h.send(2, "fine ");
    await until(() => bad.pendingWrites.length === 1, "the write");
    bad.pendingWrites[0]?.fail(
      netError("ConnectionReset", "Connection reset by peer (os error 104)"),
    );
    eq(await h.terminal(1), {
      ev: "error",
      id: 1,
      msg: "connection error: Connection reset by peer (os error 104)",
    });
    readBad.pushError(netError("ConnectionReset", "Connection reset by peer (os error 104)"));
    strictEqual((await h.terminal(3)).ev, "error");
    ok(bad.closed && readBad.closed && !good.closed);
    // Socket 2 still works both ways.
    h.send(2, "and well");
    good.push("reply");
    await until(() => good.text === "fine and well", "socket 2 writes");
    eq(await h.channel.waitFor(2, "data"), { ev: "data", id: 2, data: enc.encode("reply") });
    // Socket 1 is gone: exactly one terminal event, later sends get `unknown id`.
    h.send(1, "more");
    await assertControl(h, 1, [
      { ev: "connected", id: 1 },
      { ev: "error", id: 1, msg: "connection error: Connection reset by peer (os error 104)" },
      { ev: "error", id: 1, msg: WireError.unknownId(1) },
    ]);
    eq(h.channel.controlFor(2), [{ ev: "connected", id: 2 }]);
  });
}

// --- ids ------------------------------------------------------------------------------------

for (const framing of FRAMINGS) {
  Deno.test(`session: unknown, live, reserved and wrong-kind ids get the documented errors (${framing})`, async () => {
    await using h = new Harness(framing);
    h.send(7, "x");
    h.close(7);
    h.req({ op: "send_to", id: 7, addr: OK_IP, port: 53, data: enc.encode("x") });
    h.req({ op: "listen", id: 7, backlog: 1 });
    eq(h.channel.take(), Array(4).fill({ ev: "error", id: 7, msg: WireError.unknownId(7) }));
    // A second close of a socket: `closed`, then `unknown id`.
    await h.open(1);
    h.close(1);
    h.close(1);
    eq(h.channel.take().slice(-2), [
      { ev: "closed", id: 1 },
      { ev: "error", id: 1, msg: WireError.unknownId(1) },
    ]);
    // A live id (here a pending dial) is refused and the live socket is untouched.
    h.transport.dials.set(OK_IP2, "hold");
    h.connect(2, OK_IP2);
    h.connect(2, OK_IP);
    h.req({ op: "resolve", id: 2, name: "a.test" });
    eq(h.channel.take(), [
      { ev: "error", id: 2, msg: WireError.idInUse(2) },
      { ev: "error", id: 2, msg: WireError.idInUse(2) },
    ]);
    (await h.transport.waitHeld("dial")).open();
    await h.channel.waitFor(2, "connected");
    h.channel.take();
    eq(h.transport.dialled.slice(-1), [`${OK_IP2}:80`]);
    // Server-assigned ids are reserved.
    h.connect(SERVER_ID_BASE, OK_IP);
    eq(h.channel.take(), [{
      ev: "error",
      id: SERVER_ID_BASE,
      msg: WireError.reservedId(SERVER_ID_BASE),
    }]);
    // Ops on the wrong kind of entry.
    h.req({ op: "send_to", id: 2, addr: OK_IP, port: 53, data: enc.encode("x") });
    h.req({ op: "listen", id: 2, backlog: 1 });
    eq(h.channel.take(), [
      { ev: "error", id: 2, msg: WireError.wrongKind("send_to", 2, "stream") },
      { ev: "error", id: 2, msg: WireError.wrongKind("listen", 2, "stream") },
    ]);
    // Undecodable input is answered on id 0 and the session goes on.
    h.session.handle(framing === "json" ? "{" : new Uint8Array([0xff]));
    const bad = h.channel.take();
    strictEqual(bad.length, 1);
    ok(bad[0]?.ev === "error" && bad[0].id === 0, JSON.stringify(bad));
    h.send(2, "ok");
    await until(() => h.transport.lastConn.text === "ok", "socket 2 still works");
  });
}

// --- download backpressure ------------------------------------------------------------------

Deno.test("session: no upstream read while the channel is above the high-water mark", async () => {
  await using h = new Harness("binary", { limits: { highWaterMarkBytes: 1000, drainPollMs: 1 } });
  const conn = await h.open(1);
  await until(() => conn.reading, "the first read");
  h.channel.bufferedAmount = 5000; // the client is slow
  conn.push("one"); // answers the read that was already waiting
  await h.channel.waitFor(1, "data");
  conn.push("two");
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 1));
  strictEqual(conn.reads, 1, "no second read while above the mark");
  eq(h.channel.dataFor(1), enc.encode("one"));
  h.channel.bufferedAmount = 700; // below the mark, above half of it: still waiting
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 1));
  strictEqual(conn.reads, 1, "reads resume only at half the mark");
  h.channel.bufferedAmount = 500;
  await until(() => h.channel.dataFor(1).byteLength === 6, "the second chunk");
  eq(h.channel.dataFor(1), enc.encode("onetwo"));
});

// --- transports that bind asynchronously (node:net, node:dgram) ------------------------------

for (const framing of FRAMINGS) {
  Deno.test(`session: an asynchronous listen answers listening once bound, a bind failure frees the slot (${framing})`, async () => {
    await using h = new Harness(framing, { policy: testPolicy({ maxConnections: 1 }) });
    h.transport.binds = "hold";
    h.req({ op: "bind", id: 1, addr: "127.0.0.1", port: 3000 });
    h.req({ op: "listen", id: 1, backlog: 8 }); // before the listener is bound
    const bind = await h.transport.waitHeld("listen");
    await tick();
    eq(h.channel.events, [], "nothing before the listener is bound");
    bind.bind();
    await until(() => h.channel.events.length === 2, "listening twice");
    eq(h.channel.events, [
      { ev: "listening", id: 1, port: 3000 },
      { ev: "listening", id: 1, port: 3000 },
    ]);
    h.close(1);
    eq(await h.terminal(1), { ev: "closed", id: 1 });
    h.transport.listenError = netError("AddrInUse", "Address already in use (os error 98)");
    h.req({ op: "bind", id: 2, addr: "127.0.0.1", port: 3001 });
    (await h.transport.waitHeld("listen")).bind();
    eq(await h.terminal(2), {
      ev: "error",
      id: 2,
      msg: "bind to 127.0.0.1:3001 failed: Address already in use (os error 98)",
    });
    strictEqual(h.session.stats.slots, 0);
  });

  Deno.test(`session: an entry closed while its socket binds closes the socket once bound (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.binds = "hold";
    h.req({ op: "bind", id: 1, addr: "127.0.0.1", port: 3000 });
    h.req({ op: "connect_udp", id: 2, addr: OK_IP, port: 53 });
    h.req({ op: "send", id: 2, data: enc.encode("early") });
    const listen = await h.transport.waitHeld("listen");
    const udp = await h.transport.waitHeld("udp");
    h.close(1);
    h.close(2);
    eq(h.channel.take(), [{ ev: "closed", id: 1 }, { ev: "closed", id: 2 }]);
    listen.bind();
    udp.bind();
    await until(() => h.transport.open.length === 0, "the late sockets closed");
    eq(h.transport.udps[0]?.sent, [], "nothing sent on a socket closed before it was bound");
    await assertControl(h, 1, [{ ev: "closed", id: 1 }]);
    await assertControl(h, 2, [{ ev: "closed", id: 2 }]);
  });
}

Deno.test("session: an asynchronous UDP socket sends early datagrams once bound, in order", async () => {
  await using h = new Harness("binary");
  h.transport.binds = "async";
  h.req({ op: "connect_udp", id: 1, addr: OK_IP, port: 53 });
  h.req({ op: "send", id: 1, data: enc.encode("a") });
  h.req({ op: "send", id: 1, data: enc.encode("b") });
  await h.channel.waitFor(1, "udp_bound");
  const [udp] = h.transport.udps;
  ok(udp);
  await until(() => udp.sent.length === 2, "two datagrams");
  eq(udp.sent.map((d) => [dec.decode(d.data), d.addr.hostname, d.addr.port]), [
    ["a", OK_IP, 53],
    ["b", OK_IP, 53],
  ]);
  // Replies from the peer are delivered; from a peer never contacted, dropped.
  udp.deliver("stranger", OK_IP2, 53);
  udp.deliver("reply", OK_IP, 53);
  eq(await h.channel.waitFor(1, "data_from"), {
    ev: "data_from",
    id: 1,
    data: enc.encode("reply"),
    addr: OK_IP,
    port: 53,
  });
  strictEqual(h.channel.eventsFor(1).filter((e) => e.ev === "data_from").length, 1);
});

// --- close of an open socket ----------------------------------------------------------------

for (const framing of FRAMINGS) {
  Deno.test(`session: close writes every queued byte first, drops later data, answers one closed (${framing})`, async () => {
    await using h = new Harness(framing);
    const conn = await h.open(1);
    conn.manualWrites = true;
    conn.maxWriteBytes = 3;
    h.send(1, "abcdefgh");
    h.send(1, "ijk");
    h.close(1);
    h.send(1, "too late"); // not terminal: the socket is still closing
    conn.push("reply after close"); // dropped: data after `close` is not delivered
    await tick();
    eq(h.channel.controlFor(1), [
      { ev: "connected", id: 1 },
      { ev: "error", id: 1, msg: WireError.closing(1) },
    ]);
    await drainWrites(conn, (n) => n);
    await h.channel.waitFor(1, "closed");
    strictEqual(conn.text, "abcdefghijk");
    ok(conn.closed);
    eq(h.channel.eventsFor(1).filter((e) => e.ev === "data"), []);
    await assertControl(h, 1, [
      { ev: "connected", id: 1 },
      { ev: "error", id: 1, msg: WireError.closing(1) },
      { ev: "closed", id: 1 },
    ]);
  });
}

Deno.test("session: a TLS close_notify that never completes ends at the linger limit", async () => {
  await using h = new Harness("json", { limits: { closeLingerMs: 20 } });
  h.transport.onConnect = (conn) => conn.holdCloseWrite = true;
  h.connect(1, OK_IP, 443, true);
  await h.channel.waitFor(1, "connected");
  const tls = h.transport.lastConn;
  h.close(1);
  await until(() => tls.closeWriteCalls === 1, "close_notify");
  eq(h.channel.controlFor(1), [{ ev: "connected", id: 1 }]);
  eq(await h.terminal(1), { ev: "closed", id: 1 });
  ok(tls.closed);
});

Deno.test("session: session close while a listen and a UDP bind are pending closes them once bound", async () => {
  const h = new Harness("binary");
  h.transport.binds = "hold";
  h.req({ op: "bind", id: 1, addr: "127.0.0.1", port: 3000 });
  h.req({ op: "connect_udp", id: 2, addr: OK_IP, port: 53 });
  const listen = await h.transport.waitHeld("listen");
  const udp = await h.transport.waitHeld("udp");
  let done = false;
  const closing = h.session.close().then(() => done = true);
  await tick();
  strictEqual(done, false, "close waits for the binds");
  listen.bind();
  udp.bind();
  await closing;
  eq(h.channel.events, []);
  await h[Symbol.asyncDispose](); // nothing open
});

Deno.test("session: a throttled download keeps every chunk intact in binary frames (fake clock)", async () => {
  const clock = new FakeClock();
  const down = new RateLimiter([
    new TokenBucket({ rateBytesPerSec: 1000, burstBytes: 100, clock }),
  ]);
  await using h = new Harness("binary", { bandwidth: { up: new RateLimiter([]), down } });
  const conn = await h.open(1);
  const payload = pattern(450, 9);
  conn.push(payload);
  await until(() => h.channel.dataFor(1).byteLength === 100, "the burst");
  for (let t = 0; t < 4; t++) {
    await clock.advance(100);
    await until(() => h.channel.dataFor(1).byteLength === Math.min(450, 200 + 100 * t), "a piece");
  }
  const sizes = h.channel.eventsFor(1).flatMap((e) => e.ev === "data" ? [e.data.byteLength] : []);
  ok(sizes.every((n) => n <= 100), `pieces no larger than the burst: ${sizes}`);
  eq(h.channel.dataFor(1), payload, "no header overwrote payload bytes");
  strictEqual(clock.pending, 0);
});

Deno.test("session: a lookup that answers after the client's close opens no connection", async () => {
  await using h = new Harness("json");
  h.transport.honourAborts = false; // a resolver that cannot be cancelled
  h.transport.answers.set("slow.test", "hold");
  h.connect(1, "slow.test");
  h.req({ op: "connect_udp", id: 2, addr: "slow.test", port: 53 });
  await until(() => h.transport.held.length === 2, "both lookups");
  h.close(1);
  h.close(2);
  for (const lookup of [...h.transport.held]) lookup.answer([OK_IP]);
  await assertControl(h, 1, [{ ev: "closed", id: 1 }]);
  await assertControl(h, 2, [{ ev: "closed", id: 2 }]);
  eq(h.transport.conns, [], "no stream connection");
  eq(h.transport.udps, [], "no UDP socket");
});

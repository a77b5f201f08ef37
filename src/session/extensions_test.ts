/**
 * Unit tests of the wasmnet protocol extensions `start_tls` and `shutdown` in {@linkcode Session}
 * and `StreamSocket`, through the fake transport and channel (`_fake_transport_test_util.ts`):
 * ordering (bytes queued before and after the request, the handshake's place), refusals, the
 * terminal events, and teardown. `tests/start_tls_test.ts` runs them over real sockets and TLS.
 */
import { deepStrictEqual as eq, match, ok, strictEqual } from "node:assert/strict";
import { encodeRequest, type Framing, type Request, type WireEvent } from "../protocol/mod.ts";
import { Policy } from "../policy/mod.ts";
import type { Logger } from "../log/mod.ts";
import { Session } from "./session.ts";
import { SERVER_ID_BASE } from "./options.ts";
import { WireError } from "./wire_errors.ts";
import {
  FakeChannel,
  type FakeConn,
  FakeTransport,
  tick,
  until,
} from "./_fake_transport_test_util.ts";

const FRAMINGS: readonly Framing[] = ["json", "binary"];
const enc = new TextEncoder();
const OK_IP = "203.0.113.10";

/** A permissive policy; `timeoutMs` overrides the dial and handshake bound (minimum 1 s). */
function testPolicy(timeoutMs?: number): Policy {
  const policy = Policy.fromConfig({ deny: [], allow: ["*"], maxBandwidthMbps: 0 }, "<test>");
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

/** A session over a fake transport and channel; disposal checks that nothing is left. */
class Harness implements AsyncDisposable {
  readonly transport = new FakeTransport();
  readonly channel = new FakeChannel();
  readonly session: Session;
  readonly errors: string[] = [];

  constructor(readonly framing: Framing, timeoutMs?: number) {
    this.session = new Session(this.channel, {
      policy: testPolicy(timeoutMs),
      transport: this.transport,
      log: recordingLogger(this.errors),
    });
  }

  req(r: Request): void {
    this.session.handle(encodeRequest(r, this.framing));
  }

  send(id: number, text: string): void {
    this.req({ op: "send", id, data: enc.encode(text) });
  }

  startTls(id: number, servername?: string): void {
    this.req(
      servername === undefined ? { op: "start_tls", id } : { op: "start_tls", id, servername },
    );
  }

  /** Connects `id` (TCP, or TLS) to OK_IP:80; returns its connection after `connected`. */
  async open(id: number, tls = false): Promise<FakeConn> {
    const before = this.transport.conns.length;
    this.req({ op: tls ? "connect_tls" : "connect", id, addr: OK_IP, port: 80 });
    await this.channel.waitFor(id, "connected");
    const conn = this.transport.conns.at(tls ? before + 1 : before);
    ok(conn !== undefined);
    return conn;
  }

  /** Non-data events of `id` after a few turns. */
  async control(id: number): Promise<WireEvent[]> {
    for (let i = 0; i < 3; i++) await tick();
    return this.channel.controlFor(id);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.session.close();
    eq(this.transport.open, [], "nothing left open");
    eq({ live: this.session.stats.live, slots: this.session.stats.slots }, { live: 0, slots: 0 });
    eq(this.session.stats.queuedBytes, 0, "no queued bytes");
    eq(this.errors, [], "no task failed");
  }
}

function dataText(h: Harness, id: number): string {
  return new TextDecoder().decode(h.channel.dataFor(id));
}

for (const framing of FRAMINGS) {
  Deno.test(`start_tls: bytes before go in plaintext, bytes after through TLS, the peer's bytes during the handshake are not data (${framing})`, async () => {
    await using h = new Harness(framing);
    const tcp = await h.open(1);
    tcp.push("220 ready\r\n");
    await until(() => dataText(h, 1) === "220 ready\r\n", "the greeting");
    h.transport.handshakes.set("db.example.com", "hold");
    tcp.manualWrites = true;
    h.send(1, "STARTTLS\r\n");
    h.startTls(1, "DB.Example.com."); // normalised like an address
    h.send(1, "secret");
    await tick();
    // The handshake waits for the bytes queued before the request.
    eq(h.transport.log.filter((l) => l.startsWith("tls")), []);
    tcp.completeWrite();
    const held = await h.transport.waitHeld("tls db.example.com");
    eq(tcp.text, "STARTTLS\r\n");
    // The peer's bytes now belong to TLS: never sent as `data`.
    tcp.push("\x16\x03\x01 server hello");
    for (let i = 0; i < 3; i++) await tick();
    eq(dataText(h, 1), "220 ready\r\n");
    const tls = held.open();
    await until(() => h.channel.controlFor(1).length === 2, "the second connected");
    eq(h.channel.controlFor(1), [{ ev: "connected", id: 1 }, { ev: "connected", id: 1 }]);
    await until(() => tls.text === "secret", "the queued send through TLS");
    eq(tcp.text, "STARTTLS\r\n", "nothing more in plaintext");
    tls.push("250 ok");
    await until(() => dataText(h, 1) === "220 ready\r\n250 ok", "data over TLS");
    h.send(1, " more");
    await until(() => tls.text === "secret more", "later sends through TLS");
    h.req({ op: "close", id: 1 });
    eq(await h.channel.waitFor(1, "closed"), { ev: "closed", id: 1 });
    strictEqual(tls.closeWriteCalls, 1, "close_notify on close");
  });

  Deno.test(`start_tls: the default servername is the host the socket was opened with (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.answers.set("mail.test", [OK_IP]);
    h.req({ op: "connect", id: 1, addr: "Mail.Test", port: 25 });
    await h.channel.waitFor(1, "connected");
    h.startTls(1);
    await until(() => h.channel.controlFor(1).length === 2, "upgraded");
    eq(h.transport.log, ["lookup mail.test", `dial ${OK_IP}:25`, "tls mail.test"]);
    const ip = await h.open(2);
    ok(ip);
    h.startTls(2);
    await until(() => h.channel.controlFor(2).length === 2, "upgraded");
    eq(h.transport.log.at(-1), `tls ${OK_IP}`);
  });

  Deno.test(`start_tls: a failed handshake ends the socket with error, once (${framing})`, async () => {
    await using h = new Harness(framing);
    const tcp = await h.open(1);
    h.transport.handshakes.set(
      OK_IP,
      new Error("certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE)"),
    );
    h.startTls(1);
    const err = {
      ev: "error",
      id: 1,
      msg: WireError.tlsFailed(
        OK_IP,
        `${OK_IP}:80`,
        "certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE)",
      ),
    };
    eq(await h.channel.waitFor(1, "error"), err);
    eq(await h.control(1), [{ ev: "connected", id: 1 }, err]);
    ok(tcp.closed);
    h.send(1, "late");
    eq((await h.control(1)).at(-1), { ev: "error", id: 1, msg: WireError.unknownId(1) });
  });

  Deno.test(`start_tls: the handshake is bounded by connection_timeout_secs (${framing})`, async () => {
    await using h = new Harness(framing, 30);
    await h.open(1);
    h.transport.handshakes.set(OK_IP, "hold");
    h.startTls(1);
    eq(await h.channel.waitFor(1, "error"), {
      ev: "error",
      id: 1,
      msg: WireError.tlsFailed(OK_IP, `${OK_IP}:80`, "timed out"),
    });
  });

  Deno.test(`start_tls: close during the handshake cancels it and answers closed (${framing})`, async () => {
    await using h = new Harness(framing);
    const tcp = await h.open(1);
    h.transport.handshakes.set(OK_IP, "hold");
    h.startTls(1);
    const held = await h.transport.waitHeld("tls");
    h.send(1, "queued for TLS");
    h.req({ op: "close", id: 1 });
    eq(await h.channel.waitFor(1, "closed"), { ev: "closed", id: 1 });
    ok(held.signal.aborted);
    ok(tcp.closed);
    eq(await h.control(1), [{ ev: "connected", id: 1 }, { ev: "closed", id: 1 }]);
  });

  Deno.test(`start_tls refusals are non-terminal: the socket goes on as it was (${framing})`, async () => {
    await using h = new Harness(framing);
    const refusal = (id: number, why: string): WireEvent => ({
      ev: "error",
      id,
      msg: WireError.startTlsRefused(id, why),
    });
    // Already TLS.
    const tls = await h.open(1, true);
    h.startTls(1);
    eq((await h.control(1)).at(-1), refusal(1, "it already speaks TLS"));
    h.send(1, "still open");
    await until(() => tls.text === "still open", "the TLS socket still works");
    // A second start_tls while one runs.
    await h.open(2);
    h.transport.handshakes.set(OK_IP, "hold");
    h.startTls(2);
    await h.transport.waitHeld("tls");
    h.startTls(2);
    eq((await h.control(2)).at(-1), refusal(2, "a start_tls is already in progress"));
    (await h.transport.waitHeld("tls")).open();
    await until(
      () => h.channel.controlFor(2).filter((e) => e.ev === "connected").length === 2,
      "2 up",
    );
    // Shut down first.
    const shut = await h.open(3);
    h.req({ op: "shutdown", id: 3 });
    h.startTls(3);
    eq((await h.control(3)).at(-1), refusal(3, "it is shut down for writing"));
    strictEqual(shut.closeWriteCalls, 1);
    // Not connected yet.
    h.transport.dials.set(OK_IP, "hold");
    h.req({ op: "connect", id: 4, addr: OK_IP, port: 80 });
    h.startTls(4);
    eq(await h.control(4), [refusal(4, "it is not connected yet (wait for connected)")]);
    (await h.transport.waitHeld("dial")).open();
    await h.channel.waitFor(4, "connected");
    // An invalid servername.
    h.startTls(4, "bad name!");
    match(((await h.control(4)).at(-1) as { msg: string }).msg, /^invalid address "bad name!": /);
    // Unknown id, and ids that are not stream sockets.
    h.startTls(9);
    eq(await h.control(9), [{ ev: "error", id: 9, msg: WireError.unknownId(9) }]);
    h.req({ op: "connect_udp", id: 5, addr: OK_IP, port: 53 });
    await h.channel.waitFor(5, "udp_bound");
    h.startTls(5);
    eq((await h.control(5)).at(-1), {
      ev: "error",
      id: 5,
      msg: WireError.wrongKind("start_tls", 5, "udp"),
    });
    // Nothing ended: every socket is still in the table.
    strictEqual(h.session.stats.live, 5);
    eq(h.transport.log.filter((l) => l.startsWith("tls")), ["tls " + OK_IP, "tls " + OK_IP]);
  });

  Deno.test(`start_tls is refused on an accepted connection (${framing})`, async () => {
    await using h = new Harness(framing);
    h.req({ op: "bind", id: 1, addr: "127.0.0.1", port: 3000 });
    await h.channel.waitFor(1, "listening");
    const [listener] = h.transport.listeners;
    ok(listener);
    const inbound = listener.arrive("192.0.2.9", 4444);
    await h.channel.waitFor(1, "accepted");
    h.startTls(SERVER_ID_BASE);
    eq(await h.control(SERVER_ID_BASE), [{
      ev: "error",
      id: SERVER_ID_BASE,
      msg: WireError.startTlsRefused(
        SERVER_ID_BASE,
        "it is an accepted connection (TLS as a client needs an outbound socket)",
      ),
    }]);
    h.req({ op: "send", id: SERVER_ID_BASE, data: enc.encode("plain") });
    await until(() => inbound.text === "plain", "the connection still works");
  });

  Deno.test(`shutdown: FIN after the queue is written, reading goes on, peer EOF ends it (${framing})`, async () => {
    await using h = new Harness(framing);
    const tcp = await h.open(1);
    tcp.manualWrites = true;
    h.send(1, "request");
    h.req({ op: "shutdown", id: 1 });
    h.req({ op: "shutdown", id: 1 }); // a second one does nothing
    await tick();
    strictEqual(tcp.closeWriteCalls, 0, "no FIN before the queue is written");
    tcp.completeWrite();
    await until(() => tcp.closeWriteCalls === 1, "the FIN");
    h.send(1, "too late");
    eq((await h.control(1)).at(-1), { ev: "error", id: 1, msg: WireError.shutDown(1) });
    tcp.push("reply after FIN");
    await until(() => dataText(h, 1) === "reply after FIN", "data after shutdown");
    tcp.pushEof();
    eq(await h.channel.waitFor(1, "closed"), { ev: "closed", id: 1 });
    eq(await h.control(1), [
      { ev: "connected", id: 1 },
      { ev: "error", id: 1, msg: WireError.shutDown(1) },
      { ev: "closed", id: 1 },
    ]);
    eq(tcp.text, "request");
    strictEqual(tcp.closeWriteCalls, 1);
  });

  Deno.test(`shutdown before connected waits for the dial; close after it ends at once (${framing})`, async () => {
    await using h = new Harness(framing);
    h.transport.dials.set(OK_IP, "hold");
    h.req({ op: "connect", id: 1, addr: OK_IP, port: 80 });
    h.send(1, "early");
    h.req({ op: "shutdown", id: 1 });
    const tcp = (await h.transport.waitHeld("dial")).open();
    await until(() => tcp.closeWriteCalls === 1, "the FIN after the early bytes");
    eq(tcp.text, "early");
    h.req({ op: "close", id: 1 });
    eq(await h.channel.waitFor(1, "closed"), { ev: "closed", id: 1 });
    ok(tcp.closed);
    h.req({ op: "shutdown", id: 1 });
    eq((await h.control(1)).at(-1), { ev: "error", id: 1, msg: WireError.unknownId(1) });
  });

  Deno.test(`shutdown on TLS: close_notify and FIN on the TLS connection; after start_tls, after the queued bytes (${framing})`, async () => {
    await using h = new Harness(framing);
    const tcp = await h.open(1);
    h.transport.handshakes.set(OK_IP, "hold");
    h.startTls(1);
    h.send(1, "over tls");
    h.req({ op: "shutdown", id: 1 });
    const tls = (await h.transport.waitHeld("tls")).open();
    await until(() => tls.closeWriteCalls === 1, "close_notify + FIN over TLS");
    eq(tls.text, "over tls");
    strictEqual(tcp.closeWriteCalls, 0);
    tls.push("answer");
    await until(() => dataText(h, 1) === "answer", "reading goes on");
    tls.pushEof();
    eq(await h.channel.waitFor(1, "closed"), { ev: "closed", id: 1 });
  });

  Deno.test(`shutdown refusals: a listener, an unknown id, a closing socket (${framing})`, async () => {
    await using h = new Harness(framing);
    h.req({ op: "bind", id: 1, addr: "127.0.0.1", port: 3000 });
    await h.channel.waitFor(1, "listening");
    h.req({ op: "shutdown", id: 1 });
    eq((await h.control(1)).at(-1), {
      ev: "error",
      id: 1,
      msg: WireError.wrongKind("shutdown", 1, "listener"),
    });
    h.req({ op: "shutdown", id: 7 });
    eq(await h.control(7), [{ ev: "error", id: 7, msg: WireError.unknownId(7) }]);
    const tcp = await h.open(2);
    tcp.manualWrites = true;
    h.send(2, "x");
    h.req({ op: "close", id: 2 });
    h.req({ op: "shutdown", id: 2 });
    eq((await h.control(2)).at(-1), { ev: "error", id: 2, msg: WireError.closing(2) });
    tcp.completeWrite();
    await h.channel.waitFor(2, "closed");
  });
}

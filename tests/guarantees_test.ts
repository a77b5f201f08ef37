/**
 * The guarantees of DESIGN.md §4, one test (or a few) each, end to end: real loopback peers,
 * a real wasmnet server, real WebSocket clients. Each test is written so that it fails when the
 * guarantee is missing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { delay, until } from "./helpers/wait.ts";
import { randomBytes, TestClient } from "./helpers/ws_client.ts";
import { inProcessOnly, loopbackPolicy, startTestServer } from "./helpers/server.ts";
import { startTcpEcho, startTcpSink } from "./helpers/echo_servers.ts";
import {
  decodeEvent,
  encodeRequestBinary,
  encodeRequestJson,
  type Framing,
  type WireEvent,
} from "../src/protocol/mod.ts";
import type { StreamConn, Transport } from "../src/transport/mod.ts";
import { denoTransport } from "../src/transport/deno/mod.ts";
import { Session } from "../src/session/mod.ts";

const FRAMINGS: readonly Framing[] = ["json", "binary"];
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Lets late events arrive: waits `ms`, then a round trip ({@linkcode TestClient.settle}). */
async function settle(client: TestClient, ms = 50): Promise<void> {
  await delay(ms);
  await client.settle();
}

/** A port on 127.0.0.1 that had a listener a moment ago and has none now. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * A raw TCP peer on 127.0.0.1:0 that accepts connections and hands them to the test, which
 * decides what to do with them (hold without reading, write, close). `closeOnAccept` closes
 * every connection at once (a peer that ends every connection with EOF).
 */
class Peer implements AsyncDisposable {
  readonly #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly #conns: Deno.Conn[] = [];
  readonly #fresh: Deno.Conn[] = [];
  readonly #loop: Promise<void>;
  /** Connections accepted so far. */
  accepted = 0;

  constructor(closeOnAccept = false) {
    this.#loop = (async () => {
      try {
        for await (const conn of this.#listener) {
          this.accepted++;
          if (closeOnAccept) {
            conn.close();
            continue;
          }
          this.#conns.push(conn);
          this.#fresh.push(conn);
        }
      } catch {
        // listener closed
      }
    })();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  /** The next accepted connection not yet handed out. */
  async next(): Promise<Deno.Conn> {
    await until(() => this.#fresh.length > 0, "the peer accepts a connection");
    const conn = this.#fresh.shift();
    if (!conn) throw new Error("unreachable");
    return conn;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // closed by the test
      }
    }
    await this.#loop;
  }
}

/**
 * The real transport behind a gate: every TCP dial waits until {@linkcode GatedTransport.open}
 * (a slow dial the test controls). `lookup` answers the names in `names` itself. With
 * `honourAbort`, a dial waiting at the gate ends when its signal aborts; without it the dial
 * ignores the abort and completes once the gate opens (a dial that finishes after `close`).
 */
class GatedTransport implements Disposable {
  readonly #gate = Promise.withResolvers<void>();
  #open = false;
  /** The transport to give the server. */
  readonly transport: Transport;
  /** Dials started. */
  dials = 0;
  /** Dials that ended by their signal while waiting at the gate. */
  aborted = 0;

  constructor(names: Readonly<Record<string, string[]>> = {}, honourAbort = true) {
    const real = denoTransport();
    this.transport = {
      ...real,
      lookup: (name, signal) => {
        const ips = names[name];
        return ips ? Promise.resolve(ips) : real.lookup(name, signal);
      },
      connectTcp: async (ip, port, signal): Promise<StreamConn> => {
        this.dials++;
        if (!this.#open) {
          if (honourAbort) await this.#wait(signal);
          else await this.#gate.promise;
        }
        return real.connectTcp(ip, port, honourAbort ? signal : new AbortController().signal);
      },
    };
  }

  #wait(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.aborted++;
        reject(signal.reason);
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      void this.#gate.promise.then(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  /** Lets every dial through, now and later. */
  open(): void {
    this.#open = true;
    this.#gate.resolve();
  }

  /** Opens the gate, so no dial is left waiting at the end of a test. */
  [Symbol.dispose](): void {
    this.open();
  }
}

// --- connected only after registration; send before connected is queued, in order -----------

for (const framing of FRAMINGS) {
  Deno.test(`guarantee: a send right after connected reaches the peer (${framing})`, async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    for (let id = 1; id <= 20; id++) {
      client.send({ op: "connect", id, addr: "127.0.0.1", port: echo.port });
      assert.deepEqual(await client.nextFor(id), { ev: "connected", id });
      client.send({ op: "send", id, data: enc.encode(`hello ${id}`) });
      assert.equal(dec.decode(await client.collect(id, `hello ${id}`.length)), `hello ${id}`);
    }
  });

  Deno.test(
    `guarantee: sends before connected wait for a slow dial and arrive in order (${framing})`,
    inProcessOnly("a gated (fake) transport controls the dial"),
    async () => {
      await using echo = await startTcpEcho();
      using gated = new GatedTransport();
      await using server = await startTestServer({ transport: gated.transport });
      await using client = await TestClient.open(server.url, framing);
      client.send({ op: "connect", id: 1, addr: "127.0.0.1", port: echo.port });
      const chunks = [enc.encode("first,"), randomBytes(5000), enc.encode(",third")];
      for (const data of chunks) client.send({ op: "send", id: 1, data });
      await settle(client);
      assert.equal(gated.dials, 1);
      assert.deepEqual(client.queuedFor(1), [], "no event before the dial completes");
      assert.equal(echo.accepted, 0);
      gated.open();
      assert.deepEqual(await client.nextFor(1), { ev: "connected", id: 1 });
      const all = concat(chunks);
      assert.deepEqual(await client.collect(1, all.byteLength), all);
    },
  );

  Deno.test(
    `guarantee: sends right after connect (real dial) arrive in order (${framing})`,
    async () => {
      await using echo = await startTcpEcho();
      await using server = await startTestServer();
      await using client = await TestClient.open(server.url, framing);
      for (let id = 1; id <= 10; id++) {
        client.send({ op: "connect", id, addr: "127.0.0.1", port: echo.port });
        const chunks = [0, 1, 2].map((i) => enc.encode(`<${id}.${i}>`));
        for (const data of chunks) client.send({ op: "send", id, data });
        assert.deepEqual(await client.nextFor(id), { ev: "connected", id });
        const all = concat(chunks);
        assert.equal(dec.decode(await client.collect(id, all.byteLength)), dec.decode(all));
      }
    },
  );
}

Deno.test(
  "guarantee: the queue before connected is bounded; overflow ends the dial",
  inProcessOnly("a gated (fake) transport controls the dial"),
  async () => {
    await using echo = await startTcpEcho();
    using gated = new GatedTransport();
    await using server = await startTestServer({
      transport: gated.transport,
      limits: { maxSocketQueueBytes: 64 * 1024 },
    });
    await using client = await TestClient.open(server.url, "binary");
    client.send({ op: "connect", id: 1, addr: "127.0.0.1", port: echo.port });
    for (let i = 0; i < 3; i++) client.send({ op: "send", id: 1, data: randomBytes(30 * 1024) });
    const ev = await client.nextFor(1);
    assert.equal(ev.ev, "error");
    if (ev.ev === "error") assert.match(ev.msg, /^send queue full/);
    await until(() => gated.aborted === 1, "the pending dial is cancelled");
    gated.open();
    await settle(client);
    assert.deepEqual(client.queuedFor(1), [], "nothing after the terminal error");
    assert.equal(echo.accepted, 0, "the cancelled dial never reached the peer");
  },
);

// --- close before connected cancels the dial ----------------------------------------------------

for (const framing of FRAMINGS) {
  Deno.test(
    `guarantee: close before connected cancels the dial (${framing})`,
    inProcessOnly("a gated (fake) transport controls the dial"),
    async () => {
      await using echo = await startTcpEcho();
      using gated = new GatedTransport();
      await using server = await startTestServer({ transport: gated.transport });
      await using client = await TestClient.open(server.url, framing);
      client.send({ op: "connect", id: 1, addr: "127.0.0.1", port: echo.port });
      client.send({ op: "send", id: 1, data: enc.encode("must not arrive") });
      await until(() => gated.dials === 1, "the dial starts");
      client.send({ op: "close", id: 1 });
      assert.deepEqual(await client.nextFor(1), { ev: "closed", id: 1 });
      await until(() => gated.aborted === 1, "the transport sees the abort");
      gated.open();
      await settle(client);
      assert.deepEqual(client.queuedFor(1), [], "exactly one closed, no connected");
      assert.equal(echo.accepted, 0);
      // The id is free again.
      await client.connect(1, "127.0.0.1", echo.port);
      client.send({ op: "send", id: 1, data: enc.encode("again") });
      assert.equal(dec.decode(await client.collect(1, 5)), "again");
    },
  );

  Deno.test(
    `guarantee: a dial that completes after close is closed; the peer sees no data (${framing})`,
    inProcessOnly("a gated (fake) transport controls the dial"),
    async () => {
      await using peer = new Peer();
      await using echo = await startTcpEcho();
      using gated = new GatedTransport({}, false);
      await using server = await startTestServer({ transport: gated.transport });
      await using client = await TestClient.open(server.url, framing);
      client.send({ op: "connect", id: 1, addr: "127.0.0.1", port: peer.port });
      client.send({ op: "send", id: 1, data: enc.encode("must not arrive") });
      await until(() => gated.dials === 1, "the dial starts");
      client.send({ op: "close", id: 1 });
      assert.deepEqual(await client.nextFor(1), { ev: "closed", id: 1 });
      // Reuse the id at once, while the cancelled dial is still in flight.
      client.send({ op: "connect", id: 1, addr: "127.0.0.1", port: echo.port });
      await until(() => gated.dials === 2, "the second dial starts");
      gated.open();
      const conn = await peer.next();
      const buf = new Uint8Array(64);
      assert.equal(await conn.read(buf), null, "the late connection is closed without data");
      assert.deepEqual(await client.nextFor(1), { ev: "connected", id: 1 });
      client.send({ op: "send", id: 1, data: enc.encode("second") });
      assert.equal(dec.decode(await client.collect(1, 6)), "second");
      await settle(client);
      assert.deepEqual(client.queuedFor(1), []);
      assert.equal(peer.accepted, 1);
    },
  );
}

// --- exactly one closed/error per socket ---------------------------------------------------------

for (const framing of FRAMINGS) {
  Deno.test(`guarantee: remote EOF gives exactly one closed (${framing})`, async () => {
    await using peer = new Peer();
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    await client.connect(1, "127.0.0.1", peer.port);
    const conn = await peer.next();
    await conn.write(enc.encode("bye"));
    conn.close();
    assert.equal(dec.decode(await client.collect(1, 3)), "bye");
    assert.deepEqual(await client.nextFor(1), { ev: "closed", id: 1 });
    await settle(client, 100);
    assert.deepEqual(client.queuedFor(1), [], "nothing after closed");
    // The entry is gone: the id is unknown now.
    client.send({ op: "send", id: 1, data: enc.encode("x") });
    assert.deepEqual(await client.nextFor(1), { ev: "error", id: 1, msg: "unknown id 1" });
  });

  Deno.test(`guarantee: client close gives exactly one closed (${framing})`, async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    await client.connect(1, "127.0.0.1", echo.port);
    client.send({ op: "send", id: 1, data: enc.encode("ping") });
    assert.equal(dec.decode(await client.collect(1, 4)), "ping");
    client.send({ op: "close", id: 1 });
    assert.deepEqual(await client.nextFor(1), { ev: "closed", id: 1 });
    await settle(client, 100);
    assert.deepEqual(client.queuedFor(1), [], "nothing after closed");
    await until(() => echo.live === 0, "the peer sees the close");
  });

  Deno.test(`guarantee: sends then close at once: every byte reaches the peer (${framing})`, async () => {
    await using sink = await startTcpSink();
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    for (let id = 1; id <= 20; id++) {
      const before = sink.bytes;
      await client.connect(id, "127.0.0.1", sink.port);
      // One small send, then the close in the same tick: the up pump is mid-write when the close
      // arrives (the browser client's accept path does exactly this).
      const size = id % 2 === 0 ? 4 : 64 * 1024;
      client.send({ op: "send", id, data: randomBytes(size) });
      client.send({ op: "close", id });
      assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
      const want = before + size;
      await until(
        () => sink.bytes >= want,
        `socket ${id}: ${want - sink.bytes} bytes lost at close`,
      );
    }
    await until(() => sink.live === 0, "the sink sees every close");
  });

  Deno.test(`guarantee: a second close gets unknown id (${framing})`, async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    await client.connect(3, "127.0.0.1", echo.port);
    client.send({ op: "close", id: 3 });
    client.send({ op: "close", id: 3 });
    assert.deepEqual(await client.nextFor(3), { ev: "closed", id: 3 });
    assert.deepEqual(await client.nextFor(3), { ev: "error", id: 3, msg: "unknown id 3" });
    await settle(client);
    assert.deepEqual(client.queuedFor(3), []);
  });

  Deno.test(`guarantee: a refused dial gives exactly one error (${framing})`, async () => {
    const port = closedPort();
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    client.send({ op: "connect", id: 9, addr: "127.0.0.1", port });
    const ev = await client.nextFor(9);
    assert.equal(ev.ev, "error", JSON.stringify(ev));
    if (ev.ev === "error") {
      assert.ok(ev.msg.startsWith(`connect to 127.0.0.1:${port} failed`), ev.msg);
    }
    await settle(client, 100);
    assert.deepEqual(client.queuedFor(9), [], "nothing after the error");
  });
}

// --- ids ------------------------------------------------------------------------------------------

for (const framing of FRAMINGS) {
  Deno.test(
    `guarantee: a connect naming a live id is refused and the socket is untouched (${framing})`,
    async () => {
      await using echo = await startTcpEcho();
      await using server = await startTestServer();
      await using client = await TestClient.open(server.url, framing);
      await client.connect(5, "127.0.0.1", echo.port);
      client.send({ op: "connect", id: 5, addr: "127.0.0.1", port: echo.port });
      assert.deepEqual(await client.nextFor(5), {
        ev: "error",
        id: 5,
        msg: "id 5 is already in use",
      });
      client.send({ op: "send", id: 5, data: enc.encode("still here") });
      assert.equal(dec.decode(await client.collect(5, 10)), "still here");
      assert.equal(echo.accepted, 1, "the refused connect did not dial");
      assert.equal(echo.live, 1);
    },
  );

  Deno.test(
    `guarantee: a connect naming a pending dial's id is refused (${framing})`,
    inProcessOnly("a gated (fake) transport controls the dial"),
    async () => {
      await using echo = await startTcpEcho();
      using gated = new GatedTransport();
      await using server = await startTestServer({ transport: gated.transport });
      await using client = await TestClient.open(server.url, framing);
      client.send({ op: "connect", id: 5, addr: "127.0.0.1", port: echo.port });
      client.send({ op: "connect", id: 5, addr: "127.0.0.1", port: echo.port });
      assert.deepEqual(await client.nextFor(5), {
        ev: "error",
        id: 5,
        msg: "id 5 is already in use",
      });
      gated.open();
      assert.deepEqual(await client.nextFor(5), { ev: "connected", id: 5 });
      assert.equal(gated.dials, 1);
    },
  );

  Deno.test(`guarantee: send and close on an unknown id get error (${framing})`, async () => {
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    for (const id of [0, 1, 77, 2 ** 40, 2 ** 52 + 1, Number.MAX_SAFE_INTEGER]) {
      client.send({ op: "send", id, data: enc.encode("x") });
      assert.deepEqual(await client.nextFor(id), { ev: "error", id, msg: `unknown id ${id}` });
      client.send({ op: "close", id });
      assert.deepEqual(await client.nextFor(id), { ev: "error", id, msg: `unknown id ${id}` });
    }
  });

  Deno.test(`guarantee: ids from 2^52 are reserved for the server (${framing})`, async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer({ policy: loopbackPolicy({ maxConnections: 1 }) });
    await using client = await TestClient.open(server.url, framing);
    for (const id of [2 ** 52, 2 ** 52 + 7, Number.MAX_SAFE_INTEGER]) {
      client.send({ op: "connect", id, addr: "127.0.0.1", port: echo.port });
      const ev = await client.nextFor(id);
      assert.equal(ev.ev, "error", JSON.stringify(ev));
      if (ev.ev === "error") {
        assert.equal(
          ev.msg,
          `id ${id} is reserved for server-assigned connection ids (2^52 and above)`,
        );
      }
    }
    // 2^52 - 1 is a client id; the refused ones took no slot (max_connections = 1).
    await client.connect(2 ** 52 - 1, "127.0.0.1", echo.port);
    assert.equal(echo.accepted, 1);
  });
}

// --- bad base64 ------------------------------------------------------------------------------------

Deno.test("guarantee: bad base64 in send gets error id 0 and the socket still works", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer();
  await using client = await TestClient.open(server.url, "json");
  await client.connect(1, "127.0.0.1", echo.port);
  for (const data of ["!!!!", "a", "aGk===", "a=b=", "aG k=", "aGk-", "aGk_"]) {
    client.sendRaw(JSON.stringify({ op: "send", id: 1, data }));
    assert.deepEqual(await client.next(), {
      ev: "error",
      id: 0,
      msg: 'invalid request: field "data" is not valid base64',
    }, `data ${JSON.stringify(data)}`);
  }
  client.send({ op: "send", id: 1, data: enc.encode("ok") });
  assert.equal(dec.decode(await client.collect(1, 2)), "ok");
  await settle(client);
  assert.deepEqual(client.queuedFor(1), []);
});

// --- max_connections accounting --------------------------------------------------------------------

/** Asserts that exactly `free` more sockets are admitted (then refuses one more), and closes them. */
async function assertFreeSlots(
  client: TestClient,
  port: number,
  free: number,
  firstId: number,
): Promise<void> {
  const ids = Array.from({ length: free }, (_, i) => firstId + i);
  for (const id of ids) client.send({ op: "connect", id, addr: "127.0.0.1", port });
  for (const id of ids) assert.deepEqual(await client.nextFor(id), { ev: "connected", id });
  const extra = firstId + free;
  client.send({ op: "connect", id: extra, addr: "127.0.0.1", port });
  assert.deepEqual(await client.nextFor(extra), {
    ev: "error",
    id: extra,
    msg: "max connections reached",
  });
  for (const id of ids) client.send({ op: "close", id });
  for (const id of ids) assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
}

for (const framing of FRAMINGS) {
  Deno.test(`guarantee: max_connections admits exactly 3 (${framing})`, async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer({ policy: loopbackPolicy({ maxConnections: 3 }) });
    await using client = await TestClient.open(server.url, framing);
    for (const id of [1, 2, 3]) await client.connect(id, "127.0.0.1", echo.port);
    client.send({ op: "connect", id: 4, addr: "127.0.0.1", port: echo.port });
    assert.deepEqual(await client.nextFor(4), {
      ev: "error",
      id: 4,
      msg: "max connections reached",
    });
    client.send({ op: "close", id: 2 });
    assert.deepEqual(await client.nextFor(2), { ev: "closed", id: 2 });
    await client.connect(4, "127.0.0.1", echo.port);
    client.send({ op: "connect", id: 5, addr: "127.0.0.1", port: echo.port });
    assert.deepEqual(await client.nextFor(5), {
      ev: "error",
      id: 5,
      msg: "max connections reached",
    });
    assert.equal(echo.accepted, 4);
  });
}

Deno.test(
  "guarantee: pending dials count against max_connections",
  inProcessOnly("a gated (fake) transport controls the dial"),
  async () => {
    await using echo = await startTcpEcho();
    using gated = new GatedTransport();
    await using server = await startTestServer({
      transport: gated.transport,
      policy: loopbackPolicy({ maxConnections: 3 }),
    });
    await using client = await TestClient.open(server.url, "binary");
    for (const id of [1, 2, 3]) {
      client.send({ op: "connect", id, addr: "127.0.0.1", port: echo.port });
    }
    client.send({ op: "connect", id: 4, addr: "127.0.0.1", port: echo.port });
    assert.deepEqual(await client.nextFor(4), {
      ev: "error",
      id: 4,
      msg: "max connections reached",
    });
    gated.open();
    for (const id of [1, 2, 3]) assert.deepEqual(await client.nextFor(id), { ev: "connected", id });
  },
);

/** Ways a socket can end, each of which must free its slot exactly once. */
const ENDINGS: {
  name: string;
  /** Opens socket `id` (holding a slot) and ends it; resolves after its terminal event. */
  run(client: TestClient, id: number, ctx: EndingContext): Promise<void>;
}[] = [
  {
    name: "client close",
    async run(client, id, { echoPort }): Promise<void> {
      await client.connect(id, "127.0.0.1", echoPort);
      client.send({ op: "close", id });
      assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
    },
  },
  {
    name: "remote EOF",
    async run(client, id, { eofPort }): Promise<void> {
      client.send({ op: "connect", id, addr: "127.0.0.1", port: eofPort });
      assert.deepEqual(await client.nextFor(id), { ev: "connected", id });
      assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
    },
  },
  {
    name: "refused dial",
    async run(client, id, { refusedPort }): Promise<void> {
      client.send({ op: "connect", id, addr: "127.0.0.1", port: refusedPort });
      const ev = await client.nextFor(id);
      assert.equal(ev.ev, "error", JSON.stringify(ev));
    },
  },
  {
    name: "denied after resolving",
    async run(client, id, { echoPort }): Promise<void> {
      client.send({ op: "connect", id, addr: "denied.test", port: echoPort });
      const ev = await client.nextFor(id);
      assert.equal(ev.ev, "denied", JSON.stringify(ev));
    },
  },
  {
    name: "denied by address",
    async run(client, id, { echoPort }): Promise<void> {
      client.send({ op: "connect", id, addr: "127.0.0.2", port: echoPort });
      const ev = await client.nextFor(id);
      assert.equal(ev.ev, "denied", JSON.stringify(ev));
    },
  },
  {
    name: "cancelled dial",
    async run(client, id, { slowPort }): Promise<void> {
      client.send({ op: "connect", id, addr: "slow.test", port: slowPort });
      client.send({ op: "close", id });
      assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
    },
  },
  {
    name: "send queue overflow",
    async run(client, id, { echoPort }): Promise<void> {
      await client.connect(id, "127.0.0.1", echoPort);
      // One send above the 64 KiB bound of the test server.
      client.send({ op: "send", id, data: new Uint8Array(80 * 1024) });
      const ev = await client.nextFor(id);
      assert.equal(ev.ev, "error", JSON.stringify(ev));
      if (ev.ev === "error") assert.match(ev.msg, /^send queue full/);
    },
  },
];

interface EndingContext {
  echoPort: number;
  eofPort: number;
  refusedPort: number;
  /** A port whose dials wait forever at the transport's gate (only `slow.test` maps to it). */
  slowPort: number;
}

/**
 * A transport that dials for real except to `slowPort`, where the dial waits until aborted;
 * `denied.test` resolves to 127.0.0.2 (denied by the test policy), `slow.test` to 127.0.0.1.
 */
function endingTransport(slowPort: number): Transport {
  const real = denoTransport();
  return {
    ...real,
    lookup: (name, signal) => {
      if (name === "denied.test") return Promise.resolve(["127.0.0.2"]);
      if (name === "slow.test") return Promise.resolve(["127.0.0.1"]);
      return real.lookup(name, signal);
    },
    connectTcp: (ip, port, signal) => {
      if (port !== slowPort) return real.connectTcp(ip, port, signal);
      return new Promise((_, reject) => {
        if (signal.aborted) return reject(signal.reason);
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    },
  };
}

/**
 * Peers and a server for the ending tests: an echo, a peer that sends EOF, a refused and a slow
 * port, and a server with `max_connections` 3, 127.0.0.2 denied and a 64 KiB queue bound.
 */
async function endingFixture(): Promise<{
  ctx: EndingContext;
  echo: Awaited<ReturnType<typeof startTcpEcho>>;
  server: Awaited<ReturnType<typeof startTestServer>>;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const echo = await startTcpEcho();
  const eof = new Peer(true);
  const ctx: EndingContext = {
    echoPort: echo.port,
    eofPort: eof.port,
    refusedPort: closedPort(),
    slowPort: closedPort(),
  };
  const server = await startTestServer({
    transport: endingTransport(ctx.slowPort),
    policy: loopbackPolicy({ maxConnections: 3, deny: ["127.0.0.2"] }),
    limits: { maxSocketQueueBytes: 64 * 1024 },
  });
  return {
    ctx,
    echo,
    server,
    [Symbol.asyncDispose]: async () => {
      await server.shutdown();
      await eof[Symbol.asyncDispose]();
      await echo.close();
    },
  };
}

for (const ending of ENDINGS) {
  Deno.test(
    `guarantee: max_connections slot is freed by ${ending.name}`,
    inProcessOnly("a fake transport makes the slow port"),
    async () => {
      await using fx = await endingFixture();
      const { ctx, echo, server } = fx;
      await using client = await TestClient.open(server.url, "binary");
      // Two long-lived sockets, one slot left for the ending under test.
      await client.connect(1, "127.0.0.1", echo.port);
      await client.connect(2, "127.0.0.1", echo.port);
      for (let round = 0; round < 5; round++) await ending.run(client, 100 + round, ctx);
      await assertFreeSlots(client, echo.port, 1, 200);
      client.send({ op: "close", id: 1 });
      assert.deepEqual(await client.nextFor(1), { ev: "closed", id: 1 });
      await assertFreeSlots(client, echo.port, 2, 300);
    },
  );
}

Deno.test(
  "guarantee: 50 open/close cycles over every ending never drift",
  inProcessOnly("a fake transport makes the slow port"),
  async () => {
    await using fx = await endingFixture();
    const { ctx, echo, server } = fx;
    await using client = await TestClient.open(server.url, "json");
    let id = 1000;
    for (let cycle = 0; cycle < 50; cycle++) {
      // Three endings at once per cycle, filling every slot.
      const picks = [0, 1, 2].map((k) => ENDINGS[(cycle * 3 + k) % ENDINGS.length]);
      await Promise.all(picks.map((e) => e ? e.run(client, id++, ctx) : Promise.resolve()));
    }
    await assertFreeSlots(client, echo.port, 3, 1);
  },
);

// --- per-socket queue bound --------------------------------------------------------------------

for (const framing of FRAMINGS) {
  Deno.test(
    `guarantee: a peer that never reads gets send queue full, the session goes on (${framing})`,
    inProcessOnly("limits.maxSocketQueueBytes has no CLI flag"),
    async () => {
      await using peer = new Peer();
      await using echo = await startTcpEcho();
      await using server = await startTestServer({
        policy: loopbackPolicy({ maxBandwidthMbps: 0 }),
        limits: { maxSocketQueueBytes: 64 * 1024 },
      });
      await using client = await TestClient.open(server.url, framing);
      await client.connect(1, "127.0.0.1", peer.port);
      await client.connect(2, "127.0.0.1", echo.port);
      await peer.next(); // accepted, never read
      const chunk = randomBytes(32 * 1024);
      let sent = 0;
      let terminal: WireEvent | undefined;
      // 1 MiB per batch until the kernel buffers are full and the queue overflows (64 MiB cap).
      for (let batch = 0; batch < 64 && terminal === undefined; batch++) {
        for (let i = 0; i < 32; i++) client.send({ op: "send", id: 1, data: chunk });
        sent += 32 * chunk.byteLength;
        await settle(client, 0);
        terminal = client.queuedFor(1).find((e) => e.ev !== "data");
      }
      assert.ok(terminal, `no error after ${sent} bytes to a peer that never reads`);
      // Take every event for socket 1: the error, then only answers to our own in-flight sends.
      await settle(client, 50);
      const events: WireEvent[] = [];
      while (client.queuedFor(1).length > 0) events.push(await client.nextFor(1));
      const [first, ...after] = events;
      assert.equal(first?.ev, "error", JSON.stringify(first));
      if (first?.ev === "error") assert.match(first.msg, /^send queue full: socket 1 /);
      for (const ev of after) assert.deepEqual(ev, { ev: "error", id: 1, msg: "unknown id 1" });
      // The session and the other socket still work.
      client.send({ op: "send", id: 2, data: enc.encode("alive") });
      assert.equal(dec.decode(await client.collect(2, 5)), "alive");
      await client.connect(1, "127.0.0.1", echo.port);
    },
  );
}

Deno.test("guarantee: a channel that keeps delivering after pauseReading gets send queue full saying so", async () => {
  await using peer = new Peer();
  // A client that ignores backpressure: its channel is asked to stop reading and delivers anyway.
  const events: WireEvent[] = [];
  let pauses = 0;
  const channel = {
    bufferedAmount: 0,
    send: (m: string | Uint8Array) => events.push(decodeEvent(m)),
    pauseReading: () => void pauses++,
    resumeReading: () => {},
  };
  await using session = new Session(channel, {
    policy: loopbackPolicy({ maxBandwidthMbps: 0 }),
    transport: denoTransport(),
    limits: { uploadHighWaterBytes: 64 * 1024, maxSocketQueueBytes: 1024 * 1024 },
  });
  session.handle(encodeRequestJson({ op: "connect", id: 1, addr: "127.0.0.1", port: peer.port }));
  await until(() => events.length > 0, "connected");
  assert.deepEqual(events.shift(), { ev: "connected", id: 1 });
  await peer.next(); // accepted, never read
  for (let i = 0; i < 64 && events.length === 0; i++) {
    session.handle(encodeRequestJson({ op: "send", id: 1, data: randomBytes(256 * 1024) }));
    await delay(5);
  }
  assert.ok(pauses > 0, "the session asked the channel to stop reading");
  assert.deepEqual(events, [{
    ev: "error",
    id: 1,
    msg: "send queue full: socket 1 has more than 1048576 bytes waiting for its peer (the client " +
      "kept sending after the server stopped reading it: it ignores TCP backpressure); socket closed",
  }]);
});

// --- backpressure -------------------------------------------------------------------------------

/** Byte `i` of the stream the pattern peer writes. */
function patternByte(i: number): number {
  return (i * 31 + Math.floor(i / 251)) & 0xff;
}

Deno.test(
  "guarantee: 8 MiB from a fast peer arrive complete and in order",
  inProcessOnly("limits.highWaterMarkBytes has no CLI flag"),
  async () => {
    const total = 8 * 1024 * 1024;
    await using peer = new Peer();
    // No bandwidth cap (the policy default is 10 Mbps): only backpressure may slow the pump.
    await using server = await startTestServer({
      policy: loopbackPolicy({ maxBandwidthMbps: 0 }),
      limits: { highWaterMarkBytes: 64 * 1024 },
    });
    await using client = await TestClient.open(server.url, "binary");
    await client.connect(1, "127.0.0.1", peer.port);
    const conn = await peer.next();
    const writer = (async () => {
      const buf = new Uint8Array(256 * 1024);
      for (let at = 0; at < total; at += buf.byteLength) {
        for (let i = 0; i < buf.byteLength; i++) buf[i] = patternByte(at + i);
        let off = 0;
        while (off < buf.byteLength) off += await conn.write(buf.subarray(off));
      }
      conn.close();
    })();
    const got = await client.collect(1, total, 60_000);
    await writer;
    for (let i = 0; i < total; i++) {
      if (got[i] !== patternByte(i)) assert.fail(`byte ${i} differs`);
    }
    assert.deepEqual(await client.nextFor(1), { ev: "closed", id: 1 });
  },
);

/**
 * A minimal WebSocket client over a raw TCP connection, so a test can stop reading the socket
 * (a browser tab that stalls): nothing is read from the kernel unless the test asks for a message.
 */
class RawWebSocket implements Disposable {
  #buf = new Uint8Array(1 << 20);
  #start = 0;
  #end = 0;

  private constructor(readonly conn: Deno.TcpConn) {}

  static async open(port: number): Promise<RawWebSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const ws = new RawWebSocket(conn);
    const key = btoa(String.fromCharCode(...randomBytes(16)));
    await ws.#write(enc.encode(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ));
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      await ws.#fill(ws.#end - ws.#start + 1);
      head = dec.decode(ws.#buf.subarray(ws.#start, ws.#end));
    }
    const headBytes = enc.encode(head.slice(0, head.indexOf("\r\n\r\n") + 4)).byteLength;
    assert.match(head, /^HTTP\/1\.1 101 /);
    ws.#start += headBytes;
    return ws;
  }

  async #write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.byteLength) off += await this.conn.write(bytes.subarray(off));
  }

  /** Reads until at least `n` unread bytes are buffered. */
  async #fill(n: number): Promise<void> {
    while (this.#end - this.#start < n) {
      if (this.#buf.byteLength - this.#end < 65536 || this.#buf.byteLength - this.#start < n) {
        const bigger = new Uint8Array(Math.max(this.#buf.byteLength, 2 * (n + 65536)));
        bigger.set(this.#buf.subarray(this.#start, this.#end));
        this.#end -= this.#start;
        this.#start = 0;
        this.#buf = bigger;
      }
      const got = await this.conn.read(this.#buf.subarray(this.#end));
      if (got === null) throw new Error("WebSocket connection closed");
      this.#end += got;
    }
  }

  /** Sends one masked binary message. */
  async send(payload: Uint8Array): Promise<void> {
    const len = payload.byteLength;
    const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
    const frame = new Uint8Array(2 + ext + 4 + len);
    const dv = new DataView(frame.buffer);
    frame[0] = 0x82;
    frame[1] = 0x80 | (ext === 0 ? len : ext === 2 ? 126 : 127);
    if (ext === 2) dv.setUint16(2, len);
    if (ext === 8) dv.setBigUint64(2, BigInt(len));
    const mask = randomBytes(4);
    frame.set(mask, 2 + ext);
    for (let i = 0; i < len; i++) frame[2 + ext + 4 + i] = (payload[i] ?? 0) ^ (mask[i & 3] ?? 0);
    await this.#write(frame);
  }

  /** Reads the next data message (binary or text) as an event. */
  async next(): Promise<WireEvent> {
    while (true) {
      await this.#fill(2);
      const b0 = this.#buf[this.#start] ?? 0;
      const b1 = this.#buf[this.#start + 1] ?? 0;
      let len = b1 & 0x7f;
      let at = 2;
      if (len === 126) {
        await this.#fill(4);
        len = new DataView(this.#buf.buffer, this.#start + 2, 2).getUint16(0);
        at = 4;
      } else if (len === 127) {
        await this.#fill(10);
        len = Number(new DataView(this.#buf.buffer, this.#start + 2, 8).getBigUint64(0));
        at = 10;
      }
      await this.#fill(at + len);
      const payload = this.#buf.slice(this.#start + at, this.#start + at + len);
      this.#start += at + len;
      const opcode = b0 & 0x0f;
      assert.equal(b0 & 0x80, 0x80, "fragmented messages are not expected");
      if (opcode === 0x2) return decodeEvent(payload);
      if (opcode === 0x1) return decodeEvent(dec.decode(payload));
      if (opcode === 0x8) throw new Error("WebSocket closed by the server");
      // ping/pong: ignore
    }
  }

  [Symbol.dispose](): void {
    this.conn.close();
  }
}

Deno.test(
  "guarantee: a client that does not read stalls the upstream peer (backpressure), then gets every byte",
  inProcessOnly("limits.highWaterMarkBytes has no CLI flag"),
  async () => {
    const total = 12 * 1024 * 1024;
    await using peer = new Peer();
    // No bandwidth cap (the policy default is 10 Mbps): only backpressure may slow the pump.
    await using server = await startTestServer({
      policy: loopbackPolicy({ maxBandwidthMbps: 0 }),
      limits: { highWaterMarkBytes: 64 * 1024 },
    });
    using ws = await RawWebSocket.open(server.addr.port);
    await ws.send(
      encodeRequestBinary({ op: "connect", id: 1, addr: "127.0.0.1", port: peer.port }),
    );
    assert.deepEqual(await ws.next(), { ev: "connected", id: 1 });
    const conn = await peer.next();
    let written = 0;
    let writerDone = false;
    const writer = (async () => {
      const buf = new Uint8Array(256 * 1024);
      try {
        for (let at = 0; at < total; at += buf.byteLength) {
          for (let i = 0; i < buf.byteLength; i++) buf[i] = patternByte(at + i);
          let off = 0;
          while (off < buf.byteLength) {
            const n = await conn.write(buf.subarray(off));
            off += n;
            written += n;
          }
        }
        conn.close();
      } finally {
        writerDone = true;
      }
    })();
    // Read nothing; wait until the peer's writes stop making progress (or it wrote everything).
    let last = -1;
    while (written !== last && !writerDone) {
      last = written;
      await delay(300);
    }
    assert.ok(
      written < total,
      `the peer wrote all ${total} bytes while the client read nothing: no backpressure`,
    );
    // Now read everything: complete, in order, then closed.
    let have = 0;
    while (have < total) {
      const ev = await ws.next();
      if (ev.ev !== "data") assert.fail(`expected data at ${have}, got ${ev.ev}`);
      for (let i = 0; i < ev.data.byteLength; i++) {
        if (ev.data[i] !== patternByte(have + i)) assert.fail(`byte ${have + i} differs`);
      }
      have += ev.data.byteLength;
    }
    await writer;
    assert.equal(have, total);
    assert.deepEqual(await ws.next(), { ev: "closed", id: 1 });
  },
);

// --- WebSocket close ends the session ----------------------------------------------------------

for (const framing of FRAMINGS) {
  Deno.test(
    `guarantee: closing the WebSocket closes every proxied socket (${framing})`,
    inProcessOnly("a gated (fake) transport controls the dial"),
    async () => {
      await using echo = await startTcpEcho();
      using gated = new GatedTransport({ "slow.test": ["127.0.0.1"] });
      await using server = await startTestServer({ transport: gated.transport });
      const client = await TestClient.open(server.url, framing);
      try {
        gated.open();
        for (const id of [1, 2, 3]) await client.connect(id, "127.0.0.1", echo.port);
        client.send({ op: "send", id: 2, data: randomBytes(100_000) });
        await until(() => echo.live === 3, "three peers are connected");
        assert.equal(server.sessions, 1);
      } finally {
        await client.close();
      }
      await until(() => echo.live === 0, "every peer connection is closed");
      await until(() => server.sessions === 0, "the session is gone");
    },
  );
}

Deno.test(
  "guarantee: closing the WebSocket cancels pending dials",
  inProcessOnly("a gated (fake) transport controls the dial"),
  async () => {
    await using echo = await startTcpEcho();
    using gated = new GatedTransport();
    await using server = await startTestServer({ transport: gated.transport });
    const client = await TestClient.open(server.url, "binary");
    try {
      for (const id of [1, 2]) {
        client.send({ op: "connect", id, addr: "127.0.0.1", port: echo.port });
      }
      await until(() => gated.dials === 2, "both dials start");
    } finally {
      await client.close();
    }
    await until(() => gated.aborted === 2, "both dials are aborted");
    await until(() => server.sessions === 0, "the session is gone");
    assert.equal(echo.accepted, 0);
  },
);

// --- framing of replies ------------------------------------------------------------------------

Deno.test("guarantee: replies use the framing of the most recent message", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer();
  await using client = await TestClient.open(server.url, "json");
  client.keepRaw = true;
  const kinds = async (): Promise<string> => {
    await settle(client, 0);
    const k = client.raw.map((m) => typeof m === "string" ? "text" : "binary").join(",");
    client.raw.length = 0;
    return k;
  };
  client.send({ op: "close", id: 1 });
  assert.deepEqual(await client.nextFor(1), { ev: "error", id: 1, msg: "unknown id 1" });
  assert.equal(await kinds(), "text,text"); // the error, the probe's error
  client.framing = "binary";
  client.send({ op: "close", id: 1 });
  assert.deepEqual(await client.nextFor(1), { ev: "error", id: 1, msg: "unknown id 1" });
  assert.equal(await kinds(), "binary,binary");
  // Data of an open socket follows the switch too.
  client.framing = "json";
  await client.connect(2, "127.0.0.1", echo.port);
  client.send({ op: "send", id: 2, data: enc.encode("text") });
  assert.equal(dec.decode(await client.collect(2, 4)), "text");
  assert.equal(await kinds(), "text,text,text");
  client.framing = "binary";
  client.send({ op: "send", id: 2, data: enc.encode("bin") });
  assert.equal(dec.decode(await client.collect(2, 3)), "bin");
  assert.equal(await kinds(), "binary,binary");
  // A bad message switches the framing too: its error uses its framing.
  client.sendRaw("{");
  const ev = await client.next();
  assert.equal(ev.ev, "error");
  if (ev.ev === "error") assert.match(ev.msg, /^invalid request: /);
  client.framing = "json";
  assert.equal(await kinds(), "text,text");
  client.sendRaw(new Uint8Array([0x42]));
  const bev = await client.next();
  assert.equal(bev.ev, "error");
  if (bev.ev === "error") assert.match(bev.msg, /^invalid binary frame: /);
  assert.equal(await kinds(), "binary,text");
});

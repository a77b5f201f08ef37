/**
 * The connection pool end to end: a real wasmnet server with `pool` set, real WebSocket clients
 * and real TCP peers on loopback that count what they accept.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { inProcessOnly, startTestServer, testTransport } from "./helpers/server.ts";
import { TestClient } from "./helpers/ws_client.ts";
import { startTlsEcho } from "./helpers/echo_servers.ts";
import { makeTestPki } from "./helpers/tls_certs.ts";
import { denoTransport } from "../src/transport/deno/mod.ts";
import { ConnectionPool, PooledConn } from "../src/pool/mod.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A loopback TCP echo peer that counts accepted and live connections and can drop them all. */
interface Peer extends AsyncDisposable {
  readonly port: number;
  readonly accepted: number;
  readonly live: number;
  /** Closes every live connection from the peer's side (the listener stays open). */
  dropAll(): void;
  close(): Promise<void>;
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch {
    // already closed
  }
}

/** Starts the peer; `banner` is written on every new connection before echoing. */
function startPeer(banner?: string): Peer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  let closed = false;
  const serve = async (conn: Deno.Conn): Promise<void> => {
    try {
      if (banner !== undefined) await conn.write(enc.encode(banner));
      const buf = new Uint8Array(16 * 1024);
      while (true) {
        const n = await conn.read(buf);
        if (n === null) return;
        let off = 0;
        while (off < n) off += await conn.write(buf.subarray(off, n));
      }
    } catch {
      // dropped by dropAll() or close(), or reset by the other side
    } finally {
      conns.delete(conn);
      closeQuietly(conn);
    }
  };
  const loop = (async () => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      accepted++;
      conns.add(conn);
      const task: Promise<void> = serve(conn).finally(() => tasks.delete(task));
      tasks.add(task);
    }
  })();
  const close = async (): Promise<void> => {
    closed = true;
    closeQuietly(listener);
    for (const c of conns) closeQuietly(c);
    await loop;
    await Promise.all([...tasks]);
  };
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get accepted() {
      return accepted;
    },
    get live() {
      return conns.size;
    },
    dropAll: () => {
      for (const c of conns) closeQuietly(c);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Sends `text` on socket `id` and asserts it comes back. */
async function echoes(client: TestClient, id: number, text: string): Promise<void> {
  client.send({ op: "send", id, data: enc.encode(text) });
  strictEqual(dec.decode(await client.collect(id, text.length)), text);
}

Deno.test(
  "pool e2e: a second session's connect is served by a pre-dialled connection",
  inProcessOnly("reads server.pool (stats are in-process only)"),
  async () => {
    await using peer = startPeer();
    await using server = await startTestServer({ pool: { perKey: 1, idleSecs: 30 } });
    const pool = server.pool;
    ok(pool, "the server built a pool");
    {
      await using a = await TestClient.open(server.url);
      await a.connect(1, "127.0.0.1", peer.port);
      // The pool pre-dials: the peer sees a second connection before anyone asks for it.
      await until(() => peer.accepted === 2 && pool.stats.idle === 1, "pre-dial");
      await echoes(a, 1, "from a");

      await using b = await TestClient.open(server.url, "binary");
      await b.connect(7, "127.0.0.1", peer.port);
      strictEqual(pool.stats.hits, 1);
      strictEqual(pool.stats.misses, 1);
      await echoes(b, 7, "through the pooled socket");
      // After the hit, the pool refills to perKey.
      await until(() => peer.accepted === 3 && pool.stats.idle === 1, "refill");
    }
    await server.shutdown();
    await until(() => peer.live === 0, "peer connections closed");
    strictEqual(pool.stats.idle, 0);
  },
);

Deno.test(
  "pool e2e: a connection the peer closed while pooled is never handed out",
  inProcessOnly("reads server.pool (stats are in-process only)"),
  async () => {
    await using peer = startPeer();
    await using server = await startTestServer({ pool: { perKey: 2, idleSecs: 30 } });
    const pool = server.pool;
    ok(pool);
    await using a = await TestClient.open(server.url);
    await a.connect(1, "127.0.0.1", peer.port);
    await until(() => pool.stats.idle === 2, "two pooled");
    peer.dropAll(); // also ends a's socket
    const ev = await a.nextFor(1);
    strictEqual(ev.ev, "closed");
    await until(() => pool.stats.discarded === 2, "both pooled connections discarded");
    strictEqual(pool.stats.idle, 0);

    await using b = await TestClient.open(server.url);
    await b.connect(2, "127.0.0.1", peer.port);
    strictEqual(pool.stats.hits, 0, "a fresh dial");
    strictEqual(pool.stats.misses, 2);
    await echoes(b, 2, "still works");
  },
);

Deno.test(
  "pool e2e: a banner the peer sent to a pooled connection reaches the client first",
  inProcessOnly("reads server.pool (stats are in-process only)"),
  async () => {
    const banner = "220 hello\r\n";
    await using peer = startPeer(banner);
    await using server = await startTestServer({ pool: { perKey: 1, idleSecs: 30 } });
    const pool = server.pool;
    ok(pool);
    await using a = await TestClient.open(server.url);
    await a.connect(1, "127.0.0.1", peer.port);
    strictEqual(dec.decode(await a.collect(1, banner.length)), banner);
    await until(() => pool.stats.idle === 1, "pooled");
    // Let the banner land in the pooled connection's buffer before hand-out.
    await new Promise((r) => setTimeout(r, 50));

    await using b = await TestClient.open(server.url);
    await b.connect(2, "127.0.0.1", peer.port);
    strictEqual(pool.stats.hits, 1);
    strictEqual(dec.decode(await b.collect(2, banner.length)), banner);
    await echoes(b, 2, "EHLO test\r\n");
  },
);

Deno.test(
  "pool e2e: idle pooled connections are closed after idleSecs",
  inProcessOnly("reads server.pool (stats are in-process only)"),
  async () => {
    await using peer = startPeer();
    await using server = await startTestServer({ pool: { perKey: 2, idleSecs: 0.1 } });
    const pool = server.pool;
    ok(pool);
    await using a = await TestClient.open(server.url);
    await a.connect(1, "127.0.0.1", peer.port);
    await until(() => peer.accepted === 3, "two pre-dials");
    await until(() => pool.stats.expired === 2, "expired");
    await until(() => peer.live === 1, "peer sees the pooled connections close");
    strictEqual(pool.stats.idle, 0);
    await echoes(a, 1, "the session's own socket is untouched");
  },
);

Deno.test(
  "pool e2e: shutdown closes every pooled connection",
  inProcessOnly("reads server.pool (stats are in-process only)"),
  async () => {
    await using peer = startPeer();
    const server = await startTestServer({ pool: { perKey: 3, idleSecs: 60 } });
    const pool = server.pool;
    ok(pool);
    const a = await TestClient.open(server.url);
    await a.connect(1, "127.0.0.1", peer.port);
    await until(() => pool.stats.idle === 3 && peer.live === 4, "three pooled");
    await server.shutdown(); // the client is still connected: the server ends its session
    await a.closed;
    await server.finished;
    ok(pool.closed);
    await until(() => peer.live === 0, "every peer connection closed");
    strictEqual(pool.stats.idle, 0);
  },
);

Deno.test(
  "pool e2e: no pool unless configured; 0 disables it",
  inProcessOnly("reads server.pool (stats are in-process only)"),
  async () => {
    {
      await using server = await startTestServer();
      strictEqual(server.pool, undefined);
    }
    await using server = await startTestServer({ pool: { perKey: 0, idleSecs: 30 } });
    strictEqual(server.pool, undefined);
  },
);

Deno.test(
  "pool e2e: connect_tls bypasses the pool and still works after plain connects",
  inProcessOnly("reads server.pool (stats are in-process only)"),
  async () => {
    const pki = await makeTestPki();
    await using tls = await startTlsEcho({ cert: pki.serverCert, key: pki.serverKey });
    await using server = await startTestServer({
      transport: testTransport({ caCerts: [pki.caCert] }),
      pool: { perKey: 1, idleSecs: 30 },
    });
    const pool = server.pool;
    ok(pool);
    await using a = await TestClient.open(server.url);
    // A plain connect to the TLS port pools a spare TCP connection...
    a.send({ op: "connect", id: 1, addr: "127.0.0.1", port: tls.port });
    strictEqual((await a.nextFor(1)).ev, "connected");
    await until(() => pool.stats.idle === 1, "pooled");
    a.send({ op: "close", id: 1 });
    strictEqual((await a.nextFor(1)).ev, "closed");
    // ...which connect_tls cannot use (a read is pending on it): it redials and excludes the port.
    a.send({ op: "connect_tls", id: 2, addr: "127.0.0.1", port: tls.port });
    deepStrictEqual(await a.nextFor(2), { ev: "connected", id: 2 });
    strictEqual(pool.stats.hits, 1, "the pooled connection was taken, then replaced");
    await echoes(a, 2, "over tls");
    ok(pool.isExcluded("127.0.0.1", tls.port));
    strictEqual(pool.stats.idle, 0);
    a.send({ op: "connect_tls", id: 3, addr: "127.0.0.1", port: tls.port });
    deepStrictEqual(await a.nextFor(3), { ev: "connected", id: 3 });
    await echoes(a, 3, "again");
    await new Promise((r) => setTimeout(r, 20));
    strictEqual(pool.stats.idle, 0, "no spare connections for a TLS target");
  },
);

Deno.test("pool e2e: ConnectionPool over the real transport (loopback listener)", async () => {
  await using peer = startPeer("hi\n");
  const base = denoTransport();
  await using pool = new ConnectionPool({ perKey: 1, idleMs: 30_000, dial: base.connectTcp });
  const signal = new AbortController().signal;
  const first = await pool.acquire("127.0.0.1", peer.port, signal);
  ok(!(first instanceof PooledConn));
  await until(() => pool.stats.idle === 1 && peer.accepted === 2, "pre-dialled");
  const second = await pool.acquire("127.0.0.1", peer.port, signal);
  ok(second instanceof PooledConn);
  const buf = new Uint8Array(64);
  const n = await second.read(buf);
  strictEqual(dec.decode(buf.subarray(0, n ?? 0)), "hi\n");
  await second.write(enc.encode("x"));
  const m = await second.read(buf);
  strictEqual(dec.decode(buf.subarray(0, m ?? 0)), "x");
  first.close();
  second.close();
  await pool.close();
  await until(() => peer.live === 0, "all closed");
});

/**
 * Unit tests of {@linkcode ConnectionPool} and {@linkcode pooledTransport} with fake connections
 * (no sockets; real-socket tests are in `tests/pool_test.ts`).
 */
import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import type { DatagramConn, StreamConn, StreamListener, Transport } from "../transport/mod.ts";
import { ConnectionPool, type ConnectionPoolOptions, PooledConn } from "./connection_pool.ts";
import { pooledTransport } from "./pooled_transport.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A connection whose inbound bytes the test pushes; records writes and close. */
class FakeConn implements StreamConn {
  readonly inbound: (Uint8Array | null)[] = [];
  readonly written: Uint8Array[] = [];
  closed = false;
  reads = 0;
  #waiter: { resolve(): void; reject(e: Error): void } | undefined;

  constructor(readonly ip: string, readonly port: number) {}

  async read(buffer: Uint8Array): Promise<number | null> {
    if (this.#waiter) throw new Error("two concurrent reads");
    this.reads++;
    while (this.inbound.length === 0) {
      if (this.closed) throw new Error("closed");
      await new Promise<void>((resolve, reject) => this.#waiter = { resolve, reject });
      this.#waiter = undefined;
    }
    const head = this.inbound[0];
    if (head === null || head === undefined) return null;
    const n = Math.min(head.byteLength, buffer.byteLength);
    buffer.set(head.subarray(0, n));
    if (n === head.byteLength) this.inbound.shift();
    else this.inbound[0] = head.subarray(n);
    return n;
  }

  push(data: Uint8Array | string | null): void {
    this.inbound.push(typeof data === "string" ? enc.encode(data) : data);
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve();
  }

  write(data: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(new Error("closed"));
    this.written.push(data.slice());
    return Promise.resolve(data.byteLength);
  }

  close(): void {
    if (this.closed) throw new Error("already closed");
    this.closed = true;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(new Error("closed"));
  }
}

/** A dial function that makes FakeConns (or fails / hangs on demand). */
class FakeDialer {
  readonly conns: FakeConn[] = [];
  fail: Error | undefined;
  hang = false;
  /** Bytes every new connection receives at once (a banner). */
  banner: string | undefined;
  dials = 0;

  dial = (ip: string, port: number, signal: AbortSignal): Promise<StreamConn> => {
    this.dials++;
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.fail) return Promise.reject(this.fail);
    if (this.hang) {
      return new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason), { once: true })
      );
    }
    const conn = new FakeConn(ip, port);
    if (this.banner !== undefined) conn.push(this.banner);
    this.conns.push(conn);
    return Promise.resolve(conn);
  };

  get open(): number {
    return this.conns.filter((c) => !c.closed).length;
  }
}

function pool(
  dialer: FakeDialer,
  options: Partial<ConnectionPoolOptions> = {},
): ConnectionPool {
  return new ConnectionPool({ perKey: 2, idleMs: 60_000, dial: dialer.dial, ...options });
}

async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function readText(conn: StreamConn, size = 64): Promise<string | null> {
  const buf = new Uint8Array(size);
  const n = await conn.read(buf);
  return n === null ? null : dec.decode(buf.subarray(0, n));
}

const signal = new AbortController().signal;

Deno.test("pool: a miss dials, then perKey spare connections are pre-dialled", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer);
  const first = await p.acquire("192.0.2.1", 80, signal);
  ok(!(first instanceof PooledConn), "a miss returns the dialled connection itself");
  deepStrictEqual(p.stats, { hits: 0, misses: 1, discarded: 0, expired: 0, idle: 0, dials: 0 });
  await until(() => p.stats.idle === 2, "two idle");
  strictEqual(dialer.dials, 3);
  strictEqual(p.stats.dials, 2);
  first.close();
});

Deno.test("pool: a hit hands out a pooled connection and refills to perKey", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer);
  (await p.acquire("192.0.2.1", 80, signal)).close();
  await until(() => p.stats.idle === 2, "two idle");
  const conn = await p.acquire("192.0.2.1", 80, signal);
  ok(conn instanceof PooledConn);
  strictEqual(p.stats.hits, 1);
  strictEqual(p.stats.idle, 1);
  await until(() => p.stats.idle === 2, "refilled");
  strictEqual(p.stats.dials, 3);
  // Data both ways through the pooled connection.
  const raw = dialer.conns[2];
  ok(raw !== undefined && !raw.closed);
  await conn.write(enc.encode("ping"));
  strictEqual(dec.decode(raw.written[0]), "ping");
  raw.push("pong");
  strictEqual(await readText(conn), "pong");
  conn.close();
  ok(raw.closed);
});

Deno.test("pool: keys are ip:port; other ports and IPv6 are separate", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer, { perKey: 1 });
  (await p.acquire("192.0.2.1", 80, signal)).close();
  await until(() => p.stats.idle === 1, "idle");
  (await p.acquire("192.0.2.1", 81, signal)).close();
  (await p.acquire("2001:db8::1", 80, signal)).close();
  strictEqual(p.stats.hits, 0);
  strictEqual(p.stats.misses, 3);
  await until(() => p.stats.idle === 3, "three idle");
  const v6 = await p.acquire("2001:db8::1", 80, signal);
  ok(v6 instanceof PooledConn);
  strictEqual(v6.ip, "2001:db8::1");
  v6.close();
});

Deno.test("pool: a banner sent while idle is read first, split over small reads", async () => {
  const dialer = new FakeDialer();
  dialer.banner = "220 hello\r\n";
  await using p = pool(dialer, { perKey: 1 });
  (await p.acquire("192.0.2.1", 25, signal)).close();
  await until(() => p.stats.idle === 1 && (dialer.conns[1]?.reads ?? 0) >= 2, "banner buffered");
  const conn = await p.acquire("192.0.2.1", 25, signal);
  strictEqual(await readText(conn, 4), "220 ");
  strictEqual(await readText(conn, 64), "hello\r\n");
  const raw = dialer.conns[1];
  ok(raw);
  raw.push("more");
  strictEqual(await readText(conn), "more", "the in-flight idle read is reused");
  raw.push(null);
  strictEqual(await readText(conn), null);
  conn.close();
});

Deno.test("pool: bytes of the in-flight read larger than the caller's buffer are kept", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer, { perKey: 1 });
  (await p.acquire("192.0.2.1", 25, signal)).close();
  await until(() => p.stats.idle === 1, "idle");
  const conn = await p.acquire("192.0.2.1", 25, signal);
  dialer.conns[1]?.push("abcdefgh");
  strictEqual(await readText(conn, 3), "abc");
  strictEqual(await readText(conn, 3), "def");
  strictEqual(await readText(conn, 3), "gh");
  conn.close();
});

Deno.test("pool: a connection the peer closed while idle is discarded, never handed out", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer, { perKey: 1 });
  (await p.acquire("192.0.2.1", 80, signal)).close();
  await until(() => p.stats.idle === 1, "idle");
  dialer.conns[1]?.push(null);
  await until(() => p.stats.discarded === 1, "discarded");
  strictEqual(p.stats.idle, 0);
  ok(dialer.conns[1]?.closed);
  const conn = await p.acquire("192.0.2.1", 80, signal);
  ok(!(conn instanceof PooledConn), "a fresh dial");
  strictEqual(p.stats.hits, 0);
  conn.close();
});

Deno.test("pool: an idle connection that receives more than maxBufferedBytes is discarded", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer, { perKey: 1, maxBufferedBytes: 10 });
  (await p.acquire("192.0.2.1", 80, signal)).close();
  await until(() => p.stats.idle === 1, "idle");
  dialer.conns[1]?.push("0123456789");
  await new Promise((r) => setTimeout(r, 10));
  strictEqual(p.stats.idle, 1, "exactly the limit is kept");
  dialer.conns[1]?.push("x");
  await until(() => p.stats.discarded === 1, "discarded");
  ok(dialer.conns[1]?.closed);
});

Deno.test("pool: idle connections expire after idleMs and are closed", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer, { perKey: 2, idleMs: 20 });
  (await p.acquire("192.0.2.1", 80, signal)).close();
  await until(() => p.stats.dials === 2, "refill dials");
  await until(() => p.stats.expired === 2, "expired");
  strictEqual(p.stats.idle, 0);
  strictEqual(dialer.open, 0);
  strictEqual(p.stats.dials, 2, "expiry does not refill");
});

Deno.test("pool: maxTotal caps idle connections over all targets", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer, { perKey: 2, maxTotal: 3 });
  (await p.acquire("192.0.2.1", 80, signal)).close();
  (await p.acquire("192.0.2.2", 80, signal)).close();
  await until(() => p.stats.idle === 3, "three idle");
  await new Promise((r) => setTimeout(r, 10));
  strictEqual(p.stats.idle, 3);
  strictEqual(p.stats.dials, 3);
});

Deno.test("pool: a failed refill dial stops refilling that key", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer);
  const conn = await p.acquire("192.0.2.1", 80, signal);
  dialer.fail = new Error("refused");
  await until(() => p.stats.dials === 2, "two refill attempts");
  await new Promise((r) => setTimeout(r, 10));
  strictEqual(p.stats.dials, 2);
  strictEqual(p.stats.idle, 0);
  conn.close();
  await rejects(p.acquire("192.0.2.1", 80, signal), /refused/, "a miss rethrows the dial error");
});

Deno.test("pool: acquire with an aborted signal rejects with its reason", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer);
  const ac = new AbortController();
  ac.abort(new Error("cancelled"));
  await rejects(p.acquire("192.0.2.1", 80, ac.signal), /cancelled/);
  strictEqual(dialer.dials, 0);
});

Deno.test("pool: exclude closes the key's idle connections and stops pooling it", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer);
  (await p.acquire("192.0.2.1", 443, signal)).close();
  await until(() => p.stats.idle === 2, "two idle");
  p.exclude("192.0.2.1", 443);
  ok(p.isExcluded("192.0.2.1", 443));
  strictEqual(p.stats.idle, 0);
  strictEqual(dialer.open, 0);
  (await p.acquire("192.0.2.1", 443, signal)).close();
  await new Promise((r) => setTimeout(r, 10));
  strictEqual(p.stats.dials, 2, "no refill for an excluded key");
});

Deno.test("pool: close() closes idle connections, cancels refill dials, later acquires dial", async () => {
  const dialer = new FakeDialer();
  const p = pool(dialer);
  (await p.acquire("192.0.2.1", 80, signal)).close();
  await until(() => p.stats.idle === 2, "two idle");
  dialer.hang = true;
  // A miss in flight is the caller's: close() does not cancel it, its own signal does.
  const ac = new AbortController();
  const hanging = p.acquire("192.0.2.3", 80, ac.signal);
  await p.close();
  strictEqual(p.stats.idle, 0);
  strictEqual(dialer.open, 0);
  ac.abort(new Error("test done"));
  await rejects(hanging, /test done/);
  ok(p.closed);
  dialer.hang = false;
  const late = await p.acquire("192.0.2.1", 80, signal);
  ok(!(late instanceof PooledConn));
  late.close();
  await new Promise((r) => setTimeout(r, 5));
  strictEqual(dialer.open, 0, "no refill after close");
  await p.close(); // idempotent
});

Deno.test("pool: close() cancels a refill dial in flight", async () => {
  const dialer = new FakeDialer();
  const p = pool(dialer, { perKey: 1 });
  const conn = await p.acquire("192.0.2.1", 80, signal);
  dialer.hang = true;
  await until(() => p.stats.dials === 1, "refill started");
  await p.close();
  strictEqual(p.stats.idle, 0);
  conn.close();
});

Deno.test("pool: a refill dial that takes longer than dialTimeoutMs is abandoned", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer, { perKey: 1, dialTimeoutMs: 10 });
  const conn = await p.acquire("192.0.2.1", 80, signal);
  dialer.hang = true;
  await until(() => p.stats.dials === 1, "refill started");
  await new Promise((r) => setTimeout(r, 30));
  dialer.hang = false;
  // The timed-out refill freed its slot: the next acquire refills again.
  (await p.acquire("192.0.2.1", 80, signal)).close();
  await until(() => p.stats.idle === 1, "refilled");
  conn.close();
});

Deno.test("pool: bad options throw RangeError", () => {
  const dial = new FakeDialer().dial;
  throws(() => new ConnectionPool({ perKey: -1, idleMs: 1, dial }), RangeError);
  throws(() => new ConnectionPool({ perKey: 1, idleMs: Number.NaN, dial }), RangeError);
  throws(() => new ConnectionPool({ perKey: 1, idleMs: 1, maxTotal: -2, dial }), /maxTotal/);
});

Deno.test("pool: perKey 0 never pre-dials", async () => {
  const dialer = new FakeDialer();
  await using p = pool(dialer, { perKey: 0 });
  (await p.acquire("192.0.2.1", 80, signal)).close();
  await new Promise((r) => setTimeout(r, 5));
  strictEqual(dialer.dials, 1);
});

/** A base transport over a FakeDialer whose startTls records what it upgraded. */
function fakeTransport(dialer: FakeDialer): Transport & { upgraded: StreamConn[] } {
  const upgraded: StreamConn[] = [];
  return {
    upgraded,
    lookup: () => Promise.resolve([]),
    connectTcp: dialer.dial,
    startTls: (conn) => {
      if (conn instanceof PooledConn) throw new Error("Busy: TCP stream is currently in use");
      upgraded.push(conn);
      return Promise.resolve(conn);
    },
    openUdp: (): DatagramConn => {
      throw new Error("not used");
    },
    listenTcp: (): StreamListener => {
      throw new Error("not used");
    },
  };
}

Deno.test("pooledTransport: TLS after a miss excludes the address before any pre-dial", async () => {
  const dialer = new FakeDialer();
  const base = fakeTransport(dialer);
  await using p = pool(dialer);
  const t = pooledTransport(base, p);
  const tcp = await t.connectTcp("192.0.2.1", 443, signal);
  const tls = await t.startTls(tcp, "example.com", signal);
  strictEqual(tls, tcp);
  ok(p.isExcluded("192.0.2.1", 443));
  await new Promise((r) => setTimeout(r, 10));
  strictEqual(p.stats.dials, 0, "no spare connection was opened");
  tls.close();
});

Deno.test("pooledTransport: TLS over a pooled connection redials a fresh one", async () => {
  const dialer = new FakeDialer();
  const base = fakeTransport(dialer);
  await using p = pool(dialer, { perKey: 1 });
  const t = pooledTransport(base, p);
  (await t.connectTcp("192.0.2.1", 443, signal)).close();
  await until(() => p.stats.idle === 1, "idle");
  const pooled = await t.connectTcp("192.0.2.1", 443, signal);
  ok(pooled instanceof PooledConn);
  const tls = await t.startTls(pooled, "example.com", signal);
  ok(!(tls instanceof PooledConn));
  ok(dialer.conns[1]?.closed, "the pooled connection was closed");
  ok(p.isExcluded("192.0.2.1", 443));
  tls.close();
  await new Promise((r) => setTimeout(r, 10));
  strictEqual(dialer.open, 0);
});

/**
 * The transport owns every socket until it is handed over or closed, whatever happens: aborts
 * before, during and after a dial or a TLS handshake, failures, and peers that never answer.
 * Real loopback sockets; file descriptors of this process are counted in `/proc/PID/fd` (this
 * process holds the transport, the in-process wasmnet server and the peers, so a leaked socket
 * shows up here).
 *
 * The regressions these catch (Deno 2.9.6):
 * - a TLS handshake abandoned against a silent peer kept its TCP socket open as long as the peer
 *   did (`Deno.startTls`'s detached handshake task holds the stream);
 * - `Deno.connect({ signal })` dropped a connection completed just before a timer-driven abort,
 *   its socket left open until the process exits;
 * - abandoned dials were not counted anywhere, so nothing bounded them.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Slots } from "../src/transport/mod.ts";
import { connectTcp, denoTransport } from "../src/transport/deno/mod.ts";
import {
  inProcessOnly,
  loopbackPolicy,
  serverPid,
  sessionsReach,
  startTestServer,
  testTransport,
} from "./helpers/server.ts";
import { TestClient } from "./helpers/ws_client.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { delay, until } from "./helpers/wait.ts";

/**
 * Open file descriptors of this process now, listed by `ls /proc/PID/fd` (Deno 2.9.6 lets a
 * process read its own `/proc/self/fd` only with `--allow-all`; a child may read it). The pipe
 * of that child is open in this process while it runs, so every count includes it alike.
 */
async function fds(pid = Deno.pid): Promise<number> {
  const out = await new Deno.Command("ls", {
    args: [`/proc/${pid}/fd`],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.ok(out.success, "ls /proc/PID/fd failed");
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).length;
}

/** Waits up to `ms` for the fd count to come back to `baseline`; asserts it did. */
async function assertFdsBack(
  baseline: number,
  what: string,
  ms = 1000,
  pid = Deno.pid,
): Promise<void> {
  const deadline = Date.now() + ms;
  let now = await fds(pid);
  while (now > baseline && Date.now() < deadline) {
    await delay(10);
    now = await fds(pid);
  }
  assert.ok(
    now <= baseline,
    `${what}: ${now - baseline} open fds above the baseline ${ms} ms later`,
  );
}

/** Settles `promises` or fails after `ms` (some promise never settled). */
async function allSettle(promises: Promise<unknown>[], ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = Promise.allSettled(promises).then(() => true);
  const late = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  const ok = await Promise.race([settled, late]);
  clearTimeout(timer);
  assert.ok(ok, `some of ${promises.length} promises did not settle within ${ms} ms`);
}

/**
 * A TCP peer on 127.0.0.1 that accepts, reads (counting bytes) and never writes: a TLS client
 * waits forever for its ServerHello. It closes a connection only when the client does (EOF), as
 * a real server that notices the client left.
 */
class SilentPeer implements AsyncDisposable {
  readonly #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly #conns = new Set<Deno.TcpConn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #loop: Promise<void>;
  /** Bytes received so far, over all connections. */
  bytes = 0;
  /** Connections accepted so far. */
  accepted = 0;

  constructor() {
    this.#loop = (async (): Promise<void> => {
      for (;;) {
        let conn: Deno.TcpConn;
        try {
          conn = await this.#listener.accept();
        } catch {
          return; // listener closed
        }
        this.accepted++;
        this.#conns.add(conn);
        const task: Promise<void> = this.#serve(conn).finally(() => this.#tasks.delete(task));
        this.#tasks.add(task);
      }
    })();
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    const buffer = new Uint8Array(16 * 1024);
    try {
      for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
        this.bytes += n;
      }
    } catch {
      // reset by the client, or closed by dispose
    } finally {
      if (this.#conns.delete(conn)) conn.close();
    }
  }

  /** The port it listens on. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** Connections still open on the peer's side. */
  get open(): number {
    return this.#conns.size;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    for (const conn of [...this.#conns]) {
      this.#conns.delete(conn);
      conn.close();
    }
    await this.#loop;
    await Promise.all([...this.#tasks]);
  }
}

/** Where a dial + handshake cycle is aborted. */
type AbortPoint = "dialing" | "before-tls" | "at-call" | "timer" | "hello-sent";
const ABORT_POINTS: readonly AbortPoint[] = [
  "dialing",
  "before-tls",
  "at-call",
  "timer",
  "hello-sent",
];

Deno.test("leak: 200 TLS handshakes to a silent peer aborted at every point free every socket", async () => {
  await using peer = new SilentPeer();
  const transport = denoTransport();
  const outcomes = new Map<string, number>();
  const cycle = async (point: AbortPoint): Promise<void> => {
    const ac = new AbortController();
    const reason = new Error(`aborted (${point})`);
    let outcome: string;
    try {
      const dial = transport.connectTcp("127.0.0.1", peer.port, ac.signal);
      if (point === "dialing") ac.abort(reason);
      const tcp = await dial;
      if (point === "before-tls") ac.abort(reason);
      const bytesBefore = peer.bytes;
      const handshake = transport.startTls(tcp, "localhost", ac.signal);
      if (point === "at-call") ac.abort(reason);
      if (point === "timer") setTimeout(() => ac.abort(reason), Math.random() * 4);
      if (point === "hello-sent") {
        await until(() => peer.bytes > bytesBefore, "the ClientHello reached the peer");
        ac.abort(reason);
      }
      (await handshake).close();
      outcome = "resolved";
    } catch (e) {
      outcome = e === reason ? "aborted" : `other: ${(e as Error).message}`;
    }
    outcomes.set(`${point} ${outcome}`, (outcomes.get(`${point} ${outcome}`) ?? 0) + 1);
  };
  // Warm up (lazily opened runtime fds), then measure.
  for (const point of ABORT_POINTS) await allSettle([cycle(point)], 5000);
  await until(() => peer.open === 0, "the peer saw every warm-up client leave");
  const baseline = await fds();
  const cycles: Promise<void>[] = [];
  for (let i = 0; i < 200; i += 8) {
    const batch = Array.from({ length: 8 }, (_, j) => cycle(ABORT_POINTS[(i + j) % 5] ?? "timer"));
    cycles.push(...batch);
    await allSettle(batch, 10_000);
  }
  await allSettle(cycles, 1000);
  // Every cycle was aborted: none may resolve (the peer never answers) or fail otherwise.
  for (const [key] of outcomes) assert.match(key, / aborted$/, JSON.stringify([...outcomes]));
  await assertFdsBack(baseline, "200 aborted handshakes");
  assert.equal(peer.open, 0, "the peer still has connections the transport did not close");
});

Deno.test("leak: 20,000 dials raced against 0-1 ms aborts leave no socket open", async () => {
  // A loopback listener that accepts and closes at once.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const accepting = (async (): Promise<void> => {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      conn.close();
    }
  })();
  const slots = new Slots(1_000_000, "connection attempts");
  await connectTcp("127.0.0.1", port, new AbortController().signal).then((c) => c.close());
  await delay(50);
  const baseline = await fds();
  let next = 0;
  let connected = 0;
  let aborted = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next++ < 20_000) {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), Math.random() < 0.5 ? 0 : 1);
      try {
        (await connectTcp("127.0.0.1", port, ac.signal, { slots })).close();
        connected++;
      } catch (e) {
        assert.ok(ac.signal.aborted, `a dial failed without an abort: ${e}`);
        aborted++;
      }
    }
  }));
  // Abandoned dials hold their slot until Deno.connect settles; then the transport closes them.
  await until(() => slots.inFlight === 0, "every abandoned dial settled", 5000);
  listener.close();
  await accepting;
  await assertFdsBack(baseline, `20,000 raced dials (${connected} connected, ${aborted} aborted)`);
  assert.ok(connected > 0 && aborted > 0, `both outcomes: ${connected} / ${aborted}`);
});

/**
 * A loopback listener that never accepts, with a backlog of 0: one connection fills its accept
 * queue, and then Linux drops further SYNs, so their dials stay pending (SYN-SENT, retransmitting)
 * until the listener closes (the next retransmit, about 1 s later, is refused).
 * `tcpBacklog` is an option `Deno.listen` reads but does not declare (ext/net/01_net.js, default
 * 511).
 */
async function blackhole(): Promise<{ port: number; filler: Deno.TcpConn } & Disposable> {
  const listener = Deno.listen(
    { hostname: "127.0.0.1", port: 0, tcpBacklog: 0 } as Deno.TcpListenOptions,
  );
  const filler = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  return {
    port: listener.addr.port,
    filler,
    [Symbol.dispose](): void {
      listener.close();
      filler.close();
    },
  };
}

Deno.test(
  "leak: dials in flight are bounded per transport, abandoned ones counted until done",
  inProcessOnly("transport maxDials has no CLI flag"),
  async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer({ transport: testTransport({ maxDials: 4 }) });
    await using client = await TestClient.open(server.url);
    let hole: ({ port: number } & Disposable) | undefined = await blackhole();
    try {
      // Four dials to the blackhole stay pending...
      for (let id = 1; id <= 4; id++) {
        client.send({ op: "connect", id, addr: "127.0.0.1", port: hole.port });
      }
      await delay(200);
      for (let id = 1; id <= 4; id++) {
        assert.deepEqual(client.queuedFor(id), [], `dial ${id} pending`);
      }
      // ...so a fifth dial, to a live peer, is refused at once.
      client.send({ op: "connect", id: 5, addr: "127.0.0.1", port: echo.port });
      assert.deepEqual(await client.nextFor(5), {
        ev: "error",
        id: 5,
        msg:
          `connect to 127.0.0.1:${echo.port} failed: too many connection attempts in flight (limit 4)`,
      });
      // The client gives up on the four: they end at once, but their sockets are still in SYN-SENT,
      // so they still count.
      for (let id = 1; id <= 4; id++) {
        client.send({ op: "close", id });
        assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
      }
      client.send({ op: "connect", id: 6, addr: "127.0.0.1", port: echo.port });
      assert.deepEqual(await client.nextFor(6), {
        ev: "error",
        id: 6,
        msg:
          `connect to 127.0.0.1:${echo.port} failed: too many connection attempts in flight (limit 4)`,
      });
      // Once the kernel is done with them (the listener is gone: the next SYN is refused), the
      // slots come back: four dials at once succeed only when all four abandoned ones settled.
      hole[Symbol.dispose]();
      hole = undefined;
      for (let attempt = 0;; attempt++) {
        const ids = [1, 2, 3, 4].map((k) => 10 + 4 * attempt + k);
        for (const my of ids) {
          client.send({ op: "connect", id: my, addr: "127.0.0.1", port: echo.port });
        }
        let connected = 0;
        for (const my of ids) {
          const ev = await client.nextFor(my);
          if (ev.ev === "connected") {
            connected++;
            client.send({ op: "close", id: my });
            assert.deepEqual(await client.nextFor(my), { ev: "closed", id: my });
          } else {
            assert.match(ev.ev === "error" ? ev.msg : "", /too many connection attempts in flight/);
          }
        }
        if (connected === 4) break;
        assert.ok(attempt < 100, "the slots never all came back");
        await delay(50);
      }
    } finally {
      hole?.[Symbol.dispose]();
    }
  },
);

Deno.test("leak: connectTcp rejects at once on abort and closes the dial that completes later", async () => {
  await using echo = await startTcpEcho();
  const slots = new Slots(4, "connection attempts");
  await connectTcp("127.0.0.1", echo.port, new AbortController().signal).then((c) => c.close());
  await until(() => echo.live === 0, "the warm-up connection ended");
  const baseline = await fds();
  const ac = new AbortController();
  const dial = connectTcp("127.0.0.1", echo.port, ac.signal, { slots });
  ac.abort(new Error("gone"));
  await assert.rejects(dial, { message: "gone" });
  assert.equal(slots.inFlight, 1, "the abandoned dial holds its slot until Deno.connect settles");
  await until(() => slots.inFlight === 0, "the abandoned dial settled");
  await until(() => echo.live === 0, "the echo server saw the late connection closed");
  await assertFdsBack(baseline, "an abandoned dial");
  // An already-aborted signal: no dial at all.
  await assert.rejects(connectTcp("127.0.0.1", echo.port, ac.signal, { slots }), {
    message: "gone",
  });
  assert.equal(slots.inFlight, 0);
});

Deno.test("leak: Slots counts until the operation settles and refuses beyond its bound", async () => {
  assert.throws(() => new Slots(0, "things"), {
    name: "RangeError",
    message: "Cannot bound things: max 0 must be an integer >= 1",
  });
  const slots = new Slots(2, "things");
  const a = Promise.withResolvers<string>();
  const b = Promise.withResolvers<string>();
  const held = [slots.hold(() => a.promise), slots.hold(() => b.promise)];
  assert.equal(slots.inFlight, 2);
  let called = false;
  await assert.rejects(
    slots.hold(() => {
      called = true;
      return Promise.resolve("no");
    }),
    { message: "too many things in flight (limit 2)" },
  );
  assert.equal(called, false, "an operation beyond the bound is not started");
  a.resolve("a");
  b.reject(new Error("b failed"));
  assert.deepEqual(await Promise.allSettled(held).then((r) => r.map((x) => x.status)), [
    "fulfilled",
    "rejected",
  ]);
  assert.equal(slots.inFlight, 0, "settled operations, fulfilled or rejected, free their slot");
  // An operation that throws synchronously frees its slot and rejects.
  await assert.rejects(
    slots.hold((): Promise<never> => {
      throw new Error("sync");
    }),
    { message: "sync" },
  );
  assert.equal(slots.inFlight, 0);
});

Deno.test("leak: the server frees every socket of handshakes ended by close, timeout or a dropped WebSocket", async () => {
  await using peer = new SilentPeer();
  await using server = await startTestServer({
    policy: loopbackPolicy({ connectionTimeoutSecs: 1 }),
    transport: testTransport(),
  });
  await using client = await TestClient.open(server.url);
  const pid = serverPid(server); // the server's fds: this process's, or the child's
  let id = 0;
  /** connect_tls to the silent peer; `close` at `when`; expects one `closed`. */
  const closeDuring = async (when: "at-once" | "timer" | "hello-sent"): Promise<void> => {
    const my = ++id;
    const bytesBefore = peer.bytes;
    client.send({ op: "connect_tls", id: my, addr: "127.0.0.1", port: peer.port });
    if (when === "timer") await delay(Math.random() * 5);
    if (when === "hello-sent") await until(() => peer.bytes > bytesBefore, "ClientHello sent");
    client.send({ op: "close", id: my });
    assert.deepEqual(await client.nextFor(my), { ev: "closed", id: my });
  };
  // Warm up, then measure.
  await closeDuring("hello-sent");
  await until(() => peer.open === 0, "the warm-up connection ended");
  const baseline = await fds(pid);

  // 1. The client closes before the handshake ends.
  for (let i = 0; i < 60; i++) {
    await closeDuring((["at-once", "timer", "hello-sent"] as const)[i % 3] ?? "at-once");
  }
  await assertFdsBack(baseline, "60 connect_tls closed during the handshake", 1000, pid);

  // 2. The connection timeout (1 s) ends the handshake.
  const timedOut: Promise<void>[] = [];
  for (let i = 0; i < 8; i++) {
    const my = ++id;
    client.send({ op: "connect_tls", id: my, addr: "127.0.0.1", port: peer.port });
    timedOut.push(
      client.nextFor(my, 5000).then((ev) => {
        assert.deepEqual(ev, { ev: "error", id: my, msg: "connection timed out" });
      }),
    );
  }
  await Promise.all(timedOut);
  await assertFdsBack(baseline, "8 connect_tls timed out during the handshake", 1000, pid);

  // 3. A second client drops its WebSocket while 20 handshakes wait for the peer.
  const before = peer.accepted;
  const dropper = await TestClient.open(server.url);
  const bytesBefore = peer.bytes;
  for (let i = 1; i <= 20; i++) {
    dropper.send({ op: "connect_tls", id: i, addr: "127.0.0.1", port: peer.port });
  }
  await until(() => peer.accepted - before === 20 && peer.bytes > bytesBefore, "20 handshakes");
  await delay(20);
  await dropper.close();
  await sessionsReach(server, 1, "the dropped session ended");
  await assertFdsBack(baseline, "20 handshakes of a dropped WebSocket", 1000, pid);
  assert.equal(peer.open, 0, "the peer still has connections the server did not close");
});

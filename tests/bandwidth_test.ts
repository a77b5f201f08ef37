// Bandwidth limiting end to end: rates measured through the real proxy. These assert the
// limiter's accuracy (a functional property); speed targets live in bench/.
import assert from "node:assert/strict";
import { TestClient } from "./helpers/ws_client.ts";
import { loopbackPolicy, startTestServer } from "./helpers/server.ts";
import { startTcpSink } from "./helpers/echo_servers.ts";
import type { WasmnetServer } from "../src/server/mod.ts";

const CHUNK = new Uint8Array(16 * 1024);
const WARMUP_MS = 500;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A TCP server that writes as fast as its peer reads, until the peer closes. */
function startTcpSource(): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      tasks.push((async () => {
        const block = new Uint8Array(64 * 1024);
        try {
          while (true) await conn.write(block);
        } catch {
          // peer gone
        } finally {
          conns.delete(conn);
          try {
            conn.close();
          } catch {
            // closed
          }
        }
      })());
    }
  })();
  return {
    port: listener.addr.port,
    close: async () => {
      listener.close();
      for (const c of conns) c.close();
      await accepting.catch(() => {});
      await Promise.all(tasks);
    },
  };
}

/** Bytes per second of socket `id`'s `data` events over `windowMs` after a warm-up. */
async function measureDown(client: TestClient, id: number, windowMs: number): Promise<number> {
  const start = Date.now();
  let t0 = 0;
  let bytes = 0;
  while (true) {
    const ev = await client.nextFor(id);
    assert.equal(ev.ev, "data");
    const now = Date.now();
    if (now - start < WARMUP_MS) continue;
    if (t0 === 0) {
      t0 = now;
      continue;
    }
    if (ev.ev === "data") bytes += ev.data.byteLength;
    if (now - t0 >= windowMs) return bytes / ((now - t0) / 1000);
  }
}

/** Sends to socket `id` as fast as the sink drains (≤ 256 KiB in flight); bytes/s at the sink. */
async function measureUp(
  client: TestClient,
  id: number,
  sink: { bytes: number },
  windowMs: number,
): Promise<number> {
  const start = Date.now();
  let sent = 0;
  let t0 = 0;
  let b0 = 0;
  while (true) {
    const now = Date.now();
    if (t0 === 0 && now - start >= WARMUP_MS) {
      t0 = now;
      b0 = sink.bytes;
    }
    if (t0 !== 0 && now - t0 >= windowMs) return (sink.bytes - b0) / ((now - t0) / 1000);
    if (sent - sink.bytes < 256 * 1024) {
      client.send({ op: "send", id, data: CHUNK });
      sent += CHUNK.byteLength;
    } else {
      await sleep(2);
    }
  }
}

function assertRate(bytesPerSec: number, mbps: number, tolerance: number, what: string): void {
  const expected = (mbps * 1e6) / 8;
  const ratio = bytesPerSec / expected;
  assert.ok(
    Math.abs(ratio - 1) <= tolerance,
    `${what}: ${(bytesPerSec * 8 / 1e6).toFixed(3)} Mbps, expected ${mbps} ±${tolerance * 100}%`,
  );
}

async function upAndDown(server: WasmnetServer, mbps: number, windowMs: number): Promise<void> {
  await using sink = await startTcpSink();
  const source = startTcpSource();
  try {
    await using client = await TestClient.open(server.url, "binary");
    await client.connect(1, "127.0.0.1", sink.port);
    await client.connect(2, "127.0.0.1", source.port);
    const [up, down] = await Promise.all([
      measureUp(client, 1, sink, windowMs),
      measureDown(client, 2, windowMs),
    ]);
    assertRate(up, mbps, 0.05, `${mbps} Mbps upload`);
    assertRate(down, mbps, 0.05, `${mbps} Mbps download`);
  } finally {
    await source.close();
  }
}

Deno.test("bandwidth: 10-second transfers at 1, 5 and 10 Mbps land within ±5% each direction", async () => {
  const servers = await Promise.all(
    [1, 5, 10].map((mbps) =>
      startTestServer({ policy: loopbackPolicy({ maxBandwidthMbps: mbps }) })
    ),
  );
  try {
    await Promise.all(
      [1, 5, 10].map((mbps, i) => upAndDown(servers[i] as WasmnetServer, mbps, 10_000)),
    );
  } finally {
    await Promise.all(servers.map((s) => s.shutdown()));
  }
});

Deno.test("bandwidth: the --max-bandwidth-mbps option wins over the policy", async () => {
  await using server = await startTestServer({
    policy: loopbackPolicy({ maxBandwidthMbps: 100 }),
    maxBandwidthMbps: 4,
  });
  const source = startTcpSource();
  try {
    await using client = await TestClient.open(server.url);
    await client.connect(1, "127.0.0.1", source.port);
    assertRate(await measureDown(client, 1, 3000), 4, 0.1, "4 Mbps flag over 100 Mbps policy");
  } finally {
    await source.close();
  }
});

Deno.test("bandwidth: two sessions each get their own limit", async () => {
  await using server = await startTestServer({ policy: loopbackPolicy({ maxBandwidthMbps: 4 }) });
  const source = startTcpSource();
  try {
    await using a = await TestClient.open(server.url, "binary");
    await using b = await TestClient.open(server.url, "json");
    await a.connect(1, "127.0.0.1", source.port);
    await b.connect(1, "127.0.0.1", source.port);
    const [ra, rb] = await Promise.all([measureDown(a, 1, 3000), measureDown(b, 1, 3000)]);
    assertRate(ra, 4, 0.1, "session a");
    assertRate(rb, 4, 0.1, "session b");
  } finally {
    await source.close();
  }
});

Deno.test("bandwidth: the server cap holds across sessions; sockets of a session share fairly", async () => {
  await using server = await startTestServer({
    policy: loopbackPolicy({ maxBandwidthMbps: 0, maxServerBandwidthMbps: 8 }),
  });
  const source = startTcpSource();
  try {
    await using a = await TestClient.open(server.url, "binary");
    await using b = await TestClient.open(server.url, "binary");
    await a.connect(1, "127.0.0.1", source.port);
    await a.connect(2, "127.0.0.1", source.port);
    await b.connect(1, "127.0.0.1", source.port);
    const [r1, r2, r3] = await Promise.all([
      measureDown(a, 1, 3000),
      measureDown(a, 2, 3000),
      measureDown(b, 1, 3000),
    ]);
    assertRate(r1 + r2 + r3, 8, 0.1, "server total");
    // No socket starves: each of the three gets a real share of the 8 Mbps.
    for (const r of [r1, r2, r3]) {
      assert.ok(r * 8 / 1e6 > 1, `a socket got only ${r * 8 / 1e6} Mbps`);
    }
  } finally {
    await source.close();
  }
});

Deno.test("bandwidth: UDP sends and receives are limited", async () => {
  await using server = await startTestServer({ policy: loopbackPolicy({ maxBandwidthMbps: 2 }) });
  const sinkSock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const sinkPort = (sinkSock.addr as Deno.NetAddr).port;
  let received = 0;
  let receiving = true;
  const receiver = (async () => {
    while (receiving) {
      try {
        const [d] = await sinkSock.receive();
        received += d.byteLength;
      } catch {
        return;
      }
    }
  })();
  await using client = await TestClient.open(server.url, "binary");
  client.send({ op: "connect_udp", id: 1, addr: "127.0.0.1", port: sinkPort });
  assert.equal((await client.nextFor(1)).ev, "udp_bound");
  const datagram = new Uint8Array(1000);
  const start = Date.now();
  let sent = 0;
  let t0 = 0;
  let b0 = 0;
  let rate = 0;
  while (true) {
    const now = Date.now();
    if (t0 === 0 && now - start >= WARMUP_MS) {
      t0 = now;
      b0 = received;
    }
    if (t0 !== 0 && now - t0 >= 3000) {
      rate = (received - b0) / ((now - t0) / 1000);
      break;
    }
    if (sent - received < 64 * 1000) {
      client.send({ op: "send", id: 1, data: datagram });
      sent += datagram.byteLength;
    } else {
      await sleep(2);
    }
  }
  receiving = false;
  sinkSock.close();
  await receiver;
  assertRate(rate, 2, 0.1, "UDP upload at 2 Mbps");
  client.send({ op: "close", id: 1 });
  assert.deepEqual(await client.nextFor(1), { ev: "closed", id: 1 });
});

Deno.test("bandwidth: accepted inbound connections are limited", async () => {
  await using server = await startTestServer({
    policy: loopbackPolicy({ maxBandwidthMbps: 3, bindPorts: "0-65535" }),
  });
  await using client = await TestClient.open(server.url, "binary");
  client.send({ op: "bind", id: 1, addr: "127.0.0.1", port: 0 });
  const listening = await client.nextFor(1);
  assert.equal(listening.ev, "listening");
  const port = listening.ev === "listening" ? listening.port : 0;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const writing = (async () => {
    const block = new Uint8Array(64 * 1024);
    try {
      while (true) await conn.write(block);
    } catch {
      // closed at the end of the test
    }
  })();
  const accepted = await client.nextFor(1);
  assert.equal(accepted.ev, "accepted");
  const connId = accepted.ev === "accepted" ? accepted.conn_id : 0;
  assertRate(await measureDown(client, connId, 3000), 3, 0.1, "inbound at 3 Mbps");
  conn.close();
  await writing;
});

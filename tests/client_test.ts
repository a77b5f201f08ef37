// Client library unit tests against a scripted fake server (tests/client_fake_server.ts): framing,
// result shapes, promise rejection, error delivery, ids, buffering and the stream API's edges.
import assert from "node:assert/strict";
import { WasmnetClient, type WasmnetClientOptions, WasmnetError } from "../src/client/mod.ts";
import { FAKE_CONN_ID, startFakeServer } from "./client_fake_server.ts";
import { decodeRequest, encodeEvent } from "../src/protocol/mod.ts";

const FRAMINGS = [false, true] as const;
const name = (binary: boolean): string => (binary ? "binary" : "json");

async function open(
  url: string,
  options: WasmnetClientOptions = {},
): Promise<WasmnetClient> {
  const client = new WasmnetClient(url, options);
  await client.ready();
  return client;
}

function isCode(code: string): (e: unknown) => boolean {
  return (e: unknown): boolean => e instanceof WasmnetError && e.code === code;
}

/** Resolves with the next value `register` delivers. */
function once<T>(register: (cb: (v: T) => void) => void): Promise<T> {
  return new Promise((resolve) => register(resolve));
}

for (const binary of FRAMINGS) {
  Deno.test(`client: connect, UTF-8 send, data, close (${name(binary)})`, async () => {
    await using fake = await startFakeServer();
    await using client = await open(fake.url, { binary });
    const id = await client.connect("example.test", 80);
    assert.equal(id, 1);
    const got = once<Uint8Array>((cb) => client.onData(id, cb));
    assert.equal(client.send(id, "héllo ✓"), true);
    assert.equal(new TextDecoder().decode(await got), "héllo ✓");
    const sent = fake.requests.find((r) => r.req.op === "send");
    assert.equal(sent?.framing, name(binary));
    assert.deepEqual(
      sent?.req.op === "send" ? [...sent.req.data] : [],
      [...new TextEncoder().encode("héllo ✓")],
    );
    const closed = once<void>((cb) => client.onClose(id, cb));
    client.close(id);
    await closed;
    assert.equal(await client.connectTls("example.test", 443), 2);
  });

  Deno.test(`client: resolve resolves, and rejects on error and denied (${name(binary)})`, async () => {
    await using fake = await startFakeServer();
    await using client = await open(fake.url, { binary });
    assert.deepEqual(await client.resolve("example.test"), ["192.0.2.1", "2001:db8::1"]);
    await assert.rejects(client.resolve("denied.test"), isCode("EDENIED"));
    await assert.rejects(client.resolve("nope.test"), (e: unknown) => {
      assert.ok(e instanceof WasmnetError);
      assert.equal(e.code, "ESERVER");
      assert.equal(e.message, 'DNS lookup failed for "nope.test"');
      return true;
    });
  });

  Deno.test(`client: UDP connectUdp, send, sendTo, onDataFrom (${name(binary)})`, async () => {
    await using fake = await startFakeServer();
    await using client = await open(fake.url, { binary });
    const udp = await client.connectUdp("192.0.2.7", 53);
    assert.deepEqual(udp, { id: 1, port: 5353 });
    const first = once<[Uint8Array, string, number]>((cb) =>
      client.onDataFrom(udp.id, (d, a, p) => cb([d, a, p]))
    );
    client.send(udp.id, new Uint8Array([1, 2, 3]));
    const [d1, a1, p1] = await first;
    assert.deepEqual([[...d1], a1, p1], [[1, 2, 3], "192.0.2.7", 53]);
    const second = once<[Uint8Array, string, number]>((cb) =>
      client.onDataFrom(udp.id, (d, a, p) => cb([d, a, p]))
    );
    client.sendTo(udp.id, "2001:db8::5", 5000, "x");
    const [d2, a2, p2] = await second;
    assert.deepEqual([[...d2], a2, p2], [[120], "2001:db8::5", 5000]);
  });

  Deno.test(`client: bind, listen, accepted conn_id ≥ 2^52 with buffered data (${name(binary)})`, async () => {
    await using fake = await startFakeServer();
    await using client = await open(fake.url, { binary });
    const listener = await client.bind("0.0.0.0", 0);
    assert.deepEqual(listener, { id: 1, port: 4242 });
    const accepted = once<[number, string]>((cb) =>
      client.onAccept(listener.id, (c, r) => cb([c, r]))
    );
    client.listen(listener.id);
    const [connId, remote] = await accepted;
    assert.equal(connId, FAKE_CONN_ID);
    assert.equal(remote, "192.0.2.9:50000");
    // "hello" arrived before onData was registered: it is buffered, then delivered.
    await new Promise((r) => setTimeout(r, 20));
    const data = await once<Uint8Array>((cb) => client.onData(connId, cb));
    assert.equal(new TextDecoder().decode(data), "hello");
  });

  Deno.test(`client: stream socket echo and clean close (${name(binary)})`, async () => {
    await using fake = await startFakeServer();
    await using client = await open(fake.url, { binary });
    const sock = client.openTcp("example.test", 80);
    assert.deepEqual(await sock.opened, {});
    const writer = sock.writable.getWriter();
    await writer.write(new TextEncoder().encode("ping"));
    const reader = sock.readable.getReader();
    const { value } = await reader.read();
    assert.equal(new TextDecoder().decode(value), "ping");
    await sock.close();
    assert.deepEqual(await reader.read(), { value: undefined, done: true });
    await assert.rejects(writer.write(new Uint8Array(1)), isCode("ECLOSED"));
  });
}

Deno.test("client: connect rejects with EDENIED and ESERVER, carrying the server's message", async () => {
  await using fake = await startFakeServer();
  await using client = await open(fake.url);
  await assert.rejects(client.connect("h", 1), (e: unknown) => {
    assert.ok(e instanceof WasmnetError);
    assert.deepEqual([e.code, e.message, e.id], ["EDENIED", "denied by policy", 1]);
    return true;
  });
  await assert.rejects(client.connect("h", 2), isCode("ESERVER"));
  const sock = client.openTcp("h", 1);
  await assert.rejects(sock.opened, isCode("EDENIED"));
  await assert.rejects(sock.closed, isCode("EDENIED"));
});

Deno.test("client: every pending promise rejects when the WebSocket closes", async () => {
  await using fake = await startFakeServer();
  const client = await open(fake.url);
  const openId = await client.connect("h", 80);
  const errors: string[] = [];
  let closes = 0;
  client.onError(openId, (msg) => errors.push(msg));
  client.onClose(openId, () => closes++);
  const stream = client.openTcp("h", 80);
  await stream.opened;
  const rejections = [
    client.connect("h", 3),
    client.resolve("slow.test"),
    client.connectTls("h", 3),
    client.connect("h", 4), // the server closes the WebSocket
  ].map((p) => assert.rejects(p, isCode("EWEBSOCKET")));
  const info = await client.closed;
  assert.equal(info.code, 1011);
  await Promise.all(rejections);
  assert.equal(errors.length, 1);
  assert.match(errors[0] ?? "", /WebSocket closed \(code 1011, scripted\)/);
  assert.equal(closes, 1);
  await assert.rejects(stream.closed, isCode("EWEBSOCKET"));
  await assert.rejects(client.connect("h", 80), isCode("EWEBSOCKET"));
  assert.throws(() => client.send(openId, "x"), isCode("EWEBSOCKET"));
  await assert.rejects(client.drain(), isCode("EWEBSOCKET"));
});

Deno.test("client: disconnect() rejects pending promises and closes open sockets without onError", async () => {
  await using fake = await startFakeServer();
  const client = await open(fake.url);
  const id = await client.connect("h", 80);
  let errored = false;
  const closed = once<void>((cb) => client.onClose(id, cb));
  client.onError(id, () => (errored = true));
  const pending = assert.rejects(client.connect("h", 3), isCode("EWEBSOCKET"));
  const stream = client.openTcp("h", 80);
  await stream.opened;
  client.disconnect();
  await pending;
  await closed;
  await stream.closed; // resolves: the application asked for it
  assert.equal(errored, false);
  await client.closed;
});

Deno.test("client: ready() rejects when the server is unreachable", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const client = new WasmnetClient(`ws://127.0.0.1:${port}/`);
  await assert.rejects(client.ready(), isCode("EWEBSOCKET"));
  await assert.rejects(client.connect("h", 80), isCode("EWEBSOCKET"));
  await client.closed;
});

Deno.test("client: an error event on an open socket reaches onError, then onClose", async () => {
  await using fake = await startFakeServer();
  await using client = await open(fake.url);
  const id = await client.connect("h", 5);
  const order: string[] = [];
  const done = once<void>((cb) =>
    client.onClose(id, () => {
      order.push("close");
      cb();
    })
  );
  client.onError(id, (msg, err) => order.push(`error:${msg}:${err.code}`));
  await done;
  assert.deepEqual(order, ["error:connection reset:ESERVER", "close"]);

  const sock = client.openTcp("h", 5);
  await sock.opened;
  await assert.rejects(
    sock.closed,
    (e: unknown) => e instanceof WasmnetError && e.message === "connection reset",
  );
  await assert.rejects(sock.readable.getReader().read(), isCode("ESERVER"));
});

Deno.test("client: events for unknown ids and undecodable messages go to the debug logger", async () => {
  await using fake = await startFakeServer();
  const logged: string[] = [];
  await using client = await open(fake.url, { debug: (m) => logged.push(m) });
  assert.deepEqual(await client.resolve("unknown.test"), []);
  assert.deepEqual(logged, ["data event for unknown id 999999"]);
  client.onData(12345, () => {});
  assert.equal(logged[1], "onData: unknown id 12345");
  // The WebSocket queues requests made while it connects; the client sends them once open.
  const early = new WasmnetClient(fake.url);
  const earlyId = early.connect("h", 80);
  assert.ok(early.bufferedAmount > 0);
  assert.equal(await earlyId, 1);
  await early[Symbol.asyncDispose]();
});

Deno.test("client: ids count from 1 and skip ids in use; accepted conn_ids stay exact", async () => {
  await using fake = await startFakeServer();
  await using client = await open(fake.url, { binary: true });
  assert.equal(await client.connect("h", 80), 1);
  assert.equal(await client.connect("h", 80), 2);
  await assert.rejects(client.resolve("nope.test")); // id 3, then freed
  const l = client.openListener("0.0.0.0", 0);
  assert.deepEqual(await l.opened, { port: 4242 });
  assert.equal(l.id, 4);
  const conn = (await l[Symbol.asyncIterator]().next()).value;
  assert.ok(conn);
  assert.equal(conn.id, FAKE_CONN_ID);
  assert.deepEqual(await conn.opened, { remoteAddress: "192.0.2.9:50000" });
  const { value } = await conn.readable.getReader().read();
  assert.equal(new TextDecoder().decode(value), "hello");
  await conn.close();
  await l.close();
});

Deno.test("client: stream API over UDP yields datagrams with sender", async () => {
  await using fake = await startFakeServer();
  await using client = await open(fake.url, { binary: true });
  await using udp = client.openUdp("192.0.2.7", 53);
  assert.deepEqual(await udp.opened, { localPort: 5353 });
  await udp.send("q1");
  await udp.sendTo("192.0.2.8", 5353, new Uint8Array([9]));
  const got: Array<[string, string, number]> = [];
  for await (const { data, addr, port } of udp) {
    got.push([[...data].join(","), addr, port]);
    if (got.length === 2) break; // closes the socket
  }
  assert.deepEqual(got, [["113,49", "192.0.2.7", 53], ["9", "192.0.2.8", 5353]]);
  await udp.closed;
  await assert.rejects(udp.send("late"), isCode("ECLOSED"));
});

Deno.test("client: AbortSignal cancels a pending dial and closes an open socket", async () => {
  await using fake = await startFakeServer();
  await using client = await open(fake.url);
  const ctl = new AbortController();
  const pending = client.openTcp("h", 3, { signal: ctl.signal });
  await new Promise((r) => setTimeout(r, 10));
  ctl.abort(new Error("stop"));
  await assert.rejects(pending.opened, /stop/);
  await assert.rejects(pending.closed, /stop/);

  const pre = client.openTcp("h", 80, { signal: AbortSignal.abort() });
  await assert.rejects(
    pre.opened,
    (e: unknown) => e instanceof DOMException && e.name === "AbortError",
  );

  const ctl2 = new AbortController();
  const live = client.openTcp("h", 80, { signal: ctl2.signal });
  await live.opened;
  const reading = live.readable.getReader().read();
  ctl2.abort();
  await assert.rejects(reading, (e: unknown) => e instanceof DOMException);
  // Every socket was closed on the wire.
  await new Promise((r) => setTimeout(r, 20));
  const closes = fake.requests.filter((r) => r.req.op === "close").map((r) => r.req.id);
  assert.deepEqual(closes.sort(), [pending.id, pre.id, live.id].sort());
});

Deno.test("client: a stream socket whose reader lags past maxBufferedBytes fails with EOVERFLOW", async () => {
  await using fake = await startFakeServer();
  await using client = await open(fake.url, { binary: true });
  // The fake sends 4 MiB at once; allow 1 MiB unread.
  const sock = client.openTcp("h", 6, { maxBufferedBytes: 1024 * 1024 });
  await assert.rejects(sock.closed, isCode("EOVERFLOW"));
  const fine = client.openTcp("h", 6, { maxBufferedBytes: 8 * 1024 * 1024 });
  let total = 0;
  const reader = fine.readable.getReader();
  while (total < 4 * 1024 * 1024) {
    const { value } = await reader.read();
    total += value?.byteLength ?? 0;
  }
  assert.equal(total, 4 * 1024 * 1024);
  await fine.close();
});

Deno.test("client: send returns false above highWaterMark and drain() waits for the buffer", async () => {
  await using fake = await startFakeServer();
  await using client = await open(fake.url, {
    binary: true,
    highWaterMark: 64 * 1024,
    lowWaterMark: 0,
  });
  const id = await client.connect("h", 80);
  let sawFalse = false;
  let received = 0;
  const all = new Promise<void>((resolve) =>
    client.onData(id, (d) => {
      received += d.byteLength;
      if (received === 64 * 256 * 1024) resolve();
    })
  );
  const chunk = new Uint8Array(256 * 1024);
  for (let i = 0; i < 64; i++) {
    if (!client.send(id, chunk)) {
      sawFalse = true;
      await client.drain();
      assert.equal(client.bufferedAmount, 0);
    }
  }
  assert.equal(sawFalse, true, "WebSocket bufferedAmount never exceeded 64 KiB");
  await all;
});

Deno.test("client: an undecodable event is logged, not thrown", async () => {
  // A server that sends garbage and one valid event.
  const logged: string[] = [];
  let serverWs: WebSocket | undefined;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen(): void {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    serverWs = socket;
    socket.onmessage = (e): void => {
      const r = decodeRequest(e.data as string);
      socket.send("not json");
      socket.send(new Uint8Array([0x42]));
      socket.send(encodeEvent({ ev: "connected", id: r.id }, "json"));
    };
    return response;
  });
  try {
    await using client = await open(`ws://127.0.0.1:${server.addr.port}/`, {
      debug: (m) => logged.push(m),
    });
    assert.equal(await client.connect("h", 1), 1);
    assert.equal(logged.length, 2);
    assert.match(logged[0] ?? "", /^undecodable event: invalid request: not valid JSON/);
    assert.match(
      logged[1] ?? "",
      /^undecodable event: invalid binary frame: binary frame too short/,
    );
  } finally {
    serverWs?.close();
    await server.shutdown();
  }
});

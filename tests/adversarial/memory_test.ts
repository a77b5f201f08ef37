/**
 * Hostile message sizes and shapes against the real server, with its memory and `/healthz` latency
 * measured: 63 MiB messages, 70 MiB sent in 1 MiB fragments, invalid UTF-8, 4 MB of nested JSON,
 * and a client that stops reading while its upstream floods it. Every oversize message must end
 * its WebSocket with 1009 as its frames arrive (never buffered whole), bad UTF-8 with 1007, nested
 * JSON with an `error` in milliseconds; `/healthz` stays within the README's bound and the memory
 * comes back.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ServerProcess } from "../helpers/server_process.ts";
import { Opcode, RawWebSocket } from "../helpers/raw_ws.ts";
import { delay } from "../helpers/wait.ts";
import { decodeEvent, encodeRequestJson } from "../../src/protocol/mod.ts";
import { healthzMs, report } from "./_common.ts";

const MiB = 1024 * 1024;
/** README, Limits: `/healthz` answers within this while the server is attacked, in ms. */
const HEALTHZ_BOUND_MS = 1000;
/** README, Limits: the server's peak resident memory under these attacks. */
const RSS_BOUND = 320 * MiB;

/** Streams `length` zero bytes of payload after a header (until the server hangs up). */
async function stream(ws: RawWebSocket, length: number): Promise<void> {
  const chunk = new Uint8Array(MiB);
  try {
    for (let sent = 0; sent < length; sent += chunk.byteLength) {
      await ws.writeRaw(chunk.subarray(0, Math.min(chunk.byteLength, length - sent)));
    }
  } catch {
    // the server closed the connection: expected once it refused the message
  }
}

/** Polls `/healthz` until `done` resolves; returns the sorted latencies. */
async function pollHealthz(port: number, done: Promise<unknown>): Promise<number[]> {
  let finished = false;
  void done.finally(() => finished = true);
  const out: number[] = [];
  while (!finished) {
    out.push(await healthzMs(port));
    await delay(50);
  }
  return out.sort((a, b) => a - b);
}

Deno.test("adversarial: oversize, fragmented, bad UTF-8 and nested messages; /healthz stays fast", async () => {
  await using server = await ServerProcess.start(["--no-policy"]);
  const port = server.port ?? 0;
  await healthzMs(port);
  const before = await server.memory();
  const codes: Record<string, number[]> = { big: [], fragmented: [], utf8: [] };
  const nestedErrors: string[] = [];
  const attack = Promise.all([
    // 20 sessions, one 63 MiB binary message each.
    ...Array.from({ length: 20 }, async () => {
      const ws = await RawWebSocket.connect(port);
      await ws.sendHeader(Opcode.binary, 63 * MiB);
      const [code] = await Promise.all([ws.closeCode(), stream(ws, 63 * MiB)]);
      codes.big?.push(code ?? 1006);
      ws.drop();
    }),
    // 6 sessions, 70 MiB each in 1 MiB fragments.
    ...Array.from({ length: 6 }, async () => {
      const ws = await RawWebSocket.connect(port);
      const closing = ws.closeCode();
      try {
        for (let i = 0; i < 70; i++) {
          await ws.sendHeader(i === 0 ? Opcode.binary : Opcode.continuation, MiB, i === 69);
          await ws.writeRaw(new Uint8Array(MiB));
        }
      } catch {
        // refused part way: expected
      }
      codes.fragmented?.push((await closing) ?? 1006);
      ws.drop();
    }),
    // One text frame that is not UTF-8.
    (async () => {
      const ws = await RawWebSocket.connect(port);
      await ws.send(Opcode.text, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
      codes.utf8?.push((await ws.closeCode()) ?? 1006);
      ws.drop();
    })(),
    // 10 sessions, one 4 MB text message of nested arrays each: refused by shape, session lives.
    ...Array.from({ length: 10 }, async () => {
      const ws = await RawWebSocket.connect(port);
      await ws.sendText("[".repeat(4_000_000));
      const reply = await ws.next();
      const ev = reply && decodeEvent(new TextDecoder().decode(reply.payload));
      nestedErrors.push(ev && ev.ev === "error" ? ev.msg : JSON.stringify(ev));
      await ws.sendText(encodeRequestJson({ op: "close", id: 5 }));
      const again = await ws.next();
      assert.ok(again, "the session answers after the nested message");
      ws.drop();
    }),
  ]);
  const latencies = await pollHealthz(port, attack);
  await attack;
  const peak = (await server.memory()).peak;
  await delay(2000); // let the allocator settle
  const after = await server.memory();
  report(
    `sizes: close codes ${JSON.stringify(codes)}; /healthz p50 ${
      latencies[latencies.length >> 1]?.toFixed(1)
    } ms, max ${latencies.at(-1)?.toFixed(1)} ms over ${latencies.length} polls; RSS ${
      (before.rss / MiB).toFixed(0)
    } MiB before, peak ${(peak / MiB).toFixed(0)} MiB, ${(after.rss / MiB).toFixed(0)} MiB after`,
  );
  assert.deepEqual(codes.big, Array(20).fill(1009));
  assert.deepEqual(codes.fragmented, Array(6).fill(1009));
  assert.deepEqual(codes.utf8, [1007]);
  assert.deepEqual(nestedErrors, Array(10).fill("invalid request: nesting deeper than 128 levels"));
  assert.ok((latencies.at(-1) ?? 0) < HEALTHZ_BOUND_MS, `/healthz took ${latencies.at(-1)} ms`);
  assert.ok(peak < RSS_BOUND, `peak RSS ${peak}`);
  assert.ok(after.rss < before.rss + 128 * MiB, `RSS stays up at ${after.rss}`);
  assert.equal((await server.stop()).code, 0, server.output);
});

Deno.test("adversarial: a client that stops reading while its upstream floods it", async () => {
  await using server = await ServerProcess.start(["--no-policy"]);
  const port = server.port ?? 0;
  // The upstream writes as fast as it can until the connection goes away.
  const source = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let written = 0;
  const flooding = (async () => {
    const conn = await source.accept();
    source.close();
    const chunk = new Uint8Array(256 * 1024);
    try {
      for (;;) written += await conn.write(chunk);
    } catch {
      conn.close();
    }
  })();
  const ws = await RawWebSocket.connect(port);
  await ws.sendText(
    encodeRequestJson({ op: "connect", id: 1, addr: "127.0.0.1", port: source.addr.port }),
  );
  await delay(5000); // the client reads nothing
  const stalled = written;
  const memory = await server.memory();
  report(
    `slow consumer: the upstream got ${(stalled / MiB).toFixed(1)} MiB into the relay in 5 s ` +
      `while the client read nothing; server RSS peak ${(memory.peak / MiB).toFixed(0)} MiB`,
  );
  assert.ok(memory.peak < 256 * MiB, `peak RSS ${memory.peak}`);
  assert.ok(stalled < 64 * MiB, `the relay kept reading the upstream: ${stalled} bytes`);
  // Reading again drains it: the relay resumes.
  let got = 0;
  while (got < stalled) {
    const f = await ws.next();
    if (f === null) break;
    got += f.payload.byteLength;
  }
  assert.ok(got >= stalled * 0.9, `${got} of ${stalled} bytes arrived`);
  ws.drop();
  await flooding;
  assert.equal((await server.stop()).code, 0, server.output);
});

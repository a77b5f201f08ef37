/**
 * Wisp flow control end to end (issue 10, "Real flow control"): a client that keeps sending as
 * fast as its CONTINUE credit and its WebSocket buffer allow, into an upstream that stops reading,
 * ends up paused by credit; the server's memory stays bounded; another stream of the same
 * connection keeps echoing meanwhile; and when the upstream reads again every byte arrives, in
 * order, with no CLOSE. This is what the wasmnet protocol cannot do (it has only the WebSocket's
 * own flow control, which stalls every socket of a session).
 *
 * @module
 */
import assert from "node:assert/strict";
import { serverPid, startTestServer } from "./helpers/server.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { RawWisp, wispUrl } from "./helpers/wisp_raw.ts";
import { delay, until } from "./helpers/wait.ts";

const MiB = 1024 * 1024;
const TOTAL = 48 * MiB;
const PACKET = 32 * 1024;
/** The client keeps sending while its WebSocket buffer is under this, as a browser would. */
const CLIENT_BUFFER = 4 * MiB;
/** How long the upstream stops reading once the client is paused, ms. */
const STALL_MS = 3000;
/**
 * Bound on what the client may have sent while the upstream read nothing: the stream's buffer
 * (its 4 MiB byte budget) plus what the kernel's loopback socket buffers absorb (at most
 * `tcp_rmem` + `tcp_wmem` maxima, 6 + 4 MiB by default) plus in-flight WebSocket bytes.
 */
const STALLED_SENT_BOUND = 20 * MiB;
/** Resident memory of a server process (a child) holding one stalled Wisp stream. */
const SERVER_RSS_BOUND = 256 * MiB;
/**
 * Growth of this process's resident memory when the server runs in it (the client and its 4 MiB
 * WebSocket buffer are here too).
 */
const IN_PROCESS_GROWTH_BOUND = 96 * MiB;

function patternByte(i: number): number {
  return (i * 13 + (i >>> 15)) & 0xff;
}

function chunk(offset: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = patternByte(offset + i);
  return out;
}

/** Resident memory of process `pid` (through `cat`: Deno reads another process's `/proc` only with -A). */
async function rssOf(pid: number): Promise<number> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stdout: "piped" })
    .output();
  const status = new TextDecoder().decode(out.stdout);
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return Number(kb ?? 0) * 1024;
}

/** A TCP peer that accepts one connection, reads nothing until `resume()`, then checks it all. */
function stalledSink(): {
  port: number;
  received: () => number;
  resume: () => void;
  done: Promise<void>;
  close: () => void;
} {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let received = 0;
  let resume = (): void => {};
  const resumed = new Promise<void>((r) => resume = r);
  let conn: Deno.Conn | undefined;
  const done = (async () => {
    conn = await listener.accept();
    listener.close();
    await resumed;
    const buf = new Uint8Array(256 * 1024);
    while (received < TOTAL) {
      const n = await conn.read(buf);
      if (n === null) throw new Error(`upstream EOF after ${received} bytes`);
      for (let i = 0; i < n; i++) {
        if (buf[i] !== patternByte(received + i)) {
          throw new Error(`byte ${received + i} is wrong: data was lost or reordered`);
        }
      }
      received += n;
    }
    conn.close();
    conn = undefined;
  })();
  done.catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    received: () => received,
    resume,
    done,
    close: () => {
      try {
        conn?.close();
      } catch {
        // closed
      }
      try {
        listener.close();
      } catch {
        // closed
      }
    },
  };
}

Deno.test("wisp flow: a stalled upstream pauses its stream by credit, memory stays bounded, another stream keeps echoing, nothing is lost", async () => {
  const sink = stalledSink();
  try {
    await using echo = await startTcpEcho();
    await using server = await startTestServer();
    await using client = await RawWisp.open(wispUrl(server.url), { protocol: "wisp", info: [] });
    const pid = serverPid(server);
    const rssBefore = await rssOf(pid);
    client.connect(1, "127.0.0.1", sink.port);
    client.connect(2, "127.0.0.1", echo.port);
    let sent = 0;
    let continues = 0;
    let stop = false;
    const sender = (async () => {
      while (sent < TOTAL && !stop) {
        const credit = client.credit.get(1) ?? 0;
        if (client.closed) throw new Error("the WebSocket closed");
        if (credit <= 0 || client.ws.bufferedAmount >= CLIENT_BUFFER) {
          const before = client.credit.get(1);
          await delay(1);
          if (client.credit.get(1) !== before) continues++;
          continue;
        }
        const n = Math.min(PACKET, TOTAL - sent);
        client.data(1, chunk(sent, n));
        sent += n;
      }
    })();
    sender.catch(() => {}); // awaited below; a failure must not also surface as uncaught
    // Paused: no credit left and no progress for a while.
    let last = -1;
    await until(
      () => {
        const paused = (client.credit.get(1) ?? 0) <= 0 && sent === last;
        last = sent;
        return paused;
      },
      "the client runs out of credit",
      20_000,
    );
    await delay(500);
    const stalledAt = sent;
    assert.equal(client.credit.get(1) ?? 0, 0, "paused by credit, not by anything else");
    assert.ok(stalledAt < TOTAL, "the stall happened before the end");
    assert.ok(
      stalledAt <= STALLED_SENT_BOUND,
      `sent ${stalledAt} bytes into a stalled upstream (bound ${STALLED_SENT_BOUND})`,
    );
    // Another stream of the same connection keeps flowing while stream 1 is stalled.
    const rtts: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      client.send(new Uint8Array([0x02, 2, 0, 0, 0, ...new TextEncoder().encode(`ping ${i}`)]));
      await client.collect(2, `ping ${i}`.length, 2000);
      rtts.push(performance.now() - t0);
    }
    rtts.sort((a, b) => a - b);
    // deno-lint-ignore no-console -- the figures the issue asks this test to print
    console.log(
      `  stream 2 round trip while stream 1 is stalled: p50 ${rtts[10]?.toFixed(2)} ms, ` +
        `max ${rtts[19]?.toFixed(2)} ms; stalled after ${(stalledAt / MiB).toFixed(1)} MiB`,
    );
    await delay(STALL_MS - 500);
    assert.equal(sent, stalledAt, "nothing more was sent while the upstream read nothing");
    const rss = await rssOf(pid);
    if (pid === Deno.pid) {
      const growth = rss - rssBefore;
      assert.ok(
        growth < IN_PROCESS_GROWTH_BOUND,
        `RSS grew ${(growth / MiB).toFixed(0)} MiB (server in process)`,
      );
    } else assert.ok(rss < SERVER_RSS_BOUND, `server RSS ${(rss / MiB).toFixed(0)} MiB`);
    sink.resume();
    await sender;
    await sink.done;
    assert.equal(sink.received(), TOTAL);
    assert.ok(continues > 0, "credit came back as the upstream drained");
    // The only CLOSE of stream 1 is the upstream's own end, after every byte (0x02).
    assert.equal(await client.closeOf(1), 0x02);
    stop = true;
  } finally {
    sink.close();
  }
});

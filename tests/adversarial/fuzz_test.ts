/**
 * Fuzzing the real server: 100,000 mutated requests, half JSON text and half binary frames, on
 * four sessions at once, under a deny-everything policy (nothing a mutation turns into a valid
 * `connect`, `resolve` or `bind` leaves the machine). The server must answer, never crash, keep
 * `/healthz` fast, and give back every file descriptor when the sessions end.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ServerProcess } from "../helpers/server_process.ts";
import { TestClient } from "../helpers/ws_client.ts";
import { delay } from "../helpers/wait.ts";
import { encodeRequest, type Framing, type Request } from "../../src/protocol/mod.ts";
import { fdsBackTo, healthzMs, policyFile, report, Rng } from "./_common.ts";

const FRAMES = 100_000;
const SESSIONS = 4;
const ADDRS = [
  "127.0.0.1",
  "example.com",
  "::1",
  "10.0.0.1",
  "",
  "a".repeat(300),
  "[::1]",
  "0x7f.1",
];
const JSON_TOKENS = [
  '"op":',
  "null",
  "1e309",
  "-1",
  "[[",
  "]]",
  "{",
  "}",
  '"\\u0000"',
  ",",
  ":",
  '"',
  "\\",
];

function baseRequest(rng: Rng): Request {
  const id = rng.int(4) === 0 ? rng.u32() * 2 ** 21 + rng.u32() : rng.int(64);
  const addr = rng.pick(ADDRS);
  const port = rng.int(70000) % 65536;
  const data = crypto.getRandomValues(new Uint8Array(rng.int(64)));
  switch (rng.int(9)) {
    case 0:
      return { op: "connect", id, addr, port };
    case 1:
      return { op: "connect_tls", id, addr, port };
    case 2:
      return { op: "connect_udp", id, addr, port };
    case 3:
      return { op: "bind", id, addr, port };
    case 4:
      return { op: "listen", id, backlog: rng.u32() };
    case 5:
      return { op: "send", id, data };
    case 6:
      return { op: "close", id };
    case 7:
      return { op: "send_to", id, addr, port, data };
    default:
      return { op: "resolve", id, name: addr };
  }
}

function mutateBinary(rng: Rng, frame: Uint8Array): Uint8Array {
  let out = frame.slice();
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const at = out.byteLength === 0 ? 0 : rng.int(out.byteLength);
    switch (rng.int(5)) {
      case 0:
        if (out.byteLength > 0) out[at] = (out[at] ?? 0) ^ (1 << rng.int(8));
        break;
      case 1:
        if (out.byteLength > 0) out[at] = rng.pick([0, 0xff, 0x7f, 0x80]);
        break;
      case 2:
        out = out.slice(0, at);
        break;
      case 3: {
        const extra = crypto.getRandomValues(new Uint8Array(1 + rng.int(16)));
        const grown = new Uint8Array(out.byteLength + extra.byteLength);
        grown.set(out.subarray(0, at));
        grown.set(extra, at);
        grown.set(out.subarray(at), at + extra.byteLength);
        out = grown;
        break;
      }
      default:
        if (out.byteLength > 0) out[0] = rng.int(256); // another message type
    }
  }
  return out;
}

function mutateText(rng: Rng, text: string): string {
  let out = text;
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const at = rng.int(out.length + 1);
    switch (rng.int(4)) {
      case 0:
        out = out.slice(0, at) + rng.pick(JSON_TOKENS) + out.slice(at);
        break;
      case 1:
        out = out.slice(0, at) + out.slice(at + 1 + rng.int(8));
        break;
      case 2:
        out = out.slice(0, at) + String.fromCharCode(rng.int(0x3000)) + out.slice(at + 1);
        break;
      default:
        out = out.slice(0, at) + out.slice(rng.int(out.length + 1));
    }
  }
  return out;
}

Deno.test("adversarial: 100,000 mutated frames in both framings never crash the server", async () => {
  const policy = await policyFile('[network]\ndeny = ["*"]\nallow = []\nbind_ports = ""\n');
  await using server = await ServerProcess.start(["--policy", policy]);
  const port = server.port ?? 0;
  const baseline = await server.fds();
  const rng = new Rng(0x5eed_2026);
  const clients: TestClient[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    clients.push(await TestClient.open(server.url, i % 2 === 0 ? "json" : "binary"));
  }
  const t0 = performance.now();
  const latencies: number[] = [];
  for (let sent = 0; sent < FRAMES; sent++) {
    const client = clients[sent % SESSIONS] as TestClient;
    const framing: Framing = sent % 2 === 0 ? "json" : "binary";
    const valid = encodeRequest(baseRequest(rng), framing);
    client.sendRaw(
      typeof valid === "string" ? mutateText(rng, valid) : mutateBinary(rng, valid),
    );
    if (sent % 5000 === 4999) {
      latencies.push(await healthzMs(port));
      while (clients.some((c) => c.ws.bufferedAmount > 1 << 20)) await delay(1);
    }
  }
  for (const client of clients) await client.settle();
  const secs = (performance.now() - t0) / 1000;
  const events = clients.reduce((n, c) => n + c.queued.length, 0);
  latencies.sort((a, b) => a - b);
  report(
    `fuzz: ${FRAMES} mutated frames in ${secs.toFixed(1)} s, ${events} events back; ` +
      `/healthz p50 ${latencies[latencies.length >> 1]?.toFixed(1)} ms, max ${
        latencies.at(-1)?.toFixed(1)
      } ms`,
  );
  assert.ok(events > 0, "the server answered");
  // Every session still works, and the server is alive.
  for (const client of clients) {
    client.send({ op: "close", id: 7_000_000 });
    assert.deepEqual(await client.nextFor(7_000_000), {
      ev: "error",
      id: 7_000_000,
      msg: "unknown id 7000000",
    });
  }
  await healthzMs(port);
  for (const client of clients) await client.close();
  const after = await fdsBackTo(server, baseline, "after the fuzz");
  report(`fuzz: server fds ${baseline} before, ${after} after`);
  assert.equal((await server.stop()).code, 0, server.output);
});

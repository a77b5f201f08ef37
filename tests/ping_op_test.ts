/**
 * The `ping` protocol extension end to end: ICMP echo to 127.0.0.1 and ::1 through the real
 * server (in process, or as a child with `WASMNET_TEST_SERVER=bun`/`deno`) with the client
 * library in Deno and in headless Chromium, and the raw protocol in both framings; denials for
 * every spelling of a denied address; a timeout; `close` of a pending ping; and what the client
 * does against a server without the extension (`EUNSUPPORTED`).
 *
 * The server's transport picks its best ICMP mechanism (here: raw sockets as root, or datagram
 * sockets, or the system `ping`); when it has none, the echo tests print why and check the error.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Policy, setLogLevel, type WasmnetServer } from "../mod.ts";
import { WasmnetClient, WasmnetError } from "../src/client/mod.ts";
import type { Framing } from "../src/protocol/mod.ts";
import { denoIcmp } from "../src/transport/deno/mod.ts";
import { inProcess, startTestServer } from "./helpers/server.ts";
import { TestClient } from "./helpers/ws_client.ts";
import { bundleClient } from "./helpers/bundle.ts";
import { OLD_SERVERS, startOldServer } from "./helpers/old_server.ts";
import { openPage, requireChromium } from "./helpers/browser.ts";

setLogLevel((Deno.env.get("WASMNET_LOG") as "debug" | undefined) ?? "warn");

const FRAMINGS: readonly Framing[] = ["json", "binary"];
const te = new TextEncoder();
const td = new TextDecoder();

/** Why the in-process server has no ICMP (undefined: it has some; a child is asked instead). */
function noIcmpHere(family: 4 | 6): string | undefined {
  if (!inProcess()) return undefined;
  const support = denoIcmp.detect(family);
  return support.mechanism === undefined ? support.reasons.join(", ") : undefined;
}

async function open(url: string, binary: boolean): Promise<WasmnetClient> {
  const client = new WasmnetClient(url, { binary });
  await client.ready();
  return client;
}

function isCode(code: string, message?: RegExp): (e: unknown) => boolean {
  return (e: unknown): boolean =>
    e instanceof WasmnetError && e.code === code && (message?.test(e.message) ?? true);
}

/** Pings and checks the reply, or (no ICMP on the server) prints why and checks the error. */
async function pingOrExplain(
  client: WasmnetClient,
  addr: string,
  family: 4 | 6,
  what: string,
): Promise<void> {
  const reason = noIcmpHere(family);
  const data = te.encode(`echo ${what} ✓`);
  const pending = client.ping(addr, { seq: 4242, data, timeoutMs: 2000 });
  if (reason !== undefined) {
    await assert.rejects(pending, isCode("ESERVER", /ICMP unavailable/));
    // deno-lint-ignore no-console -- a mechanism that cannot exist here is reported, never silent
    console.log(`skipped echo to ${addr} (${what}): no ICMP in this process: ${reason}`);
    return;
  }
  let reply;
  try {
    reply = await pending;
  } catch (e) {
    if (e instanceof WasmnetError && /ICMP unavailable/.test(e.message)) {
      // deno-lint-ignore no-console -- the child server has no ICMP: say so
      console.log(`skipped echo to ${addr} (${what}): the server says: ${e.message}`);
      return;
    }
    throw e;
  }
  assert.equal(reply.source, family === 4 ? "127.0.0.1" : "::1", what);
  assert.equal(reply.seq, 4242, what);
  assert.equal(reply.type, family === 4 ? 0 : 129, what);
  assert.equal(reply.code, 0, what);
  assert.ok(reply.rttMs >= 0 && reply.rttMs < 2000, `${what}: rtt ${reply.rttMs}`);
  assert.equal(td.decode(reply.data), `echo ${what} ✓`, what);
  assert.equal(client.supports("ping"), true);
}

for (const framing of FRAMINGS) {
  Deno.test(`ping op: client.ping 127.0.0.1 and ::1 through the server (${framing})`, async () => {
    await using server = await startTestServer({ policy: Policy.allowAll() });
    const client = await open(server.url, framing === "binary");
    try {
      await pingOrExplain(client, "127.0.0.1", 4, `${framing} v4`);
      await pingOrExplain(client, "::1", 6, `${framing} v6`);
      await pingOrExplain(client, "localhost", 4, `${framing} name`);
      // Several at once, each answered on its own id.
      if (noIcmpHere(4) === undefined) {
        const replies = await Promise.allSettled(
          [1, 2, 3].map((seq) => client.ping("127.0.0.1", { seq, data: `n${seq}` })),
        );
        const ok = replies.filter((r) => r.status === "fulfilled").map((r) => r.value);
        if (ok.length > 0) {
          assert.equal(ok.length, 3);
          assert.deepEqual(ok.map((r) => [r.seq, td.decode(r.data)]), [[1, "n1"], [2, "n2"], [
            3,
            "n3",
          ]]);
        }
      }
    } finally {
      client.disconnect();
      await client.closed;
    }
  });

  Deno.test(`ping op: the wire events, a timeout and close of a pending ping (${framing})`, async () => {
    await using server = await startTestServer({ policy: Policy.allowAll() });
    await using raw = await TestClient.open(server.url, framing);
    raw.send({
      op: "ping",
      id: 5,
      addr: "127.0.0.1",
      seq: 9,
      data: te.encode("x"),
      timeout_ms: 2000,
    });
    const ev = await raw.nextFor(5);
    if (ev.ev === "pong") {
      assert.deepEqual({ ...ev, rtt_ms: 0 }, {
        ev: "pong",
        id: 5,
        source: "127.0.0.1",
        seq: 9,
        type: 0,
        code: 0,
        rtt_ms: 0,
        data: te.encode("x"),
      });
    } else {
      assert.equal(ev.ev, "error");
      assert.match(ev.ev === "error" ? ev.msg : "", /^ping 127\.0\.0\.1 failed: ICMP unavailable/);
      // deno-lint-ignore no-console -- reported, never silent
      console.log(`skipped the pong check (${framing}): ${ev.ev === "error" ? ev.msg : ""}`);
      return;
    }
    // The id is free again after its pong.
    raw.send({ op: "ping", id: 5, addr: "::1", seq: 1, data: new Uint8Array(), timeout_ms: 2000 });
    const again = await raw.nextFor(5);
    assert.equal(again.ev, "pong");
    // TEST-NET-3 (RFC 5737) answers nobody: the ping times out with the documented text (or the
    // machine has no route at all).
    raw.send({
      op: "ping",
      id: 6,
      addr: "203.0.113.1",
      seq: 1,
      data: new Uint8Array(),
      timeout_ms: 300,
    });
    const t0 = performance.now();
    const late = await raw.nextFor(6);
    assert.equal(late.ev, "error");
    const msg = late.ev === "error" ? late.msg : "";
    assert.ok(
      msg === "ping timed out after 300 ms" || /^ping 203\.0\.113\.1 failed: /.test(msg),
      msg,
    );
    if (msg.startsWith("ping timed out")) assert.ok(performance.now() - t0 >= 290);
    // close of a pending ping: `closed`, and nothing else for the id.
    raw.send({
      op: "ping",
      id: 7,
      addr: "203.0.113.1",
      seq: 1,
      data: new Uint8Array(),
      timeout_ms: 5000,
    });
    raw.send({ op: "close", id: 7 });
    assert.deepEqual(await raw.nextFor(7), { ev: "closed", id: 7 });
    // Malformed: a timeout out of range is refused by the codec (id 0).
    if (framing === "json") {
      raw.sendRaw('{"op":"ping","id":8,"addr":"127.0.0.1","timeout_ms":0}');
      const bad = await raw.nextFor(0);
      assert.deepEqual(bad, {
        ev: "error",
        id: 0,
        msg: 'invalid request: field "timeout_ms" must be an integer from 1 to 60000, got 0',
      });
    }
    // An address that is not one.
    raw.send({
      op: "ping",
      id: 9,
      addr: "exa mple",
      seq: 1,
      data: new Uint8Array(),
      timeout_ms: 100,
    });
    const invalid = await raw.nextFor(9);
    assert.equal(invalid.ev, "error");
  });
}

/** Every spelling of loopback addresses, denied by the default policy. */
const DENIED = [
  "127.0.0.1",
  "127.1",
  "2130706433",
  "0x7f000001",
  "0177.0.0.1",
  "127.0.0.2",
  "::1",
  "0:0:0:0:0:0:0:1",
  "::ffff:127.0.0.1",
  "::ffff:7f00:1",
  "localhost",
  "LOCALHOST.",
  "10.0.0.1",
  "169.254.169.254",
];

for (const framing of FRAMINGS) {
  Deno.test(`ping op: denied for every spelling of a denied address (${framing})`, async () => {
    await using server = await startTestServer({ policy: Policy.defaults() });
    const client = await open(server.url, framing === "binary");
    try {
      for (const addr of DENIED) {
        await assert.rejects(
          client.ping(addr, { seq: 1, timeoutMs: 500 }),
          isCode("EDENIED", /:7 |denied|default-deny|is in /),
          addr,
        );
      }
      // A policy that names the host without a port denies it; one that allows only another
      // port of it does not admit a ping (ICMP is checked as port 7, the echo service).
      await using raw = await TestClient.open(server.url, framing);
      raw.send({
        op: "ping",
        id: 1,
        addr: "127.0.0.1",
        seq: 0,
        data: new Uint8Array(),
        timeout_ms: 100,
      });
      const ev = await raw.nextFor(1);
      assert.equal(ev.ev, "denied");
      assert.match(ev.ev === "denied" ? ev.msg : "", /^127\.0\.0\.1:7 is /);
    } finally {
      client.disconnect();
      await client.closed;
    }
  });
}

Deno.test("ping op: an allow-list policy admits a ping only where it admits port 7", async () => {
  const policy = Policy.fromToml(
    '[network]\ndeny = []\nallow = ["127.0.0.1:7", "127.0.0.2:80"]',
    "<ping test>",
  );
  await using server = await startTestServer({ policy });
  await using raw = await TestClient.open(server.url, "json");
  raw.send({
    op: "ping",
    id: 1,
    addr: "127.0.0.2",
    seq: 0,
    data: new Uint8Array(),
    timeout_ms: 100,
  });
  const denied = await raw.nextFor(1);
  assert.equal(denied.ev, "denied");
  raw.send({
    op: "ping",
    id: 2,
    addr: "127.0.0.1",
    seq: 0,
    data: new Uint8Array(),
    timeout_ms: 2000,
  });
  const allowed = await raw.nextFor(2);
  assert.ok(
    allowed.ev === "pong" ||
      (allowed.ev === "error" && /ICMP unavailable/.test(allowed.msg)),
    JSON.stringify(allowed),
  );
});

// --- servers without the extension -------------------------------------------------------------

// How servers without `ping` refuse it (id 0): this server before it, and wasmnet 0.1.3.
for (const [name, answer] of Object.entries(OLD_SERVERS)) {
  for (const framing of FRAMINGS) {
    Deno.test(`old server (${name}): ping rejects EUNSUPPORTED (${framing})`, async () => {
      await using server = await startTestServer({ policy: Policy.allowAll() });
      await using old = await startOldServer(server.url, answer, ["ping"]);
      const client = await open(old.url, framing === "binary");
      try {
        const both = await Promise.allSettled([
          client.ping("127.0.0.1", { seq: 1 }),
          client.ping("::1", { seq: 2 }),
        ]);
        for (const r of both) {
          assert.equal(r.status, "rejected");
          const e = r.status === "rejected" ? r.reason : undefined;
          assert.ok(isCode("EUNSUPPORTED", /does not support ping/)(e), String(e));
        }
        assert.equal(client.supports("ping"), false);
        // Known now: the next one fails at once, without a request.
        await assert.rejects(client.ping("127.0.0.1"), isCode("EUNSUPPORTED"));
      } finally {
        client.disconnect();
        await client.closed;
      }
    });
  }
}

Deno.test("ping: the client refuses a bad seq or timeout before sending", async () => {
  await using server = await startTestServer({ policy: Policy.allowAll() });
  const client = await open(server.url, false);
  try {
    await assert.rejects(client.ping("127.0.0.1", { seq: 65536 }), RangeError);
    await assert.rejects(client.ping("127.0.0.1", { seq: -1 }), RangeError);
    await assert.rejects(client.ping("127.0.0.1", { timeoutMs: 0 }), RangeError);
    await assert.rejects(client.ping("127.0.0.1", { timeoutMs: 60_001 }), RangeError);
  } finally {
    client.disconnect();
    await client.closed;
  }
});

// --- headless Chromium ---------------------------------------------------------------------------

const PAGE = `<!doctype html>
<script type="module">
import { WasmnetClient } from "/wasmnet-client.js";
globalThis.ping = async (url, binary, addr) => {
  const client = new WasmnetClient(url, { binary });
  await client.ready();
  try {
    const r = await client.ping(addr, { seq: 77, data: "from the browser", timeoutMs: 2000 });
    return { ok: true, source: r.source, seq: r.seq, type: r.type, code: r.code,
      rtt: r.rttMs >= 0, data: new TextDecoder().decode(r.data) };
  } catch (e) {
    return { ok: false, code: e.code, message: e.message };
  } finally {
    client.disconnect();
  }
};
globalThis.ready = true;
</script>`;

Deno.test("ping op: client.ping in headless Chromium (echo and denial, both framings)", async () => {
  requireChromium();
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-ping-" });
  try {
    const bundle = await bundleClient(dir);
    await using open = await startTestServer({ policy: Policy.allowAll() });
    await using strict: WasmnetServer = await startTestServer({ policy: Policy.defaults() });
    await using web = await openPage(PAGE, {
      "/wasmnet-client.js": { body: bundle, type: "text/javascript" },
    });
    const call = (...args: unknown[]): Promise<unknown> => web.call("ping", ...args);
    {
      for (const binary of [false, true]) {
        for (const [addr, type] of [["127.0.0.1", 0], ["::1", 129]] as const) {
          const got = await call(open.url, binary, addr) as Record<string, unknown>;
          if (got.ok === false && /ICMP unavailable/.test(String(got.message))) {
            // deno-lint-ignore no-console -- reported, never silent
            console.log(`skipped the browser echo to ${addr}: ${String(got.message)}`);
            continue;
          }
          assert.deepEqual(got, {
            ok: true,
            source: addr,
            seq: 77,
            type,
            code: 0,
            rtt: true,
            data: "from the browser",
          }, `${addr} binary=${binary}`);
        }
        const denied = await call(strict.url, binary, "127.1") as Record<string, unknown>;
        assert.equal(denied.ok, false);
        assert.equal(denied.code, "EDENIED");
        assert.match(String(denied.message), /^127\.0\.0\.1:7 is /);
      }
      assert.deepEqual(web.errors, []);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

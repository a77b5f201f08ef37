// The W.A.T.E.R. browser dialer (src/wasm/water/browser.ts, bundled) in headless Chromium: the
// page writes plaintext to the XOR example module running in a worker; the module's connection
// is a wasmnet socket through the real proxy (startTestServer) to a Deno water listener with the
// same module, which forwards plaintext to a loopback echo. The bytes between the proxy and the
// listener are XORed; 1 MiB comes back byte-identical; a remote the proxy's policy denies fails
// the dial with the proxy's reason. Needs Debian's `chromium`: the test FAILS without it.
import assert from "node:assert/strict";
import { Policy } from "../src/policy/mod.ts";
import { denoTransport } from "../src/transport/deno/mod.ts";
import { startWaterHost } from "../src/wasm/water/mod.ts";
import { startTestServer } from "./helpers/server.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { bundleClient } from "./helpers/bundle.ts";
import { openPage, READ_ALL_JS, requireChromium } from "./helpers/browser.ts";
import { bundleWater, exampleModule, startTap, xor } from "./helpers/water.ts";

const KEY = "browser-key";

const PAGE = `<!doctype html><meta charset="utf-8"><title>water</title>
<script type="module">
import { WasmnetClient } from "/wasmnet-client.js";
import { WaterDialer } from "/water.js";

${READ_ALL_JS}

async function dialer(url, port) {
  const client = new WasmnetClient(url, { binary: true });
  const module = new Uint8Array(await (await fetch("/xor.wasm")).arrayBuffer());
  const d = await WaterDialer.create({
    client,
    module,
    config: new TextEncoder().encode("${KEY}\\n"),
    remote: { host: "127.0.0.1", port },
    workerUrl: "/water-worker.js",
  });
  return { client, d };
}

globalThis.echo = async (url, port, size) => {
  const { client, d } = await dialer(url, port);
  const conn = await d.dial();
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(payload.subarray(i, Math.min(size, i + 65536)));
  const writer = conn.writable.getWriter();
  const writing = (async () => {
    for (let i = 0; i < size; i += 32768) await writer.write(payload.subarray(i, i + 32768));
    writer.releaseLock();
  })();
  const back = await readAll(conn.readable, size);
  await writing;
  await conn.close();
  client.disconnect();
  let same = back.length === payload.length;
  for (let i = 0; same && i < back.length; i++) if (back[i] !== payload[i]) same = false;
  return { bytes: back.length, same, isolated: crossOriginIsolated };
};

globalThis.text = async (url, port, text) => {
  const { client, d } = await dialer(url, port);
  const conn = await d.dial();
  const data = new TextEncoder().encode(text);
  const writer = conn.writable.getWriter();
  await writer.write(data);
  writer.releaseLock();
  const back = new TextDecoder().decode(await readAll(conn.readable, data.length));
  await conn.close();
  client.disconnect();
  return back;
};

globalThis.denied = async (url, port) => {
  const { client, d } = await dialer(url, port);
  try {
    await d.dial();
    return "connected";
  } catch (e) {
    return String(e.message);
  } finally {
    client.disconnect();
  }
};
globalThis.ready = true;
</script>`;

Deno.test("water browser: a page dials through the XOR module and the real proxy to a water listener", async () => {
  requireChromium();
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-water-browser-" });
  try {
    const client = await bundleClient(dir);
    const { host: waterJs, worker: workerJs } = await bundleWater(dir);
    const xorWasm = await exampleModule("xor");
    await using echo = await startTcpEcho();
    await using listener = await startWaterHost({
      module: xorWasm,
      role: "listener",
      listen: { host: "127.0.0.1", port: 0 },
      remote: { host: "127.0.0.1", port: echo.port },
      config: new TextEncoder().encode(KEY),
      policy: Policy.allowAll(),
      transport: denoTransport(),
    });
    await using tap = startTap(listener.addr.port);
    await using blocked = await startTcpEcho();
    await using server = await startTestServer({
      policy: Policy.fromConfig(
        { deny: [`127.0.0.1:${blocked.port}`], allow: ["*"], maxBandwidthMbps: 0 },
        "<test>",
      ),
    });
    const isolation = {
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
    };
    const files: Record<string, [string | Uint8Array<ArrayBuffer>, string]> = {
      "/wasmnet-client.js": [client, "text/javascript"],
      "/water.js": [waterJs, "text/javascript"],
      "/water-worker.js": [workerJs, "text/javascript"],
      "/xor.wasm": [xorWasm, "application/wasm"],
    };
    await using web = await openPage(
      PAGE,
      Object.fromEntries(
        Object.entries(files).map(([path, [body, type]]) => [path, { body, type }]),
      ),
      { headers: isolation },
    );
    const call = web.call;
    {
      const text = "plaintext from a page, XORed on the wire";
      assert.equal(await call("text", server.url, tap.port, text), text);
      const wire = tap.up();
      assert.deepEqual(
        wire,
        xor(new TextEncoder().encode(text), new TextEncoder().encode(KEY)),
        "the proxy → listener bytes are the module's XORed form",
      );

      assert.deepEqual(await call("echo", server.url, tap.port, 1 << 20), {
        bytes: 1 << 20,
        same: true,
        isolated: true,
      });
      assert.equal(echo.accepted, 2);

      const why = String(await call("denied", server.url, blocked.port));
      assert.match(why, /watm_dial_v1 returned -2 \(2 \(ACCES\)\)/);
      assert.match(why, new RegExp(`denied by rule "127\\.0\\.0\\.1:${blocked.port}"`));
      assert.equal(blocked.accepted, 0);
      assert.deepEqual(web.errors, []);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// The bundled client (one ES module, as `deno task bundle` builds it) in a real headless Chromium
// against the real server: (1) an HTTP GET to a loopback HTTP server, (2) 1 MiB through a TCP echo
// with the stream API, (3) a UDP datagram and its echo, (4) an accepted inbound connection — in
// JSON and binary framing. Needs Debian's `chromium` (`.ci/run` installs it); when it is missing
// the test FAILS with the install command, it never passes silently.
import assert from "node:assert/strict";
import { Policy, setLogLevel } from "../mod.ts";
import { startTestServer } from "./helpers/server.ts";
import { startHttpServer, startTcpEcho, startUdpEcho } from "./helpers/echo_servers.ts";
import { bundleClient } from "./helpers/bundle.ts";
import { openPage, READ_ALL_JS, requireChromium } from "./helpers/browser.ts";

setLogLevel((Deno.env.get("WASMNET_LOG") as "debug" | undefined) ?? "warn");

// Runs in the page (plain JS). Each function returns a JSON-able result the test asserts on.
const PAGE = `<!doctype html><meta charset="utf-8"><title>wasmnet client</title>
<script type="module">
import { WasmnetClient } from "/wasmnet-client.js";

${READ_ALL_JS}

globalThis.httpGet = async (url, binary, port) => {
  const client = new WasmnetClient(url, { binary });
  await client.ready();
  const sock = client.openTcp("127.0.0.1", port);
  await sock.opened;
  const writer = sock.writable.getWriter();
  await writer.write(new TextEncoder().encode("GET /hello HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n"));
  writer.releaseLock();
  const body = new TextDecoder().decode(await readAll(sock.readable, 1 << 20));
  client.disconnect();
  return body;
};

globalThis.echoMiB = async (url, binary, port) => {
  const client = new WasmnetClient(url, { binary });
  await client.ready();
  const sock = client.openTcp("127.0.0.1", port);
  await sock.opened;
  const payload = new Uint8Array(1 << 20);
  for (let i = 0; i < payload.length; i += 65536) crypto.getRandomValues(payload.subarray(i, i + 65536));
  const writer = sock.writable.getWriter();
  const writing = (async () => {
    for (let i = 0; i < payload.length; i += 32768) await writer.write(payload.subarray(i, i + 32768));
    writer.releaseLock();
  })();
  const back = await readAll(sock.readable, payload.length);
  await writing;
  await sock.close();
  client.disconnect();
  let same = back.length === payload.length;
  for (let i = 0; same && i < back.length; i++) if (back[i] !== payload[i]) same = false;
  return { bytes: back.length, same };
};

globalThis.udpEcho = async (url, binary, port) => {
  const client = new WasmnetClient(url, { binary });
  await client.ready();
  const sock = client.openUdp("127.0.0.1", port);
  const { localPort } = await sock.opened;
  await sock.send(new TextEncoder().encode("datagram ✓"));
  const it = sock[Symbol.asyncIterator]();
  const { value } = await it.next();
  await sock.close();
  client.disconnect();
  return { localPort: localPort > 0, text: new TextDecoder().decode(value.data), addr: value.addr, port: value.port };
};

globalThis.startAccept = async (url, binary) => {
  const client = new WasmnetClient(url, { binary });
  await client.ready();
  const listener = client.openListener("127.0.0.1", 0);
  const { port } = await listener.opened;
  globalThis.accepted = (async () => {
    const it = listener[Symbol.asyncIterator]();
    const { value: conn } = await it.next();
    const info = await conn.opened;
    const got = new TextDecoder().decode(await readAll(conn.readable, 4));
    const writer = conn.writable.getWriter();
    await writer.write(new TextEncoder().encode("pong"));
    writer.releaseLock();
    await conn.close();
    await listener.close();
    client.disconnect();
    return { got, remote: info.remoteAddress };
  })();
  return port;
};
globalThis.ready = true;
</script>`;

Deno.test("client browser: the bundle in headless Chromium does HTTP, a 1 MiB stream echo, UDP and accept", async () => {
  requireChromium();
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-client-" });
  try {
    const bundle = await bundleClient(dir);
    await using http = await startHttpServer("hello from loopback\n");
    await using echo = await startTcpEcho();
    await using udp = await startUdpEcho();
    await using server = await startTestServer({ policy: Policy.allowAll() });
    await using web = await openPage(PAGE, {
      "/wasmnet-client.js": { body: bundle, type: "text/javascript" },
    });
    const call = web.call;
    {
      for (const binary of [false, true]) {
        const what = binary ? "binary" : "json";
        const body = String(await call("httpGet", server.url, binary, http.port));
        assert.match(body, /^HTTP\/1\.1 200 OK\r\n/, what);
        assert.match(body, /hello from loopback\n$/, what);

        assert.deepEqual(await call("echoMiB", server.url, binary, echo.port), {
          bytes: 1 << 20,
          same: true,
        }, what);

        assert.deepEqual(await call("udpEcho", server.url, binary, udp.port), {
          localPort: true,
          text: "datagram ✓",
          addr: "127.0.0.1",
          port: udp.port,
        }, what);

        const port = Number(await call("startAccept", server.url, binary));
        assert.ok(port > 0, what);
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(new TextEncoder().encode("ping"));
        const buf = new Uint8Array(4);
        let n = 0;
        while (n < 4) {
          const r = await conn.read(buf.subarray(n));
          if (r === null) break;
          n += r;
        }
        const eof = await conn.read(new Uint8Array(1));
        conn.close();
        assert.equal(new TextDecoder().decode(buf), "pong", what);
        assert.equal(eof, null, what);
        const local = conn.localAddr as Deno.NetAddr;
        assert.deepEqual(await web.page.evaluate("globalThis.accepted"), {
          got: "ping",
          remote: `127.0.0.1:${local.port}`,
        }, what);
      }
      assert.deepEqual(web.errors, []);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

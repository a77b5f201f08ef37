// The harness host in headless Chromium (src/wasm/browser_harness.ts bundled with @extism/extism,
// host functions on a WasmnetClient) through the real proxy: the same plugins as the server host
// (the WAT and AssemblyScript probes, the HTTP GET and DNS examples) reach loopback servers under
// the server's policy; a denied destination returns 0; a trap is reported; ICMP through the
// `ping` op when the server has a mechanism. Needs Debian's `chromium`: when it is missing the
// test FAILS with the install command, it never passes silently.
import assert from "node:assert/strict";
import { Policy } from "../mod.ts";
import { startTestServer, testTransport } from "./helpers/server.ts";
import { startHttpServer, startTcpEcho, startUdpEcho } from "./helpers/echo_servers.ts";
import { startDnsServer } from "./helpers/dns_server.ts";
import { bundleClient, bundleForBrowser } from "./helpers/bundle.ts";
import { openPage, requireChromium } from "./helpers/browser.ts";
import { plugin, type PluginName } from "./helpers/plugins.ts";

const PAGE = `<!doctype html><meta charset="utf-8"><title>harness</title>
<script type="module">
import { WasmnetClient } from "/wasmnet-client.js";
import { loadBrowserPlugin } from "/harness.js";

globalThis.runPlugin = async (url, name, fn, input) => {
  const client = new WasmnetClient(url, { binary: true });
  await client.ready();
  const wasm = new Uint8Array(await (await fetch("/" + name + ".wasm")).arrayBuffer());
  const plugin = await loadBrowserPlugin(wasm, { client, recvWaitMs: 2000, timeoutMs: 10000 });
  try {
    return new TextDecoder().decode(await plugin.call(fn, input));
  } catch (e) {
    return "ERR " + e.code + ": " + e.message;
  } finally {
    await plugin.close();
    client.disconnect();
  }
};
globalThis.ready = true;
</script>`;

function bundleHarness(dir: string): Promise<string> {
  return bundleForBrowser("src/wasm/browser_harness.ts", `${dir}/harness.js`);
}

Deno.test("harness host in headless Chromium through the real proxy", async (t) => {
  requireChromium();
  const dir = await Deno.makeTempDir();
  try {
    const files = new Map<string, { body: string | Uint8Array; type: string }>([
      ["/", { body: PAGE, type: "text/html" }],
      ["/wasmnet-client.js", { body: await bundleClient(dir), type: "text/javascript" }],
      ["/harness.js", { body: await bundleHarness(dir), type: "text/javascript" }],
    ]);
    const names: PluginName[] = ["probe.wat", "probe.as", "http_get", "dns_query", "ping"];
    for (const name of names) {
      files.set(`/${name}.wasm`, { body: await plugin(name), type: "application/wasm" });
    }
    await using open = await startTestServer();
    await using strict = await startTestServer({ policy: Policy.defaults() });
    await using echo = await startTcpEcho();
    await using udp = await startUdpEcho();
    await using http = await startHttpServer("hello, browser plugin");
    await using dns = await startDnsServer({ records: { "browser.test": { A: ["192.0.2.9"] } } });
    await using web = await openPage(PAGE, Object.fromEntries(files));
    {
      const run = async (url: string, name: string, fn: string, input: string): Promise<string> =>
        String(await web.call("runPlugin", url, name, fn, input));
      for (const name of ["probe.wat", "probe.as"]) {
        await t.step(`${name}: tcp and udp echo`, async () => {
          assert.equal(
            await run(open.url, name, "tcp", `127.0.0.1:${echo.port}\nfrom the browser`),
            "from the browser",
          );
          assert.equal(
            await run(open.url, name, "udp", `127.0.0.1:${udp.port}\ndatagram`),
            "datagram",
          );
        });
        await t.step(`${name}: denied by the server's policy, in any spelling`, async () => {
          for (const host of ["127.0.0.1", "127.1", "0x7f000001", "[::ffff:127.0.0.1]", "[::1]"]) {
            assert.equal(
              await run(strict.url, name, "tcp", `${host}:${echo.port}\nx`),
              "tcp_connect=0",
              host,
            );
            assert.equal(
              await run(strict.url, name, "udp", `${host}:${udp.port}\nx`),
              "udp_connect=0",
              host,
            );
          }
        });
      }
      await t.step("http_get example (the same TCP plugin as on the server)", async () => {
        const response = await run(open.url, "http_get", "run", `127.0.0.1:${http.port}/`);
        assert.match(response, /^HTTP\/1\.[01] 200 OK\r\n/);
        assert.ok(response.endsWith("hello, browser plugin"), response);
      });
      await t.step("dns_query example", async () => {
        assert.equal(
          await run(open.url, "dns_query", "run", `127.0.0.1:${dns.port} browser.test`),
          "192.0.2.9\n",
        );
      });
      await t.step("a trap is reported", async () => {
        assert.equal(
          await run(open.url, "probe.wat", "trap", ""),
          "ERR trap: plugin trapped: unreachable",
        );
      });
      await t.step("icmp through the ping op", async () => {
        const transport = testTransport();
        let mechanism: string | undefined;
        try {
          const socket = await transport.openIcmp?.(4);
          mechanism = socket?.mechanism;
          socket?.close();
        } catch (e) {
          // deno-lint-ignore no-console
          console.log(`skipped: the server has no ICMP mechanism here: ${(e as Error).message}`);
          return;
        }
        if (mechanism === undefined) {
          // deno-lint-ignore no-console
          console.log("skipped: the server's transport offers no ICMP");
          return;
        }
        const reply = JSON.parse(
          await run(open.url, "probe.wat", "icmp", "127.0.0.1\nbrowser ping"),
        );
        assert.equal(reply.source, "127.0.0.1");
        assert.equal(reply.seq, 7);
        assert.equal(reply.data, btoa("browser ping"));
        assert.equal(await run(strict.url, "probe.wat", "icmp", "127.0.0.1\nx"), "icmp_send=0");
      });
      assert.deepEqual(web.errors, []);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

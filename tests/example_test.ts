import assert from "node:assert/strict";
import { httpGetViaWasmnet } from "../examples/http_get.ts";
import { startTestServer } from "./helpers/server.ts";
import { startHttpServer } from "./helpers/echo_servers.ts";

Deno.test("README example: an HTTP GET through the proxy returns the page", async () => {
  await using http = await startHttpServer("the page\n");
  await using server = await startTestServer();
  const text = await httpGetViaWasmnet(server.url, "127.0.0.1", http.port, "/");
  assert.match(text, /^HTTP\/1\.1 200 OK/);
  assert.match(text, /the page\n$/);
});

Deno.test("README example: a denied target is reported", async () => {
  await using server = await startTestServer({
    policy: (await import("../src/policy/mod.ts")).Policy.defaults(),
  });
  await assert.rejects(httpGetViaWasmnet(server.url, "127.0.0.1", 80), /^Error: denied: /);
});

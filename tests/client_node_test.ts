// The bundled client (one ES module) runs under Node.js against the real server: TCP echo with
// the wasmnet-style API and the stream API, in both framings. Node ≥ 22 has a global WebSocket;
// Node 20 (this machine's) needs --experimental-websocket, which the test passes when needed.
import assert from "node:assert/strict";
import { Policy, setLogLevel } from "../mod.ts";
import { startTestServer } from "./helpers/server.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { bundleClient } from "./helpers/bundle.ts";

setLogLevel((Deno.env.get("WASMNET_LOG") as "debug" | undefined) ?? "warn");

const SCRIPT = `
import { WasmnetClient } from "./wasmnet-client.js";
const [url, port] = process.argv.slice(2);
const report = {};
for (const binary of [false, true]) {
  const client = new WasmnetClient(url, { binary });
  await client.ready();
  const id = await client.connect("127.0.0.1", Number(port));
  const got = new Promise((resolve) => client.onData(id, resolve));
  client.send(id, "from node ✓");
  const text = new TextDecoder().decode(await got);
  client.close(id);
  const sock = client.openTcp("127.0.0.1", Number(port));
  await sock.opened;
  const writer = sock.writable.getWriter();
  await writer.write(new Uint8Array(100000).fill(7));
  let n = 0;
  const reader = sock.readable.getReader();
  while (n < 100000) n += (await reader.read()).value.length;
  await sock.close();
  client.disconnect();
  report[binary ? "binary" : "json"] = { text, n };
}
console.log(JSON.stringify(report));
`;

async function nodeMajor(): Promise<number> {
  const out = await new Deno.Command("node", { args: ["--version"], stdout: "piped" }).output();
  return Number(/^v(\d+)/.exec(new TextDecoder().decode(out.stdout))?.[1] ?? 0);
}

Deno.test("client node: the bundle runs under Node.js against the real server", async () => {
  const major = await nodeMajor();
  assert.ok(
    major >= 20,
    `Node.js ${major} is too old: the client needs Node 22 (or 20 with --experimental-websocket)`,
  );
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-node-" });
  try {
    await bundleClient(dir);
    await Deno.writeTextFile(`${dir}/run.mjs`, SCRIPT);
    await using echo = await startTcpEcho();
    await using server = await startTestServer({ policy: Policy.allowAll() });
    const flags = major < 22 ? ["--experimental-websocket", "--no-warnings"] : [];
    const child = new Deno.Command("node", {
      args: [...flags, `${dir}/run.mjs`, server.url, String(echo.port)],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const { code, stdout, stderr } = await child.output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const expected = { text: "from node ✓", n: 100000 };
    assert.deepEqual(JSON.parse(new TextDecoder().decode(stdout)), {
      json: expected,
      binary: expected,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

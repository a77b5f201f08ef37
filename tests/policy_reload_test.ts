/**
 * Policy hot reload (issue 14): SIGHUP and `--watch-policy` reload the `--policy` file; new dials
 * — on sessions that are already open too — use the new policy, open sockets keep transferring
 * through the reload, and a broken file is logged and the old policy kept.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loopbackPolicy, reloadPolicy, startTestServer } from "./helpers/server.ts";
import { ServerProcess } from "./helpers/server_process.ts";
import { TestClient } from "./helpers/ws_client.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { delay, until } from "./helpers/wait.ts";
import { Policy } from "../src/policy/mod.ts";
import type { WireEvent } from "../src/protocol/mod.ts";

const te = new TextEncoder();

/** A loopback policy written as TOML that denies the given ports on 127.0.0.1. */
function denyPorts(...ports: number[]): Policy {
  const deny = ports.map((p) => `"127.0.0.1:${p}"`).join(", ");
  return Policy.fromToml(
    `[network]\ndeny = [${deny}]\nallow = ["*"]\nmax_bandwidth_mbps = 0\n`,
    "reload.toml",
  );
}

async function connectEv(client: TestClient, id: number, port: number): Promise<WireEvent> {
  client.send({ op: "connect", id, addr: "127.0.0.1", port });
  return await client.nextFor(id);
}

Deno.test("policy reload: new dials of an open session see the new policy while an open socket keeps transferring", async () => {
  await using a = await startTcpEcho();
  await using b = await startTcpEcho();
  // Start from a file policy (so a child server has a file to reload) that allows both.
  await using server = await startTestServer({ policy: denyPorts(1) });
  await using client = await TestClient.open(server.url, "binary");
  assert.equal((await connectEv(client, 1, a.port)).ev, "connected");
  // Keep socket 1 transferring through the reload.
  let echoed = 0;
  let stop = false;
  const load = (async () => {
    let i = 0;
    while (!stop) {
      const text = `chunk ${i++};`;
      client.send({ op: "send", id: 1, data: te.encode(text) });
      await client.collect(1, te.encode(text).byteLength);
      echoed++;
    }
  })();
  await until(() => echoed > 20, "transfer running");
  await reloadPolicy(server, denyPorts(b.port));
  const before = echoed;
  const denied = await connectEv(client, 2, b.port);
  assert.equal(denied.ev, "denied", JSON.stringify(denied));
  await until(() => echoed > before + 20, "the open socket keeps transferring after the reload");
  // And back: the next reload allows it again, for the same session.
  await reloadPolicy(server, denyPorts(1));
  assert.equal((await connectEv(client, 3, b.port)).ev, "connected");
  stop = true;
  await load;
  assert.equal(b.accepted, 1);
});

Deno.test("policy reload: SIGHUP with a broken file logs the error and keeps the old policy; --watch-policy reloads on change", async () => {
  await using echo = await startTcpEcho();
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-reload-" });
  const file = join(dir, "policy.toml");
  try {
    await Deno.writeTextFile(file, loopbackPolicy().toToml());
    const proc = await ServerProcess.start(["--policy", file, "--watch-policy"]);
    try {
      await using client = await TestClient.open(`ws://127.0.0.1:${proc.port}/`, "json");
      assert.equal((await connectEv(client, 1, echo.port)).ev, "connected");
      await Deno.writeTextFile(file, "[network\ndeny = ");
      Deno.kill(proc.pid, "SIGHUP");
      await until(
        () => /policy reload failed; the previous policy stays in force/.test(proc.output),
        "the reload error is logged",
      );
      assert.equal((await connectEv(client, 2, echo.port)).ev, "connected", "old policy kept");
      // --watch-policy: writing a good file is enough.
      await delay(300); // let the broken write's watch event pass
      await Deno.writeTextFile(file, denyPorts(echo.port).toToml());
      await until(
        () => /policy reloaded .*why="file changed"/.test(proc.output),
        "reloaded on change",
      );
      assert.equal((await connectEv(client, 3, echo.port)).ev, "denied");
    } finally {
      const status = await proc.stop("SIGTERM");
      assert.equal(status.code, 0, proc.output);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

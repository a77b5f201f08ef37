/**
 * Churn of every cancel path against the real server, each followed by a check that the server's
 * open file descriptors come back to where they were: connect/close (to a peer that accepts, and
 * to one that accepts and hangs up at once), connect_tls/close against a peer that never speaks,
 * dial timeouts, WebSockets dropped mid-dial, and resolve/close against a name server that never
 * answers. A relay that leaks one socket per cancelled dial is a denial of service.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ServerProcess } from "../helpers/server_process.ts";
import { TestClient } from "../helpers/ws_client.ts";
import { RawWebSocket } from "../helpers/raw_ws.ts";
import { startDnsServer } from "../helpers/dns_server.ts";
import { encodeRequestJson, type WireEvent } from "../../src/protocol/mod.ts";
import { fdsBackTo, liveSessions, policyFile, report } from "./_common.ts";

/** A TCP listener that accepts and either holds every connection silently or hangs up at once. */
function peer(mode: "silent" | "hangup"): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        if (mode === "hangup") conn.close();
        else held.push(conn);
      }
    } catch {
      // listener closed
    }
  })();
  return {
    port: listener.addr.port,
    close: async () => {
      listener.close();
      await loop;
      for (const c of held) {
        try {
          c.close();
        } catch {
          // closed by the server's side already
        }
      }
    },
  };
}

/** Sends `op` + `close` for `count` ids in batches; every id must end with one terminal event. */
async function churn(
  client: TestClient,
  count: number,
  open: (id: number) => void,
  firstId: number,
): Promise<Record<string, number>> {
  const ends: Record<string, number> = {};
  for (let base = firstId; base < firstId + count; base += 50) {
    const ids = Array.from({ length: Math.min(50, firstId + count - base) }, (_, i) => base + i);
    for (const id of ids) {
      open(id);
      client.send({ op: "close", id });
    }
    for (const id of ids) {
      let ev: WireEvent = await client.nextFor(id, 20_000);
      while (ev.ev === "connected") ev = await client.nextFor(id, 20_000); // then its end
      const key = ev.ev === "error" ? `error: ${ev.msg.split(":")[0]}` : ev.ev;
      ends[key] = (ends[key] ?? 0) + 1;
    }
  }
  return ends;
}

Deno.test("adversarial: every cancel path gives back every file descriptor", async () => {
  await using dns = await startDnsServer({ records: {}, silent: ["silent.test"] });
  const silent = peer("silent");
  const hangup = peer("hangup");
  const policy = await policyFile(
    '[network]\ndeny = []\nallow = ["*"]\nmax_connections = 1000\nconnection_timeout_secs = 1\n' +
      "max_bandwidth_mbps = 0\n",
  );
  await using server = await ServerProcess.start([
    "--policy",
    policy,
    "--dns-server",
    `127.0.0.1:${dns.port}`,
  ]);
  const baseline = await server.fds();
  try {
    const clients = await Promise.all(
      [0, 1, 2, 3].map((i) => TestClient.open(server.url, i % 2 ? "binary" : "json")),
    );
    // Four WebSockets are open now: each step must come back to this.
    let base = await server.fds();
    const step = async (what: string, run: () => Promise<unknown>): Promise<void> => {
      const t0 = performance.now();
      const detail = await run();
      const after = await fdsBackTo(server, base, what);
      report(
        `churn ${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s, ends ${
          JSON.stringify(detail)
        }; server fds ${base} before, ${after} after`,
      );
    };
    await step(
      "connect/close x 4000",
      () =>
        Promise.all(clients.map((c, i) =>
          churn(c, 1000, (id) =>
            c.send({
              op: "connect",
              id,
              addr: "127.0.0.1",
              port: (i % 2 ? silent : hangup).port,
            }), 1)
        )),
    );
    await step(
      "connect_tls/close x 1000 (silent peer)",
      () =>
        Promise.all(
          clients.map((c) =>
            churn(c, 250, (id) =>
              c.send({ op: "connect_tls", id, addr: "127.0.0.1", port: silent.port }), 10_000)
          ),
        ),
    );
    await step(
      "resolve/close x 1000 (silent name server)",
      () =>
        Promise.all(
          clients.map((c) =>
            churn(c, 250, (id) => c.send({ op: "resolve", id, name: "silent.test" }), 20_000)
          ),
        ),
    );
    await step("dial timeouts x 200 (TLS to a silent peer, 1 s)", async () => {
      const ends: Record<string, number> = {};
      await Promise.all(clients.map(async (c) => {
        for (let id = 30_000; id < 30_050; id++) {
          c.send({ op: "connect_tls", id, addr: "127.0.0.1", port: silent.port });
        }
        for (let id = 30_000; id < 30_050; id++) {
          const ev = await c.nextFor(id, 20_000);
          assert.deepEqual(ev, { ev: "error", id, msg: "connection timed out" });
          ends[ev.ev] = (ends[ev.ev] ?? 0) + 1;
        }
      }));
      return ends;
    });
    for (const c of clients) await c.close();
    base = baseline;
    await step("WebSockets dropped mid-dial x 100", async () => {
      for (let i = 0; i < 100; i++) {
        const ws = await RawWebSocket.connect(server.port ?? 0);
        await ws.sendText(
          encodeRequestJson({ op: "connect_tls", id: 1, addr: "127.0.0.1", port: silent.port }),
        );
        await ws.sendText(
          encodeRequestJson({ op: "connect", id: 2, addr: "127.0.0.1", port: silent.port }),
        );
        await ws.sendText(encodeRequestJson({ op: "resolve", id: 3, name: "silent.test" }));
        ws.drop();
      }
      const port = server.port ?? 0;
      const deadline = Date.now() + 10_000;
      while ((await liveSessions(port)) > 0) {
        assert.ok(Date.now() < deadline, "dropped sessions end");
      }
      return { sessions: 100 };
    });
  } finally {
    await silent.close();
    await hangup.close();
  }
  assert.equal((await server.stop()).code, 0, server.output);
});

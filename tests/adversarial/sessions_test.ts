/**
 * Many sessions and their endings, against the real server: 1,000 WebSockets held, each with an
 * open TCP socket through the relay, then dropped without a close frame; and shutdown (SIGTERM)
 * while one client uploads and another downloads, which must close both with 1001 and exit 0.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ServerProcess } from "../helpers/server_process.ts";
import { Opcode, RawWebSocket } from "../helpers/raw_ws.ts";
import { startTcpEcho, startTcpSink } from "../helpers/echo_servers.ts";
import { decodeEvent, encodeRequestJson } from "../../src/protocol/mod.ts";
import { fdsBackTo, healthzMs, liveSessions, report } from "./_common.ts";
import { delay } from "../helpers/wait.ts";

const SESSIONS = 1000;

Deno.test("adversarial: 1,000 sessions held, then dropped without a close frame", async () => {
  await using echo = await startTcpEcho();
  await using server = await ServerProcess.start(["--no-policy"]);
  const port = server.port ?? 0;
  const baseline = await server.fds();
  const t0 = performance.now();
  const clients: RawWebSocket[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const ws = await RawWebSocket.connect(port);
    await ws.sendText(
      encodeRequestJson({ op: "connect", id: 1, addr: "127.0.0.1", port: echo.port }),
    );
    clients.push(ws);
  }
  for (const ws of clients) {
    const reply = await ws.next();
    const ev = reply && decodeEvent(new TextDecoder().decode(reply.payload));
    assert.deepEqual(ev, { ev: "connected", id: 1 });
  }
  const held = (performance.now() - t0) / 1000;
  assert.equal(await liveSessions(port), SESSIONS);
  const memory = await server.memory();
  const fds = await server.fds();
  const latency = await healthzMs(port);
  for (const ws of clients) ws.drop();
  const deadline = Date.now() + 20_000;
  while ((await liveSessions(port)) > 0) {
    assert.ok(Date.now() < deadline, "every dropped session ends");
    await delay(100);
  }
  const after = await fdsBackTo(server, baseline, `${SESSIONS} dropped sessions`);
  report(
    `sessions: ${SESSIONS} opened with a socket each in ${held.toFixed(1)} s; server RSS ${
      (memory.rss / 1024 / 1024).toFixed(0)
    } MiB, ${fds} fds, /healthz ${
      latency.toFixed(1)
    } ms; all dropped: fds ${baseline} before, ${after} after`,
  );
  assert.equal(echo.live, 0, "every upstream socket was closed");
  assert.equal((await server.stop()).code, 0, server.output);
});

Deno.test("adversarial: shutdown with an upload and a download in flight closes both with 1001", async () => {
  await using sink = await startTcpSink();
  const source = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const flooding = (async () => {
    const conn = await source.accept();
    source.close();
    try {
      for (;;) await conn.write(new Uint8Array(64 * 1024));
    } catch {
      conn.close();
    }
  })();
  await using server = await ServerProcess.start(["--no-policy"]);
  const port = server.port ?? 0;
  const uploader = await RawWebSocket.connect(port);
  const downloader = await RawWebSocket.connect(port);
  await uploader.sendText(
    encodeRequestJson({ op: "connect", id: 1, addr: "127.0.0.1", port: sink.port }),
  );
  await downloader.sendText(
    encodeRequestJson({ op: "connect", id: 1, addr: "127.0.0.1", port: source.addr.port }),
  );
  await uploader.next(); // connected
  let uploading = true;
  const upload = (async () => {
    const data = new TextEncoder().encode(
      encodeRequestJson({ op: "send", id: 1, data: new Uint8Array(48 * 1024) }),
    );
    try {
      while (uploading) await uploader.send(Opcode.text, data);
    } catch {
      // the server closed: expected
    }
  })();
  await sink.waitForBytes(8 * 1024 * 1024);
  const codes = Promise.all([uploader.closeCode(), downloader.closeCode()]);
  const status = server.stop("SIGTERM");
  const [up, down] = await codes;
  uploading = false;
  await upload;
  const { code } = await status;
  report(`shutdown: uploader saw ${up}, downloader saw ${down}, exit ${code}`);
  assert.deepEqual([up, down], [1001, 1001]);
  assert.equal(code, 0, server.output);
  uploader.drop();
  downloader.drop();
  await flooding;
});

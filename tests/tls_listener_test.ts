/**
 * The TLS listener (issue 14): `--cert FILE --key FILE` serves `wss://` and `https://`, to a real
 * Node `ws` client and to headless Chromium trusting the certificate through its command line, for
 * wasmnet and Wisp sessions; SIGHUP reloads the certificate without dropping open sessions.
 *
 * @module
 */
import assert from "node:assert/strict";
import tls from "node:tls";
import { join } from "node:path";
// @ts-types="npm:@types/ws@^8.18.1"
import NodeWebSocket from "ws";
import { inProcess, startTestServer } from "./helpers/server.ts";
import { childTarget } from "./helpers/target.ts";
import { ServerProcess } from "./helpers/server_process.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { makeTestPki } from "./helpers/tls_certs.ts";
import { launchChromium, requireChromium } from "./helpers/browser.ts";
import { until } from "./helpers/wait.ts";
import { encodeRequest } from "../src/protocol/mod.ts";

const te = new TextEncoder();

/** Opens a `ws` client to `url` trusting `ca` (undefined: any certificate); resolves once open. */
function openWs(url: string, ca: string | undefined): Promise<NodeWebSocket> {
  const ws = new NodeWebSocket(url, ca === undefined ? { rejectUnauthorized: false } : { ca });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

/** One JSON wasmnet echo through `ws`: connect id 1 to the echo port, send, read back. */
async function echoThrough(ws: NodeWebSocket, port: number, text: string): Promise<string> {
  const events: Record<string, unknown>[] = [];
  let wake = (): void => {};
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    events.push(JSON.parse(isBinary ? "" : data.toString()));
    wake();
  });
  const next = async (): Promise<Record<string, unknown>> => {
    while (events.length === 0) await new Promise<void>((r) => wake = r);
    return events.shift() as Record<string, unknown>;
  };
  ws.send(JSON.stringify({ op: "connect", id: 1, addr: "127.0.0.1", port }));
  assert.equal((await next()).ev, "connected");
  ws.send(encodeRequest({ op: "send", id: 1, data: te.encode(text) }, "json"));
  const ev = await next();
  assert.equal(ev.ev, "data");
  return atob(ev.data as string);
}

/** The certificate a TLS server at 127.0.0.1:`port` presents (its PEM-less DER as hex). */
function servedCert(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      const fp = sock.getPeerCertificate().fingerprint256;
      sock.end();
      resolve(fp);
    });
    sock.on("error", reject);
  });
}

Deno.test("tls listener: wss:// and https:// with the test CA from Node ws; Wisp over wss too", async () => {
  const pki = await makeTestPki();
  await using echo = await startTcpEcho();
  await using server = await startTestServer({
    tls: { cert: pki.serverCert, key: pki.serverKey },
  });
  assert.match(server.url, /^wss:\/\//);
  const ws = await openWs(server.url, pki.caCert);
  try {
    assert.equal(await echoThrough(ws, echo.port, "over wss"), "over wss");
  } finally {
    ws.close();
  }
  // https /healthz
  const client = Deno.createHttpClient({ caCerts: [pki.caCert] });
  try {
    const res = await fetch(new URL("/healthz", server.url.replace("wss", "https")), { client });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).status, "ok");
  } finally {
    client.close();
  }
  // Wisp v1 over wss: the first packet is CONTINUE on stream 0.
  const wisp = new NodeWebSocket(new URL("/wisp/", server.url).href, { ca: pki.caCert });
  const first = await new Promise<Buffer>((resolve, reject) => {
    wisp.once("message", resolve);
    wisp.once("error", reject);
  });
  assert.equal(first[0], 0x03);
  wisp.close();
  // A client that does not trust the CA is refused by TLS itself.
  const untrusted = new NodeWebSocket(server.url);
  const err = await new Promise<Error>((resolve) => untrusted.once("error", resolve));
  assert.match(err.message, /certificate/i);
});

Deno.test({
  name: "tls listener: headless Chromium trusting the certificate by flag runs a session over wss",
  ignore: !inProcess(),
  fn: async () => {
    requireChromium();
    const pki = await makeTestPki();
    await using echo = await startTcpEcho();
    await using server = await startTestServer({
      tls: { cert: pki.serverCert, key: pki.serverKey },
    });
    // Chromium trusts a certificate whose public key hash is listed (base64 SHA-256 of the SPKI).
    const spki = await new Deno.Command("bash", {
      args: [
        "-c",
        "openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | " +
        "openssl dgst -sha256 -binary | base64",
      ],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const writer = spki.stdin.getWriter();
    await writer.write(te.encode(pki.serverCert));
    await writer.close();
    const hash = new TextDecoder().decode((await spki.output()).stdout).trim();
    const browser = await launchChromium([`--ignore-certificate-errors-spki-list=${hash}`]);
    try {
      const page = await browser.newPage();
      const result = await page.evaluate(
        async ({ url, port }) => {
          const ws = new WebSocket(url);
          const events: string[] = [];
          let wake = () => {};
          ws.onmessage = (e) => {
            events.push(e.data);
            wake();
          };
          const next = async () => {
            while (events.length === 0) await new Promise<void>((r) => wake = r);
            return JSON.parse(events.shift() as string);
          };
          await new Promise((r, j) => {
            ws.onopen = r;
            ws.onerror = () => j(new Error("wss failed"));
          });
          ws.send(JSON.stringify({ op: "connect", id: 1, addr: "127.0.0.1", port }));
          const connected = await next();
          ws.send(JSON.stringify({ op: "send", id: 1, data: btoa("from chromium") }));
          const data = await next();
          ws.close();
          return { connected: connected.ev, data: atob(data.data) };
        },
        { url: server.url, port: echo.port },
      );
      assert.deepEqual(result, { connected: "connected", data: "from chromium" });
    } finally {
      await browser.close();
    }
  },
});

Deno.test("tls listener: SIGHUP reloads --cert/--key without dropping open sessions", async () => {
  const pki = await makeTestPki();
  await using echo = await startTcpEcho();
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-tls-" });
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  try {
    // Start with a certificate from a CA the client does not trust.
    await Deno.writeTextFile(cert, pki.untrustedCert);
    await Deno.writeTextFile(key, pki.untrustedKey);
    const proc = await ServerProcess.start(["--cert", cert, "--key", key, "--no-policy"]);
    try {
      const url = `wss://127.0.0.1:${proc.port}/`;
      const before = await servedCert(proc.port ?? 0);
      await assert.rejects(openWs(url, pki.caCert), /certificate/i);
      // A session opened now (by a client that checks no certificate) lives through the reload.
      const old = await openWs(url, undefined);
      await Deno.writeTextFile(cert, pki.serverCert);
      await Deno.writeTextFile(key, pki.serverKey);
      Deno.kill(proc.pid, "SIGHUP");
      if (childTarget() !== "deno") {
        // Bun.serve cannot change its certificate while listening (README, Limits): the reload
        // is refused, logged, and the server keeps serving with the old one.
        await until(() => /TLS certificate reload failed/.test(proc.output), "refusal logged");
        assert.equal(await servedCert(proc.port ?? 0), before);
        assert.equal(await echoThrough(old, echo.port, "old session"), "old session");
        old.close();
        return;
      }
      await until(() => /TLS certificate reloaded/.test(proc.output), "the reload is logged");
      assert.notEqual(await servedCert(proc.port ?? 0), before);
      const fresh = await openWs(url, pki.caCert);
      assert.equal(await echoThrough(fresh, echo.port, "new cert"), "new cert");
      fresh.close();
      assert.equal(await echoThrough(old, echo.port, "old session"), "old session");
      old.close();
      // A broken key is logged and the working certificate stays.
      await Deno.writeTextFile(
        key,
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
      );
      Deno.kill(proc.pid, "SIGHUP");
      await until(() => /TLS certificate reload failed/.test(proc.output), "the failure is logged");
      const still = await openWs(url, pki.caCert);
      still.close();
    } finally {
      const status = await proc.stop("SIGTERM");
      assert.equal(status.code, 0, proc.output);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

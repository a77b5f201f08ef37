/**
 * `GET /metrics`: scraped from a real server and parsed with a real Prometheus text-format parser
 * (npm `parse-prometheus-text-format`, pinned), counters moving as sessions, dials, denials and
 * transfers happen; loopback-only access on the main port; `--metrics-listen` on a child server.
 *
 * The non-loopback 403 is checked in process (the app's `fetch` with a peer address of TEST-NET-1,
 * 192.0.2.7, as the adapters pass it): this machine may reach only loopback addresses, so no
 * second, non-loopback peer can be made with real sockets.
 *
 * @module
 */
import { until } from "./helpers/wait.ts";
import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { Policy, startServer, type WasmnetServer } from "../mod.ts";
import { denoAdapter } from "../src/server/deno/mod.ts";
import { createApp, metricsAllowed, SessionRegistry } from "../src/server/mod.ts";
import { denoTransport } from "../src/transport/deno/mod.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { randomBytes, TestClient } from "./helpers/ws_client.ts";
import { RawWisp } from "./helpers/wisp.ts";
import { ServerProcess } from "./helpers/server_process.ts";

/** One sample of a parsed metric family (histograms carry buckets, count and sum). */
interface Sample {
  value?: string;
  labels?: Record<string, string>;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}

/** A metric family as the parser returns it. */
interface Family {
  name: string;
  help: string;
  type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED";
  metrics: Sample[];
}

const parse = parsePrometheusTextFormat as unknown as (text: string) => Family[];

/** Scrapes `url` and parses it; asserts the status and content type. */
async function scrape(url: string): Promise<Family[]> {
  const res = await fetch(url);
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parse(text);
}

/** The value of `name` with exactly `labels` (0 when absent), or a histogram's count. */
function value(families: Family[], name: string, labels: Record<string, string> = {}): number {
  const family = families.find((f) => f.name === name);
  if (family === undefined) return 0;
  const sample = family.metrics.find((m) => {
    const have = m.labels ?? {};
    return Object.keys(labels).length === Object.keys(have).length &&
      Object.entries(labels).every(([k, v]) => have[k] === v);
  });
  return Number(sample?.value ?? sample?.count ?? 0);
}

/**
 * Observations of histogram `name` over all its series (the `+Inf` buckets). The parser (1.1.1)
 * keeps the buckets of a labelled histogram but drops its labels, `_count` and `_sum`, so the
 * buckets are what a test can read.
 */
function histogramCount(families: Family[], name: string): number {
  const family = families.find((f) => f.name === name);
  assert.equal(family?.type, "HISTOGRAM", `${name} is a histogram`);
  return (family?.metrics ?? []).reduce((n, m) => n + Number(m.buckets?.["+Inf"] ?? 0), 0);
}

function metricsUrl(server: WasmnetServer): string {
  return `http://127.0.0.1:${server.addr.port}/metrics`;
}

/** An in-process server on 127.0.0.1:0 whose policy denies 127.0.0.2 and allows the rest. */
function startDenyingServer(): Promise<WasmnetServer> {
  return startServer({
    hostname: "127.0.0.1",
    port: 0,
    adapter: denoAdapter(),
    transport: denoTransport(),
    policy: Policy.fromConfig(
      { deny: ["127.0.0.2"], allow: ["*"], maxBandwidthMbps: 0 },
      "<metrics test>",
    ),
  });
}

/** Polls `check` until it holds (a hang guard of 10 s, not a timing assertion). */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("metrics: sessions, dials by result, denials by rule, bytes as they flow, sockets", async () => {
  await using echo = await startTcpEcho();
  await using server = await startDenyingServer();
  const url = metricsUrl(server);
  const before = await scrape(url);
  assert.equal(value(before, "wasmnet_sessions", { protocol: "wasmnet", tenant: "" }), 0);
  assert.equal(value(before, "wasmnet_dials_total", { result: "connected" }), 0);
  assert.equal(value(before, "wasmnet_build_info", { version: "0.2.0" }), 1);

  await using client = await TestClient.open(`ws://127.0.0.1:${server.addr.port}/`);
  client.send({ op: "connect", id: 1, addr: "127.0.0.1", port: echo.port });
  assert.equal((await client.next((e) => e.id === 1)).ev, "connected");
  const open = await scrape(url);
  assert.equal(value(open, "wasmnet_sessions", { protocol: "wasmnet", tenant: "" }), 1);
  assert.equal(value(open, "wasmnet_sessions_opened_total", { protocol: "wasmnet" }), 1);
  assert.equal(value(open, "wasmnet_dials_total", { result: "connected" }), 1);
  assert.equal(histogramCount(open, "wasmnet_dial_duration_seconds"), 1);
  assert.equal(value(open, "wasmnet_sockets", { kind: "tcp" }), 1);

  // Bytes are counted as they flow: an echo of 256 KiB shows up before the socket closes.
  const payload = randomBytes(256 * 1024);
  for (let off = 0; off < payload.byteLength; off += 16 * 1024) {
    client.send({ op: "send", id: 1, data: payload.subarray(off, off + 16 * 1024) });
  }
  let echoed = 0;
  while (echoed < payload.byteLength) {
    const ev = await client.next((e) => e.id === 1);
    assert.equal(ev.ev, "data");
    if (ev.ev === "data") echoed += ev.data.byteLength;
  }
  const flowing = await scrape(url);
  assert.ok(value(flowing, "wasmnet_bytes_total", { direction: "up" }) >= payload.byteLength);
  assert.ok(value(flowing, "wasmnet_bytes_total", { direction: "down" }) >= payload.byteLength);
  assert.equal(value(flowing, "wasmnet_sockets", { kind: "tcp" }), 1, "the socket is still open");

  // A denial counts as a dial with result "denied" and under its rule.
  client.send({ op: "connect", id: 2, addr: "127.0.0.2", port: echo.port });
  assert.equal((await client.next((e) => e.id === 2)).ev, "denied");
  // A closed port: refused.
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = closed.addr.port;
  closed.close();
  client.send({ op: "connect", id: 3, addr: "127.0.0.1", port: closedPort });
  assert.equal((await client.next((e) => e.id === 3)).ev, "error");
  const after = await scrape(url);
  assert.equal(value(after, "wasmnet_dials_total", { result: "denied" }), 1);
  assert.equal(value(after, "wasmnet_denials_total", { rule: "127.0.0.2" }), 1);
  assert.equal(value(after, "wasmnet_dials_total", { result: "refused" }), 1);
  assert.equal(value(after, "wasmnet_dials_total", { result: "connected" }), 1);

  client.send({ op: "close", id: 1 });
  assert.equal((await client.next((e) => e.id === 1)).ev, "closed");
  const done = await scrape(url);
  assert.equal(value(done, "wasmnet_sockets", { kind: "tcp" }), 0);
  client.ws.close();
  await eventually("the session ended", async () => {
    const m = await scrape(url);
    return value(m, "wasmnet_sessions", { protocol: "wasmnet", tenant: "" }) === 0;
  });
});

Deno.test("metrics: a Wisp session counts under protocol wisp", async () => {
  await using server = await startDenyingServer();
  const url = metricsUrl(server);
  await using wisp = await RawWisp.open(`ws://127.0.0.1:${server.addr.port}/wisp/`);
  await wisp.next(); // the server's first CONTINUE: the session runs
  const m = await scrape(url);
  assert.equal(value(m, "wasmnet_sessions", { protocol: "wisp", tenant: "" }), 1);
  assert.equal(value(m, "wasmnet_sessions", { protocol: "wasmnet", tenant: "" }), 0);
  assert.equal(value(m, "wasmnet_sessions_opened_total", { protocol: "wisp" }), 1);
});

Deno.test("metrics: /metrics answers loopback peers; another peer gets 403", async () => {
  assert.equal(metricsAllowed("127.0.0.1"), true);
  assert.equal(metricsAllowed("127.8.9.10"), true);
  assert.equal(metricsAllowed("::1"), true);
  assert.equal(metricsAllowed("::ffff:127.0.0.1"), true);
  assert.equal(metricsAllowed("192.0.2.7"), false);
  assert.equal(metricsAllowed("::ffff:192.0.2.7"), false);
  assert.equal(metricsAllowed("2001:db8::1"), false);
  assert.equal(metricsAllowed(undefined), false);
  const app = createApp({}, new SessionRegistry());
  const request = (): Request => new Request("http://relay.example/metrics");
  // The env shapes the adapters pass: Deno.serve and Bun give remoteAddr, node:http incoming.
  const denied = await app.fetch(request(), { remoteAddr: { hostname: "192.0.2.7" } });
  assert.equal(denied.status, 403);
  assert.match(await denied.text(), /loopback and --trust-proxy peers only/);
  const viaNode = await app.fetch(request(), {
    incoming: { socket: { remoteAddress: "192.0.2.7" } },
  });
  assert.equal(viaNode.status, 403);
  await viaNode.body?.cancel();
  const unknown = await app.fetch(request());
  assert.equal(unknown.status, 403, "a peer of unknown address is refused");
  await unknown.body?.cancel();
  const local = await app.fetch(request(), { remoteAddr: { hostname: "127.0.0.1" } });
  assert.equal(local.status, 200);
  assert.ok(parse(await local.text()).some((f) => f.name === "wasmnet_sessions"));
});

Deno.test("metrics: --metrics-listen serves /metrics on its own port (a child server)", async () => {
  await using echo = await startTcpEcho();
  await using proc = await ServerProcess.start(["--no-policy", "--metrics-listen", "127.0.0.1:0"]);
  // The metrics port is logged just after `listening` (which start() waits for).
  const pattern = /metrics listening addr=127\.0\.0\.1:(\d+)/;
  await until(() => pattern.test(proc.output), "metrics listening is logged");
  const m = pattern.exec(proc.output);
  assert.ok(m, proc.output);
  const internal = `http://127.0.0.1:${m[1]}/metrics`;
  await using client = await TestClient.open(proc.url, "binary");
  client.send({ op: "connect", id: 1, addr: "127.0.0.1", port: echo.port });
  assert.equal((await client.next((e) => e.id === 1)).ev, "connected");
  const scraped = await scrape(internal);
  assert.equal(value(scraped, "wasmnet_dials_total", { result: "connected" }), 1);
  assert.equal(value(scraped, "wasmnet_sessions", { protocol: "wasmnet", tenant: "" }), 1);
  assert.ok(
    scraped.some((f) => f.name === "wasmnet_process_resident_memory_bytes"),
    "the CLI exports process metrics",
  );
  // The main port answers the same metrics to this loopback peer.
  const main = await scrape(`http://127.0.0.1:${proc.port}/metrics`);
  assert.equal(value(main, "wasmnet_dials_total", { result: "connected" }), 1);
  const other = await fetch(`http://127.0.0.1:${m[1]}/healthz`);
  assert.equal(other.status, 404);
  await other.body?.cancel();
  client.ws.close();
  assert.equal((await proc.stop()).code, 0, proc.output);
});

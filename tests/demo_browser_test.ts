/**
 * The demo page (`--demo`): its routes and headers, the generated files' freshness, the CLI
 * default, and the page itself in headless Chromium against real servers (TCP echo, loopback
 * DNS, the wasmnet server), clicked through like a person would.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Policy } from "../mod.ts";
import { HELP, isLoopbackHost, parseCommand } from "../src/cli/args.ts";
import { buildDemo, DEMO_GENERATED } from "../src/server/demo/build.ts";
import { DEMO_CSP, DEMO_PATHS } from "../src/server/demo/mod.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { startDnsServer } from "./helpers/dns_server.ts";
import { sessionsOf, sessionsReach, startTestServer, testTransport } from "./helpers/server.ts";
import { TestClient } from "./helpers/ws_client.ts";
import { launchChromium, requireChromium } from "./helpers/browser.ts";
import { until } from "./helpers/wait.ts";

const DEMO_DIR = new URL("../src/server/demo/", import.meta.url);
const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Loopback ports 1-1023 are denied (by a rule the page must show); the echo's port is not. */
const POLICY_TOML = `[network]
deny = ["127.0.0.0/8:1-1023", "blocked.demo.test"]
allow = ["*"]
max_bandwidth_mbps = 0
`;

function httpUrl(wsUrl: string, path = "/"): string {
  return wsUrl.replace(/^ws:/, "http:").replace(/\/$/, "") + path;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test("demo: off (the default of the library): GET / and /demo/* are 426 as before", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer();
  for (const path of DEMO_PATHS) {
    const res = await fetch(httpUrl(server.url, path));
    assert.equal(res.status, 426, path);
    assert.equal(res.headers.get("content-security-policy"), null, path);
    await res.body?.cancel();
  }
  await using client = await TestClient.open(server.url, "binary");
  await client.connect(1, "127.0.0.1", echo.port);
});

Deno.test("demo: on: the page and its files with CSP, nosniff, no-cache; upgrades and /healthz unchanged", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer({ demo: true });

  const page = await fetch(httpUrl(server.url, "/"));
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(page.headers.get("cache-control"), "no-cache");
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  const csp = page.headers.get("content-security-policy") ?? "";
  assert.equal(csp, DEMO_CSP);
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /connect-src 'self' ws: wss:/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  const html = await page.text();
  assert.match(html, /<script type="module" src="demo\/demo\.js"><\/script>/);
  assert.doesNotMatch(html, /<script>|<style|style="/, "inline code would break the CSP");

  const bundle = await fetch(httpUrl(server.url, "/demo/wasmnet-client.js"));
  assert.equal(bundle.status, 200);
  assert.equal(bundle.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.equal(bundle.headers.get("content-security-policy"), DEMO_CSP);
  assert.equal(bundle.headers.get("x-content-type-options"), "nosniff");
  assert.equal(
    await bundle.text(),
    await Deno.readTextFile(new URL("wasmnet-client.js", DEMO_DIR)),
  );
  const files: ReadonlyArray<readonly [string, string, string]> = [
    ["/demo/demo.js", "text/javascript", "demo.js"],
    ["/demo/demo.css", "text/css", "demo.css"],
  ];
  for (const [path, type, file] of files) {
    const res = await fetch(httpUrl(server.url, path));
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get("content-type"), `${type}; charset=utf-8`, path);
    assert.equal(await res.text(), await Deno.readTextFile(new URL(file, DEMO_DIR)), path);
  }

  const head = await fetch(httpUrl(server.url, "/"), { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-security-policy"), DEMO_CSP);
  await head.body?.cancel();
  const refused: ReadonlyArray<readonly [string, string]> = [
    ["GET", "/other"],
    ["GET", "/demo/nope.js"],
    ["POST", "/"],
  ];
  for (const [method, path] of refused) {
    const res = await fetch(httpUrl(server.url, path), {
      method,
      ...(method === "POST" ? { body: "x" } : {}),
    });
    assert.equal(res.status, 426, `${method} ${path}`);
    await res.body?.cancel();
  }
  const health = await fetch(httpUrl(server.url, "/healthz"));
  assert.equal((await health.json()).status, "ok");

  // WebSocket upgrades on the demo's own paths still start sessions.
  for (const [id, path] of [[1, "/"], [2, "/demo/demo.js"]] as const) {
    await using client = await TestClient.open(httpUrl(server.url, path).replace(/^http/, "ws"));
    await client.connect(id, "127.0.0.1", echo.port);
  }
});

Deno.test("demo: the committed generated files are what `deno task demo:build` builds", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-demo-" });
  try {
    const written = await buildDemo(dir);
    assert.deepEqual(written, DEMO_GENERATED.map((name) => `${dir}/${name}`));
    for (const name of DEMO_GENERATED) {
      const fresh = await Deno.readFile(`${dir}/${name}`);
      const committed = await Deno.readFile(new URL(name, DEMO_DIR));
      assert.ok(
        sameBytes(fresh, committed),
        `src/server/demo/${name} is stale: run \`deno task demo:build\` and commit the result`,
      );
      assert.match(new TextDecoder().decode(fresh.subarray(0, 200)), /^\/\/ GENERATED by /);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("demo: --demo / --no-demo; the default is on only for a loopback --host", () => {
  const demo = (...args: string[]): boolean => {
    const command = parseCommand(args);
    assert.equal(command.kind, "serve");
    return command.kind === "serve" && command.flags.demo;
  };
  assert.equal(demo(), false, "default host 0.0.0.0");
  for (
    const host of [
      "127.0.0.1",
      "127.1.2.3",
      "127.1",
      "0x7f000001",
      "localhost",
      "LOCALHOST.",
      "::1",
    ]
      .concat(["[::1]", "0:0:0:0:0:0:0:1"])
  ) {
    assert.equal(demo("--host", host), true, host);
    assert.equal(demo("--host", host, "--no-demo"), false, host);
  }
  for (const host of ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "::2"]) {
    assert.equal(demo("-H", host), false, host);
    assert.equal(demo("-H", host, "--demo"), true, host);
  }
  assert.throws(() => parseCommand(["--demo", "--no-demo"]), /--demo and --no-demo/);
  for (const host of ["127.0.0.256", "128.0.0.1", "localhost.example", "::ffff:10.0.0.1"]) {
    assert.equal(isLoopbackHost(host), false, host);
  }
  assert.match(HELP, /--demo, --no-demo/);
});

Deno.test("demo: the CLI on a loopback host serves the page by default and logs its URL", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "mod.ts", "-H", "127.0.0.1", "-p", "0", "--no-policy"],
    cwd: ROOT,
    env: { WASMNET_LOG: "info", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  try {
    let m: RegExpExecArray | null = null;
    while (!(m = /demo page url=(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out))) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`the CLI ended without a demo page line:\n${out}`);
      out += value;
    }
    const res = await fetch(m[1] ?? "");
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<title>wasmnet demo<\/title>/);
  } finally {
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0, await stderr);
    while (!(await lines.read()).done); // drain the rest of stdout
  }
});

Deno.test("demo browser: connect, send text and hex, throughput, resolve, denial, close", async () => {
  requireChromium();
  await using echo = await startTcpEcho();
  assert.ok(echo.port > 1023, "an ephemeral port is outside the denied 1-1023 range");
  await using dns = await startDnsServer({ records: { "echo.demo.test": { A: ["127.0.0.1"] } } });
  await using server = await startTestServer({
    demo: true,
    policy: Policy.fromToml(POLICY_TOML, "demo-test.toml"),
    transport: testTransport({ nameServer: { ipAddr: "127.0.0.1", port: dns.port } }),
  });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e}`));
    page.on("console", (msg) => {
      // The only expected failure: the browser's own /favicon.ico request (426).
      if (msg.type() === "error" && !msg.location().url.endsWith("/favicon.ico")) {
        problems.push(`console: ${msg.text()}`);
      }
    });
    await page.goto(httpUrl(server.url));
    await page.locator("#status", { hasText: "Connected to ws://127.0.0.1:" }).waitFor();
    assert.equal(await sessionsOf(server), 1);

    // Connect to the echo server over TCP.
    await page.fill("#host", "127.0.0.1");
    await page.fill("#port", String(echo.port));
    await page.setChecked("#tls", false);
    await page.click("#connect");
    await page.locator("#socket-state.open").waitFor();
    assert.equal(
      await page.textContent("#socket-state"),
      `connected to TCP 127.0.0.1:${echo.port}`,
    );
    assert.equal(await page.isDisabled("#connect"), true);
    await until(() => echo.live === 1, "the echo server has the connection");

    // Text: the echo shows as text and as hex.
    const text = "hello wasmnet ✓";
    await page.selectOption("#mode", "text");
    await page.fill("#payload", text);
    // Each rate shows the last 500 ms: wait for both to be non-zero (started before sending).
    const ratesSeen = Promise.all([
      page.locator('#rate-up:not([data-value="0"])').waitFor(),
      page.locator('#rate-down:not([data-value="0"])').waitFor(),
    ]);
    ratesSeen.catch(() => {}); // awaited below; a failure before that must not be unhandled
    await page.click("#send");
    const textReply = page.locator("#log .entry.received").filter({
      has: page.locator("pre.text", { hasText: text }),
    });
    await textReply.waitFor();
    // 17 bytes: 16 hex pairs on the first line, then "93".
    const textHex = "68 65 6c 6c 6f 20 77 61 73 6d 6e 65 74 20 e2 9c\n93";
    assert.equal(await textReply.locator("pre.hex").textContent(), textHex);
    await ratesSeen;
    assert.match(await page.textContent("#rate-down") ?? "", /^\d+(\.\d)? (B|KiB|MiB)\/s$/);

    // Hex: 48 69 is "Hi".
    await page.selectOption("#mode", "hex");
    await page.fill("#payload", "48 69");
    await page.click("#send");
    const hiReply = page.locator("#log .entry.received").filter({
      has: page.locator("pre.text", { hasText: /^Hi$/ }),
    });
    await hiReply.waitFor();
    assert.equal(await hiReply.locator("pre.hex").textContent(), "48 69");
    const hiSent = page.locator("#log .entry.sent").filter({
      has: page.locator("pre.hex", { hasText: /^48 69$/ }),
    });
    assert.equal(await hiSent.count(), 1);

    // Bad hex is refused in the page, nothing is sent.
    await page.fill("#payload", "4");
    await page.click("#send");
    await page.locator("#log .entry.error", { hasText: "two digits per byte" }).waitFor();

    // Totals: exactly the payload bytes each way.
    const total = new TextEncoder().encode(text).length + 2;
    await page.locator(`#total-up[data-value="${total}"]`).waitFor();
    await page.locator(`#total-down[data-value="${total}"]`).waitFor();
    assert.equal(await page.textContent("#total-up"), `${total} B`);

    // Close.
    await page.click("#close");
    await page.locator("#log .entry.closed", { hasText: `127.0.0.1:${echo.port}` }).waitFor();
    assert.equal(await page.textContent("#socket-state"), "not connected");
    assert.equal(await page.isDisabled("#send"), true);
    await until(() => echo.live === 0, "the echo server saw the close");

    // DNS through the server's resolver (the loopback DNS server).
    await page.fill("#name", "echo.demo.test");
    await page.click("#resolve");
    await page.locator("#addresses li", { hasText: "127.0.0.1" }).waitFor();
    assert.deepEqual(await page.locator("#addresses li").allTextContents(), ["127.0.0.1"]);

    // A denied target: the denial and its rule, shown distinctly.
    await page.fill("#host", "127.0.0.1");
    await page.fill("#port", "22");
    await page.click("#connect");
    const denial = page.locator("#log .entry.denied").last();
    await denial.waitFor();
    assert.equal(
      await denial.locator(".message").textContent(),
      '127.0.0.1:22 is denied by rule "127.0.0.0/8:1-1023" (loopback)',
    );
    assert.equal(await denial.locator(".rule code").textContent(), "127.0.0.0/8:1-1023");
    assert.equal(await page.textContent("#socket-state"), "not connected");
    assert.equal(await page.isDisabled("#connect"), false);

    // A denied name.
    await page.fill("#name", "blocked.demo.test");
    await page.click("#resolve");
    await page.locator("#log .entry.denied .rule code", { hasText: "blocked.demo.test" })
      .waitFor();

    assert.deepEqual(problems, []);
    assert.deepEqual(
      dns.questions.filter((q) => q.name === "blocked.demo.test"),
      [],
      "a denied name is never looked up",
    );
  } finally {
    await browser.close();
  }
  await sessionsReach(server, 0, "the page's session ended with the browser");
});

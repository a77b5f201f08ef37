// Real Node database clients, unmodified, in headless Chromium through wasmnet: npm `pg` and
// `ioredis`, bundled by the recipe of examples/node-in-browser/ (npm esbuild + node-stdlib-browser,
// `net`/`tls`/`dns`/`dgram` aliased to dist/node/*.js, which this test builds itself), talk to a
// real PostgreSQL and a real Redis that the test starts on free loopback ports, through the real
// server:
// - pg: connect, SELECT 1, a parameterised query, a 1 MiB bytea round trip, and `ssl: true`
//   (pg's SSLRequest, then `tls.connect({ socket })` → the `start_tls` extension; the server
//   verifies PostgreSQL's test certificate against the test CA);
// - ioredis: SET/GET, a pipeline of 10,000 commands, pub/sub (a second connection);
// - a denial: with a policy that denies the database ports, both libraries get an error with
//   code EACCES whose message names the rule.
// Needs Debian's chromium, postgresql and redis-server (bin/test installs them): when one is
// missing the test FAILS with the install command, it never skips.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Policy, setLogLevel } from "../mod.ts";
import { startTestServer, testTransport } from "./helpers/server.ts";
import { openPage, requireChromium } from "./helpers/browser.ts";
import { makeTestPki } from "./helpers/tls_certs.ts";
import { pgBinDir, startPostgres } from "./helpers/pg_server.ts";
import { startRedis } from "./helpers/redis_server.ts";
import { buildNodeBundles, RECIPE_DIR } from "../src/client/bundle.ts";

setLogLevel((Deno.env.get("WASMNET_LOG") as "debug" | undefined) ?? "warn");

// Runs in the page (plain JS). `globalThis.app` comes from the recipe's app.js: { pg, Redis,
// Buffer, configure }. Each function resolves to a JSON-able result the test asserts on; a
// library error resolves to { error: { code, message } }.
const PAGE = `<!doctype html><meta charset="utf-8"><title>node clients over wasmnet</title>
<script type="module">
import "/app.js";
const { pg, Redis, Buffer, configure } = globalThis.app;
const failure = (e) => ({ error: { code: e?.code ?? null, message: String(e?.message ?? e) } });

globalThis.pgBasics = async (url, port) => {
  configure({ url });
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" });
  try {
    await client.connect();
    const one = (await client.query("SELECT 1 AS one")).rows[0].one;
    const param = (await client.query(
      "SELECT $1::int + $2::int AS sum, $3::text || '!' AS text", [40, 2, "héllo wasmnet"],
    )).rows[0];
    const big = Buffer.alloc(1 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 11)) & 255;
    const row = (await client.query(
      "SELECT $1::bytea AS b, length($1::bytea) AS n, md5($1::bytea) AS md5", [big],
    )).rows[0];
    const ssl = (await client.query(
      "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )).rows[0].ssl;
    return {
      one, param, serverLength: row.n, sameBytes: Buffer.isBuffer(row.b) && big.equals(row.b),
      md5: row.md5, ssl,
    };
  } catch (e) {
    return failure(e);
  } finally {
    await client.end().catch(() => {});
  }
};

globalThis.pgSsl = async (url, port) => {
  configure({ url });
  const client = new pg.Client({
    host: "127.0.0.1", port, user: "postgres", database: "postgres", ssl: true,
  });
  try {
    await client.connect();
    const row = (await client.query(
      "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )).rows[0];
    const param = (await client.query("SELECT $1::text || '!' AS t", ["over TLS"])).rows[0].t;
    return { ssl: row.ssl, version: row.version, param, encrypted: client.connection.stream.encrypted === true };
  } catch (e) {
    return failure(e);
  } finally {
    await client.end().catch(() => {});
  }
};

globalThis.pgConnectError = async (url, port) => {
  configure({ url });
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" });
  try {
    await client.connect();
    await client.end();
    return { connected: true };
  } catch (e) {
    return failure(e);
  }
};

globalThis.redisBasics = async (url, port) => {
  configure({ url });
  const redis = new Redis({ host: "127.0.0.1", port, lazyConnect: true });
  const sub = redis.duplicate();
  try {
    await redis.connect();
    await redis.set("greeting", "héllo wasmnet");
    const got = await redis.get("greeting");

    const pipeline = redis.pipeline();
    for (let i = 0; i < 10000; i++) pipeline.incr("counter");
    const results = await pipeline.exec();
    const errors = results.filter(([err]) => err !== null).length;
    const last = results[results.length - 1][1];
    const inOrder = results.every(([, n], i) => n === i + 1);

    await sub.connect();
    await sub.subscribe("news");
    const message = new Promise((resolve) => sub.on("message", (channel, text) => resolve({ channel, text })));
    const receivers = await redis.publish("news", "over wasmnet");
    const received = await message;
    return { got, pipelined: results.length, errors, last, inOrder, receivers, received };
  } catch (e) {
    return failure(e);
  } finally {
    sub.disconnect();
    await redis.quit().catch(() => redis.disconnect());
  }
};

globalThis.redisConnectError = async (url, port) => {
  configure({ url });
  const redis = new Redis({
    host: "127.0.0.1", port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0,
  });
  const seen = new Promise((resolve) => redis.once("error", resolve));
  try {
    await redis.connect();
    return { connected: true };
  } catch (e) {
    const first = await Promise.race([seen, new Promise((r) => setTimeout(() => r(e), 2000))]);
    return failure(first);
  } finally {
    redis.disconnect();
  }
};
globalThis.ready = true;
</script>`;

/** Bundles dist/node into `dir/node/` and the recipe's app.js into `dir/app.js`; its source. */
async function buildRecipe(dir: string): Promise<string> {
  await buildNodeBundles({ outdir: join(dir, "node") });
  const out = join(dir, "app.js");
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-run",
      "--allow-sys",
      "build.mjs",
      "app.js",
      out,
    ],
    cwd: RECIPE_DIR,
    env: { WASMNET_NODE_DIR: `${join(dir, "node")}/` },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  assert.equal(code, 0, `the recipe's build failed: ${dec.decode(stdout)}${dec.decode(stderr)}`);
  return await Deno.readTextFile(out);
}

Deno.test("node in the browser: unmodified pg and ioredis in Chromium against real PostgreSQL and Redis", async (t) => {
  requireChromium();
  pgBinDir(); // fails now, with the install command, when PostgreSQL is missing
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-node-browser-" });
  try {
    const app = await buildRecipe(dir);
    const pki = await makeTestPki();
    await using pgServer = await startPostgres({
      tls: { cert: pki.serverCert, key: pki.serverKey },
    });
    await using redisServer = await startRedis();
    await using server = await startTestServer({
      transport: testTransport({ caCerts: [pki.caCert] }),
    });
    const denyPolicy = Policy.fromConfig({
      deny: [`127.0.0.0/8:${pgServer.port}`, `127.0.0.0/8:${redisServer.port}`],
      allow: ["*"],
      maxBandwidthMbps: 0,
    }, "<test>");
    await using denying = await startTestServer({ policy: denyPolicy });
    await using web = await openPage(PAGE, { "/app.js": { body: app, type: "text/javascript" } });
    const call = web.call;
    {
      await t.step(
        "pg: connect, SELECT 1, a parameterised query, a 1 MiB bytea round trip",
        async () => {
          const big = new Uint8Array(1 << 20);
          for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 11)) & 255;
          const md5 = await md5Hex(big);
          assert.deepEqual(await call("pgBasics", server.url, pgServer.port), {
            one: 1,
            param: { sum: 42, text: "héllo wasmnet!" },
            serverLength: 1 << 20,
            sameBytes: true,
            md5,
            ssl: false,
          });
        },
      );

      await t.step(
        "pg: ssl through start_tls, the certificate verified by the server",
        async () => {
          assert.deepEqual(await call("pgSsl", server.url, pgServer.port), {
            ssl: true,
            version: "TLSv1.3",
            param: "over TLS!",
            encrypted: true,
          });
        },
      );

      await t.step("ioredis: SET/GET, a pipeline of 10,000 commands, pub/sub", async () => {
        assert.deepEqual(await call("redisBasics", server.url, redisServer.port), {
          got: "héllo wasmnet",
          pipelined: 10_000,
          errors: 0,
          last: 10_000,
          inOrder: true,
          receivers: 1,
          received: { channel: "news", text: "over wasmnet" },
        });
      });

      await t.step("a denied database port: EACCES naming the policy rule", async () => {
        for (
          const [fn, port] of [["pgConnectError", pgServer.port], [
            "redisConnectError",
            redisServer.port,
          ]] as const
        ) {
          const result = await call(fn, denying.url, port) as {
            error?: { code: string | null; message: string };
          };
          assert.equal(result.error?.code, "EACCES", `${fn}: ${JSON.stringify(result)}`);
          assert.ok(
            result.error.message.includes(`rule "127.0.0.0/8:${port}"`),
            `${fn}: the message names the rule: ${result.error.message}`,
          );
        }
      });
      assert.deepEqual(web.errors, []);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** MD5 of `bytes` in lower-case hex (PostgreSQL's `md5()`), by the system `openssl`. */
async function md5Hex(bytes: Uint8Array): Promise<string> {
  const child = new Deno.Command("openssl", {
    args: ["dgst", "-md5", "-r"],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(bytes);
  await writer.close();
  const { stdout } = await child.output();
  return new TextDecoder().decode(stdout).split(" ")[0] ?? "";
}

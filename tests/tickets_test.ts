// Signed tickets end to end (issue 14): a server with --ticket-key admits an upgrade only with a
// valid JWT (?ticket= or the subprotocol wasmnet.ticket.<jwt>), refuses every forgery with 401
// before the upgrade, and narrows each session's policy by the ticket's allow list and limits —
// over wasmnet, Wisp and wsproxy alike, in process or as a Deno/Bun child.
import assert from "node:assert/strict";
import { join } from "node:path";
import * as jose from "jose";
// @ts-types="npm:@types/ws@^8.18.1"
import NodeWebSocket from "ws";
import { TestClient } from "./helpers/ws_client.ts";
import {
  inProcessOnly,
  loopbackPolicy,
  reloadPolicy,
  startTestServer,
  testTransport,
} from "./helpers/server.ts";
import { startTcpEcho, type StreamServer } from "./helpers/echo_servers.ts";
import { startDnsServer } from "./helpers/dns_server.ts";
import { RawWisp } from "./helpers/wisp_raw.ts";
import { ServerProcess } from "./helpers/server_process.ts";
import { ROOT } from "./helpers/target.ts";
import { Policy } from "../src/policy/mod.ts";
import type { WireEvent } from "../src/protocol/mod.ts";
import type { WasmnetServer } from "../src/server/mod.ts";
import { denoAdapter } from "../src/server/deno/mod.ts";
import {
  type MintClaims,
  mintTicket,
  parseSigningKey,
  parseTicketKey,
  TICKET_PROTOCOL_PREFIX,
  type TicketKey,
} from "../src/server/tickets.ts";

const te = new TextEncoder();
const td = new TextDecoder();
const SECRET = "correct horse battery staple, and then some more: 0123456789";
const CLOSE_BLOCKED = 0x48;

const now = (): number => Math.floor(Date.now() / 1000);
const b64url = (text: string): string => jose.base64url.encode(te.encode(text));

/** The HMAC key of {@linkcode SECRET}, and a ticket signed with it. */
async function hmac(): Promise<TicketKey> {
  return await parseTicketKey(SECRET, "<test secret>");
}

async function ticket(claims: MintClaims, ttlSecs = 600): Promise<string> {
  return await mintTicket(await hmac(), claims, ttlSecs);
}

/** Signs `payload` as is (no claim defaults) with `alg` and `key`. */
async function signRaw(
  payload: jose.JWTPayload,
  alg: string,
  key: Parameters<jose.SignJWT["sign"]>[0],
): Promise<string> {
  return await new jose.SignJWT(payload).setProtectedHeader({ alg }).sign(key);
}

/** A ticketed server on loopback with a policy that allows loopback (the server's, not the ticket's). */
async function ticketServer(
  key?: TicketKey,
  extra: { leewaySecs?: number; policy?: Policy; transport?: ReturnType<typeof testTransport> } =
    {},
): Promise<WasmnetServer> {
  const { leewaySecs, policy, transport } = extra;
  return await startTestServer({
    tickets: { key: key ?? await hmac(), ...(leewaySecs !== undefined ? { leewaySecs } : {}) },
    ...(policy ? { policy } : {}),
    ...(transport ? { transport } : {}),
  });
}

/**
 * A raw HTTP upgrade request to `path` (optionally offering `protocols`): the response status,
 * its body (for a refusal) and the echoed subprotocol (for a 101, whose connection is then closed).
 */
async function upgrade(
  server: WasmnetServer | number,
  path: string,
  protocols?: string,
): Promise<{ status: number; body: string }> {
  const port = typeof server === "number" ? server : server.addr.port;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(te.encode(
      [
        `GET ${path} HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        ...(protocols !== undefined ? [`Sec-WebSocket-Protocol: ${protocols}`] : []),
        "",
        "",
      ].join("\r\n"),
    ));
    let text = "";
    const buf = new Uint8Array(4096);
    while (true) {
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
        if (status === 101) return { status, body: "" };
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? -1);
        const body = text.slice(end + 4);
        if (length >= 0 && te.encode(body).byteLength >= length) return { status, body };
      }
      const n = await conn.read(buf);
      if (n === null) {
        const end2 = text.indexOf("\r\n\r\n");
        return {
          status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]),
          body: text.slice(end2 + 4),
        };
      }
      text += td.decode(buf.subarray(0, n));
    }
  } finally {
    conn.close();
  }
}

/** Asserts the upgrade with `token` (as `?ticket=`) is refused with 401 and a reason matching `re`. */
async function assertRefused(server: WasmnetServer, token: string, re: RegExp): Promise<void> {
  for (
    const [path, protocols] of [[`/?ticket=${token}`, undefined], [
      "/",
      `${TICKET_PROTOCOL_PREFIX}${token}`,
    ]]
  ) {
    const { status, body } = await upgrade(server, path as string, protocols);
    assert.equal(status, 401, `${path} ${protocols}: ${body}`);
    assert.match(body, /^wasmnet: ticket refused: [^\n]+\n$/);
    assert.match(body, re);
  }
}

/** Connect `id` to `addr:port` and return the event. */
async function dial(
  client: TestClient,
  id: number,
  addr: string,
  port: number,
): Promise<WireEvent> {
  client.send({ op: "connect", id, addr, port });
  return await client.nextFor(id);
}

async function echoOnce(client: TestClient, id: number): Promise<void> {
  client.send({ op: "send", id, data: te.encode("ping") });
  assert.equal(td.decode(await client.collect(id, 4)), "ping");
}

Deno.test("tickets: a valid ticket opens a session, as ?ticket= or as a subprotocol entry (echoed), Deno's WebSocket and npm ws", async () => {
  await using echo = await startTcpEcho();
  await using server = await ticketServer();
  const token = await ticket({ sub: "alice", allow: [`127.0.0.1:${echo.port}`] });

  await using byQuery = await TestClient.open(`${server.url}?ticket=${token}`);
  assert.equal(byQuery.ws.protocol, "");
  assert.equal((await dial(byQuery, 1, "127.0.0.1", echo.port)).ev, "connected");
  await echoOnce(byQuery, 1);

  const entry = `${TICKET_PROTOCOL_PREFIX}${token}`;
  const ws = new WebSocket(server.url, ["some-app-protocol", entry]);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("subprotocol ticket refused"));
  });
  assert.equal(ws.protocol, entry); // the ticket's entry is echoed, not the first offered
  const closed = new Promise((resolve) => ws.onclose = resolve);
  ws.close();
  await closed;

  for (
    const [url, protocols] of [[`${server.url}?ticket=${token}`, []], [server.url, [
      entry,
    ]]] as const
  ) {
    const node = new NodeWebSocket(url, [...protocols]);
    await new Promise<void>((resolve, reject) => {
      node.once("open", () => resolve());
      node.once("error", reject);
    });
    assert.equal(node.protocol, protocols[0] ?? "");
    const done = new Promise((resolve) => node.once("close", resolve));
    node.close();
    await done;
  }
});

Deno.test("tickets: no ticket, expired, no exp, wrong key, altered, alg none, other algs, two tickets → 401 before the upgrade", async () => {
  await using server = await ticketServer();
  const key = te.encode(SECRET);
  const valid = await ticket({ sub: "alice" });
  const [header, payload, signature] = valid.split(".") as [string, string, string];

  const bare = await upgrade(server, "/");
  assert.equal(bare.status, 401);
  assert.match(bare.body, /no ticket/);
  await assertRefused(
    server,
    await signRaw({ sub: "alice", exp: now() - 2 }, "HS256", key),
    /ticket expired at/,
  );
  await assertRefused(server, await signRaw({ sub: "alice" }, "HS256", key), /no "exp" claim/);
  await assertRefused(
    server,
    await signRaw({ sub: "alice", exp: now() + 600 }, "HS256", te.encode(`${SECRET}!`)),
    /bad ticket signature/,
  );
  // Altered payload (a wider allow list), original signature.
  const widened = b64url(JSON.stringify({ sub: "alice", allow: ["*"], exp: now() + 600 }));
  await assertRefused(server, `${header}.${widened}.${signature}`, /bad ticket signature/);
  // Altered signature.
  const flipped = (signature[0] === "A" ? "B" : "A") + signature.slice(1);
  await assertRefused(server, `${header}.${payload}.${flipped}`, /bad ticket signature/);
  // alg none: unsigned, with and without a trailing signature part.
  const none = `${b64url('{"alg":"none","typ":"JWT"}')}.${payload}`;
  await assertRefused(server, `${none}.`, /algorithm "none" not accepted \(expected HS256\)/);
  await assertRefused(server, `${none}.${signature}`, /algorithm "none" not accepted/);
  // Other algorithms, even with the right secret.
  await assertRefused(
    server,
    await signRaw({ exp: now() + 600 }, "HS512", key),
    /algorithm "HS512" not accepted/,
  );
  await assertRefused(server, "not.a.jwt", /malformed ticket/);
  // Two tickets in one upgrade.
  const two = await upgrade(server, `/?ticket=${valid}`, `${TICKET_PROTOCOL_PREFIX}${valid}`);
  assert.equal(two.status, 401);
  assert.match(two.body, /more than one ticket/);
  // Bad claims in a good signature.
  await assertRefused(
    server,
    await signRaw({ exp: now() + 600, allow: ["db:99999"] }, "HS256", key),
    /bad "allow" claim: allow\[0\] = "db:99999" is not a valid rule/,
  );
  await assertRefused(
    server,
    await signRaw({ exp: now() + 600, max_connections: 0 }, "HS256", key),
    /bad "max_connections" claim/,
  );
  // Wisp and wsproxy paths are gated too.
  assert.equal((await upgrade(server, "/wisp/")).status, 401);
  assert.equal((await upgrade(server, "/wisp/127.0.0.1:9")).status, 401);
  assert.equal((await upgrade(server, `/wisp/?ticket=${valid}`)).status, 101);
});

Deno.test("tickets: an Ed25519 server takes EdDSA tickets only (not HS256 keyed with its public key, not another key pair's)", async () => {
  const pair = await jose.generateKeyPair("EdDSA", { extractable: true });
  const publicPem = await jose.exportSPKI(pair.publicKey);
  const privatePem = await jose.exportPKCS8(pair.privateKey);
  await using server = await ticketServer(await parseTicketKey(publicPem, "pub.pem"));
  const signer = await parseSigningKey(privatePem, "priv.pem");
  const good = await mintTicket(signer, { sub: "ed" }, 60);
  assert.equal((await upgrade(server, `/?ticket=${good}`)).status, 101);
  // Key confusion: HS256 with the public key's PEM as the HMAC secret.
  await assertRefused(
    server,
    await signRaw({ exp: now() + 600 }, "HS256", te.encode(publicPem)),
    /algorithm "HS256" not accepted \(expected EdDSA\)/,
  );
  const other = await jose.generateKeyPair("EdDSA");
  await assertRefused(
    server,
    await signRaw({ exp: now() + 600 }, "EdDSA", other.privateKey),
    /bad ticket signature/,
  );
});

/** Everything a ticket for `127.0.0.1:PORT` must not reach, and what it must. */
async function assertNarrowedToLoopbackPort(
  client: TestClient,
  echo: StreamServer,
  other: StreamServer,
  sub: string,
): Promise<void> {
  const notInTicket = new RegExp(`is not in the ticket's allow list \\(sub ${sub}\\)$`);
  let id = 10;
  // The same address in other spellings is the same destination (normalised, as the policy does).
  for (const same of ["127.0.0.1", "127.1", "0x7f000001", "::ffff:127.0.0.1"]) {
    const ev = await dial(client, ++id, same, echo.port);
    assert.equal(ev.ev, "connected", `${same}: ${JSON.stringify(ev)}`);
    await echoOnce(client, id);
  }
  // Another port, in any spelling; other hosts on the ticket's port.
  const refused: [string, number][] = [
    ...["127.0.0.1", "127.1", "0x7f000001", "::ffff:127.0.0.1", "localhost"].map((
      h,
    ): [string, number] => [h, other.port]),
    ...["localhost", "::1", "127.0.0.2", "0.0.0.0", "::"].map((h): [string, number] => [
      h,
      echo.port,
    ]),
  ];
  for (const [host, port] of refused) {
    const ev = await dial(client, ++id, host, port);
    assert.equal(ev.ev, "denied", `${host}:${port}: ${JSON.stringify(ev)}`);
    if (ev.ev === "denied") assert.match(ev.msg, notInTicket);
  }
  assert.equal(other.accepted, 0);
  // UDP, lookups and binds are narrowed too.
  client.send({ op: "connect_udp", id: ++id, addr: "127.0.0.1", port: other.port });
  assert.equal((await client.nextFor(id)).ev, "denied");
  client.send({ op: "resolve", id: ++id, name: "localhost" });
  const lookup = await client.nextFor(id);
  assert.equal(lookup.ev, "denied");
  if (lookup.ev === "denied") {
    assert.match(lookup.msg, /^lookup of localhost is not in the ticket's/);
  }
  client.send({ op: "bind", id: ++id, addr: "127.0.0.1", port: 4000 });
  assert.equal((await client.nextFor(id)).ev, "denied");
}

Deno.test("tickets: allow narrows a wasmnet session: 127.0.0.1:PORT reaches no other port, host or spelling of one (denied names the ticket)", async () => {
  await using echo = await startTcpEcho();
  await using other = await startTcpEcho();
  await using server = await ticketServer();
  const token = await ticket({ sub: "alice", allow: [`127.0.0.1:${echo.port}`] });
  for (const framing of ["json", "binary"] as const) {
    await using client = await TestClient.open(`${server.url}?ticket=${token}`, framing);
    await assertNarrowedToLoopbackPort(client, echo, other, "alice");
  }
});

Deno.test("tickets: a name rule (db.test:PORT) admits dials by that name only, not its address or another name for it", async () => {
  await using echo = await startTcpEcho();
  await using dns = await startDnsServer({
    records: { "db.test": { A: ["127.0.0.1"] }, "alias.test": { A: ["127.0.0.1"] } },
  });
  const transport = testTransport({ nameServer: { ipAddr: "127.0.0.1", port: dns.port } });
  await using server = await ticketServer(undefined, { transport });
  const token = await ticket({ sub: "bob", allow: [`db.test:${echo.port}`] });
  await using client = await TestClient.open(`${server.url}?ticket=${token}`);
  assert.equal((await dial(client, 1, "DB.test.", echo.port)).ev, "connected");
  await echoOnce(client, 1);
  for (
    const [host, port] of [["127.0.0.1", echo.port], ["alias.test", echo.port], [
      "db.test",
      echo.port + 1,
    ]] as const
  ) {
    const ev = await dial(client, 2, host, port);
    assert.equal(ev.ev, "denied", `${host}:${port}: ${JSON.stringify(ev)}`);
    if (ev.ev === "denied") {
      assert.equal(ev.msg, `${host}:${port} is not in the ticket's allow list (sub bob)`);
    }
  }
  client.send({ op: "resolve", id: 3, name: "db.test" });
  const answer = await client.nextFor(3);
  assert.equal(answer.ev, "resolved", JSON.stringify(answer));
  assert.equal(echo.accepted, 1); // the one allowed dial
});

Deno.test("tickets: Wisp (v1 by query, v2 by subprotocol, echoed) and wsproxy sessions are narrowed too (CLOSE 0x48, 1008)", async () => {
  await using echo = await startTcpEcho();
  await using other = await startTcpEcho();
  await using server = await ticketServer();
  const token = await ticket({ sub: "carol", allow: [`127.0.0.1:${echo.port}`] });
  const wispUrl = new URL("/wisp/", server.url).href;

  await using v1 = await RawWisp.open(`${wispUrl}?ticket=${token}`);
  v1.connect(1, "127.0.0.1", echo.port);
  v1.data(1, te.encode("wisp"));
  assert.equal(td.decode(await v1.collect(1, 4)), "wisp");
  for (
    const [stream, host, port] of [[3, "127.0.0.1", other.port], [5, "localhost", echo.port], [
      7,
      "::1",
      echo.port,
    ], [9, "127.1", other.port]] as const
  ) {
    v1.connect(stream, host, port);
    assert.equal(await v1.closeOf(stream), CLOSE_BLOCKED, `${host}:${port}`);
  }

  const entry = `${TICKET_PROTOCOL_PREFIX}${token}`;
  await using v2 = await RawWisp.open(wispUrl, { protocol: entry });
  assert.equal(v2.ws.protocol, entry);
  v2.connect(1, "127.0.0.1", other.port);
  assert.equal(await v2.closeOf(1), CLOSE_BLOCKED);
  v2.connect(3, "127.0.0.1", echo.port);
  v2.data(3, te.encode("v2"));
  assert.equal(td.decode(await v2.collect(3, 2)), "v2");

  // wsproxy: the allowed target streams; another is closed with 1008.
  const proxied = async (port: number): Promise<CloseEvent | string> => {
    const ws = new WebSocket(`${wispUrl}127.0.0.1:${port}?ticket=${token}`);
    ws.binaryType = "arraybuffer";
    const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
    const got = new Promise<string>((resolve) => ws.onmessage = (e) => resolve(td.decode(e.data)));
    await new Promise((resolve) => ws.onopen = resolve);
    ws.send(te.encode("wsp"));
    const first = await Promise.race([got, closed]);
    ws.close();
    await closed;
    return first;
  };
  assert.equal(await proxied(echo.port), "wsp");
  const refused = await proxied(other.port);
  assert.ok(typeof refused !== "string" && refused.code === 1008, String(refused));
  assert.equal(other.accepted, 0);
});

Deno.test("tickets: max_connections comes from the ticket (the smaller wins)", async () => {
  await using echo = await startTcpEcho();
  await using server = await ticketServer();
  const token = await ticket({ sub: "dave", maxConnections: 2 });
  await using client = await TestClient.open(`${server.url}?ticket=${token}`);
  assert.equal((await dial(client, 1, "127.0.0.1", echo.port)).ev, "connected");
  assert.equal((await dial(client, 2, "127.0.0.1", echo.port)).ev, "connected");
  const third = await dial(client, 3, "127.0.0.1", echo.port);
  assert.equal(third.ev, "error", JSON.stringify(third));
  if (third.ev === "error") assert.equal(third.msg, "max connections reached");
  client.send({ op: "close", id: 1 });
  assert.equal((await client.nextFor(1)).ev, "closed");
  assert.equal((await dial(client, 4, "127.0.0.1", echo.port)).ev, "connected");
  // A ticket cannot raise the server's cap.
  await using capped = await startTestServer({
    tickets: { key: await hmac() },
    policy: loopbackPolicy({ maxConnections: 1 }),
  });
  const generous = await ticket({ sub: "dave", maxConnections: 100 });
  await using c2 = await TestClient.open(`${capped.url}?ticket=${generous}`);
  assert.equal((await dial(c2, 1, "127.0.0.1", echo.port)).ev, "connected");
  assert.equal((await dial(c2, 2, "127.0.0.1", echo.port)).ev, "error");
});

Deno.test("tickets: no clock leeway by default; --ticket-leeway admits a just-expired ticket", async () => {
  const key = te.encode(SECRET);
  const late = await signRaw({ sub: "eve", exp: now() - 5 }, "HS256", key);
  await using strict = await ticketServer();
  await assertRefused(strict, late, /ticket expired/);
  await using lenient = await ticketServer(undefined, { leewaySecs: 60 });
  assert.equal((await upgrade(lenient, `/?ticket=${late}`)).status, 101);
  const older = await signRaw({ sub: "eve", exp: now() - 120 }, "HS256", key);
  await assertRefused(lenient, older, /ticket expired at .* \(leeway 60 s\)/);
});

Deno.test(
  "tickets: a reload narrows the new server policy (the ticket never widens it)",
  async () => {
    await using echo = await startTcpEcho();
    await using server = await ticketServer();
    const token = await ticket({ sub: "frank", allow: [`127.0.0.1:${echo.port}`] });
    await using client = await TestClient.open(`${server.url}?ticket=${token}`);
    assert.equal((await dial(client, 1, "127.0.0.1", echo.port)).ev, "connected");
    await reloadPolicy(server, Policy.fromConfig({ deny: ["127.0.0.0/8"], allow: ["*"] }));
    const ev = await dial(client, 2, "127.0.0.1", echo.port);
    assert.equal(ev.ev, "denied");
    if (ev.ev === "denied") assert.match(ev.msg, /denied by rule "127\.0\.0\.0\/8"/);
    await reloadPolicy(server, loopbackPolicy());
    assert.equal((await dial(client, 3, "127.0.0.1", echo.port)).ev, "connected");
  },
);

/** Runs `deno run -A mod.ts ARGS` and returns its exit code and output. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "mod.ts", ...args],
    cwd: ROOT,
    stdin: "null",
  }).output();
  return { code: out.code, stdout: td.decode(out.stdout), stderr: td.decode(out.stderr) };
}

Deno.test("tickets: `wasmnet ticket` prints only a token the server accepts (HMAC and Ed25519); bad keys exit 2 with one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-tickets-" });
  try {
    await using echo = await startTcpEcho();
    await using other = await startTcpEcho();
    const secretFile = join(dir, "secret");
    await Deno.writeTextFile(secretFile, `  ${SECRET}\n`); // trimmed
    const minted = await cli(
      "ticket",
      "--key",
      secretFile,
      "--sub",
      "grace",
      "--allow",
      `127.0.0.1:${echo.port}`,
      "--ttl",
      "10m",
      "--max-connections",
      "5",
      "--mbps",
      "50",
    );
    assert.equal(minted.code, 0, minted.stderr);
    assert.equal(minted.stderr, "");
    assert.match(minted.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const token = minted.stdout.trim();
    const claims = jose.decodeJwt(token);
    assert.deepEqual(claims.allow, [`127.0.0.1:${echo.port}`]);
    assert.equal(claims.sub, "grace");
    assert.equal(claims.max_connections, 5);
    assert.equal(claims.mbps, 50);
    assert.ok(Math.abs((claims.exp ?? 0) - (now() + 600)) <= 5);
    {
      await using server = await ticketServer();
      await using client = await TestClient.open(`${server.url}?ticket=${token}`);
      assert.equal((await dial(client, 1, "127.0.0.1", echo.port)).ev, "connected");
      const ev = await dial(client, 2, "127.0.0.1", other.port);
      assert.equal(ev.ev, "denied");
    }

    const pair = await jose.generateKeyPair("EdDSA", { extractable: true });
    const pub = join(dir, "pub.pem");
    const priv = join(dir, "priv.pem");
    await Deno.writeTextFile(pub, await jose.exportSPKI(pair.publicKey));
    await Deno.writeTextFile(priv, await jose.exportPKCS8(pair.privateKey));
    const ed = await cli("ticket", "--key", priv, "--sub", "heidi", "--ttl", "90s");
    assert.equal(ed.code, 0, ed.stderr);
    assert.equal(jose.decodeProtectedHeader(ed.stdout.trim()).alg, "EdDSA");
    {
      await using server = await ticketServer(
        await parseTicketKey(await Deno.readTextFile(pub), pub),
      );
      await using client = await TestClient.open(`${server.url}?ticket=${ed.stdout.trim()}`);
      assert.equal((await dial(client, 1, "127.0.0.1", echo.port)).ev, "connected");
    }

    const short = join(dir, "short");
    await Deno.writeTextFile(short, "too short\n");
    for (
      const [args, re] of [
        [
          ["ticket", "--key", pub, "--ttl", "1m"],
          /needs the HMAC secret or the Ed25519 PRIVATE KEY/,
        ],
        [["ticket", "--key", short, "--ttl", "1m"], /the secret is 9 bytes/],
        [["ticket", "--key", secretFile, "--ttl", "10"], /--ttl/],
        [["ticket", "--key", secretFile], /--ttl/],
        [
          ["ticket", "--key", secretFile, "--ttl", "1m", "--allow", "10.0.0.0/33"],
          /prefix length 33 > 32/,
        ],
        [["ticket", "--key", join(dir, "missing"), "--ttl", "1m"], /cannot read --key file/],
        [
          ["-H", "127.0.0.1", "-p", "0", "--ticket-key", short],
          /--ticket-key: .*the secret is 9 bytes/,
        ],
        [["-H", "127.0.0.1", "-p", "0", "--ticket-key", priv], /needs an Ed25519 PUBLIC KEY/],
        [["--ticket-leeway", "5"], /--ticket-leeway needs --ticket-key/],
      ] as const
    ) {
      const r = await cli(...args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, re);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tickets: the server logs each refusal with the client address and the reason", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-tickets-" });
  try {
    const file = join(dir, "secret");
    await Deno.writeTextFile(file, SECRET);
    await using proc = await ServerProcess.start(["--no-policy", "--ticket-key", file]);
    const expired = await signRaw({ exp: now() - 10 }, "HS256", te.encode(SECRET));
    assert.equal((await upgrade(proc.port ?? 0, `/?ticket=${expired}`)).status, 401);
    const end = Date.now() + 10_000;
    while (!/upgrade refused: bad ticket/.test(proc.output) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(proc.output, /tickets required/);
    assert.match(
      proc.output,
      /upgrade refused: bad ticket.*client.*127\.0\.0\.1.*ticket expired at/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "tickets: the Deno.serve adapter (no npm ws) gates and echoes the same way",
  inProcessOnly("an adapter choice has no command-line form"),
  async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer({
      adapter: denoAdapter({ readBackpressure: false }),
      tickets: { key: await hmac() },
    });
    const token = await ticket({ sub: "ivan", allow: [`127.0.0.1:${echo.port}`] });
    await assertRefused(
      server,
      await signRaw({ exp: now() - 1 }, "HS256", te.encode(SECRET)),
      /expired/,
    );
    const entry = `${TICKET_PROTOCOL_PREFIX}${token}`;
    const ws = new WebSocket(server.url, ["app", entry]);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("refused"));
    });
    assert.equal(ws.protocol, entry);
    const closed = new Promise((resolve) => ws.onclose = resolve);
    ws.close();
    await closed;
    await using client = await TestClient.open(`${server.url}?ticket=${token}`);
    assert.equal((await dial(client, 1, "127.0.0.1", echo.port)).ev, "connected");
    const ev = await dial(client, 2, "127.0.0.1", echo.port + 1);
    assert.equal(ev.ev, "denied");
  },
);

Deno.test("tickets: mbps lowers the session's own bandwidth cap; the server's smaller cap still wins", async () => {
  await using echo = await startTcpEcho();
  const payload = new Uint8Array(150_000).fill(7); // ≥ 1.05 s each way at 1 Mbps (125,000 B/s)
  const roundTrip = async (server: WasmnetServer, claims: MintClaims): Promise<number> => {
    await using client = await TestClient.open(`${server.url}?ticket=${await ticket(claims)}`);
    assert.equal((await dial(client, 1, "127.0.0.1", echo.port)).ev, "connected");
    const started = performance.now();
    client.send({ op: "send", id: 1, data: payload });
    assert.equal((await client.collect(1, payload.byteLength)).byteLength, payload.byteLength);
    return performance.now() - started;
  };
  {
    await using open = await ticketServer(); // the server itself is unlimited
    assert.ok(await roundTrip(open, { sub: "fast" }) < 900, "an unlimited session is fast");
    const slow = await roundTrip(open, { sub: "slow", mbps: 1 });
    assert.ok(slow >= 900, `the ticket's 1 Mbps applied (${slow.toFixed(0)} ms)`);
  }
  await using capped = await startTestServer({
    tickets: { key: await hmac() },
    maxBandwidthMbps: 1,
  });
  const generous = await roundTrip(capped, { sub: "greedy", mbps: 1000 });
  assert.ok(generous >= 900, `the server's 1 Mbps still applies (${generous.toFixed(0)} ms)`);
});

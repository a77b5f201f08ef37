/**
 * Malformed input: every bad message gets the documented `error` event with id 0 and a message
 * starting `invalid request:` (text) or `invalid binary frame:` (binary), and the session keeps
 * working after each one. A message over the size limit closes the WebSocket with 1009 instead.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TestClient } from "./helpers/ws_client.ts";
import { inProcessOnly, startTestServer } from "./helpers/server.ts";
import { denoAdapter } from "../src/server/deno/mod.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { until } from "./helpers/wait.ts";
import type { Framing } from "../src/protocol/mod.ts";

const MAX_MESSAGE_BYTES = 4096;
const enc = new TextEncoder();

/** A binary frame: type byte, 8-byte big-endian id, then `payload` bytes. */
function frame(type: number, id: bigint | number, ...payload: number[]): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, type);
  dv.setBigUint64(1, BigInt(id));
  out.set(payload, 9);
  return out;
}

interface Case {
  name: string;
  message: string | Uint8Array;
  /** Expected error text after the prefix, when it is worth pinning; else any detail. */
  detail?: RegExp;
}

const JSON_CASES: Case[] = [
  { name: "not JSON", message: "{", detail: /^not valid JSON/ },
  { name: "empty text", message: "", detail: /^not valid JSON/ },
  { name: "plain word", message: "hello", detail: /^not valid JSON/ },
  { name: "trailing garbage", message: '{"op":"close","id":1} x', detail: /^not valid JSON/ },
  { name: "JSON null", message: "null", detail: /^expected a JSON object/ },
  { name: "JSON array", message: '[{"op":"close","id":1}]', detail: /^expected a JSON object/ },
  { name: "JSON number", message: "42", detail: /^expected a JSON object/ },
  { name: "JSON string", message: '"close"', detail: /^expected a JSON object/ },
  { name: "empty object", message: "{}", detail: /^missing field "op"/ },
  { name: "unknown op", message: '{"op":"frobnicate","id":1}', detail: /^unknown op "frobnicate"/ },
  { name: "event name as op", message: '{"op":"connected","id":1}', detail: /^unknown op/ },
  { name: "op of wrong type", message: '{"op":1,"id":1}', detail: /^unknown op 1/ },
  { name: "op null", message: '{"op":null,"id":1}', detail: /^unknown op null/ },
  { name: "op in upper case", message: '{"op":"CLOSE","id":1}', detail: /^unknown op "CLOSE"/ },
  { name: "missing id", message: '{"op":"close"}', detail: /^missing field "id"/ },
  { name: "id as string", message: '{"op":"close","id":"1"}', detail: /^field "id" must be/ },
  { name: "negative id", message: '{"op":"close","id":-1}', detail: /^field "id" must be/ },
  { name: "fractional id", message: '{"op":"close","id":1.5}', detail: /^field "id" must be/ },
  { name: "id 2^53", message: '{"op":"close","id":9007199254740992}', detail: /^field "id"/ },
  { name: "id 1e300", message: '{"op":"close","id":1e300}', detail: /^field "id"/ },
  { name: "id null", message: '{"op":"close","id":null}', detail: /^field "id"/ },
  {
    name: "connect without port",
    message: '{"op":"connect","id":1,"addr":"127.0.0.1"}',
    detail: /^missing field "port"/,
  },
  {
    name: "connect without addr",
    message: '{"op":"connect","id":1,"port":80}',
    detail: /^missing field "addr"/,
  },
  {
    name: "port 65536",
    message: '{"op":"connect","id":1,"addr":"127.0.0.1","port":65536}',
    detail: /^field "port" must be an integer from 0 to 65535/,
  },
  {
    name: "port -1",
    message: '{"op":"connect","id":1,"addr":"127.0.0.1","port":-1}',
    detail: /^field "port"/,
  },
  {
    name: "port as string",
    message: '{"op":"connect","id":1,"addr":"127.0.0.1","port":"80"}',
    detail: /^field "port"/,
  },
  {
    name: "addr as number",
    message: '{"op":"connect","id":1,"addr":2130706433,"port":80}',
    detail: /^field "addr" must be a string/,
  },
  { name: "send without data", message: '{"op":"send","id":1}', detail: /^missing field "data"/ },
  {
    name: "send data as array",
    message: '{"op":"send","id":1,"data":[1,2]}',
    detail: /^field "data" must be a string/,
  },
  {
    name: "send data bad base64",
    message: '{"op":"send","id":1,"data":"!!!!"}',
    detail: /^field "data" is not valid base64$/,
  },
  {
    name: "send data URL-safe base64",
    message: '{"op":"send","id":1,"data":"-_-_"}',
    detail: /^field "data" is not valid base64$/,
  },
  {
    name: "listen with negative backlog",
    message: '{"op":"listen","id":1,"backlog":-5}',
    detail: /^field "backlog"/,
  },
  {
    name: "send_to without port",
    message: '{"op":"send_to","id":1,"addr":"127.0.0.1","data":""}',
    detail: /^missing field "port"/,
  },
  {
    name: "resolve without name",
    message: '{"op":"resolve","id":1}',
    detail: /^missing field "name"/,
  },
];

const ADDR_BAD_UTF8 = [0x00, 0x50, 0xff, 0xfe, 0x41];

const BINARY_CASES: Case[] = [
  { name: "empty binary frame", message: new Uint8Array(0), detail: /^binary frame too short/ },
  { name: "1-byte frame", message: new Uint8Array([0x05]), detail: /^binary frame too short/ },
  {
    name: "8-byte frame",
    message: new Uint8Array([0x05, 0, 0, 0, 0, 0, 0, 1]),
    detail: /^binary frame too short \(8 bytes/,
  },
  { name: "type 0x00", message: frame(0x00, 1), detail: /^unknown message type: 0x00/ },
  { name: "type 0x1f", message: frame(0x1f, 1), detail: /^unknown message type: 0x1f/ },
  { name: "type 0x42", message: frame(0x42, 1), detail: /^unknown message type: 0x42/ },
  { name: "event type 0x81 as request", message: frame(0x81, 1), detail: /^unknown message type/ },
  { name: "event type 0x86 as request", message: frame(0x86, 1), detail: /^unknown message type/ },
  { name: "type 0xff", message: frame(0xff, 1), detail: /^unknown message type: 0xff/ },
  { name: "close id 2^53", message: frame(0x05, 2n ** 53n), detail: /^id \d+ is above 2\^53-1/ },
  { name: "close id 2^64-1", message: frame(0x05, 2n ** 64n - 1n), detail: /^id \d+ is above/ },
  { name: "binary connect without port", message: frame(0x01, 1), detail: /^frame missing port/ },
  { name: "connect with 1-byte port", message: frame(0x01, 1, 0x01), detail: /missing port/ },
  { name: "connect_tls without port", message: frame(0x09, 1), detail: /^frame missing port/ },
  { name: "bind without port", message: frame(0x02, 1), detail: /^frame missing port/ },
  {
    name: "connect addr bad UTF-8",
    message: frame(0x01, 1, 0x00, 0x50, 0xff, 0xfe),
    detail: /^addr is not valid UTF-8/,
  },
  {
    name: "connect_udp addr bad UTF-8",
    message: frame(0x06, 1, ...ADDR_BAD_UTF8),
    detail: /^addr is not valid UTF-8/,
  },
  {
    name: "resolve name bad UTF-8",
    message: frame(0x08, 1, 0xc3, 0x28),
    detail: /^name is not valid UTF-8/,
  },
  {
    name: "send_to without addr_len",
    message: frame(0x07, 1, 0x00, 0x35),
    detail: /^send_to frame too short/,
  },
  {
    name: "send_to addr truncated",
    message: frame(0x07, 1, 0x00, 0x35, 0x00, 0x0a, 0x31, 0x32, 0x37),
    detail: /^send_to addr truncated/,
  },
  {
    name: "send_to addr bad UTF-8",
    message: frame(0x07, 1, 0x00, 0x35, 0x00, 0x02, 0xff, 0xff, 0x01),
    detail: /^addr is not valid UTF-8/,
  },
  {
    name: "listen with 3-byte backlog",
    message: frame(0x03, 1, 0, 0, 1),
    detail: /^listen payload must be 0 or 4 bytes/,
  },
  {
    name: "listen with 5-byte backlog",
    message: frame(0x03, 1, 0, 0, 0, 1, 0),
    detail: /^listen payload must be 0 or 4 bytes/,
  },
];

/**
 * Messages over the size limit. The `ws` adapter refuses them as their frames arrive and closes the
 * WebSocket with 1009 (RFC 6455 §7.4.1, "message too big"); the `Deno.upgradeWebSocket` fallback
 * (no read backpressure) answers the documented `error` id 0 and keeps the session.
 */
const OVERSIZE_CASES: Case[] = [
  {
    name: "oversize JSON message",
    message: JSON.stringify({ op: "send", id: 1, data: "A".repeat(MAX_MESSAGE_BYTES) }),
    detail: /^message of \d+ bytes exceeds the limit of 4096 bytes/,
  },
  {
    // 1500 three-byte characters: 1533 UTF-16 units but 4533 UTF-8 bytes, over the 4096-byte limit.
    name: "oversize JSON message counted in UTF-8 bytes",
    message: JSON.stringify({ op: "resolve", id: 1, name: "€".repeat(1500) }),
    detail: /^message of 4533 bytes exceeds the limit of 4096 bytes/,
  },
  {
    name: "oversize binary message",
    message: frame(0x04, 1, ...new Uint8Array(MAX_MESSAGE_BYTES)),
    detail: /^message of 4105 bytes exceeds the limit of 4096 bytes/,
  },
];

function prefixOf(message: string | Uint8Array): string {
  return typeof message === "string" ? "invalid request: " : "invalid binary frame: ";
}

/**
 * Sends `bad`, expects the id-0 error, then proves the session still works in `framing`: a
 * `close` on an unknown id is answered, and a connect to the echo server is `connected`, echoes
 * and closes.
 */
async function checkCase(
  client: TestClient,
  c: Case,
  echoPort: number,
  id: number,
): Promise<void> {
  client.sendRaw(c.message);
  const ev = await client.next();
  assert.equal(ev.ev, "error", `${c.name}: ${JSON.stringify(ev)}`);
  if (ev.ev !== "error") return;
  assert.equal(ev.id, 0, `${c.name}: error id`);
  const prefix = prefixOf(c.message);
  assert.ok(ev.msg.startsWith(prefix), `${c.name}: ${JSON.stringify(ev.msg)} lacks ${prefix}`);
  if (c.detail) {
    assert.match(ev.msg.slice(prefix.length), c.detail, `${c.name}: ${ev.msg}`);
  }
  assert.equal(client.queued.length, 0, `${c.name}: one event only: ${client.describeQueue()}`);
  // The session still works.
  client.send({ op: "close", id });
  assert.deepEqual(await client.nextFor(id), { ev: "error", id, msg: `unknown id ${id}` });
  await client.connect(id, "127.0.0.1", echoPort);
  client.send({ op: "send", id, data: enc.encode(c.name) });
  assert.equal(
    new TextDecoder().decode(await client.collect(id, enc.encode(c.name).length)),
    c.name,
  );
  client.send({ op: "close", id });
  assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
}

Deno.test("malformed: the table has at least 30 distinct cases", () => {
  const all = [...JSON_CASES, ...BINARY_CASES, ...OVERSIZE_CASES];
  assert.ok(all.length >= 30, `${all.length} cases`);
  assert.equal(new Set(all.map((c) => c.name)).size, all.length, "case names are unique");
});

for (const [kind, cases] of [["text", JSON_CASES], ["binary", BINARY_CASES]] as const) {
  for (const c of cases) {
    // The valid requests after the bad one use the other framing too, in a second session.
    for (const framing of ["json", "binary"] as Framing[]) {
      Deno.test(`malformed ${kind}: ${c.name} (then ${framing} requests)`, async () => {
        await using echo = await startTcpEcho();
        await using server = await startTestServer({
          limits: { maxMessageBytes: MAX_MESSAGE_BYTES },
        });
        await using client = await TestClient.open(server.url, framing);
        await checkCase(client, c, echo.port, 11);
        // Twice in a row on the same session: still fine.
        await checkCase(client, c, echo.port, 12);
      });
    }
  }
}

Deno.test("malformed: every bad message in a row on one session, each followed by a valid one", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer({ limits: { maxMessageBytes: MAX_MESSAGE_BYTES } });
  await using client = await TestClient.open(server.url, "binary");
  // A socket that stays open through all of it.
  await client.connect(1, "127.0.0.1", echo.port);
  let id = 100;
  const cases = [...JSON_CASES, ...BINARY_CASES];
  for (const c of cases) {
    client.framing = id % 2 === 0 ? "json" : "binary";
    await checkCase(client, c, echo.port, id++);
  }
  client.send({ op: "send", id: 1, data: enc.encode("still open") });
  assert.equal(new TextDecoder().decode(await client.collect(1, 10)), "still open");
  assert.equal(echo.accepted, 1 + cases.length);
});

Deno.test("malformed: a message of exactly the limit is decoded", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer({ limits: { maxMessageBytes: MAX_MESSAGE_BYTES } });
  await using client = await TestClient.open(server.url, "binary");
  await client.connect(1, "127.0.0.1", echo.port);
  const payload = new Uint8Array(MAX_MESSAGE_BYTES - 9).fill(7);
  client.sendRaw(frame(0x04, 1, ...payload));
  assert.deepEqual(await client.collect(1, payload.byteLength), payload);
});

for (const c of OVERSIZE_CASES) {
  Deno.test(`malformed ${c.name}: the WebSocket closes with 1009, the server goes on`, async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer({ limits: { maxMessageBytes: MAX_MESSAGE_BYTES } });
    await using client = await TestClient.open(server.url, "binary");
    await client.connect(1, "127.0.0.1", echo.port);
    client.sendRaw(c.message);
    await client.closed;
    assert.equal(client.closeCode, 1009);
    await until(() => echo.live === 0, "the session's socket is closed with it");
    await using next = await TestClient.open(server.url, "json");
    await checkCase(next, JSON_CASES[0] as Case, echo.port, 2);
  });

  Deno.test(
    `malformed ${c.name}: without read backpressure, error id 0`,
    inProcessOnly("the adapter without read backpressure (denoAdapter option)"),
    async () => {
      await using echo = await startTcpEcho();
      await using server = await startTestServer({
        limits: { maxMessageBytes: MAX_MESSAGE_BYTES },
        adapter: denoAdapter({ readBackpressure: false }),
      });
      await using client = await TestClient.open(server.url, "binary");
      await checkCase(client, c, echo.port, 11);
    },
  );
}

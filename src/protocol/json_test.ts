// Unit tests of the JSON framing (json.ts, _fields.ts): exact text against DESIGN.md §3 and
// wasmnet 0.1.3's key order, round trips, id/port/backlog ranges and every refusal message.
import assert from "node:assert/strict";
import { decodeEventJson, decodeRequestJson, encodeEventJson, encodeRequestJson } from "./json.ts";
import {
  DEFAULT_BACKLOG,
  MAX_ID,
  ProtocolError,
  type Request,
  type WireEvent,
} from "./messages.ts";

const te = new TextEncoder();

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/** Asserts that decoding `text` as a request throws a JSON ProtocolError with `message`. */
function refuses(text: string, message: string | RegExp): void {
  assert.throws(() => decodeRequestJson(text), {
    name: "ProtocolError",
    code: "EPROTOCOL",
    framing: "json",
    message,
  });
}

/** Asserts that decoding `text` as an event throws a JSON ProtocolError with `message`. */
function refusesEvent(text: string, message: string | RegExp): void {
  assert.throws(() => decodeEventJson(text), {
    name: "ProtocolError",
    code: "EPROTOCOL",
    framing: "json",
    message,
  });
}

// ---------------------------------------------------------------------------------------------
// Requests: exact text and round trips, one per op (9, and the extensions start_tls, shutdown).

const requestCases: { req: Request; text: string }[] = [
  {
    req: { op: "connect", id: 42, addr: "example.com", port: 443 },
    text: '{"op":"connect","id":42,"addr":"example.com","port":443}',
  },
  {
    req: { op: "bind", id: 3, addr: "0.0.0.0", port: 8080 },
    text: '{"op":"bind","id":3,"addr":"0.0.0.0","port":8080}',
  },
  {
    req: { op: "listen", id: 3, backlog: 16 },
    text: '{"op":"listen","id":3,"backlog":16}',
  },
  {
    req: { op: "send", id: 1, data: te.encode("hi") },
    text: '{"op":"send","id":1,"data":"aGk="}',
  },
  { req: { op: "close", id: 1 }, text: '{"op":"close","id":1}' },
  {
    req: { op: "connect_udp", id: 5, addr: "8.8.8.8", port: 53 },
    text: '{"op":"connect_udp","id":5,"addr":"8.8.8.8","port":53}',
  },
  {
    req: { op: "send_to", id: 5, addr: "1.1.1.1", port: 53, data: bytes(0xde, 0xad) },
    text: '{"op":"send_to","id":5,"addr":"1.1.1.1","port":53,"data":"3q0="}',
  },
  {
    req: { op: "resolve", id: 7, name: "a.b" },
    text: '{"op":"resolve","id":7,"name":"a.b"}',
  },
  {
    req: { op: "connect_tls", id: 9, addr: "x.io", port: 443 },
    text: '{"op":"connect_tls","id":9,"addr":"x.io","port":443}',
  },
  {
    req: { op: "start_tls", id: 9, servername: "db.example.com" },
    text: '{"op":"start_tls","id":9,"servername":"db.example.com"}',
  },
  { req: { op: "shutdown", id: 9 }, text: '{"op":"shutdown","id":9}' },
  {
    req: { op: "ping", id: 9, addr: "127.0.0.1", seq: 1, data: te.encode("hi"), timeout_ms: 500 },
    text: '{"op":"ping","id":9,"addr":"127.0.0.1","seq":1,"data":"aGk=","timeout_ms":500}',
  },
];

Deno.test("json requests: the cases cover all 9 ops and the 3 extensions", (): void => {
  assert.deepStrictEqual(
    requestCases.map((c) => c.req.op).sort(),
    [
      "bind",
      "close",
      "connect",
      "connect_tls",
      "connect_udp",
      "listen",
      "ping",
      "resolve",
      "send",
      "send_to",
      "shutdown",
      "start_tls",
    ],
  );
});

for (const { req, text } of requestCases) {
  Deno.test(`json request ${req.op}: exact text, decode and round trip`, (): void => {
    assert.equal(encodeRequestJson(req), text);
    assert.deepStrictEqual(decodeRequestJson(text), req);
    assert.deepStrictEqual(decodeRequestJson(encodeRequestJson(req)), req);
  });
}

Deno.test("json request: keys in any order and whitespace are accepted", (): void => {
  assert.deepStrictEqual(
    decodeRequestJson(' \n{ "port" : 443 , "addr":"example.com",\t"id":42, "op":"connect" }\r\n'),
    { op: "connect", id: 42, addr: "example.com", port: 443 },
  );
});

Deno.test("json request: unknown extra fields are ignored and not copied", (): void => {
  assert.deepStrictEqual(
    decodeRequestJson(
      '{"op":"connect","id":1,"addr":"h","port":1,"extra":{"nested":[1,2]},"data":5,"ev":"x"}',
    ),
    { op: "connect", id: 1, addr: "h", port: 1 },
  );
  assert.deepStrictEqual(decodeRequestJson('{"op":"close","id":1,"addr":7,"port":-1}'), {
    op: "close",
    id: 1,
  });
  assert.deepStrictEqual(decodeRequestJson('{"op":"send","id":1,"data":"","backlog":"x"}'), {
    op: "send",
    id: 1,
    data: new Uint8Array(0),
  });
});

Deno.test("json request listen: backlog defaults to 128 when absent or null", (): void => {
  assert.equal(DEFAULT_BACKLOG, 128);
  assert.deepStrictEqual(decodeRequestJson('{"op":"listen","id":4}'), {
    op: "listen",
    id: 4,
    backlog: 128,
  });
  assert.deepStrictEqual(decodeRequestJson('{"op":"listen","id":4,"backlog":null}'), {
    op: "listen",
    id: 4,
    backlog: 128,
  });
});

Deno.test("json request listen: backlog bounds 0 and 2^32-1 are accepted", (): void => {
  for (const backlog of [0, 1, 4294967295]) {
    assert.deepStrictEqual(decodeRequestJson(`{"op":"listen","id":4,"backlog":${backlog}}`), {
      op: "listen",
      id: 4,
      backlog,
    });
  }
});

Deno.test("json request listen: backlog out of range or of the wrong type is refused", (): void => {
  for (const bad of ["-1", "4294967296", "1.5", '"10"', "true", "[]", "{}", "1e300"]) {
    refuses(
      `{"op":"listen","id":4,"backlog":${bad}}`,
      /^invalid request: field "backlog" must be an integer from 0 to 4294967295, got /,
    );
  }
  refuses(
    '{"op":"listen","id":4,"backlog":-1}',
    'invalid request: field "backlog" must be an integer from 0 to 4294967295, got -1',
  );
});

// ---------------------------------------------------------------------------------------------
// Events: exact text in wasmnet key order and round trips, one per event (10).

const eventCases: { ev: WireEvent; text: string }[] = [
  { ev: { ev: "connected", id: 1 }, text: '{"ev":"connected","id":1}' },
  { ev: { ev: "data", id: 1, data: te.encode("hi") }, text: '{"ev":"data","id":1,"data":"aGk="}' },
  {
    ev: { ev: "listening", id: 1, port: 8080 },
    text: '{"ev":"listening","id":1,"port":8080}',
  },
  {
    ev: { ev: "accepted", id: 1, conn_id: 2, remote: "[::1]:5" },
    text: '{"ev":"accepted","id":1,"conn_id":2,"remote":"[::1]:5"}',
  },
  { ev: { ev: "closed", id: 1 }, text: '{"ev":"closed","id":1}' },
  { ev: { ev: "error", id: 1, msg: "boom" }, text: '{"ev":"error","id":1,"msg":"boom"}' },
  { ev: { ev: "denied", id: 1, msg: "no" }, text: '{"ev":"denied","id":1,"msg":"no"}' },
  {
    ev: { ev: "data_from", id: 1, data: te.encode("hi"), addr: "1.2.3.4", port: 53 },
    text: '{"ev":"data_from","id":1,"data":"aGk=","addr":"1.2.3.4","port":53}',
  },
  {
    ev: { ev: "resolved", id: 1, addrs: ["1.2.3.4"] },
    text: '{"ev":"resolved","id":1,"addrs":["1.2.3.4"]}',
  },
  {
    ev: { ev: "udp_bound", id: 1, port: 5353 },
    text: '{"ev":"udp_bound","id":1,"port":5353}',
  },
  {
    ev: {
      ev: "pong",
      id: 1,
      source: "::1",
      seq: 65535,
      type: 129,
      code: 0,
      rtt_ms: 0.042,
      data: te.encode("hi"),
    },
    text:
      '{"ev":"pong","id":1,"source":"::1","seq":65535,"type":129,"code":0,"rtt_ms":0.042,"data":"aGk="}',
  },
];

Deno.test("json events: the cases cover all 10 events and the pong extension", (): void => {
  assert.deepStrictEqual(
    eventCases.map((c) => c.ev.ev).sort(),
    [
      "accepted",
      "closed",
      "connected",
      "data",
      "data_from",
      "denied",
      "error",
      "listening",
      "pong",
      "resolved",
      "udp_bound",
    ],
  );
});

for (const { ev, text } of eventCases) {
  Deno.test(`json event ${ev.ev}: exact text, decode and round trip`, (): void => {
    assert.equal(encodeEventJson(ev), text);
    assert.deepStrictEqual(decodeEventJson(text), ev);
    assert.deepStrictEqual(decodeEventJson(encodeEventJson(ev)), ev);
  });
}

Deno.test("json events: more exact shapes (IPv4 remote, several addrs, empty data)", (): void => {
  assert.equal(
    encodeEventJson({ ev: "accepted", id: 7, conn_id: 4294967296, remote: "1.2.3.4:5678" }),
    '{"ev":"accepted","id":7,"conn_id":4294967296,"remote":"1.2.3.4:5678"}',
  );
  assert.equal(
    encodeEventJson({ ev: "resolved", id: 2, addrs: ["1.2.3.4", "::1"] }),
    '{"ev":"resolved","id":2,"addrs":["1.2.3.4","::1"]}',
  );
  assert.equal(
    encodeEventJson({ ev: "resolved", id: 2, addrs: [] }),
    '{"ev":"resolved","id":2,"addrs":[]}',
  );
  assert.equal(
    encodeEventJson({ ev: "data", id: 0, data: new Uint8Array(0) }),
    '{"ev":"data","id":0,"data":""}',
  );
  assert.equal(
    encodeEventJson({ ev: "data_from", id: 3, data: new Uint8Array(0), addr: "", port: 0 }),
    '{"ev":"data_from","id":3,"data":"","addr":"","port":0}',
  );
});

Deno.test("json events: msg text with quotes, backslashes and control chars is escaped", (): void => {
  const msg = 'say "hi"\\ \n\t\u0001 ünï 😀';
  const text = encodeEventJson({ ev: "error", id: 0, msg });
  assert.equal(text, '{"ev":"error","id":0,"msg":"say \\"hi\\"\\\\ \\n\\t\\u0001 ünï 😀"}');
  assert.deepStrictEqual(JSON.parse(text), { ev: "error", id: 0, msg });
  assert.deepStrictEqual(decodeEventJson(text), { ev: "error", id: 0, msg });
  const denied = encodeEventJson({ ev: "denied", id: 1, msg: '"' });
  assert.deepStrictEqual(decodeEventJson(denied), { ev: "denied", id: 1, msg: '"' });
});

Deno.test("json events: data encodes only the bytes of a sub-view", (): void => {
  const big = bytes(0xff, 0xff, 0x68, 0x69, 0xff);
  assert.equal(
    encodeEventJson({ ev: "data", id: 1, data: big.subarray(2, 4) }),
    '{"ev":"data","id":1,"data":"aGk="}',
  );
  assert.equal(
    encodeRequestJson({ op: "send", id: 1, data: big.subarray(2, 4) }),
    '{"op":"send","id":1,"data":"aGk="}',
  );
});

Deno.test("json event decode: errors", (): void => {
  refusesEvent("nope", /^invalid request: not valid JSON/);
  refusesEvent("[]", "invalid request: expected a JSON object, got an array");
  refusesEvent('{"id":1}', 'invalid request: missing field "ev"');
  refusesEvent('{"ev":"connect","id":1}', 'invalid request: unknown ev "connect"');
  refusesEvent('{"ev":5,"id":1}', "invalid request: unknown ev 5");
  refusesEvent('{"ev":"closed"}', 'invalid request: missing field "id"');
  refusesEvent(
    '{"ev":"data","id":1,"data":"@@@"}',
    'invalid request: field "data" is not valid base64',
  );
  refusesEvent('{"ev":"listening","id":1,"port":65536}', /field "port" must be an integer/);
  refusesEvent(
    '{"ev":"accepted","id":1,"conn_id":9007199254740992,"remote":"x"}',
    'invalid request: field "conn_id" must be an integer from 0 to 9007199254740991, got 9007199254740992',
  );
  refusesEvent('{"ev":"accepted","id":1,"remote":"x"}', 'invalid request: missing field "conn_id"');
  refusesEvent('{"ev":"accepted","id":1,"conn_id":2}', 'invalid request: missing field "remote"');
  refusesEvent(
    '{"ev":"error","id":1,"msg":5}',
    'invalid request: field "msg" must be a string, got 5',
  );
  refusesEvent(
    '{"ev":"resolved","id":1,"addrs":["1.2.3.4",5]}',
    'invalid request: field "addrs" must be an array of strings',
  );
  refusesEvent(
    '{"ev":"resolved","id":1}',
    'invalid request: field "addrs" must be an array of strings',
  );
  refusesEvent(
    '{"ev":"data_from","id":1,"data":"","addr":"a"}',
    'invalid request: missing field "port"',
  );
});

// ---------------------------------------------------------------------------------------------
// ids.

const goodIds = [0, 1, 2 ** 32, MAX_ID];

Deno.test("json ids 0, 1, 2^32 and 2^53-1 are accepted and written exactly", (): void => {
  assert.equal(MAX_ID, 9007199254740991);
  for (const id of goodIds) {
    assert.deepStrictEqual(decodeRequestJson(`{"op":"close","id":${id}}`), { op: "close", id });
    assert.equal(encodeRequestJson({ op: "close", id }), `{"op":"close","id":${id}}`);
    assert.deepStrictEqual(decodeRequestJson(`{"op":"resolve","id":${id},"name":"n"}`), {
      op: "resolve",
      id,
      name: "n",
    });
    const ev: WireEvent = { ev: "accepted", id, conn_id: id, remote: "[::1]:5" };
    const text = encodeEventJson(ev);
    assert.equal(text, `{"ev":"accepted","id":${id},"conn_id":${id},"remote":"[::1]:5"}`);
    assert.deepStrictEqual(decodeEventJson(text), ev);
    assert.equal(encodeEventJson({ ev: "closed", id }), `{"ev":"closed","id":${id}}`);
  }
  assert.equal(
    encodeEventJson({ ev: "connected", id: MAX_ID }),
    '{"ev":"connected","id":9007199254740991}',
  );
});

Deno.test("json ids that are not integers in [0, 2^53-1] are refused", (): void => {
  const cases: [string, string][] = [
    ["9007199254740992", "9007199254740992"],
    ["18446744073709551615", "18446744073709552000"],
    ["1e300", "1e+300"],
    ["-1", "-1"],
    ["1.5", "1.5"],
    ['"7"', '"7"'],
    ["null", "null"],
    ["true", "true"],
    ["[1]", "an array"],
    ['{"n":1}', "an object"],
  ];
  for (const [raw, shown] of cases) {
    const message =
      `invalid request: field "id" must be an integer from 0 to 9007199254740991, got ${shown}`;
    refuses(`{"op":"close","id":${raw}}`, message);
    refuses(`{"op":"connect","id":${raw},"addr":"a","port":1}`, message);
    refusesEvent(`{"ev":"closed","id":${raw}}`, message);
  }
});

Deno.test("json ids: 2^53+1 is not silently rounded to an accepted id", (): void => {
  // JSON.parse rounds 9007199254740993 to 2^53; it must be refused, never turned into 2^53-1.
  refuses('{"op":"close","id":9007199254740993}', /must be an integer from 0 to 9007199254740991/);
});

// ---------------------------------------------------------------------------------------------
// Request refusals.

Deno.test("json request refusal: not JSON", (): void => {
  for (const text of ["", "nope", "{", '{"op":"close","id":1', "{'op':'close'}", "\u0000"]) {
    refuses(text, /^invalid request: not valid JSON \(.+\)$/);
  }
});

Deno.test("json request refusal: JSON that is not an object", (): void => {
  refuses("[]", "invalid request: expected a JSON object, got an array");
  refuses('[{"op":"close","id":1}]', "invalid request: expected a JSON object, got an array");
  refuses('"close"', 'invalid request: expected a JSON object, got "close"');
  refuses("null", "invalid request: expected a JSON object, got null");
  refuses("5", "invalid request: expected a JSON object, got 5");
  refuses("true", "invalid request: expected a JSON object, got true");
  refuses(
    JSON.stringify("x".repeat(100)),
    `invalid request: expected a JSON object, got "${"x".repeat(36)}...`,
  );
});

Deno.test("json request refusal: op missing, unknown or not a string", (): void => {
  refuses("{}", 'invalid request: missing field "op"');
  refuses('{"id":1}', 'invalid request: missing field "op"');
  refuses('{"op":"foo","id":1}', 'invalid request: unknown op "foo"');
  refuses('{"op":"connected","id":1}', 'invalid request: unknown op "connected"');
  refuses('{"op":"CONNECT","id":1}', 'invalid request: unknown op "CONNECT"');
  refuses('{"op":"","id":1}', 'invalid request: unknown op ""');
  refuses('{"op":5,"id":1}', "invalid request: unknown op 5");
  refuses('{"op":null,"id":1}', "invalid request: unknown op null");
  refuses('{"op":["close"],"id":1}', "invalid request: unknown op an array");
  refuses('{"op":{},"id":1}', "invalid request: unknown op an object");
  refuses('{"op":"__proto__","id":1}', 'invalid request: unknown op "__proto__"');
  refuses('{"op":"toString","id":1}', 'invalid request: unknown op "toString"');
});

Deno.test("json request refusal: missing id for every op", (): void => {
  for (const { req } of requestCases) {
    const obj = JSON.parse(encodeRequestJson(req)) as Record<string, unknown>;
    delete obj.id;
    refuses(JSON.stringify(obj), 'invalid request: missing field "id"');
  }
});

Deno.test("json request refusal: every required field missing, op by op", (): void => {
  for (const { req } of requestCases) {
    const full = JSON.parse(encodeRequestJson(req)) as Record<string, unknown>;
    for (const key of Object.keys(full)) {
      if (key === "op" || (req.op === "listen" && key === "backlog")) continue;
      if (req.op === "start_tls" && key === "servername") continue; // optional
      if (req.op === "ping" && key !== "addr") continue; // seq, data, timeout_ms: optional
      const obj = { ...full };
      delete obj[key];
      refuses(JSON.stringify(obj), `invalid request: missing field "${key}"`);
    }
  }
});

Deno.test("json request refusal: addr, name and data of the wrong type", (): void => {
  for (const op of ["connect", "bind", "connect_udp", "connect_tls"]) {
    refuses(
      `{"op":"${op}","id":1,"addr":5,"port":1}`,
      'invalid request: field "addr" must be a string, got 5',
    );
    refuses(
      `{"op":"${op}","id":1,"addr":null,"port":1}`,
      'invalid request: field "addr" must be a string, got null',
    );
    refuses(
      `{"op":"${op}","id":1,"addr":["a"],"port":1}`,
      'invalid request: field "addr" must be a string, got an array',
    );
  }
  refuses(
    '{"op":"resolve","id":1,"name":{}}',
    'invalid request: field "name" must be a string, got an object',
  );
  refuses(
    '{"op":"send","id":1,"data":[104,105]}',
    'invalid request: field "data" must be a string, got an array',
  );
  refuses(
    '{"op":"send_to","id":1,"addr":"a","port":1,"data":7}',
    'invalid request: field "data" must be a string, got 7',
  );
  refuses(
    '{"op":"send_to","id":1,"addr":false,"port":1,"data":""}',
    'invalid request: field "addr" must be a string, got false',
  );
});

Deno.test("json request refusal: port out of range or not an integer", (): void => {
  const cases: [string, string][] = [
    ["65536", "65536"],
    ["-1", "-1"],
    ["1.5", "1.5"],
    ['"443"', '"443"'],
    ["null", "null"],
    ["1e300", "1e+300"],
  ];
  for (const op of ["connect", "bind", "connect_udp", "connect_tls"]) {
    for (const [raw, shown] of cases) {
      refuses(
        `{"op":"${op}","id":1,"addr":"a","port":${raw}}`,
        `invalid request: field "port" must be an integer from 0 to 65535, got ${shown}`,
      );
    }
  }
  refuses(
    '{"op":"send_to","id":1,"addr":"a","port":65536,"data":""}',
    'invalid request: field "port" must be an integer from 0 to 65535, got 65536',
  );
});

Deno.test("json request: ports 0 and 65535 are accepted", (): void => {
  for (const port of [0, 65535]) {
    for (const op of ["connect", "bind", "connect_udp", "connect_tls"] as const) {
      const req: Request = { op, id: 1, addr: "a", port };
      assert.deepStrictEqual(decodeRequestJson(encodeRequestJson(req)), req);
    }
    assert.deepStrictEqual(
      decodeRequestJson(`{"op":"send_to","id":1,"addr":"a","port":${port},"data":""}`),
      { op: "send_to", id: 1, addr: "a", port, data: new Uint8Array(0) },
    );
  }
});

Deno.test("json request refusal: bad base64 in send and send_to", (): void => {
  for (
    const data of [
      "@@@",
      "abcde",
      "a",
      "aGk==",
      "a===",
      "aG=",
      "==",
      "aGk=aGk=",
      " aGk=",
      "aGk=\n",
      "aG-_",
      "ü",
    ]
  ) {
    refuses(
      JSON.stringify({ op: "send", id: 1, data }),
      'invalid request: field "data" is not valid base64',
    );
    refuses(
      JSON.stringify({ op: "send_to", id: 1, addr: "a", port: 1, data }),
      'invalid request: field "data" is not valid base64',
    );
  }
});

Deno.test("json request: unpadded base64 is accepted (padding optional)", (): void => {
  assert.deepStrictEqual(decodeRequestJson('{"op":"send","id":1,"data":"aGk"}'), {
    op: "send",
    id: 1,
    data: te.encode("hi"),
  });
  // "abc" is 3 characters (length % 4 == 3): valid unpadded base64 for bytes 0x69 0xb7.
  assert.deepStrictEqual(decodeRequestJson('{"op":"send","id":1,"data":"abc"}'), {
    op: "send",
    id: 1,
    data: bytes(0x69, 0xb7),
  });
});

// ---------------------------------------------------------------------------------------------
// Payload sizes and text.

Deno.test("json request send: empty data", (): void => {
  const req: Request = { op: "send", id: 1, data: new Uint8Array(0) };
  assert.equal(encodeRequestJson(req), '{"op":"send","id":1,"data":""}');
  assert.deepStrictEqual(decodeRequestJson('{"op":"send","id":1,"data":""}'), req);
  const to: Request = { op: "send_to", id: 1, addr: "", port: 0, data: new Uint8Array(0) };
  assert.equal(encodeRequestJson(to), '{"op":"send_to","id":1,"addr":"","port":0,"data":""}');
  assert.deepStrictEqual(decodeRequestJson(encodeRequestJson(to)), to);
});

Deno.test("json request: empty addr and name", (): void => {
  for (const op of ["connect", "bind", "connect_udp", "connect_tls"] as const) {
    const req: Request = { op, id: 1, addr: "", port: 80 };
    assert.deepStrictEqual(decodeRequestJson(encodeRequestJson(req)), req);
  }
  assert.deepStrictEqual(decodeRequestJson('{"op":"resolve","id":1,"name":""}'), {
    op: "resolve",
    id: 1,
    name: "",
  });
});

Deno.test("json: 64 KiB payload round trips in send, send_to, data and data_from", (): void => {
  const data = randomBytes(65536);
  const send: Request = { op: "send", id: 1, data };
  const sendText = encodeRequestJson(send);
  assert.equal(sendText.length, '{"op":"send","id":1,"data":""}'.length + 87384);
  assert.deepStrictEqual(decodeRequestJson(sendText), send);
  const sendTo: Request = { op: "send_to", id: 1, addr: "::1", port: 9, data };
  assert.deepStrictEqual(decodeRequestJson(encodeRequestJson(sendTo)), sendTo);
  const ev: WireEvent = { ev: "data", id: 2, data };
  assert.deepStrictEqual(decodeEventJson(encodeEventJson(ev)), ev);
  const from: WireEvent = { ev: "data_from", id: 2, data, addr: "1.2.3.4", port: 53 };
  assert.deepStrictEqual(decodeEventJson(encodeEventJson(from)), from);
});

Deno.test("json: every byte value round trips through data", (): void => {
  const data = new Uint8Array(256).map((_, i) => i);
  const req: Request = { op: "send", id: 1, data };
  assert.deepStrictEqual(decodeRequestJson(encodeRequestJson(req)), req);
});

Deno.test("json: unicode addr, name, remote and msg", (): void => {
  const addr = "bücher.例え.jp";
  const req: Request = { op: "connect", id: 1, addr, port: 80 };
  assert.equal(encodeRequestJson(req), '{"op":"connect","id":1,"addr":"bücher.例え.jp","port":80}');
  assert.deepStrictEqual(decodeRequestJson(encodeRequestJson(req)), req);
  // \u escapes decode to the same string.
  assert.deepStrictEqual(
    decodeRequestJson('{"op":"connect","id":1,"addr":"b\\u00fccher.\\u4f8b\\u3048.jp","port":80}'),
    req,
  );
  const sendTo: Request = { op: "send_to", id: 1, addr: "☃.net", port: 1, data: bytes(1) };
  assert.deepStrictEqual(decodeRequestJson(encodeRequestJson(sendTo)), sendTo);
  const resolve: Request = { op: "resolve", id: 1, name: "😀.example" };
  assert.deepStrictEqual(decodeRequestJson(encodeRequestJson(resolve)), resolve);
  const evs: WireEvent[] = [
    { ev: "accepted", id: 1, conn_id: 2, remote: "[fe80::1%eth0]:5" },
    { ev: "error", id: 1, msg: "résumé ✓" },
    { ev: "data_from", id: 1, data: bytes(), addr: "☃", port: 1 },
    { ev: "resolved", id: 1, addrs: ["ü"] },
  ];
  for (const ev of evs) assert.deepStrictEqual(decodeEventJson(encodeEventJson(ev)), ev);
});

Deno.test("json request: a shape no message has is refused before parsing", (): void => {
  const deep = "[".repeat(4_000_000);
  assert.throws(
    () => decodeRequestJson(deep),
    (e: unknown) =>
      e instanceof ProtocolError &&
      e.message === "invalid request: nesting deeper than 128 levels",
  );
  assert.throws(
    () => decodeRequestJson(`{"op":"close","id":1,"x":${"[".repeat(129)}${"]".repeat(129)}}`),
    /nesting deeper than 128 levels/,
  );
  assert.throws(
    () => decodeRequestJson(`[${"1,".repeat(5000)}1]`),
    /invalid request: more than 4096 JSON tokens \(a message is one small object\)$/,
  );
  // Brackets, commas and escaped quotes inside strings are not structure; 128 levels are fine.
  const inString = '[[[,,::]]] \\" {{{'.repeat(2000);
  assert.deepStrictEqual(
    decodeRequestJson(JSON.stringify({ op: "resolve", id: 7, name: inString })),
    { op: "resolve", id: 7, name: inString },
  );
  assert.deepStrictEqual(
    decodeRequestJson(`{"op":"close","id":1,"x":${"[".repeat(127)}${"]".repeat(127)}}`),
    { op: "close", id: 1 },
  );
});

// ---------------------------------------------------------------------------------------------
// Extensions: start_tls and shutdown.

Deno.test("json start_tls: servername absent, null or empty means the socket's host", (): void => {
  const plain = { op: "start_tls", id: 4 };
  assert.equal(encodeRequestJson({ op: "start_tls", id: 4 }), '{"op":"start_tls","id":4}');
  assert.equal(
    encodeRequestJson({ op: "start_tls", id: 4, servername: "" }),
    '{"op":"start_tls","id":4}',
  );
  assert.deepStrictEqual(decodeRequestJson('{"op":"start_tls","id":4}'), plain);
  assert.deepStrictEqual(decodeRequestJson('{"op":"start_tls","id":4,"servername":null}'), plain);
  assert.deepStrictEqual(decodeRequestJson('{"op":"start_tls","id":4,"servername":""}'), plain);
  assert.ok(!("servername" in decodeRequestJson('{"op":"start_tls","id":4,"servername":""}')));
  assert.deepStrictEqual(
    decodeRequestJson('{"servername":"127.0.0.1","id":4,"op":"start_tls"}'),
    { op: "start_tls", id: 4, servername: "127.0.0.1" },
  );
  assert.deepStrictEqual(
    decodeRequestJson('{"op":"start_tls","id":4,"servername":"bücher.example"}'),
    { op: "start_tls", id: 4, servername: "bücher.example" },
  );
});

Deno.test("json start_tls and shutdown refusals: wrong types, missing or bad id", (): void => {
  for (const bad of ["5", "true", "[]", "{}", '["a"]']) {
    refuses(
      `{"op":"start_tls","id":1,"servername":${bad}}`,
      /^invalid request: field "servername" must be a string, got /,
    );
  }
  refuses('{"op":"start_tls"}', 'invalid request: missing field "id"');
  refuses('{"op":"shutdown"}', 'invalid request: missing field "id"');
  refuses(
    '{"op":"shutdown","id":-1}',
    'invalid request: field "id" must be an integer from 0 to 9007199254740991, got -1',
  );
  refuses(
    '{"op":"start_tls","id":1.5}',
    'invalid request: field "id" must be an integer from 0 to 9007199254740991, got 1.5',
  );
  refuses('{"op":"START_TLS","id":1}', 'invalid request: unknown op "START_TLS"');
  refuses('{"op":"starttls","id":1}', 'invalid request: unknown op "starttls"');
  // Extra fields are ignored, as for every op.
  assert.deepStrictEqual(decodeRequestJson('{"op":"shutdown","id":2,"how":"both"}'), {
    op: "shutdown",
    id: 2,
  });
});

// ---------------------------------------------------------------------------------------------
// Extension: ping.

Deno.test("json ping: seq, data and timeout_ms are optional (0, empty, 1000)", (): void => {
  assert.deepStrictEqual(decodeRequestJson('{"op":"ping","id":2,"addr":"::1"}'), {
    op: "ping",
    id: 2,
    addr: "::1",
    seq: 0,
    data: new Uint8Array(),
    timeout_ms: 1000,
  });
  assert.deepStrictEqual(
    decodeRequestJson('{"op":"ping","id":2,"addr":"a","seq":null,"data":null,"timeout_ms":null}'),
    { op: "ping", id: 2, addr: "a", seq: 0, data: new Uint8Array(), timeout_ms: 1000 },
  );
});

Deno.test("json ping refusal: seq, timeout_ms and data out of range or of the wrong type", (): void => {
  refuses(
    '{"op":"ping","id":1,"addr":"a","seq":65536}',
    'invalid request: field "seq" must be an integer from 0 to 65535, got 65536',
  );
  refuses(
    '{"op":"ping","id":1,"addr":"a","seq":-1}',
    'invalid request: field "seq" must be an integer from 0 to 65535, got -1',
  );
  refuses(
    '{"op":"ping","id":1,"addr":"a","timeout_ms":0}',
    'invalid request: field "timeout_ms" must be an integer from 1 to 60000, got 0',
  );
  refuses(
    '{"op":"ping","id":1,"addr":"a","timeout_ms":60001}',
    'invalid request: field "timeout_ms" must be an integer from 1 to 60000, got 60001',
  );
  refuses(
    '{"op":"ping","id":1,"addr":"a","timeout_ms":"1000"}',
    'invalid request: field "timeout_ms" must be an integer from 1 to 60000, got "1000"',
  );
  refuses(
    '{"op":"ping","id":1,"addr":"a","data":"@@"}',
    'invalid request: field "data" is not valid base64',
  );
  refuses('{"op":"ping","id":1,"addr":7}', 'invalid request: field "addr" must be a string, got 7');
});

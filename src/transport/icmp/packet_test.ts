import assert from "node:assert/strict";
import {
  buildEchoRequest,
  ECHO_HEADER_BYTES,
  internetChecksum,
  MAX_ECHO_DATA,
  parseIcmp,
} from "./packet.ts";
import { parsePingReply, pingArgs } from "./ping_socket.ts";
import { sockaddr, sockaddrIp } from "./_libc.ts";

Deno.test("internetChecksum: RFC 1071 example and odd lengths", () => {
  // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2, checksum 220d.
  assert.equal(
    internetChecksum(Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
    0x220d,
  );
  assert.equal(internetChecksum(Uint8Array.from([0xff])), 0x00ff);
});

Deno.test("buildEchoRequest: IPv4 header fields and a checksum that verifies to 0", () => {
  const data = new TextEncoder().encode("abc");
  const p = buildEchoRequest(4, 0x1234, 0xbeef, data);
  assert.deepEqual([...p.subarray(0, 2)], [8, 0]);
  assert.deepEqual([...p.subarray(4, 8)], [0x12, 0x34, 0xbe, 0xef]);
  assert.deepEqual([...p.subarray(ECHO_HEADER_BYTES)], [...data]);
  assert.equal(internetChecksum(p), 0);
  const v6 = buildEchoRequest(6, 1, 2, new Uint8Array());
  assert.equal(v6[0], 128);
  assert.deepEqual([...v6.subarray(2, 4)], [0, 0]); // the kernel fills the ICMPv6 checksum
});

Deno.test("buildEchoRequest: refuses bad identifiers, sequence numbers and oversized data", () => {
  assert.throws(() => buildEchoRequest(4, -1, 0, new Uint8Array()), RangeError);
  assert.throws(() => buildEchoRequest(4, 0, 65536, new Uint8Array()), RangeError);
  assert.throws(() => buildEchoRequest(4, 0, 1.5, new Uint8Array()), RangeError);
  assert.throws(() => buildEchoRequest(4, 0, 0, new Uint8Array(MAX_ECHO_DATA + 1)), RangeError);
});

Deno.test("parseIcmp: with and without an IPv4 header; too short", () => {
  const echo = buildEchoRequest(4, 7, 9, Uint8Array.from([1, 2, 3]));
  echo[0] = 0; // a reply
  const m = parseIcmp(echo, false);
  assert.deepEqual({ ...m, data: [...(m?.data ?? [])] }, {
    type: 0,
    code: 0,
    id: 7,
    seq: 9,
    data: [1, 2, 3],
  });
  const ip = new Uint8Array(24 + echo.byteLength);
  ip[0] = 0x46; // version 4, IHL 6 (24 bytes, with options)
  ip.set(echo, 24);
  assert.equal(parseIcmp(ip, true)?.seq, 9);
  assert.equal(parseIcmp(new Uint8Array(7), false), undefined);
  assert.equal(parseIcmp(new Uint8Array(20).fill(0x45), true), undefined);
  ip[0] = 0x65; // not IPv4
  assert.equal(parseIcmp(ip, true), undefined);
});

Deno.test("sockaddr: IPv4 and IPv6 layouts round trip; wrong family refused", () => {
  const a4 = sockaddr(4, "127.0.0.1");
  assert.equal(a4.byteLength, 16);
  assert.equal(sockaddrIp(a4), "127.0.0.1");
  const a6 = sockaddr(6, "2001:db8:0:0:0:0:0:1");
  assert.equal(a6.byteLength, 28);
  assert.equal(sockaddrIp(a6), "2001:db8::1");
  assert.throws(() => sockaddr(4, "::1"), TypeError);
  assert.throws(() => sockaddr(6, "127.0.0.1"), TypeError);
  assert.throws(() => sockaddr(4, "localhost"), TypeError);
});

Deno.test("parsePingReply: iputils IPv4 and IPv6, busybox, no reply", () => {
  assert.deepEqual(
    parsePingReply(
      "PING 127.0.0.1 (127.0.0.1) 16(44) bytes of data.\n24 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.045 ms\n",
    ),
    { source: "127.0.0.1", rttMs: 0.045 },
  );
  assert.deepEqual(
    parsePingReply("64 bytes from ::1: icmp_seq=1 ttl=64 time=0.031 ms"),
    { source: "::1", rttMs: 0.031 },
  );
  assert.deepEqual(
    parsePingReply("64 bytes from 10.0.0.1: seq=0 ttl=64 time=1.234 ms"),
    { source: "10.0.0.1", rttMs: 1.234 },
  );
  assert.equal(parsePingReply("1 packets transmitted, 0 received, 100% packet loss"), undefined);
  assert.equal(parsePingReply("18 bytes from 127.0.0.1: icmp_seq=1 ttl=64\n"), undefined);
});

Deno.test("pingArgs: family, numeric, one request, at least 16 bytes, pattern from data", () => {
  assert.deepEqual(pingArgs(6, "::1", new Uint8Array()), [
    "-6",
    "-n",
    "-c",
    "1",
    "-W",
    "10",
    "-s",
    "16",
    "::1",
  ]);
  const args = pingArgs(4, "127.0.0.1", new Uint8Array(40).fill(0xab));
  assert.deepEqual(args.slice(6), ["-s", "40", "-p", "ab".repeat(16), "127.0.0.1"]);
});

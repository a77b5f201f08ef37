/**
 * The `ping` op in the session core, with a fake transport and a scripted ICMP socket: one
 * terminal event per ping (pong, denied, error, closed), the address family, the slot it holds,
 * and the socket closed in every case.
 */
import { deepStrictEqual as eq, ok, strictEqual } from "node:assert/strict";
import { Policy } from "../policy/mod.ts";
import type { IcmpEchoReply, IcmpSocket } from "../transport/mod.ts";
import { Session } from "./session.ts";
import { FakeChannel, FakeTransport, until } from "./_fake_transport_test_util.ts";
import { setLogLevel } from "../log/mod.ts";

setLogLevel("warn");

/** An ICMP socket whose reply the test scripts: a reply, "none" (timeout) or "hold". */
class ScriptedIcmp implements IcmpSocket {
  readonly mechanism = "raw";
  readonly sent: [string, number, Uint8Array][] = [];
  closed = false;
  #wake: (() => void) | undefined;
  constructor(readonly answer: IcmpEchoReply | "none" | "hold" | Error) {}
  send(ip: string, seq: number, data: Uint8Array): Promise<void> {
    if (this.answer instanceof Error) return Promise.reject(this.answer);
    this.sent.push([ip, seq, data]);
    return Promise.resolve();
  }
  receive(timeoutMs: number, signal?: AbortSignal): Promise<IcmpEchoReply | undefined> {
    if (this.answer === "none") {
      return new Promise((r) => setTimeout(() => r(undefined), timeoutMs));
    }
    if (this.answer === "hold") {
      return new Promise((r) => {
        this.#wake = () => r(undefined);
        signal?.addEventListener("abort", () => r(undefined), { once: true });
      });
    }
    return Promise.resolve(this.answer instanceof Error ? undefined : this.answer);
  }
  close(): void {
    this.closed = true;
    this.#wake?.();
  }
}

function reply(source: string, seq: number): IcmpEchoReply {
  return { source, type: 0, code: 0, id: 1, seq, data: Uint8Array.from([1, 2]), rttMs: 0.25 };
}

function setup(
  answer: ConstructorParameters<typeof ScriptedIcmp>[0] | "no-icmp" | Error,
  policy = Policy.fromConfig({ deny: [], allow: ["*"], maxBandwidthMbps: 0 }, "<test>"),
): { session: Session; channel: FakeChannel; transport: FakeTransport; sockets: ScriptedIcmp[] } {
  const transport = new FakeTransport();
  const sockets: ScriptedIcmp[] = [];
  const families: number[] = [];
  if (answer !== "no-icmp") {
    (transport as { openIcmp?: (f: 4 | 6) => Promise<IcmpSocket> }).openIcmp = (family) => {
      families.push(family);
      if (answer instanceof Error && answer.message.startsWith("ICMP unavailable")) {
        return Promise.reject(answer);
      }
      const s = new ScriptedIcmp(answer);
      sockets.push(s);
      return Promise.resolve(s);
    };
  }
  const channel = new FakeChannel();
  const session = new Session(channel, { policy, transport });
  return { session, channel, transport, sockets };
}

const data = Uint8Array.from([1, 2]);

Deno.test("session ping: pong with the reply's fields; the socket is closed; IPv6 for ::1", async () => {
  const { session, channel, sockets } = setup(reply("::1", 5));
  session.request({ op: "ping", id: 1, addr: "::1", seq: 5, data, timeout_ms: 100 });
  await until(() => channel.eventsFor(1).length > 0, "pong");
  eq(channel.eventsFor(1), [{
    ev: "pong",
    id: 1,
    source: "::1",
    seq: 5,
    type: 0,
    code: 0,
    rtt_ms: 0.25,
    data,
  }]);
  strictEqual(sockets.length, 1);
  eq(sockets[0]?.sent[0]?.slice(0, 2), ["::1", 5]);
  ok(sockets[0]?.closed);
  strictEqual(session.stats.live, 0);
  strictEqual(session.stats.slots, 0);
  await session.close();
});

Deno.test("session ping: a name is resolved once and the checked address pinged", async () => {
  const { session, channel, transport, sockets } = setup(reply("203.0.113.7", 1));
  transport.answers.set("host.test", ["203.0.113.7", "203.0.113.8"]);
  session.request({ op: "ping", id: 2, addr: "host.test", seq: 1, data, timeout_ms: 100 });
  await until(() => channel.eventsFor(2).length > 0, "pong");
  strictEqual(channel.eventsFor(2)[0]?.ev, "pong");
  eq(sockets[0]?.sent[0]?.[0], "203.0.113.7");
  await session.close();
});

Deno.test("session ping: denied by the policy as addr:7, no socket opened", async () => {
  const { session, channel, sockets } = setup(reply("127.0.0.1", 1), Policy.defaults());
  session.request({ op: "ping", id: 3, addr: "127.1", seq: 1, data, timeout_ms: 100 });
  await until(() => channel.eventsFor(3).length > 0, "denied");
  const ev = channel.eventsFor(3)[0];
  strictEqual(ev?.ev, "denied");
  ok(ev?.ev === "denied" && ev.msg.startsWith("127.0.0.1:7 is "), JSON.stringify(ev));
  strictEqual(sockets.length, 0);
  await session.close();
});

Deno.test("session ping: timeout, no ICMP, ICMP unavailable and a failed send are errors", async () => {
  const cases = [
    ["none", "ping timed out after 30 ms"],
    ["no-icmp", "ping 127.0.0.1 failed: ICMP is not available on this server"],
    [new Error("ICMP unavailable: no raw"), "ping 127.0.0.1 failed: ICMP unavailable: no raw"],
    [
      new Error("Network is unreachable (os error 101)"),
      "ping 127.0.0.1 failed: Network is unreachable (os error 101)",
    ],
  ] as const;
  for (const [answer, msg] of cases) {
    const { session, channel, sockets } = setup(answer);
    session.request({ op: "ping", id: 4, addr: "127.0.0.1", seq: 1, data, timeout_ms: 30 });
    await until(() => channel.eventsFor(4).length > 0, msg);
    eq(channel.eventsFor(4), [{ ev: "error", id: 4, msg }]);
    for (const s of sockets) ok(s.closed, msg);
    strictEqual(session.stats.slots, 0);
    await session.close();
  }
});

Deno.test("session ping: holds a max_connections slot; close cancels with closed; session end closes it", async () => {
  const policy = Policy.fromConfig(
    { deny: [], allow: ["*"], maxBandwidthMbps: 0, maxConnections: 1 },
    "<test>",
  );
  const { session, channel, sockets } = setup("hold", policy);
  session.request({ op: "ping", id: 5, addr: "127.0.0.1", seq: 1, data, timeout_ms: 5000 });
  await until(() => sockets.length === 1 && (sockets[0]?.sent.length ?? 0) === 1, "sent");
  strictEqual(session.stats.slots, 1);
  session.request({ op: "ping", id: 6, addr: "127.0.0.1", seq: 1, data, timeout_ms: 5000 });
  await until(() => channel.eventsFor(6).length > 0, "limit");
  strictEqual(channel.eventsFor(6)[0]?.ev, "error");
  session.request({ op: "close", id: 5 });
  await until(() => channel.eventsFor(5).length > 0, "closed");
  eq(channel.eventsFor(5), [{ ev: "closed", id: 5 }]);
  ok(sockets[0]?.closed);
  session.request({ op: "ping", id: 7, addr: "127.0.0.1", seq: 1, data, timeout_ms: 5000 });
  await until(() => sockets.length === 2 && (sockets[1]?.sent.length ?? 0) === 1, "sent 2");
  await session.close();
  ok(sockets[1]?.closed);
  eq(channel.eventsFor(7), []);
});

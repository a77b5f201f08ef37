/**
 * The `ping` op (protocol extension): one ICMP echo request through the transport's
 * `openIcmp`, answered by `pong`, `denied` or `error` (README "Wire protocol").
 *
 * The target goes through the policy as a `connect` does (DESIGN.md §2 step 4): a name is
 * resolved once, every address is checked, and the first checked address is pinged. ICMP has no
 * port: the target is checked as `addr:7`, the echo service (RFC 862), so a deny rule without a
 * port (or one covering port 7) refuses a ping, and in allow-list mode a rule must admit port 7.
 *
 * @module
 */
import type { Policy, Target } from "../policy/mod.ts";
import type { IcmpSocket, Transport } from "../transport/mod.ts";
import { Entry } from "./_entry.ts";
import { resolveChecked, type ResolveOutcome } from "./resolve.ts";
import { causeOf, fail, type SessionContext } from "./types.ts";
import { describe } from "./wire_errors.ts";

/** The port a ping target is checked on: 7, the echo service (RFC 862). */
export const PING_POLICY_PORT = 7;

/**
 * Checks a ping target against `policy` (see the module documentation): the addresses that may
 * be pinged, or the refusal (`denied`, or `error` when a name does not resolve).
 *
 * @throws {unknown} `signal.reason` when aborted.
 */
export function resolvePingTarget(
  target: Target,
  policy: Policy,
  transport: Transport,
  signal: AbortSignal,
): Promise<ResolveOutcome> {
  return resolveChecked(target, PING_POLICY_PORT, policy, transport, signal);
}

/** What a `ping` request asks for. */
export interface PingRequest {
  /** ICMP sequence number, 0–65535. */
  readonly seq: number;
  /** Echo payload. */
  readonly data: Uint8Array;
  /** How long to wait for the reply after sending, in ms. */
  readonly timeout_ms: number;
}

/**
 * A pending `ping` in a session's table: takes a `max_connections` slot while it runs (its ICMP
 * socket is open from the send to the reply or the timeout) and ends with exactly one `pong`,
 * `denied`, `error` or (after the client's `close`) `closed`.
 */
export class PingEntry extends Entry {
  /** Discriminant of the session's table union. */
  readonly kind = "ping";
  #socket: IcmpSocket | undefined;

  /**
   * @param id the request's id.
   * @param ctx the owning session's services.
   * @param requested the target as the client sent it, for logs.
   */
  constructor(id: number, ctx: SessionContext, requested: string) {
    super(id, ctx, requested, true);
  }

  /** The client's `close`: cancels the ping (`closed`). */
  close(): void {
    this.end({ ev: "closed" });
  }

  /** Closes the ICMP socket (a pending receive resolves undefined). */
  protected teardown(): void {
    this.#socket?.close();
  }

  /**
   * Checks `target`, opens an ICMP socket of the address's family, sends one echo request and
   * waits `req.timeout_ms` for its reply. Never throws: every outcome is the entry's ending.
   */
  async run(target: Target, policy: Policy, req: PingRequest): Promise<void> {
    const transport = this.ctx.transport;
    let outcome: ResolveOutcome;
    try {
      outcome = await resolvePingTarget(target, policy, transport, this.signal);
    } catch {
      return; // the entry ended (client close or session end)
    }
    if (!this.live) return;
    if (!outcome.ok) return this.end(outcome.refusal);
    const ip = outcome.ips[0] ?? "";
    const open = transport.openIcmp;
    if (open === undefined) {
      return this.end(fail(`ping ${ip} failed: ICMP is not available on this server`, "network"));
    }
    let socket: IcmpSocket;
    try {
      socket = await open.call(transport, ip.includes(":") ? 6 : 4);
    } catch (e) {
      return this.end(fail(`ping ${ip} failed: ${describe(e)}`, "network"));
    }
    if (!this.live) return socket.close();
    this.#socket = socket;
    this.dest = ip;
    this.ctx.opened(this);
    try {
      await socket.send(ip, req.seq, req.data);
    } catch (e) {
      return this.end(fail(`ping ${ip} failed: ${describe(e)}`, causeOf(e)));
    }
    this.bytesUp += req.data.byteLength;
    const reply = await socket.receive(req.timeout_ms, this.signal).catch(() => undefined);
    if (!this.live) return;
    if (reply === undefined) {
      return this.end(fail(`ping timed out after ${req.timeout_ms} ms`, "timeout"));
    }
    this.bytesDown += reply.data.byteLength;
    this.end({ ev: "pong", reply });
  }
}

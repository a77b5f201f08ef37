/**
 * One proxied UDP socket (`connect_udp`, `send`, `send_to`, events `udp_bound`, `data_from`).
 *
 * Unlike wasmnet 0.1.3 (a connected socket that dropped every reply but the default peer's), the
 * socket is unconnected: replies from the default peer **and from every peer a `send_to`
 * reached** are delivered as `data_from`; datagrams from peers never contacted are dropped, so a
 * UDP socket is not an open inbound port. Every destination is policy-checked.
 *
 * Per-datagram refusals (a denied `send_to` destination, an oversize datagram, a send failure)
 * answer `denied`/`error` for the socket's id and drop that datagram only: the socket stays open
 * until `close`, answered by `closed`. An ICMP error never kills the socket.
 *
 * @module
 */
import { canonicalIp, parseTarget, type Policy } from "../policy/mod.ts";
import type { DatagramConn, NetAddr } from "../transport/mod.ts";
import { formatHostPort } from "../protocol/mod.ts";
import { CLOSED, deny, fail, type SessionContext } from "./types.ts";
import { resolveChecked, withTimeout } from "./resolve.ts";
import { describe, WireError } from "./wire_errors.ts";
import { Entry } from "./_entry.ts";

/**
 * A client's UDP socket through the proxy. Bandwidth: each datagram passes the session's limiter
 * chain whole (a datagram cannot be split into throttle pieces).
 */
export class UdpSocket extends Entry {
  /** Kind tag for the socket table. */
  readonly kind = "udp";

  readonly #policyOf: () => Policy;
  #state: "opening" | "open" = "opening";
  #conn: DatagramConn | undefined;
  #family: 4 | 6 = 4;
  #defaultPeer: { ip: string; port: number } | undefined;
  /** Peers whose replies are delivered: `ip|port`. */
  readonly #peers = new Set<string>();
  /** Bytes handed to the kernel and not yet sent. */
  #pendingBytes = 0;
  #sendChain: Promise<void> = Promise.resolve();
  /** `send`/`send_to` that arrived before `udp_bound`, replayed in order once open. */
  #early: (() => void)[] = [];
  #earlyBytes = 0;

  /**
   * @param id client id of the socket.
   * @param ctx the owning session's services.
   * @param policy the session's policy in force now (read for every destination: a reloaded
   *   policy applies to the next new destination).
   * @param dest requested `addr:port`, for logs.
   */
  constructor(id: number, ctx: SessionContext, policy: () => Policy, dest: string) {
    super(id, ctx, dest, true);
    this.#policyOf = policy;
  }

  /** The policy in force now. */
  get #policy(): Policy {
    return this.#policyOf();
  }

  /**
   * Resolves and checks the default peer, opens a socket of its address family, emits
   * `udp_bound` with the local port and starts receiving. Never throws.
   */
  async open(addr: string, port: number): Promise<void> {
    const target = parseTarget(addr);
    if (target.kind === "invalid") {
      return this.end(fail(WireError.invalidAddress(addr, target.reason), "invalid"));
    }
    const outcome = await withTimeout(
      this.signal,
      this.#policy.connectionTimeoutMs,
      async (signal, timedOut) => {
        try {
          return await resolveChecked(target, port, this.#policy, this.ctx.transport, signal);
        } catch {
          return timedOut()
            ? { ok: false as const, refusal: fail(WireError.timedOut(), "timeout") }
            : undefined;
        }
      },
    );
    if (!this.live || outcome === undefined) return;
    if (!outcome.ok) return this.end(outcome.refusal);
    const first = outcome.ips[0] ?? "";
    const ip = canonicalIp(first) ?? first;
    this.#family = ip.includes(":") ? 6 : 4;
    this.#defaultPeer = { ip, port };
    this.#peers.add(peerKey(ip, port));
    this.dest = formatHostPort(ip, port);
    let conn: DatagramConn;
    try {
      // Deno opens the socket synchronously; node:dgram (Bun) binds asynchronously.
      const opening = this.ctx.transport.openUdp(this.#family);
      conn = opening instanceof Promise ? await opening : opening;
    } catch (e) {
      return this.end(fail(WireError.udpFailed(describe(e))));
    }
    if (!this.live) {
      try {
        conn.close(); // the entry ended while the socket was being bound
      } catch {
        // already closed
      }
      return;
    }
    this.#conn = conn;
    this.#state = "open";
    this.socketKind = "udp";
    this.ctx.opened(this);
    const local = this.#conn.addr;
    this.ctx.emit({ ev: "udp_bound", id: this.id, port: local.port });
    this.ctx.track(this.#receiveLoop(this.#conn));
    const early = this.#early;
    this.#early = [];
    this.#earlyBytes = 0;
    for (const op of early) op();
  }

  /** Queues `op` until the socket is open; false (after answering `error`) when over the bound. */
  #deferred(bytes: number, op: () => void): boolean {
    if (this.#state !== "opening" || !this.live) return false;
    if (this.#earlyBytes + bytes > this.ctx.limits.maxSocketQueueBytes) {
      this.ctx.report(this.id, fail(WireError.udpNotBound(this.id)));
    } else {
      this.#earlyBytes += bytes;
      this.#early.push(op);
    }
    return true;
  }

  /** `send`: one datagram to the default peer (queued, bounded, until `udp_bound`). */
  send(data: Uint8Array): void {
    if (this.#deferred(data.byteLength, () => this.send(data))) return;
    const peer = this.#defaultPeer;
    if (!this.live || peer === undefined) return;
    this.#sendDatagram(data, peer.ip, peer.port);
  }

  /** `send_to`: one datagram to `addr:port`, checked against the policy first. */
  sendTo(addr: string, port: number, data: Uint8Array): void {
    if (this.#deferred(data.byteLength, () => this.sendTo(addr, port, data))) return;
    if (!this.live) return;
    if (!this.#checkSize(data)) return;
    const target = parseTarget(addr);
    if (target.kind === "invalid") {
      this.ctx.report(this.id, fail(WireError.invalidAddress(addr, target.reason)));
      return;
    }
    if (target.kind === "ip") {
      const verdict = this.#policy.checkTarget(target, port);
      if (!verdict.allowed) {
        return this.ctx.report(
          this.id,
          deny(verdict.reason, verdict.rule),
          formatHostPort(target.ip, port),
        );
      }
      return this.#sendDatagram(data, target.ip, port);
    }
    // A name: resolve once under the dial timeout, check every address, send to a checked one.
    this.ctx.track(
      withTimeout(this.signal, this.#policy.connectionTimeoutMs, async (signal) => {
        let outcome;
        try {
          outcome = await resolveChecked(target, port, this.#policy, this.ctx.transport, signal);
        } catch {
          if (this.live) this.ctx.report(this.id, fail(WireError.timedOut()));
          return;
        }
        if (!this.live) return;
        if (!outcome.ok) return this.ctx.report(this.id, outcome.refusal, `${addr}:${port}`);
        const found = outcome.ips.find((a) => a.includes(":") === (this.#family === 6));
        const ip = found === undefined ? undefined : canonicalIp(found) ?? found;
        if (ip === undefined) {
          return this.ctx.report(this.id, fail(WireError.udpFamily(addr, this.#family)));
        }
        this.#sendDatagram(data, ip, port);
      }),
    );
  }

  #checkSize(data: Uint8Array): boolean {
    const max = this.ctx.limits.maxDatagramBytes;
    if (data.byteLength <= max) return true;
    this.ctx.report(this.id, fail(WireError.datagramTooLarge(data.byteLength, max)));
    return false;
  }

  #sendDatagram(data: Uint8Array, ip: string, port: number): void {
    const conn = this.#conn;
    if (conn === undefined || !this.#checkSize(data)) return;
    if ((ip.includes(":") ? 6 : 4) !== this.#family) {
      this.ctx.report(this.id, fail(WireError.udpFamily(ip, this.#family)));
      return;
    }
    const limit = this.ctx.limits.maxSocketQueueBytes;
    if (this.#pendingBytes + data.byteLength > limit) {
      this.ctx.report(this.id, fail(WireError.datagramDropped("send queue full")));
      return;
    }
    this.#peers.add(peerKey(ip, port));
    this.#pendingBytes += data.byteLength;
    this.#sendChain = this.#sendChain.then(async () => {
      try {
        const { up } = this.ctx.bandwidth;
        if (this.live && up.buckets.length > 0) await up.take(data.byteLength, this.signal);
        if (this.live) {
          await conn.send(data, { transport: "udp", hostname: ip, port });
          this.bytesUp += data.byteLength;
          this.ctx.metrics.bytes("up", data.byteLength);
        }
      } catch (e) {
        if (this.live) {
          this.ctx.report(this.id, fail(WireError.datagramDropped(describe(e))));
        }
      } finally {
        this.#pendingBytes -= data.byteLength;
      }
    });
    this.ctx.track(this.#sendChain);
  }

  async #receiveLoop(conn: DatagramConn): Promise<void> {
    const signal = this.signal;
    while (this.live) {
      try {
        await this.ctx.drained(signal);
      } catch {
        return;
      }
      let data: Uint8Array;
      let from: NetAddr;
      try {
        const [d, addr] = await conn.receive();
        data = d;
        from = addr;
      } catch (e) {
        if (!this.live) return;
        if (e instanceof Error && (e.name === "BadResource" || e.name === "Interrupted")) {
          return this.end(fail(WireError.udpFailed(describe(e))));
        }
        // ICMP errors (e.g. port unreachable) surface here on some systems: not fatal.
        this.ctx.log.debug("udp receive error", { id: this.id, error: describe(e) });
        continue;
      }
      if (!this.live) return;
      const { down } = this.ctx.bandwidth;
      if (down.buckets.length > 0) {
        try {
          await down.take(data.byteLength, signal);
        } catch {
          return; // aborted
        }
      }
      const ip = canonicalIp(from.hostname) ?? from.hostname;
      if (!this.#peers.has(peerKey(ip, from.port))) {
        this.ctx.log.debug("udp datagram from an unknown peer dropped", {
          id: this.id,
          from: formatHostPort(ip, from.port),
        });
        continue;
      }
      this.bytesDown += data.byteLength;
      this.ctx.metrics.bytes("down", data.byteLength);
      this.ctx.emit({ ev: "data_from", id: this.id, data, addr: ip, port: from.port });
    }
  }

  /** The client's `close`: closes the socket and answers `closed`. */
  close(): void {
    this.end(CLOSED);
  }

  /** Closes the datagram socket. */
  protected teardown(): void {
    try {
      this.#conn?.close();
    } catch {
      // already closed
    }
  }
}

/** Key of a peer in the reply allow-set; `ip` must already be canonical (see `canonicalIp`). */
function peerKey(ip: string, port: number): string {
  return `${ip}|${port}`;
}

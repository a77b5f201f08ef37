/**
 * ICMP echo as a transport capability (`Transport.openIcmp`): the best mechanism this
 * machine offers, detected once per process and address family and named in one log line
 * (`icmp mechanism=dgram`), best first:
 *
 * 1. `dgram`: unprivileged datagram ICMP sockets (Linux "ping sockets", for the groups in
 *    `net.ipv4.ping_group_range`; most systemd distributions and Docker allow every group), by
 *    FFI on libc ({@linkcode openFfiIcmp});
 * 2. `raw`: raw ICMP sockets (root or `CAP_NET_RAW`), by FFI too;
 * 3. `ping`: the system `ping`, one process per request ({@linkcode PingProcessSocket}).
 *
 * A runtime supplies an {@linkcode IcmpPlatform}: how to bind libc (Deno: `Deno.dlopen`, needing
 * `--allow-ffi`; Bun: `bun:ffi`) and how to run `ping` (Deno: `--allow-run=ping`). Without them
 * ICMP is unavailable and `openIcmp` rejects with the reasons.
 *
 * @module
 */
import type { IcmpMechanism, IcmpSocket } from "../types.ts";
import type { Libc } from "./_libc.ts";
import { openFfiIcmp } from "./ffi_socket.ts";
import { PingProcessSocket, type PingRunner } from "./ping_socket.ts";
import { getLogger } from "../../log/mod.ts";

export { FfiIcmpSocket, openFfiIcmp } from "./ffi_socket.ts";
export { parsePingReply, PingProcessSocket, type PingRun, type PingRunner } from "./ping_socket.ts";
export { buildEchoRequest, internetChecksum, MAX_ECHO_DATA, parseIcmp } from "./packet.ts";
export type { Libc } from "./_libc.ts";

/** What a runtime offers for ICMP. */
export interface IcmpPlatform {
  /**
   * Binds libc by FFI (a fresh handle per call: each socket unloads its own), or says why it
   * cannot (`no FFI permission (--allow-ffi)`, `not Linux`, ...).
   */
  loadLibc(): Libc | string;
  /** Runs the system `ping`, or says why it cannot (`no ping binary`, `no --allow-run=ping`). */
  ping(): PingRunner | string;
}

/** The outcome of detection for one address family. */
export interface IcmpSupport {
  /** The best mechanism that works, or undefined when none does. */
  readonly mechanism: IcmpMechanism | undefined;
  /**
   * Why each better mechanism does not work, e.g. `no datagram ICMP sockets (Permission denied
   * (os error 13); see net.ipv4.ping_group_range)`; empty when the best one works.
   */
  readonly reasons: readonly string[];
}

/** The ICMP part of a transport: detection and sockets for one {@linkcode IcmpPlatform}. */
export interface IcmpProvider {
  /** The best mechanism for `family` (detected at the first call, then remembered). */
  detect(family: 4 | 6): IcmpSupport;
  /**
   * Opens an ICMP echo socket with `mechanism`, or the best one detected.
   *
   * @throws {Error} (rejects) `ICMP unavailable: <reasons>` when no mechanism works, or the
   *   mechanism's own error (`Permission denied (os error 13)`, `no ping binary`, ...).
   */
  open(family: 4 | 6, mechanism?: IcmpMechanism): Promise<IcmpSocket>;
}

/** The provider of `platform`; detection results are kept by the provider. */
export function icmpProvider(platform: IcmpPlatform): IcmpProvider {
  const detected = new Map<4 | 6, IcmpSupport>();
  const openNow = (family: 4 | 6, mechanism: IcmpMechanism): IcmpSocket => {
    if (mechanism === "ping") {
      const run = platform.ping();
      if (typeof run === "string") throw new Error(run);
      return new PingProcessSocket(family, run);
    }
    const libc = platform.loadLibc();
    if (typeof libc === "string") throw new Error(libc);
    return openFfiIcmp(libc, family, mechanism);
  };
  const detect = (family: 4 | 6): IcmpSupport => {
    const known = detected.get(family);
    if (known) return known;
    const reasons: string[] = [];
    let mechanism: IcmpMechanism | undefined;
    for (const m of ["dgram", "raw"] as const) {
      try {
        openNow(family, m).close();
        mechanism = m;
        break;
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        reasons.push(
          m === "dgram"
            ? `no datagram ICMP sockets (${why}; see net.ipv4.ping_group_range)`
            : `no raw ICMP sockets (${why})`,
        );
      }
    }
    if (mechanism === undefined) {
      const run = platform.ping();
      if (typeof run === "string") reasons.push(run);
      else mechanism = "ping";
    }
    const support: IcmpSupport = { mechanism, reasons };
    detected.set(family, support);
    return support;
  };
  return {
    detect,
    open(family, mechanism): Promise<IcmpSocket> {
      try {
        if (mechanism !== undefined) return Promise.resolve(openNow(family, mechanism));
        const support = detect(family);
        if (support.mechanism === undefined) {
          throw new Error(`ICMP unavailable: ${support.reasons.join(", ")}`);
        }
        return Promise.resolve(openNow(family, support.mechanism));
      } catch (e) {
        return Promise.reject(e);
      }
    },
  };
}

let announced = false;

/**
 * Detects the mechanisms of `provider` for IPv4 and IPv6 and logs them once per process (the
 * first transport made): `icmp mechanism=dgram` (with `ipv6=raw` when IPv6 differs), or `icmp
 * mechanism=none reason="..."`.
 */
export function announceIcmp(provider: IcmpProvider): void {
  if (announced) return;
  announced = true;
  const v4 = provider.detect(4);
  const v6 = provider.detect(6);
  getLogger("transport").info("icmp", {
    mechanism: v4.mechanism ?? "none",
    ipv6: v6.mechanism === v4.mechanism ? undefined : v6.mechanism ?? "none",
    reason: v4.mechanism === "dgram" ? undefined : v4.reasons.join(", ") || undefined,
  });
}

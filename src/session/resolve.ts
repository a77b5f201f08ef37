/**
 * Resolve once, check every address, hand back the checked addresses (DESIGN.md §2 step 4,
 * STYLE.md habit 8). Used by `connect`, `connect_tls`, `connect_udp` and `send_to`.
 *
 * @module
 */
import type { Policy, Target } from "../policy/mod.ts";
import type { Transport } from "../transport/mod.ts";
import { describe, WireError } from "./wire_errors.ts";
import { deny, fail, type Refusal } from "./types.ts";

/** The `DNS lookup failed` detail for a lookup that answered no address. */
export const NO_ADDRESSES = "no addresses";

/** Outcome of {@linkcode resolveChecked}: addresses to dial, or the refusal. */
export type ResolveOutcome = { ok: true; ips: string[] } | { ok: false; refusal: Refusal };

/**
 * Checks `target:port` against `policy`; for a name, resolves it once and checks every address
 * (any denied address denies the whole target, so a name cannot mix a public and a private
 * address). The caller dials only the returned addresses.
 *
 * @throws {unknown} `signal.reason` when aborted (never for policy or DNS failures).
 */
export async function resolveChecked(
  target: Target,
  port: number,
  policy: Policy,
  transport: Transport,
  signal: AbortSignal,
): Promise<ResolveOutcome> {
  const verdict = policy.checkTarget(target, port);
  if (!verdict.allowed) return { ok: false, refusal: deny(verdict.reason, verdict.rule) };
  if (target.kind === "ip") return { ok: true, ips: [target.ip] };
  let ips: string[];
  try {
    ips = await transport.lookup(target.name, signal);
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    return {
      ok: false,
      refusal: fail(WireError.lookupFailed(target.name, describe(e)), "unreachable"),
    };
  }
  // A transport should throw for a name without addresses; one that answers [] must not reach
  // the dial loop (which would report `connect to NAME (0 addresses) failed: undefined`).
  if (ips.length === 0) {
    return {
      ok: false,
      refusal: fail(WireError.lookupFailed(target.name, NO_ADDRESSES), "unreachable"),
    };
  }
  for (const ip of ips) {
    const v = policy.checkResolved(target.name, ip, port);
    if (!v.allowed) return { ok: false, refusal: deny(v.reason, v.rule) };
  }
  return { ok: true, ips };
}

/**
 * Runs `fn` under a signal that aborts with the parent or after `ms`; `timedOut()` tells which.
 * The timer is always cleared.
 */
export async function withTimeout<T>(
  parent: AbortSignal,
  ms: number,
  fn: (signal: AbortSignal, timedOut: () => boolean) => Promise<T>,
): Promise<T> {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(new Error("timed out")), ms);
  try {
    return await fn(AbortSignal.any([parent, timeout.signal]), () => timeout.signal.aborted);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Abuse limits per client IP address (after `--trust-proxy`): sessions at once, new sessions per
 * minute, dials per minute. Refused sessions get HTTP 429 before the upgrade; refused dials get a
 * refusal with a clear message (the session turns it into `error`, Wisp into CLOSE 0x49). Rates
 * are token buckets (capacity = the per-minute figure, refilled evenly over a minute), so a burst
 * of the whole minute's allowance is allowed and then one every `60 / N` seconds. Pure: the
 * clock is injectable.
 *
 * @module
 */

/** The limits; an absent or 0 field is no limit. */
export interface IpLimitOptions {
  /** Most WebSocket sessions one address may hold at once (`--max-sessions-per-ip`). */
  sessionsPerIp?: number;
  /** Most new sessions one address may open per minute (`--max-new-sessions-per-ip-per-min`). */
  newSessionsPerMinute?: number;
  /** Most dials (connect, connect_tls, connect_udp, Wisp CONNECT) per minute per address (`--max-dials-per-ip-per-min`). */
  dialsPerMinute?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

interface PerIp {
  sessions: number;
  newSessions: Bucket | undefined;
  dials: Bucket | undefined;
}

/** Entries kept before idle ones are swept. */
const SWEEP_AT = 10_000;

/**
 * Counts sessions and rates per client address. One per server; thread through admission (before
 * the upgrade), session start/end and each dial.
 */
export class IpLimiter {
  readonly #opts: IpLimitOptions;
  readonly #now: () => number;
  readonly #ips = new Map<string, PerIp>();

  /**
   * @param options the limits.
   * @param now the clock in ms (default `Date.now`; tests pass a fake).
   */
  constructor(options: IpLimitOptions, now: () => number = Date.now) {
    this.#opts = options;
    this.#now = now;
  }

  /** Whether any limit is set. */
  get active(): boolean {
    const o = this.#opts;
    return (o.sessionsPerIp ?? 0) > 0 || (o.newSessionsPerMinute ?? 0) > 0 ||
      (o.dialsPerMinute ?? 0) > 0;
  }

  #entry(ip: string): PerIp {
    let e = this.#ips.get(ip);
    if (e === undefined) {
      if (this.#ips.size >= SWEEP_AT) this.#sweep();
      e = { sessions: 0, newSessions: undefined, dials: undefined };
      this.#ips.set(ip, e);
    }
    return e;
  }

  /** Takes one token from a bucket of `perMinute` (created full); false when empty. */
  #take(bucket: Bucket | undefined, perMinute: number, set: (b: Bucket) => void): boolean {
    const now = this.#now();
    const b = bucket ?? { tokens: perMinute, at: now };
    b.tokens = Math.min(perMinute, b.tokens + (now - b.at) * perMinute / 60_000);
    b.at = now;
    set(b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /**
   * Admits a new session from `ip` (takes one of its new-session tokens; checks its sessions at
   * once), or answers why not (for a 429 body). Count the session with
   * {@linkcode IpLimiter.sessionStarted} once it exists, and {@linkcode IpLimiter.sessionEnded}
   * when it ends.
   */
  admitSession(ip: string): string | undefined {
    const { sessionsPerIp = 0, newSessionsPerMinute = 0 } = this.#opts;
    const e = this.#entry(ip);
    if (sessionsPerIp > 0 && e.sessions >= sessionsPerIp) {
      return `too many sessions from ${ip} (limit ${sessionsPerIp} at once)`;
    }
    if (
      newSessionsPerMinute > 0 &&
      !this.#take(e.newSessions, newSessionsPerMinute, (b) => e.newSessions = b)
    ) {
      return `too many new sessions from ${ip} (limit ${newSessionsPerMinute} per minute)`;
    }
    return undefined;
  }

  /** A session from `ip` started (counted against its sessions at once). */
  sessionStarted(ip: string): void {
    this.#entry(ip).sessions++;
  }

  /** A session admitted by {@linkcode IpLimiter.admitSession} ended. */
  sessionEnded(ip: string): void {
    const e = this.#ips.get(ip);
    if (e !== undefined && e.sessions > 0) e.sessions--;
  }

  /** Admits one dial from `ip`, or answers why not (the refusal's message). */
  admitDial(ip: string): string | undefined {
    const { dialsPerMinute = 0 } = this.#opts;
    if (dialsPerMinute <= 0) return undefined;
    const e = this.#entry(ip);
    if (!this.#take(e.dials, dialsPerMinute, (b) => e.dials = b)) {
      return `too many dials from ${ip} (limit ${dialsPerMinute} per minute)`;
    }
    return undefined;
  }

  /** Drops entries with no session whose buckets have refilled (they would be created full). */
  #sweep(): void {
    const now = this.#now();
    for (const [ip, e] of this.#ips) {
      const idle = (b: Bucket | undefined): boolean => b === undefined || now - b.at >= 60_000;
      if (e.sessions === 0 && idle(e.newSessions) && idle(e.dials)) this.#ips.delete(ip);
    }
  }

  /** Addresses tracked now (for tests and metrics). */
  get size(): number {
    return this.#ips.size;
  }
}

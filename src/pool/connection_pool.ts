/**
 * A pool of **pre-dialled, never-used** upstream TCP connections.
 *
 * A proxy cannot know whether a used stream can be reused (its protocol state belongs to the
 * client that used it), so this pool never takes a connection back. Instead, after a session's
 * dial to `ip:port` succeeds, the pool opens up to `perKey` spare connections to the same
 * `ip:port` in the background and keeps them for `idleMs`; the next dial to that address (from any
 * session) gets one of them at once.
 *
 * **Where the pool sits.** The pool is below the session's policy check: the session resolves the
 * name, checks the name, the port and every resolved address, and only then asks its transport to
 * dial a checked `ip:port`. The pool is keyed by that `ip:port`, so a pooled connection is only
 * ever handed out in answer to a dial the policy already allowed. Spare connections are dialled
 * only to addresses some session was allowed to reach.
 *
 * **While idle**, every pooled connection has one read in flight: bytes the peer sends first
 * (SMTP, FTP and SSH banners) are buffered, bounded by `maxBufferedBytes`, and delivered first
 * after hand-out; end of stream or an error discards the connection, so a connection the peer
 * closed is not handed out. (A peer's close that lands in the same event-loop turn as the
 * hand-out cannot be seen; the session then reads end of stream at once, as with any dial.)
 *
 * Pooled connections count toward no session's limits until they are handed out; the pool's
 * own ceiling is `maxTotal` connections (idle plus being dialled) and `maxTotal` times
 * (`maxBufferedBytes` + 4 KiB) of memory.
 *
 * This module touches no `Deno.*` API: it dials through the injected `dial` function.
 *
 * @module
 */
import type { StreamConn } from "../transport/mod.ts";
import { PooledConn, type ReadOutcome } from "./_pooled_conn.ts";
import { formatHostPort } from "../protocol/mod.ts";

export { PooledConn } from "./_pooled_conn.ts";

/** Default number of spare connections kept per `ip:port` (`--pool-per-key`). */
export const DEFAULT_POOL_PER_KEY = 2;
/** Default seconds a spare connection is kept (`--pool-idle-secs`). */
export const DEFAULT_POOL_IDLE_SECS = 30;
/** Default ceiling of pooled connections over all targets. */
export const DEFAULT_POOL_MAX_TOTAL = 256;
/** Default bytes an idle connection may receive (a banner) before it is discarded. */
export const DEFAULT_POOL_MAX_BUFFERED_BYTES = 64 * 1024;
/** Default time a background dial may take, in ms. */
export const DEFAULT_POOL_DIAL_TIMEOUT_MS = 10_000;
/** Keys remembered by {@linkcode ConnectionPool.exclude} before the oldest are forgotten. */
const MAX_EXCLUDED_KEYS = 1024;
/** Bytes per read while idle. */
const IDLE_READ_BYTES = 4 * 1024;

/** Opens a TCP connection to an IP address (TCP_NODELAY already set). */
export type DialFunction = (ip: string, port: number, signal: AbortSignal) => Promise<StreamConn>;

/** Options of {@linkcode ConnectionPool}. */
export interface ConnectionPoolOptions {
  /** Spare connections kept per `ip:port` (0 disables pre-dialling). */
  perKey: number;
  /** How long a spare connection is kept before it is closed, in ms (0 disables pooling). */
  idleMs: number;
  /** Ceiling over all targets of idle plus in-flight background dials (default 256). */
  maxTotal?: number;
  /** Bytes an idle connection may receive before it is discarded (default 65536). */
  maxBufferedBytes?: number;
  /** Time limit of one background dial, in ms (default 10000). */
  dialTimeoutMs?: number;
  /**
   * Opens a connection; used for misses and for background refills. Must honour `signal`
   * (reject with `signal.reason` and leave nothing open).
   */
  dial: DialFunction;
}

/** Counters of a {@linkcode ConnectionPool} (a snapshot). */
export interface PoolStats {
  /** Acquires served from the pool. */
  hits: number;
  /** Acquires that dialled (nothing idle for the target, or the target is excluded). */
  misses: number;
  /** Idle connections dropped because the peer closed them, a read failed, or the peer sent
   * more than `maxBufferedBytes`. */
  discarded: number;
  /** Idle connections closed because they stayed unused for `idleMs`. */
  expired: number;
  /** Connections idle in the pool now. */
  idle: number;
  /** Background (refill) dials started. */
  dials: number;
}

interface Entry {
  readonly key: string;
  readonly ip: string;
  readonly port: number;
  readonly conn: StreamConn;
  readonly chunks: Uint8Array[];
  buffered: number;
  readonly buffer: Uint8Array;
  pending: Promise<ReadOutcome> | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  task: Promise<void> | undefined;
  state: "idle" | "handed" | "gone";
}

function closeQuietly(conn: StreamConn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/**
 * Keeps pre-dialled, never-used connections per `ip:port`. See the module documentation for
 * the safety argument (never reuses a used stream; sits below the policy check).
 *
 * @example
 * ```ts ignore
 * import { ConnectionPool } from "./connection_pool.ts";
 * import { connectTcp } from "../transport/mod.ts";
 * await using pool = new ConnectionPool({ perKey: 2, idleMs: 30_000, dial: connectTcp });
 * const conn = await pool.acquire("93.184.215.14", 80, AbortSignal.timeout(5000));
 * // ... later acquires of 93.184.215.14:80 get a pre-dialled connection
 * conn.close();
 * ```
 */
export class ConnectionPool implements AsyncDisposable {
  readonly #perKey: number;
  readonly #idleMs: number;
  readonly #maxTotal: number;
  readonly #maxBuffered: number;
  readonly #dialTimeoutMs: number;
  readonly #dial: DialFunction;
  readonly #idle = new Map<string, Entry[]>();
  readonly #refilling = new Map<string, number>();
  readonly #excluded = new Set<string>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #refillTimers = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #abort = new AbortController();
  #idleCount = 0;
  #refillCount = 0;
  #closing: Promise<void> | undefined;
  readonly #stats = { hits: 0, misses: 0, discarded: 0, expired: 0, dials: 0 };

  /**
   * @throws {RangeError} when `perKey`, `idleMs`, `maxTotal`, `maxBufferedBytes` or
   * `dialTimeoutMs` is negative or not a finite number.
   */
  constructor(options: ConnectionPoolOptions) {
    const check = (name: string, v: number): number => {
      if (!Number.isFinite(v) || v < 0) {
        throw new RangeError(`Cannot create connection pool: ${name} must be >= 0, got ${v}`);
      }
      return v;
    };
    this.#perKey = Math.floor(check("perKey", options.perKey));
    this.#idleMs = check("idleMs", options.idleMs);
    this.#maxTotal = Math.floor(check("maxTotal", options.maxTotal ?? DEFAULT_POOL_MAX_TOTAL));
    this.#maxBuffered = check(
      "maxBufferedBytes",
      options.maxBufferedBytes ?? DEFAULT_POOL_MAX_BUFFERED_BYTES,
    );
    this.#dialTimeoutMs = check(
      "dialTimeoutMs",
      options.dialTimeoutMs ?? DEFAULT_POOL_DIAL_TIMEOUT_MS,
    );
    this.#dial = options.dial;
  }

  /** A snapshot of the counters. */
  get stats(): PoolStats {
    return { ...this.#stats, idle: this.#idleCount };
  }

  /** True once {@linkcode ConnectionPool.close} has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Resolves a connection to `ip:port` that has carried no data: a pooled one when available
   * (with any banner the peer sent while it was idle still to be read), otherwise a fresh dial.
   * After success, spare connections to the same address are dialled in the background (unless
   * the pool is closed or the address is excluded). The caller owns the connection and must
   * close it; it never returns to the pool.
   *
   * Call it only for an address the policy has allowed (see the module documentation).
   *
   * @throws {Error} whatever `dial` throws (e.g. `Deno.errors.ConnectionRefused`), or
   * `signal.reason` when `signal` is aborted.
   */
  async acquire(ip: string, port: number, signal: AbortSignal): Promise<StreamConn> {
    signal.throwIfAborted();
    const key = formatHostPort(ip, port);
    const entry = this.#idle.get(key)?.pop();
    let conn: StreamConn;
    if (entry !== undefined) {
      this.#stats.hits++;
      conn = this.#handOut(entry);
    } else {
      this.#stats.misses++;
      conn = await this.#dial(ip, port, signal);
    }
    this.#scheduleRefill(key, ip, port);
    return conn;
  }

  /**
   * Stops pooling `ip:port`: closes its idle connections and later acquires dial directly.
   * Used for targets reached with TLS, whose handshake cannot start while the pool's idle read
   * is in flight. The most recent 1024 excluded addresses are remembered.
   */
  exclude(ip: string, port: number): void {
    const key = formatHostPort(ip, port);
    this.#excluded.delete(key);
    this.#excluded.add(key);
    if (this.#excluded.size > MAX_EXCLUDED_KEYS) {
      const oldest = this.#excluded.values().next().value;
      if (oldest !== undefined) this.#excluded.delete(oldest);
    }
    clearTimeout(this.#refillTimers.get(key));
    this.#refillTimers.delete(key);
    for (const e of [...(this.#idle.get(key) ?? [])]) this.#drop(e, undefined);
  }

  /** Whether `ip:port` is excluded from pooling (see {@linkcode ConnectionPool.exclude}). */
  isExcluded(ip: string, port: number): boolean {
    return this.#excluded.has(formatHostPort(ip, port));
  }

  /**
   * Closes every idle connection, cancels background dials, clears every timer and resolves when
   * all of the pool's reads and dials have settled. Connections already handed out are not
   * touched. Later acquires dial directly without pooling. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#abort.abort(new Error("connection pool closed"));
      for (const timer of this.#refillTimers.values()) clearTimeout(timer);
      this.#refillTimers.clear();
      for (const list of [...this.#idle.values()]) {
        for (const e of [...list]) this.#drop(e, undefined);
      }
      while (this.#tasks.size > 0) await Promise.all([...this.#tasks]);
    })();
    return this.#closing;
  }

  /** Same as {@linkcode ConnectionPool.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #handOut(entry: Entry): PooledConn {
    entry.state = "handed";
    clearTimeout(entry.timer);
    if (entry.task !== undefined) this.#tasks.delete(entry.task);
    this.#idleCount--;
    const list = this.#idle.get(entry.key);
    if (list?.length === 0) this.#idle.delete(entry.key);
    return new PooledConn(
      entry.ip,
      entry.port,
      entry.conn,
      entry.chunks,
      entry.pending,
      entry.buffer,
    );
  }

  #scheduleRefill(key: string, ip: string, port: number): void {
    if (this.closed || this.#excluded.has(key) || this.#perKey === 0 || this.#idleMs === 0) return;
    if (this.#refillTimers.has(key)) return;
    // Deferred by one timer turn, so a caller that upgrades to TLS right after the dial can
    // exclude the address before any spare connection is opened.
    this.#refillTimers.set(
      key,
      setTimeout(() => {
        this.#refillTimers.delete(key);
        this.#refill(key, ip, port);
      }, 0),
    );
  }

  #refill(key: string, ip: string, port: number): void {
    while (
      !this.closed && !this.#excluded.has(key) &&
      (this.#idle.get(key)?.length ?? 0) + (this.#refilling.get(key) ?? 0) < this.#perKey &&
      this.#idleCount + this.#refillCount < this.#maxTotal
    ) {
      this.#refilling.set(key, (this.#refilling.get(key) ?? 0) + 1);
      this.#refillCount++;
      this.#stats.dials++;
      this.#track(this.#refillOne(key, ip, port));
    }
  }

  async #refillOne(key: string, ip: string, port: number): Promise<void> {
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new Error("pool dial timed out")),
      this.#dialTimeoutMs,
    );
    const signal = AbortSignal.any([this.#abort.signal, timeout.signal]);
    let conn: StreamConn | undefined;
    try {
      conn = await this.#dial(ip, port, signal);
    } catch {
      // A failed refill stops refilling this address until its next successful acquire.
    } finally {
      clearTimeout(timer);
      const left = (this.#refilling.get(key) ?? 1) - 1;
      if (left > 0) this.#refilling.set(key, left);
      else this.#refilling.delete(key);
      this.#refillCount--;
    }
    if (conn === undefined) return;
    if (this.closed || this.#excluded.has(key)) {
      closeQuietly(conn);
      return;
    }
    this.#add(key, ip, port, conn);
  }

  #add(key: string, ip: string, port: number, conn: StreamConn): void {
    const entry: Entry = {
      key,
      ip,
      port,
      conn,
      chunks: [],
      buffered: 0,
      buffer: new Uint8Array(IDLE_READ_BYTES),
      pending: undefined,
      timer: undefined,
      task: undefined,
      state: "idle",
    };
    let list = this.#idle.get(key);
    if (list === undefined) this.#idle.set(key, list = []);
    list.push(entry);
    this.#idleCount++;
    entry.timer = setTimeout(() => {
      if (entry.state !== "idle") return;
      this.#stats.expired++;
      this.#drop(entry, undefined);
    }, this.#idleMs);
    this.#readIdle(entry);
  }

  /** Starts the one read an idle connection has in flight. */
  #readIdle(entry: Entry): void {
    const pending = entry.conn.read(entry.buffer).then(
      (n): ReadOutcome => ({ n }),
      (error: unknown): ReadOutcome => ({ error }),
    );
    entry.pending = pending;
    const task = pending.then((outcome) => this.#onIdleRead(entry, outcome));
    this.#track(task, entry);
  }

  #onIdleRead(entry: Entry, outcome: ReadOutcome): void {
    // After hand-out the outcome belongs to the PooledConn, which awaits the same promise.
    if (entry.state !== "idle") return;
    entry.pending = undefined;
    if ("error" in outcome || outcome.n === null) {
      this.#drop(entry, "discarded");
      return;
    }
    entry.buffered += outcome.n;
    if (entry.buffered > this.#maxBuffered) {
      this.#drop(entry, "discarded");
      return;
    }
    entry.chunks.push(entry.buffer.slice(0, outcome.n));
    this.#readIdle(entry);
  }

  /** Removes an idle entry and closes its connection. */
  #drop(entry: Entry, count: "discarded" | undefined): void {
    if (entry.state !== "idle") return;
    entry.state = "gone";
    clearTimeout(entry.timer);
    const list = this.#idle.get(entry.key);
    const i = list?.indexOf(entry) ?? -1;
    if (list !== undefined && i >= 0) {
      list.splice(i, 1);
      if (list.length === 0) this.#idle.delete(entry.key);
    }
    this.#idleCount--;
    if (count !== undefined) this.#stats[count]++;
    closeQuietly(entry.conn);
  }

  /**
   * Tracks a background task until it settles, so close() can wait for it. An idle read's task
   * stops being tracked when its connection is handed out (its read then belongs to the caller).
   */
  #track(task: Promise<void>, entry?: Entry): void {
    const tracked: Promise<void> = task.catch(() => {}).finally(() => {
      this.#tasks.delete(tracked);
    });
    this.#tasks.add(tracked);
    if (entry !== undefined) entry.task = tracked;
  }
}

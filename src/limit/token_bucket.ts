/**
 * A token bucket with carried deficit, FIFO waiters and cancellable waits.
 *
 * @module
 */

import { type Clock, systemClock } from "./clock.ts";

/** Bytes per second carried by one Mbps of payload (10^6 bits/s ÷ 8). */
const BYTES_PER_SEC_PER_MBPS = 1_000_000 / 8;

/** Smallest burst {@linkcode TokenBucket.fromMbps} picks by default, in bytes (16 KiB). */
export const MIN_BURST_BYTES = 16 * 1024;

/** Default burst window of {@linkcode TokenBucket.fromMbps}, in milliseconds. */
export const DEFAULT_BURST_MS = 50;

/** Tolerance in bytes for floating-point refill arithmetic. */
const EPSILON_BYTES = 1e-6;

/**
 * Converts megabits per second of payload (1 Mbps = 10^6 bits/s) to bytes per second.
 * `Infinity` stays `Infinity` (unlimited).
 *
 * @param mbps Rate in Mbps; must be > 0 (may be `Infinity`).
 * @returns The same rate in bytes/s.
 * @throws {RangeError} If `mbps` is NaN, zero or negative.
 *
 * @example
 * ```ts
 * import { mbpsToBytesPerSec } from "./token_bucket.ts";
 * if (mbpsToBytesPerSec(8) !== 1_000_000) throw new Error("8 Mbps is 1 MB/s");
 * ```
 */
export function mbpsToBytesPerSec(mbps: number): number {
  if (!(mbps > 0)) {
    throw new RangeError(`Cannot convert ${mbps} Mbps: expected a number > 0`);
  }
  return mbps * BYTES_PER_SEC_PER_MBPS;
}

/** Options of the {@linkcode TokenBucket} constructor. */
export interface TokenBucketOptions {
  /** Long-run rate in bytes/s; > 0, or `Infinity` for an unlimited (no-op, timer-free) bucket. */
  readonly rateBytesPerSec: number;
  /**
   * Capacity in bytes: how much may pass at once after an idle period. Finite and > 0 unless the
   * rate is `Infinity` (then it is ignored). The bucket starts full.
   */
  readonly burstBytes: number;
  /** Time source (default {@linkcode systemClock}). */
  readonly clock?: Clock;
}

/** Options of {@linkcode TokenBucket.fromMbps}. */
export interface FromMbpsOptions {
  /**
   * Burst expressed as milliseconds of traffic at the rate, in ms (default
   * {@linkcode DEFAULT_BURST_MS}). The burst is `max(MIN_BURST_BYTES, rate × burstMs / 1000)`.
   */
  readonly burstMs?: number;
  /** Time source (default {@linkcode systemClock}). */
  readonly clock?: Clock;
}

interface Waiter {
  readonly bytes: number;
  readonly resolve: () => void;
  readonly cleanup: () => void;
}

/**
 * A token bucket that admits bytes at `rateBytesPerSec` with bursts up to `burstBytes`.
 *
 * **Deficit model.** Every `take` reserves its bytes when it is called: the balance reported by
 * {@linkcode TokenBucket.tokens} drops by that amount at once and may go negative (a deficit).
 * A waiter is released when the refill has paid back its reservation and those of everyone queued
 * before it. Hence, for any interval of length `t` ms starting from a full bucket, at most
 * `burstBytes + rateBytesPerSec × t / 1000` bytes are admitted, however many consumers compete —
 * the long-run rate is never overshot (the Rust wasmnet's shared bucket overshot under concurrency).
 *
 * **Order.** Waiters are served strictly first in, first out; a small request never overtakes a
 * queued large one, so a consumer that takes fixed-size pieces in a loop alternates with other
 * waiting consumers instead of starving them.
 *
 * **Requests larger than the burst** are admitted as a deficit: a `take(n)` with `n > burstBytes`
 * waits until the bucket has accrued `n` bytes, then admits all `n` at once, which is a burst
 * larger than `burstBytes`. The throttle pipe ({@linkcode throttle}) avoids that by splitting chunks
 * to at most the smallest burst.
 *
 * **Cancellation.** An aborted `take` rejects with `signal.reason` and its reservation is returned,
 * so waiters behind it are released as if it had never asked. The bucket keeps at most one timer
 * (for the head waiter) and clears it as soon as the queue is empty; an idle bucket holds no timer.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "./token_bucket.ts";
 * import { FakeClock } from "./fake_clock.ts";
 * const clock = new FakeClock();
 * const bucket = new TokenBucket({ rateBytesPerSec: 1000, burstBytes: 100, clock });
 * await bucket.take(100); // the bucket starts full: admitted at once
 * const later = bucket.take(50); // 50 bytes at 1000 B/s: 50 ms
 * await clock.advance(50);
 * await later;
 * if (clock.pending !== 0) throw new Error("no timer should remain");
 * ```
 */
export class TokenBucket {
  /** Long-run rate in bytes/s (`Infinity` = unlimited). */
  readonly rateBytesPerSec: number;
  /** Capacity in bytes (`Infinity` when the rate is unlimited). */
  readonly burstBytes: number;

  readonly #clock: Clock;
  /** Bytes accrued and not yet granted (never counts queued reservations). */
  #accrued: number;
  /** Sum of bytes reserved by queued waiters. */
  #queuedBytes = 0;
  #last: number;
  /** FIFO queue (a Set keeps insertion order and removes aborted waiters in O(1)). */
  readonly #waiters = new Set<Waiter>();
  /** Cancels the single timer that wakes the head waiter. */
  #timer: AbortController | undefined;

  /**
   * Creates a bucket that starts full (`burstBytes` tokens).
   *
   * @param options Rate in bytes/s, burst in bytes and clock.
   * @throws {RangeError} If `rateBytesPerSec` is not > 0, or (for a finite rate) `burstBytes` is not
   * a finite number > 0.
   */
  constructor(options: TokenBucketOptions) {
    const { rateBytesPerSec, burstBytes, clock = systemClock } = options;
    if (!(rateBytesPerSec > 0)) {
      throw new RangeError(
        `Cannot create TokenBucket: rateBytesPerSec ${rateBytesPerSec} must be > 0 or Infinity`,
      );
    }
    const unlimited = rateBytesPerSec === Infinity;
    if (!unlimited && !(Number.isFinite(burstBytes) && burstBytes > 0)) {
      throw new RangeError(
        `Cannot create TokenBucket: burstBytes ${burstBytes} must be a finite number > 0`,
      );
    }
    this.rateBytesPerSec = rateBytesPerSec;
    this.burstBytes = unlimited ? Infinity : burstBytes;
    this.#clock = clock;
    this.#accrued = this.burstBytes;
    this.#last = unlimited ? 0 : clock.now();
  }

  /**
   * Creates a bucket from a rate in Mbps (10^6 bits/s of payload).
   *
   * @param mbps Rate in Mbps, > 0; `Infinity` gives an unlimited bucket.
   * @param options `burstMs` (default {@linkcode DEFAULT_BURST_MS}) sets the burst to
   * `max(MIN_BURST_BYTES, bytesPerSec × burstMs / 1000)` bytes; `clock` as in the constructor.
   * @throws {RangeError} If `mbps` is not > 0 or `burstMs` is not a finite number ≥ 0.
   *
   * @example
   * ```ts
   * import { TokenBucket } from "./token_bucket.ts";
   * const bucket = TokenBucket.fromMbps(80, { burstMs: 100 }); // 10 MB/s, 1 MB burst
   * if (bucket.burstBytes !== 1_000_000) throw new Error("unexpected burst");
   * ```
   */
  static fromMbps(mbps: number, options: FromMbpsOptions = {}): TokenBucket {
    const { burstMs = DEFAULT_BURST_MS, clock } = options;
    if (!(Number.isFinite(burstMs) && burstMs >= 0)) {
      throw new RangeError(`Cannot create TokenBucket: burstMs ${burstMs} must be a number >= 0`);
    }
    const rateBytesPerSec = mbpsToBytesPerSec(mbps);
    const burstBytes = Math.max(MIN_BURST_BYTES, (rateBytesPerSec * burstMs) / 1000);
    return new TokenBucket(
      clock === undefined
        ? { rateBytesPerSec, burstBytes }
        : { rateBytesPerSec, burstBytes, clock },
    );
  }

  /** True when the rate is `Infinity`: every take is admitted at once and no timer is used. */
  get unlimited(): boolean {
    return this.rateBytesPerSec === Infinity;
  }

  /**
   * Current balance in bytes: refilled tokens minus the reservations of queued waiters. Between
   * `-(queued bytes)` and `burstBytes`; negative means a deficit that queued waiters are paying off.
   * `Infinity` for an unlimited bucket.
   */
  get tokens(): number {
    if (this.unlimited) return Infinity;
    this.#refill();
    return this.#accrued - this.#queuedBytes;
  }

  /** Number of queued `take` calls not yet admitted. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /**
   * Waits until `bytes` are admitted, in FIFO order with other callers.
   *
   * Resolves without a timer when the queue is empty and the balance covers `bytes`. `bytes` may
   * exceed `burstBytes` (admitted as a deficit, see the class notes). `take(0)` resolves at once.
   *
   * @param bytes Number of bytes to admit: a finite number ≥ 0.
   * @param signal Cancels the wait; the reservation is returned to the bucket.
   * @throws {RangeError} (rejects) If `bytes` is negative, NaN or infinite.
   * @throws {unknown} (rejects) `signal.reason` if `signal` is aborted before admission.
   */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    try {
      checkBytes(bytes);
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.unlimited || bytes === 0) return Promise.resolve();
    this.#refill();
    if (this.#waiters.size === 0 && this.#accrued + EPSILON_BYTES >= bytes) {
      this.#accrued -= bytes;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#remove(waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        bytes,
        resolve,
        cleanup: () => signal?.removeEventListener("abort", onAbort),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(waiter);
      this.#queuedBytes += bytes;
      this.#dispatch();
    });
  }

  /**
   * Gives back `bytes` that were admitted but not used (for example because a later bucket in a
   * {@linkcode RateLimiter} chain was aborted). The balance never exceeds `burstBytes` once the
   * queue is empty.
   *
   * @param bytes Number of bytes to return: a finite number ≥ 0.
   * @throws {RangeError} If `bytes` is negative, NaN or infinite.
   */
  refund(bytes: number): void {
    checkBytes(bytes);
    if (this.unlimited || bytes === 0) return;
    this.#refill();
    this.#accrued += bytes;
    this.#dispatch();
  }

  /** Adds the tokens accrued since the last call; capped at the burst only when no one waits. */
  #refill(): void {
    const now = this.#clock.now();
    const elapsed = now - this.#last;
    this.#last = now;
    if (elapsed > 0) this.#accrued += (elapsed * this.rateBytesPerSec) / 1000;
    // While waiters are queued, the accrual is owed to them and must not be capped away (a head
    // larger than the burst could never be served otherwise); the balance stays negative anyway.
    if (this.#waiters.size === 0 && this.#accrued > this.burstBytes) {
      this.#accrued = this.burstBytes;
    }
  }

  /** Admits every head waiter that is paid for, then arms one timer for the next, if any. */
  #dispatch(): void {
    this.#refill();
    for (const waiter of this.#waiters) {
      if (this.#accrued + EPSILON_BYTES < waiter.bytes) break;
      this.#accrued -= waiter.bytes;
      this.#queuedBytes -= waiter.bytes;
      this.#waiters.delete(waiter);
      waiter.cleanup();
      waiter.resolve();
    }
    const head = this.#waiters.values().next();
    if (head.done) {
      this.#queuedBytes = 0; // drop floating-point residue
      if (this.#accrued > this.burstBytes) this.#accrued = this.burstBytes;
      this.#cancelTimer();
      return;
    }
    if (this.#timer !== undefined) return;
    const ms = ((head.value.bytes - this.#accrued) * 1000) / this.rateBytesPerSec;
    const timer = new AbortController();
    this.#timer = timer;
    this.#clock.sleep(ms, timer.signal).then(
      () => {
        if (this.#timer !== timer) return;
        this.#timer = undefined;
        this.#dispatch();
      },
      () => {
        // Cancelled by #cancelTimer: the queue changed and someone else re-armed or emptied it.
      },
    );
  }

  #remove(waiter: Waiter): void {
    const first = this.#waiters.values().next();
    const wasHead = !first.done && first.value === waiter;
    if (!this.#waiters.delete(waiter)) return;
    waiter.cleanup();
    this.#queuedBytes -= waiter.bytes;
    if (wasHead) {
      // The timer was armed for this waiter; re-plan for the next one (it may be paid already).
      this.#cancelTimer();
      this.#dispatch();
    }
  }

  #cancelTimer(): void {
    const timer = this.#timer;
    this.#timer = undefined;
    timer?.abort();
  }
}

function checkBytes(bytes: number): void {
  if (!(Number.isFinite(bytes) && bytes >= 0)) {
    throw new RangeError(`Cannot take ${bytes} bytes: expected a finite number >= 0`);
  }
}

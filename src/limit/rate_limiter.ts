/**
 * A chain of token buckets that every chunk must pass (e.g. per-session, then server-wide).
 *
 * @module
 */

import type { TokenBucket } from "./token_bucket.ts";

/** Default largest piece a throttle forwards, in bytes (16 KiB), unless a burst is smaller. */
export const DEFAULT_MAX_CHUNK_BYTES = 16 * 1024;

/** Options of {@linkcode RateLimiter}. */
export interface RateLimiterOptions {
  /**
   * Called once for each {@linkcode RateLimiter.take} that had to wait (a bucket queued it), with
   * the wait in seconds, when the bytes are admitted (not when the wait is aborted). For metrics;
   * must not throw.
   */
  readonly onWait?: (seconds: number) => void;
}

/**
 * Admits bytes only after every bucket of a chain has admitted them, e.g.
 * `new RateLimiter([sessionBucket, serverBucket])`: each session is held to its own rate while the
 * server-wide bucket caps the sum of all sessions.
 *
 * Buckets are taken **one after another, in the given order**. Put the most specific bucket first:
 * a session that is waiting for its own bucket then holds no place in the shared server queue, so
 * the server bucket only queues bytes that are otherwise ready to go. If a later bucket's wait is
 * aborted, the bytes already admitted by earlier buckets are refunded to them.
 *
 * Unlimited buckets (`rateBytesPerSec: Infinity`) are skipped, so a chain of them costs nothing.
 *
 * @example
 * ```ts
 * import { RateLimiter, TokenBucket } from "./mod.ts";
 * const server = new TokenBucket({ rateBytesPerSec: 1_000_000, burstBytes: 65_536 });
 * const session = new TokenBucket({ rateBytesPerSec: 250_000, burstBytes: 16_384 });
 * const limiter = new RateLimiter([session, server]);
 * await limiter.take(16_384); // both buckets start full: admitted at once
 * ```
 */
export class RateLimiter {
  /** The chain, in the order it is taken (unlimited buckets removed). */
  readonly buckets: readonly TokenBucket[];
  readonly #onWait: ((seconds: number) => void) | undefined;

  /**
   * Creates a chain; unlimited buckets are dropped from it.
   *
   * @param buckets Buckets to pass, most specific first; may be empty (then nothing waits).
   * @param options `onWait`, told of every take that waited.
   */
  constructor(buckets: readonly TokenBucket[], options: RateLimiterOptions = {}) {
    this.buckets = buckets.filter((b) => !b.unlimited);
    this.#onWait = options.onWait;
  }

  /**
   * Smallest burst of the chain in bytes (`Infinity` if every bucket is unlimited): the largest
   * piece that passes every bucket without going beyond its burst.
   */
  get minBurstBytes(): number {
    return this.buckets.reduce((min, b) => Math.min(min, b.burstBytes), Infinity);
  }

  /**
   * Largest piece in bytes that consumers of this chain should take at once so that they take
   * turns (FIFO per piece) and no piece exceeds a burst: the smallest burst, capped at
   * {@linkcode DEFAULT_MAX_CHUNK_BYTES} (16 KiB); `Infinity` for an empty (unlimited) chain, where
   * nothing is split. The throttle pipe splits to this size by default.
   */
  get pieceBytes(): number {
    if (this.buckets.length === 0) return Infinity;
    return Math.max(1, Math.floor(Math.min(DEFAULT_MAX_CHUNK_BYTES, this.minBurstBytes)));
  }

  /**
   * Waits until every bucket has admitted `bytes`, taking them in order.
   *
   * @param bytes Number of bytes: a finite number ≥ 0 (may exceed a burst; see
   * {@linkcode TokenBucket.take}).
   * @param signal Cancels the wait; bytes already admitted by earlier buckets are refunded.
   * @throws {RangeError} (rejects) If `bytes` is negative, NaN or infinite.
   * @throws {unknown} (rejects) `signal.reason` if `signal` aborts before every bucket admitted.
   */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    checkBytes(bytes);
    signal?.throwIfAborted();
    let waitedSince: number | undefined;
    for (let i = 0; i < this.buckets.length; i++) {
      const bucket = this.buckets[i];
      if (bucket === undefined) continue;
      try {
        const queued = bucket.waiting;
        const admitted = bucket.take(bytes, signal);
        // A take that did not pass at once joined the bucket's queue: it waits.
        if (this.#onWait !== undefined && waitedSince === undefined && bucket.waiting > queued) {
          waitedSince = performance.now();
        }
        await admitted;
      } catch (error) {
        for (let j = 0; j < i; j++) this.buckets[j]?.refund(bytes);
        throw error;
      }
    }
    if (waitedSince !== undefined) this.#onWait?.((performance.now() - waitedSince) / 1000);
  }
}

function checkBytes(bytes: number): void {
  if (!(Number.isFinite(bytes) && bytes >= 0)) {
    throw new RangeError(`Cannot take ${bytes} bytes: expected a finite number >= 0`);
  }
}

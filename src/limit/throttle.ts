/**
 * The throttle pipe: forwards byte chunks no faster than a chain of token buckets allows. The
 * session's stream pumps are built on it (source → throttle → sink, DESIGN.md §2 steps 5–6).
 *
 * @module
 */

import { RateLimiter } from "./rate_limiter.ts";
import type { TokenBucket } from "./token_bucket.ts";

/** Options of {@linkcode throttle}. */
export interface ThrottleOptions {
  /** Cancels token waits: `next()` then rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /**
   * Largest piece in bytes (an integer ≥ 1). Default: {@linkcode RateLimiter.pieceBytes} — the
   * smallest burst of the buckets, capped at 16 KiB; no splitting when every bucket is unlimited.
   */
  readonly maxChunkBytes?: number;
}

/** Buckets accepted by the throttle: a chain (most specific first) or a ready {@linkcode RateLimiter}. */
export type BucketChain = readonly TokenBucket[] | RateLimiter;

/**
 * Forwards the chunks of `source` after they pass every bucket in `buckets`.
 *
 * Chunks larger than the piece size are split with `subarray` (views of the same buffer, no
 * copies) and each piece waits for its tokens before it is yielded, so the consumer sees the
 * source's bytes in order, never faster than the slowest bucket, and in pieces small enough that
 * consumers sharing a bucket take turns (FIFO per piece). Empty chunks are dropped. A chunk no
 * larger than the piece size is yielded as the very same view. With no limited bucket, chunks pass
 * through without waiting.
 *
 * The iterator pulls from `source` only when the consumer asks for more (pull-based backpressure).
 * An abort of `options.signal` cancels the current token wait: `next()` rejects with
 * `signal.reason` and `source` is closed via its `return()`. A wait on `source` itself is not
 * interrupted by the signal; cancel the source separately (e.g. close the socket).
 *
 * @param source Bytes to forward, e.g. a socket's reads.
 * @param buckets Buckets every piece must pass, most specific first (see {@linkcode RateLimiter}).
 * @param options Cancellation signal and piece size.
 * @returns An async iterator of the (possibly split) chunks.
 * @throws {RangeError} If `options.maxChunkBytes` is not an integer ≥ 1 (thrown at the call).
 *
 * @example
 * ```ts
 * import { throttle, TokenBucket } from "./mod.ts";
 * const unlimited = new TokenBucket({ rateBytesPerSec: Infinity, burstBytes: 0 });
 * async function* source(): AsyncGenerator<Uint8Array> {
 *   yield new Uint8Array(10);
 * }
 * let total = 0;
 * for await (const piece of throttle(source(), [unlimited], { maxChunkBytes: 4 })) {
 *   total += piece.byteLength; // pieces of 4, 4 and 2 bytes
 * }
 * if (total !== 10) throw new Error("lost bytes");
 * ```
 */
export function throttle(
  source: AsyncIterable<Uint8Array>,
  buckets: BucketChain,
  options: ThrottleOptions = {},
): AsyncIterableIterator<Uint8Array> {
  const limiter = buckets instanceof RateLimiter ? buckets : new RateLimiter(buckets);
  const { maxChunkBytes, signal } = options;
  if (maxChunkBytes !== undefined && !(Number.isInteger(maxChunkBytes) && maxChunkBytes >= 1)) {
    throw new RangeError(`Cannot throttle: maxChunkBytes ${maxChunkBytes} must be an integer >= 1`);
  }
  const size = maxChunkBytes ?? limiter.pieceBytes;
  const limited = limiter.buckets.length > 0;
  if (!limited && size === Infinity) return passThrough(source);
  return (async function* (): AsyncGenerator<Uint8Array, void, undefined> {
    for await (const chunk of source) {
      for (let offset = 0; offset < chunk.byteLength; offset += size) {
        const piece = offset === 0 && chunk.byteLength <= size
          ? chunk
          : chunk.subarray(offset, offset + size);
        if (limited) await limiter.take(piece.byteLength, signal);
        yield piece;
      }
    }
  })();
}

/**
 * The unlimited, unsplit case: the source's chunks as they come, empty ones dropped, through a
 * plain iterator (an async generator would add its own promise hops to every chunk).
 */
function passThrough(source: AsyncIterable<Uint8Array>): AsyncIterableIterator<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  const pass: AsyncIterableIterator<Uint8Array> = {
    next: async (): Promise<IteratorResult<Uint8Array>> => {
      for (;;) {
        const r = await it.next();
        if (r.done || r.value.byteLength > 0) return r;
      }
    },
    return: (value?: unknown): Promise<IteratorResult<Uint8Array>> =>
      it.return ? it.return(value) : Promise.resolve({ done: true, value }),
    [Symbol.asyncIterator]: () => pass,
  };
  return pass;
}

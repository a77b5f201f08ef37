/**
 * Throttle pipes: forward byte chunks no faster than a chain of token buckets allows.
 *
 * @module
 */

import { RateLimiter } from "./rate_limiter.ts";
import type { TokenBucket } from "./token_bucket.ts";

/** Default largest piece a throttle forwards, in bytes (16 KiB), unless a burst is smaller. */
export const DEFAULT_MAX_CHUNK_BYTES = 16 * 1024;

/** Options of {@linkcode throttle} and {@linkcode throttleStream}. */
export interface ThrottleOptions {
  /**
   * Cancels token waits. {@linkcode throttle} then throws `signal.reason` from `next()`;
   * {@linkcode throttleStream} errors both sides with it.
   */
  readonly signal?: AbortSignal;
  /**
   * Largest piece in bytes (an integer ≥ 1). Default: the smallest burst of the buckets, capped at
   * {@linkcode DEFAULT_MAX_CHUNK_BYTES}; no splitting when every bucket is unlimited.
   */
  readonly maxChunkBytes?: number;
}

/** Buckets accepted by the throttles: a chain (most specific first) or a ready {@linkcode RateLimiter}. */
export type BucketChain = readonly TokenBucket[] | RateLimiter;

function toLimiter(buckets: BucketChain): RateLimiter {
  return buckets instanceof RateLimiter ? buckets : new RateLimiter(buckets);
}

function pieceSize(limiter: RateLimiter, maxChunkBytes: number | undefined): number {
  if (maxChunkBytes !== undefined) {
    if (!(Number.isInteger(maxChunkBytes) && maxChunkBytes >= 1)) {
      throw new RangeError(
        `Cannot throttle: maxChunkBytes ${maxChunkBytes} must be an integer >= 1`,
      );
    }
    return maxChunkBytes;
  }
  if (limiter.buckets.length === 0) return Infinity;
  return Math.max(1, Math.floor(Math.min(DEFAULT_MAX_CHUNK_BYTES, limiter.minBurstBytes)));
}

/** Yields views of `chunk` of at most `size` bytes, without copying (the chunk itself if it fits). */
function* split(chunk: Uint8Array, size: number): Generator<Uint8Array, void, undefined> {
  if (chunk.byteLength <= size) {
    if (chunk.byteLength > 0) yield chunk;
    return;
  }
  for (let offset = 0; offset < chunk.byteLength; offset += size) {
    yield chunk.subarray(offset, offset + size);
  }
}

/**
 * Forwards the chunks of `source` after they pass every bucket in `buckets`.
 *
 * Chunks larger than the piece size are split with `subarray` (views of the same buffer, no
 * copies) and each piece waits for its tokens before it is yielded, so the consumer sees the
 * source's bytes in order, never faster than the slowest bucket, and in pieces small enough that
 * consumers sharing a bucket take turns (FIFO per piece). Empty chunks are dropped.
 *
 * The iterator pulls from `source` only when the consumer asks for more (pull-based backpressure).
 * An abort of `options.signal` cancels the current token wait: `next()` rejects with
 * `signal.reason` and `source` is closed via its `return()`. A wait on `source` itself is not
 * interrupted by the signal; cancel the source separately (e.g. close the socket).
 *
 * @param source Bytes to forward, e.g. a socket's readable stream.
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
  const limiter = toLimiter(buckets);
  const size = pieceSize(limiter, options.maxChunkBytes);
  const { signal } = options;
  return (async function* (): AsyncGenerator<Uint8Array, void, undefined> {
    for await (const chunk of source) {
      for (const piece of split(chunk, size)) {
        await limiter.take(piece.byteLength, signal);
        yield piece;
      }
    }
  })();
}

/**
 * A `TransformStream` that forwards byte chunks after they pass every bucket in `buckets`, with
 * the same splitting (subarray views) and ordering as {@linkcode throttle}.
 *
 * Backpressure: the readable side has a high-water mark of 0, so no tokens are spent and no chunk
 * is accepted from the writable side until a reader asks for data; the writable side buffers one
 * chunk. The pieces of one accepted chunk are enqueued as their tokens arrive, so at most one
 * input chunk (split) sits in the readable queue.
 *
 * Cancelling the readable side or aborting the writable side cancels a pending token wait (its
 * reservation is returned). An abort of `options.signal` errors both sides with `signal.reason`
 * at once, whether or not a chunk is in flight.
 *
 * @param buckets Buckets every piece must pass, most specific first (see {@linkcode RateLimiter}).
 * @param options Cancellation signal and piece size.
 * @returns The throttling transform.
 * @throws {RangeError} If `options.maxChunkBytes` is not an integer ≥ 1.
 *
 * @example
 * ```ts
 * import { throttleStream, TokenBucket } from "./mod.ts";
 * const unlimited = new TokenBucket({ rateBytesPerSec: Infinity, burstBytes: 0 });
 * const out = ReadableStream.from([new Uint8Array(10)])
 *   .pipeThrough(throttleStream([unlimited], { maxChunkBytes: 4 }));
 * const sizes: number[] = [];
 * for await (const piece of out) sizes.push(piece.byteLength);
 * if (sizes.join() !== "4,4,2") throw new Error("unexpected split");
 * ```
 */
export function throttleStream(
  buckets: BucketChain,
  options: ThrottleOptions = {},
): TransformStream<Uint8Array, Uint8Array> {
  const limiter = toLimiter(buckets);
  const size = pieceSize(limiter, options.maxChunkBytes);
  const outer = options.signal;
  const local = new AbortController();
  const signal = outer === undefined ? local.signal : AbortSignal.any([outer, local.signal]);
  let onOuterAbort: (() => void) | undefined;
  const detach = (): void => {
    if (onOuterAbort !== undefined) outer?.removeEventListener("abort", onOuterAbort);
    onOuterAbort = undefined;
  };
  return new TransformStream<Uint8Array, Uint8Array>(
    {
      start(controller): void {
        if (outer === undefined) return;
        if (outer.aborted) {
          controller.error(outer.reason);
          return;
        }
        onOuterAbort = (): void => {
          detach();
          controller.error(outer.reason);
        };
        outer.addEventListener("abort", onOuterAbort, { once: true });
      },
      async transform(chunk, controller): Promise<void> {
        try {
          for (const piece of split(chunk, size)) {
            await limiter.take(piece.byteLength, signal);
            controller.enqueue(piece);
          }
        } catch (error) {
          detach();
          throw error;
        }
      },
      flush(): void {
        detach();
      },
      cancel(reason): void {
        detach();
        local.abort(reason);
      },
    },
    { highWaterMark: 1 },
    { highWaterMark: 0 },
  );
}

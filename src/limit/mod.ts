/**
 * Bandwidth limiting and backpressure: token buckets with carried deficit, bucket chains, the
 * throttle pipe, and the send-buffer drain poller shared by the server and the client.
 *
 * Each session gets a bucket per direction and a server-wide bucket caps the total; a chunk must
 * pass every bucket in its chain ({@linkcode RateLimiter}). Pure and browser-safe: no `Deno.*`.
 *
 * Units: bytes, bytes/s, milliseconds; Mbps means 10^6 bits/s of payload.
 *
 * @example
 * ```ts
 * import { throttle, TokenBucket } from "./mod.ts";
 * const server = TokenBucket.fromMbps(800); // 100 MB/s for all sessions together
 * const session = TokenBucket.fromMbps(80); // 10 MB/s for this session's download direction
 * async function* socket(): AsyncGenerator<Uint8Array> {
 *   yield new Uint8Array(1024);
 * }
 * for await (const chunk of throttle(socket(), [session, server])) {
 *   if (chunk.byteLength !== 1024) throw new Error("unexpected chunk");
 * }
 * ```
 *
 * @module
 */

export { type Clock, systemClock } from "./clock.ts";
export { FakeClock } from "./fake_clock.ts";
export {
  DEFAULT_BURST_MS,
  type FromMbpsOptions,
  mbpsToBytesPerSec,
  MIN_BURST_BYTES,
  TokenBucket,
  type TokenBucketOptions,
} from "./token_bucket.ts";
export { DEFAULT_MAX_CHUNK_BYTES, RateLimiter, type RateLimiterOptions } from "./rate_limiter.ts";
export { type BucketChain, throttle, type ThrottleOptions } from "./throttle.ts";
export { type Buffered, DrainPoller, type DrainPollerOptions } from "./drain.ts";

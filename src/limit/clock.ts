/**
 * Time source used by the limiters, so tests can swap in a {@linkcode FakeClock}.
 *
 * Pure and browser-safe: only `performance.now`, `setTimeout` and `clearTimeout`.
 *
 * @module
 */

/**
 * A monotonic time source with cancellable sleeps.
 *
 * `now()` returns milliseconds from an arbitrary origin that never goes backwards.
 * `sleep(ms, signal)` resolves after at least `ms` milliseconds; if `signal` aborts first it
 * releases any timer it holds and rejects with `signal.reason` (also when `signal` is already
 * aborted at the call).
 */
export interface Clock {
  /** Current time in milliseconds (monotonic, arbitrary origin). */
  now(): number;
  /**
   * Waits `ms` milliseconds (values ≤ 0 wait for the next timer turn).
   *
   * @throws {unknown} Rejects with `signal.reason` when `signal` aborts before the time is up.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * The real clock: `performance.now()` and `setTimeout`. An aborted sleep clears its timer at once
 * (nothing is left for the Deno test sanitizers to find) and rejects with `signal.reason`.
 *
 * @example
 * ```ts
 * import { systemClock } from "./clock.ts";
 * const before = systemClock.now();
 * await systemClock.sleep(1);
 * if (systemClock.now() < before) throw new Error("not monotonic");
 * ```
 */
export const systemClock: Clock = {
  now(): number {
    return performance.now();
  },
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, Math.max(0, ms));
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  },
};

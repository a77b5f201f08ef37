/**
 * Waiting for a WebSocket's send buffer to drain. The WebSocket API (WHATWG HTML §9.3, "The
 * WebSocket interface") reports `bufferedAmount` but has no event for it going down, so both sides
 * of the wire poll it: the server before it reads more from an upstream socket, the client before
 * it sends more. One poller serves every waiter of one WebSocket with at most one timer.
 *
 * @module
 */

/** Anything with a send buffer: a WebSocket, or a wrapper that adds its own queue. */
export interface Buffered {
  /** Bytes accepted for sending and not yet written to the network. */
  readonly bufferedAmount: number;
}

/** Options of {@linkcode DrainPoller}. */
export interface DrainPollerOptions {
  /** Waiters are released once `bufferedAmount` is at or below this many bytes. */
  readonly lowWaterMark: number;
  /** Interval between two looks at `bufferedAmount`, in milliseconds (≥ 0). */
  readonly pollMs: number;
}

/**
 * Releases waiters once a send buffer has drained to a low-water mark, polling it with a single
 * timer while anyone waits (and none otherwise).
 *
 * @example
 * ```ts
 * import { DrainPoller } from "./drain.ts";
 * const socket = { bufferedAmount: 1000 };
 * const poller = new DrainPoller(socket, { lowWaterMark: 100, pollMs: 1 });
 * const drained = poller.wait();
 * socket.bufferedAmount = 50;
 * await drained; // released by the next poll
 * ```
 */
export class DrainPoller {
  readonly #source: Buffered;
  readonly #low: number;
  readonly #pollMs: number;
  readonly #waiters = new Set<{ resolve(): void; reject(e: unknown): void }>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed: { reason: unknown } | undefined;

  /**
   * @param source the buffer to watch.
   * @param options low-water mark (bytes) and poll interval (ms).
   * @throws {RangeError} if `lowWaterMark` or `pollMs` is negative or not a number.
   */
  constructor(source: Buffered, options: DrainPollerOptions) {
    if (!(options.lowWaterMark >= 0) || !(options.pollMs >= 0)) {
      throw new RangeError(
        `Cannot poll: lowWaterMark ${options.lowWaterMark} and pollMs ${options.pollMs} must be >= 0`,
      );
    }
    this.#source = source;
    this.#low = options.lowWaterMark;
    this.#pollMs = options.pollMs;
  }

  /** Number of waiters now. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /**
   * Resolves once `bufferedAmount` is at or below the low-water mark (at once if it already is).
   *
   * @param signal cancels the wait.
   * @throws {unknown} (rejects) `signal.reason` when `signal` aborts first, or the reason given to
   *   {@linkcode DrainPoller.close}.
   */
  wait(signal?: AbortSignal): Promise<void> {
    if (this.#closed !== undefined) {
      return this.#closed.reason === undefined
        ? Promise.resolve()
        : Promise.reject(this.#closed.reason);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#source.bufferedAmount <= this.#low) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters.delete(waiter);
        if (this.#waiters.size === 0) this.#stopPolling();
        reject(signal?.reason);
      };
      const waiter = {
        resolve: (): void => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (e: unknown): void => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(waiter);
      this.#poll();
    });
  }

  /**
   * Stops polling for good: every current and later waiter resolves (no `reason`) or rejects with
   * `reason`. Idempotent; the first call decides.
   */
  close(reason?: unknown): void {
    if (this.#closed !== undefined) return;
    this.#closed = { reason };
    this.#stopPolling();
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) reason === undefined ? w.resolve() : w.reject(reason);
  }

  #stopPolling(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #poll(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#waiters.size === 0) return;
      if (this.#source.bufferedAmount > this.#low) return this.#poll();
      const waiters = [...this.#waiters];
      this.#waiters.clear();
      for (const w of waiters) w.resolve();
    }, this.#pollMs);
  }
}

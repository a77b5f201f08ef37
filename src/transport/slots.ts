/**
 * A bound on operations in flight that is counted where the resource is taken: a slot is held
 * until the runtime's own work has finished, not until the caller stopped waiting.
 *
 * @module
 */

/**
 * A bound on operations in flight, counted until the operation itself has finished — also after
 * its caller gave up on it. Used for work the runtime cannot cancel at once: a getaddrinfo lookup
 * keeps a resolver thread until it returns, and an abandoned TCP dial keeps its socket until the
 * kernel completes or gives up on it (a SYN to a blackholed address: about 127 s on Linux with
 * the default `tcp_syn_retries` of 6). An operation beyond the bound fails at once instead of
 * queueing behind the others.
 *
 * @example Two slots: the third operation fails at once
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { Slots } from "./slots.ts";
 *
 * const slots = new Slots(2, "connection attempts");
 * const { promise, resolve } = Promise.withResolvers<void>();
 * const a = slots.hold(() => promise);
 * const b = slots.hold(() => promise);
 * await rejects(slots.hold(() => promise), {
 *   message: "too many connection attempts in flight (limit 2)",
 * });
 * resolve();
 * await Promise.all([a, b]);
 * ```
 */
export class Slots {
  /** The most operations in flight at once. */
  readonly max: number;
  /** What is counted, plural, for messages: e.g. `DNS lookups`, `connection attempts`. */
  readonly label: string;
  #inFlight = 0;

  /**
   * @param max the most operations in flight at once (an integer ≥ 1).
   * @param label what is counted, plural (e.g. `DNS lookups`), used in error messages.
   * @throws {RangeError} `Cannot bound LABEL: max N must be an integer >= 1` when `max` is not
   * an integer ≥ 1.
   */
  constructor(max: number, label: string) {
    if (!(Number.isInteger(max) && max >= 1)) {
      throw new RangeError(`Cannot bound ${label}: max ${max} must be an integer >= 1`);
    }
    this.max = max;
    this.label = label;
  }

  /** Operations in flight now, including abandoned ones the runtime has not finished. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Starts `operation` in a slot that is held until the promise it returns settles (whether or
   * not anyone still awaits it). `operation` is called synchronously; if it throws, the slot is
   * released and the returned promise rejects with that error.
   *
   * @throws {Error} (as a rejected promise) `too many LABEL in flight (limit N)` when every slot
   * is taken; `operation` is then not called.
   */
  hold<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#inFlight >= this.max) {
      return Promise.reject(new Error(`too many ${this.label} in flight (limit ${this.max})`));
    }
    this.#inFlight++;
    let running: Promise<T>;
    try {
      running = operation();
    } catch (e) {
      this.#inFlight--;
      return Promise.reject(e);
    }
    const release = (): void => {
      this.#inFlight--;
    };
    running.then(release, release);
    return running;
  }
}

/**
 * A manually driven {@linkcode Clock} for deterministic tests of anything that waits on time.
 *
 * @module
 */

import type { Clock } from "./clock.ts";

interface Sleeper {
  readonly deadline: number;
  readonly seq: number;
  readonly resolve: () => void;
  readonly cleanup: () => void;
}

/** Lets every pending promise reaction run (a macrotask turn drains the microtask queue). */
function drainMicrotasks(): Promise<void> {
  return new Promise<void>((resolve) => setTimeout(resolve, 0));
}

/**
 * A {@linkcode Clock} whose time moves only when the test calls {@linkcode FakeClock.advance}.
 *
 * Sleepers are kept in order of deadline (ties in call order). `advance(ms)` moves time forward
 * one due deadline at a time: it sets `now()` to that deadline, resolves the sleeper, then lets the
 * promise reactions run, so code woken at `t` sees `now() === t` and may start new sleeps that also
 * fire within the same `advance`. An aborted sleep is removed and rejects with `signal.reason`.
 *
 * `advance` and `flush` wait for one real macrotask turn (`setTimeout(0)`) per step to drain
 * microtasks; those timers always complete before the returned promise does, so they never trip
 * the test sanitizers.
 *
 * @example
 * ```ts
 * import { FakeClock } from "./fake_clock.ts";
 * const clock = new FakeClock();
 * let woke = -1;
 * const done = clock.sleep(50).then(() => woke = clock.now());
 * await clock.advance(100);
 * await done;
 * if (woke !== 50 || clock.now() !== 100) throw new Error("unexpected");
 * ```
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #sleepers: Sleeper[] = [];

  /**
   * Creates a clock whose `now()` starts at `startMs` and moves only on `advance`.
   *
   * @param startMs Initial value of `now()` in milliseconds (default 0).
   * @throws {RangeError} If `startMs` is not finite.
   */
  constructor(startMs = 0) {
    if (!Number.isFinite(startMs)) {
      throw new RangeError(`Cannot create FakeClock: start ${startMs} is not a finite number`);
    }
    this.#now = startMs;
  }

  /** Current fake time in milliseconds. */
  now(): number {
    return this.#now;
  }

  /** Number of sleeps that have neither fired nor been aborted (0 means nothing is scheduled). */
  get pending(): number {
    return this.#sleepers.length;
  }

  /**
   * Registers a sleeper due at `now() + max(0, ms)`; it fires during a later `advance`/`flush`.
   *
   * @throws {unknown} Rejects with `signal.reason` when `signal` is or becomes aborted first.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        const i = this.#sleepers.indexOf(sleeper);
        if (i >= 0) this.#sleepers.splice(i, 1);
        reject(signal?.reason);
      };
      const sleeper: Sleeper = {
        deadline: this.#now + Math.max(0, Number.isNaN(ms) ? 0 : ms),
        seq: this.#seq++,
        resolve,
        cleanup: () => signal?.removeEventListener("abort", onAbort),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#insert(sleeper);
    });
  }

  /**
   * Moves time forward by `ms` milliseconds, firing every sleeper that falls due on the way, in
   * order, each at its own deadline (including sleeps started by code woken during this call).
   *
   * @throws {RangeError} If `ms` is negative or not finite.
   */
  async advance(ms: number): Promise<void> {
    if (!Number.isFinite(ms) || ms < 0) {
      throw new RangeError(`Cannot advance FakeClock by ${ms} ms: expected a finite number >= 0`);
    }
    const target = this.#now + ms;
    await drainMicrotasks();
    for (;;) {
      const next = this.#sleepers[0];
      if (next === undefined || next.deadline > target) break;
      this.#sleepers.shift();
      this.#now = Math.max(this.#now, next.deadline);
      next.cleanup();
      next.resolve();
      await drainMicrotasks();
    }
    this.#now = target;
    await drainMicrotasks();
  }

  /** Fires sleepers already due (deadline ≤ now) and lets pending promise reactions run. */
  flush(): Promise<void> {
    return this.advance(0);
  }

  #insert(sleeper: Sleeper): void {
    // Sorted by (deadline, seq); new sleepers have the highest seq, so scan from the end.
    let i = this.#sleepers.length;
    while (i > 0) {
      const prev = this.#sleepers[i - 1];
      if (prev === undefined || prev.deadline <= sleeper.deadline) break;
      i--;
    }
    this.#sleepers.splice(i, 0, sleeper);
  }
}

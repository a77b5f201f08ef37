// A small bounded async queue behind the async iterators of the datagram socket and the listener.
// Portable (no reliance on ReadableStream async iteration, which some browsers lack).

import { noop } from "./_lifecycle.ts";

interface Waiter<T> {
  resolve: (r: IteratorResult<T, undefined>) => void;
  reject: (e: unknown) => void;
}

/** A bounded FIFO with promise-based `next()`; ends with `close()` or `fail(error)`. */
export class AsyncQueue<T> {
  readonly #limit: number;
  #items: T[] = [];
  #waiters: Waiter<T>[] = [];
  #ended = false;
  #failed = false;
  #error: unknown = undefined;

  /** @param limit most items held while nobody is reading. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** True once `close()` or `fail()` was called. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Adds an item; false (item not taken) when the queue is full or ended. */
  push(item: T): boolean {
    if (this.#ended) return false;
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.resolve({ value: item, done: false });
      return true;
    }
    if (this.#items.length >= this.#limit) return false;
    this.#items.push(item);
    return true;
  }

  /** The next item; `done` after `close()` once queued items are taken; rejects after `fail()`. */
  next(): Promise<IteratorResult<T, undefined>> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.#failed) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Ends the queue: readers get the queued items, then `done`. */
  close(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const w of this.#waiters.splice(0)) w.resolve({ value: undefined, done: true });
  }

  /** Ends the queue with an error: readers get the queued items, then the error. */
  fail(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failed = true;
    this.#error = error;
    for (const w of this.#waiters.splice(0)) w.reject(error);
  }

  /** Removes and returns every queued item. */
  take(): T[] {
    return this.#items.splice(0);
  }
}

/**
 * An async iterator over `queue` whose `return()` (breaking out of `for await`) awaits `close()`,
 * ignoring its rejection.
 *
 * @param queue the items to iterate.
 * @param close closes the owner of the queue.
 */
export function closingIterator<T>(
  queue: AsyncQueue<T>,
  close: () => Promise<void>,
): AsyncIterator<T, undefined> {
  return {
    next: (): Promise<IteratorResult<T, undefined>> => queue.next(),
    return: async (): Promise<IteratorResult<T, undefined>> => {
      await close().catch(noop);
      return { value: undefined, done: true };
    },
  };
}

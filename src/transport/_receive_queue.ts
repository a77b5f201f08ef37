/**
 * The receive side shared by the transport's adapters of event-driven sockets (`node:net`,
 * `node:tls`): chunks arrive by events, `StreamConn.read(buffer)` takes them, and a high-water
 * mark stops the source while the reader is behind.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { BadResource } from "./errors.ts";

/** Default high-water mark of a {@linkcode ReceiveQueue}: 256 KiB of queued bytes. */
export const READ_HIGH_WATER_BYTES = 256 * 1024;

/** What a {@linkcode ReceiveQueue} calls to stop and restart its source. */
export interface FlowControl {
  /** Called once the queue reaches the high-water mark: stop reading the source. */
  stop(): void;
  /** Called once `read()` has taken the queue below half the mark: read the source again. */
  restart(): void;
}

/**
 * Received chunks waiting for `read()`, with flow control: from `highWaterBytes` (default
 * {@linkcode READ_HIGH_WATER_BYTES}) of queued bytes on, `flow.stop()` is called, and
 * `flow.restart()` once `read()` has taken the queue below half, so the queue holds about the
 * mark plus what the source delivers after `stop()`. Chunks are kept as given (not copied).
 */
export class ReceiveQueue {
  readonly #flow: FlowControl;
  readonly #high: number;
  readonly #closedMessage: string;
  readonly #chunks: Uint8Array[] = [];
  #queued = 0;
  #stopped = false;
  #ended = false;
  #error: unknown;
  #closed = false;
  #waiters: (() => void)[] = [];

  /**
   * @param flow stops and restarts the source.
   * @param closedMessage the message of the {@linkcode BadResource} a read rejects with once
   *   closed, e.g. `the TCP connection is closed`.
   * @param highWaterBytes the mark in bytes (default 256 KiB).
   */
  constructor(flow: FlowControl, closedMessage: string, highWaterBytes = READ_HIGH_WATER_BYTES) {
    this.#flow = flow;
    this.#closedMessage = closedMessage;
    this.#high = highWaterBytes;
  }

  /** Bytes queued for `read()`. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /** The first error given to {@linkcode ReceiveQueue.fail}, if any. */
  get error(): unknown {
    return this.#error;
  }

  /** Queues a received chunk (ignored once closed). */
  push(chunk: Uint8Array): void {
    if (this.#closed) return;
    this.#chunks.push(chunk);
    this.#queued += chunk.byteLength;
    if (this.#queued >= this.#high && !this.#stopped) {
      this.#stopped = true;
      this.#flow.stop();
    }
    this.#wake();
  }

  /** The end of the stream: once the queue is empty, reads resolve `null`. */
  end(): void {
    this.#ended = true;
    this.#wake();
  }

  /** A failure: once the queue is empty, reads reject with the first `error` given. */
  fail(error: unknown): void {
    this.#error ??= error;
    this.#wake();
  }

  /** Drops the queue for good: pending and later reads reject with `BadResource`. */
  close(): void {
    this.#closed = true;
    this.#chunks.length = 0;
    this.#queued = 0;
    this.#wake();
  }

  /**
   * Copies queued chunks into `buffer` (several when they fit; the rest stays queued) and
   * resolves the byte count; waits while nothing is queued; `null` at the end of the stream.
   *
   * @throws {BadResource} once closed; the error given to `fail` once the queue is empty.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    if (buffer.byteLength === 0) return 0;
    for (;;) {
      if (this.#closed) throw closedError(this.#closedMessage);
      if (this.#chunks.length > 0) return this.#take(buffer);
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /**
   * Takes up to `max` queued bytes (at least 1) as a new buffer with `headroom` unused bytes in
   * front: resolves a view of the bytes (its `byteOffset` is `headroom`), sized to what was
   * queued, so a reader gets them with one copy, no zero-fill and no unused capacity (see
   * {@linkcode StreamConn.readChunk}). Waits while nothing is queued; `null` at the end.
   *
   * @param headroom bytes left free in front of the payload (a frame header goes there).
   * @param max the most bytes to take, ≥ 1.
   * @throws {BadResource} once closed; the error given to `fail` once the queue is empty.
   */
  async readChunk(headroom: number, max: number): Promise<Uint8Array | null> {
    for (;;) {
      if (this.#closed) throw closedError(this.#closedMessage);
      if (this.#chunks.length > 0) {
        const n = Math.min(this.#queued, max);
        // Not zero-filled: every byte of the view is written by `#take` before it is returned.
        const out = Buffer.allocUnsafeSlow(headroom + n).subarray(headroom);
        this.#take(out);
        return out;
      }
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  #take(buffer: Uint8Array): number {
    let n = 0;
    while (n < buffer.byteLength) {
      const chunk = this.#chunks[0];
      if (chunk === undefined) break;
      const room = buffer.byteLength - n;
      if (chunk.byteLength <= room) {
        buffer.set(chunk, n);
        n += chunk.byteLength;
        this.#chunks.shift();
      } else {
        buffer.set(chunk.subarray(0, room), n);
        n += room;
        this.#chunks[0] = chunk.subarray(room);
      }
    }
    this.#queued -= n;
    if (this.#stopped && this.#queued < this.#high / 2) {
      this.#stopped = false;
      this.#flow.restart();
    }
    return n;
  }

  #wake(): void {
    const waiters = this.#waiters;
    if (waiters.length === 0) return;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** One {@linkcode BadResource} per message, shared by every closed queue. */
const CLOSED_ERRORS = new Map<string, BadResource>();

/**
 * The error a read of a closed queue rejects with. Shared, not built per read: every socket the
 * client closes has a read pending, and capturing a new stack trace for each showed in Bun's
 * connect+close profile. Its stack is therefore not the caller's.
 */
function closedError(message: string): BadResource {
  let error = CLOSED_ERRORS.get(message);
  if (error === undefined) CLOSED_ERRORS.set(message, error = new BadResource(message));
  return error;
}

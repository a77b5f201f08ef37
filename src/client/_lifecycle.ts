/**
 * The open/close lifecycle shared by `WasmnetSocket`, `WasmnetDatagramSocket` and
 * `WasmnetListener`: the `opened`/`closed` promises, the
 * `opening → open → closing → closed` state, the abort signal, and the clean (`finish`) and failed
 * (`fail`) ends. Each owner keeps what is its own (streams, queues) and is told when to end it
 * through three hooks.
 *
 * Private to the client library.
 *
 * @module
 */
import { WasmnetError } from "./errors.ts";

/** Does nothing: the placeholder of unset resolvers and the handler of pre-handled promises. */
export function noop(): void {}

/**
 * Where a lifecycle is. `closing` is from `close()` until the server confirms; `closed` is final.
 */
export type LifecycleState = "opening" | "open" | "closing" | "closed";

/** What a {@linkcode Lifecycle} needs from its owner. */
export interface LifecycleOptions {
  /** The protocol id: passed to `closer.close` and carried by the `ECLOSED` errors. */
  id: number;
  /** Sends the close request (the `WasmnetClient`); may throw when the WebSocket is gone. */
  closer: { close(id: number): void };
  /** Names the owner in messages: `"socket"` gives `socket closed` and `socket is closed`. */
  noun: "socket" | "listener";
  /** Aborting it closes the id and fails the lifecycle with the signal's `reason`. */
  signal?: AbortSignal | undefined;
  /** Start in `open` rather than `opening` (accepted connections); then call `startOpen`. */
  open?: boolean;
  /** `close()` was called: stop local delivery. Runs with the state already `closing`. */
  onClose(): void;
  /** Clean end: end local delivery. Runs with the state already `closed`, signal detached. */
  onEnd(): void;
  /** Failed end: error local delivery with `err`. Runs with the state already `closed`. */
  onFail(err: unknown): void;
}

/**
 * The `opened`/`closed` promises and state of one socket or listener.
 *
 * Settlement rules, the same for every owner:
 * - `opened` resolves with the info once `opening` resolves while still `opening`; it rejects with
 *   `ECLOSED` on `close()` or a clean end before that, and with the error on a failed end.
 * - `closed` resolves on a clean end, and on a failed end that follows `close()`; it rejects with
 *   the error on any other failed end.
 * - Both promises are pre-handled, so an unobserved rejection is not an unhandled rejection.
 *
 * @typeParam Info what `opened` resolves with.
 *
 * @example
 * ```ts
 * import { Lifecycle } from "./_lifecycle.ts";
 * import assert from "node:assert/strict";
 * const sent: number[] = [];
 * const events: string[] = [];
 * const life = new Lifecycle<{ port: number }>({
 *   id: 3,
 *   closer: { close: (id) => sent.push(id) },
 *   noun: "listener",
 *   onClose: () => events.push("close"),
 *   onEnd: () => events.push("end"),
 *   onFail: () => events.push("fail"),
 * });
 * life.start(Promise.resolve(8080), (port) => ({ port }));
 * assert.deepEqual(await life.opened, { port: 8080 });
 * const closed = life.close();
 * assert.equal(life.state, "closing");
 * life.finish(); // the server confirmed
 * await closed;
 * assert.deepEqual(sent, [3]);
 * assert.deepEqual(events, ["close", "end"]);
 * ```
 */
export class Lifecycle<Info> {
  /** Resolves with the info once open. */
  readonly opened: Promise<Info>;
  /** Resolves on a clean end; rejects with what ended it otherwise. */
  readonly closed: Promise<void>;

  readonly #id: number;
  readonly #closer: { close(id: number): void };
  readonly #noun: "socket" | "listener";
  readonly #signal: AbortSignal | undefined;
  readonly #onClose: () => void;
  readonly #onEnd: () => void;
  readonly #onFail: (err: unknown) => void;
  #state: LifecycleState;
  #resolveOpened: (info: Info) => void = noop;
  #rejectOpened: (e: unknown) => void = noop;
  #resolveClosed: () => void = noop;
  #rejectClosed: (e: unknown) => void = noop;
  readonly #onAbort = (): void => this.abort(this.#signal?.reason);

  /** @param options the owner's id, client, hooks and abort signal. */
  constructor(options: LifecycleOptions) {
    this.#id = options.id;
    this.#closer = options.closer;
    this.#noun = options.noun;
    this.#signal = options.signal;
    this.#onClose = options.onClose;
    this.#onEnd = options.onEnd;
    this.#onFail = options.onFail;
    this.#state = options.open === true ? "open" : "opening";
    this.opened = new Promise((resolve, reject) => {
      this.#resolveOpened = resolve;
      this.#rejectOpened = reject;
    });
    this.closed = new Promise((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    this.opened.catch(noop);
    this.closed.catch(noop);
  }

  /** The current state. */
  get state(): LifecycleState {
    return this.#state;
  }

  /**
   * Follows `opening`: when it resolves while still `opening`, the state becomes `open` and
   * `opened` resolves with `toInfo(value)`; when it rejects, a pending `close()` finishes cleanly
   * and anything else fails. Then watches the abort signal. Call once, after the client callbacks
   * are registered.
   *
   * @param opening settles when the server reports the id open or failed.
   * @param toInfo maps its value to what `opened` resolves with.
   */
  start<T>(opening: Promise<T>, toInfo: (value: T) => Info): void {
    opening.then(
      (value) => {
        if (this.#state !== "opening") return;
        this.#state = "open";
        this.#resolveOpened(toInfo(value));
      },
      (e: unknown) => {
        if (this.#state === "closing") this.finish();
        else this.fail(e);
      },
    );
    this.#watchSignal();
  }

  /**
   * For a lifecycle created with `open: true`: resolves `opened` with `info`, then watches the
   * abort signal. Call once, after the client callbacks are registered.
   */
  startOpen(info: Info): void {
    this.#resolveOpened(info);
    this.#watchSignal();
  }

  /**
   * Throws unless the state is `open`. Await `opened` first while `opening`.
   *
   * @throws {WasmnetError} `ECLOSED` (`socket is closed`).
   */
  assertOpen(): void {
    if (this.#state !== "open") {
      throw new WasmnetError("ECLOSED", `${this.#noun} is closed`, this.#id);
    }
  }

  /**
   * Closes: the state becomes `closing`, `onClose` runs, a pending `opened` rejects with
   * `ECLOSED`, and the close request is sent (if that throws, the lifecycle finishes at once).
   * A no-op once closing or closed.
   *
   * @returns `closed`.
   */
  close(): Promise<void> {
    if (this.#state === "closed" || this.#state === "closing") return this.closed;
    const wasOpening = this.#state === "opening";
    this.#state = "closing";
    this.#onClose();
    if (wasOpening) this.#rejectOpened(this.#closedError());
    try {
      this.#closer.close(this.#id);
    } catch {
      this.finish();
    }
    return this.closed;
  }

  /**
   * Aborts with `reason`: sends the close request unless already closing (a throw is ignored: the
   * WebSocket is gone), then fails with `reason`. A no-op once closed.
   */
  abort(reason: unknown): void {
    if (this.#state === "closed") return;
    if (this.#state !== "closing") {
      try {
        this.#closer.close(this.#id);
      } catch { /* WebSocket already closed */ }
    }
    this.fail(reason);
  }

  /**
   * Clean end (the server reported `closed`, or confirmed our close): the state becomes `closed`,
   * the signal is detached, `onEnd` runs, a pending `opened` rejects with `ECLOSED`, and `closed`
   * resolves. A no-op once closed.
   */
  finish(): void {
    if (this.#state === "closed") return;
    const wasOpening = this.#state === "opening";
    this.#state = "closed";
    this.#detach();
    this.#onEnd();
    if (wasOpening) this.#rejectOpened(this.#closedError());
    this.#resolveClosed();
  }

  /**
   * Failed end (error event, WebSocket loss, overflow, abort, or a failed open): the state becomes
   * `closed`, the signal is detached, `onFail` runs, `opened` rejects with `err`, and `closed`
   * rejects with it too, or resolves if `close()` was called before. A no-op once closed.
   */
  fail(err: unknown): void {
    if (this.#state === "closed") return;
    const wasClosing = this.#state === "closing";
    this.#state = "closed";
    this.#detach();
    this.#onFail(err);
    this.#rejectOpened(err);
    // A failure after the user asked to close still counts as closed.
    if (wasClosing) this.#resolveClosed();
    else this.#rejectClosed(err);
  }

  #watchSignal(): void {
    if (this.#signal) {
      if (this.#signal.aborted) this.abort(this.#signal.reason);
      else this.#signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  #detach(): void {
    this.#signal?.removeEventListener("abort", this.#onAbort);
  }

  #closedError(): WasmnetError {
    return new WasmnetError("ECLOSED", `${this.#noun} closed`, this.#id);
  }
}

/**
 * The host side of one WATM v1 module instance: a worker runs the module (`_worker.ts`), this
 * side owns the connections and moves their bytes through the shared rings (`_shared.ts`),
 * answers `water_dial`/`water_dial_fixed`/`water_accept`, and ends the instance. Nothing here
 * blocks the event loop. Browser-safe: connections are the neutral `StreamConn`.
 *
 * Life of an instance: the worker runs `_start`, `watm_init_v1`, the role's entry point
 * (`watm_dial_fixed_v1`/`watm_dial_v1` with the internal fd, `watm_accept_v1` with the internal
 * fd, or `watm_associate_v1`), `watm_ctrlpipe_v1` and then the blocking `watm_start_v1`. It ends
 * when `watm_start_v1` returns (the host flushes what the module wrote, then closes every
 * connection), when the module traps or fails a step (a one-line error), when setting up takes
 * longer than `setupTimeoutMs`, or when it is stopped: the host writes one byte to the control
 * pipe and closes it, then terminates a worker that has not returned after `stopGraceMs`. The
 * end of any stream the host reads starts a stop after `lingerMs` (modules normally return at
 * once on end of stream; the linger bounds one that does not).
 *
 * @module
 */
import type { StreamConn } from "../../transport/types.ts";
import {
  CTL_CALL_RESULT,
  CTL_CALL_STATE,
  END_EOF,
  END_ERROR,
  errnoText,
  IN_END,
  IN_W,
  IN_WAIT,
  type InitMessage,
  type Layout,
  OUT_BROKEN,
  OUT_CLOSED,
  OUT_FLAGS,
  OUT_NOTIFY,
  OUT_R,
  OUT_W,
  type Role,
  sharedBytes,
  SharedViews,
  WasiErrno,
  type WorkerMessage,
} from "./_shared.ts";

/** Bounds of one instance (all optional; defaults in {@linkcode DEFAULT_INSTANCE_LIMITS}). */
export interface InstanceLimits {
  /**
   * Longest time, in ms, from the worker's first message (its script loaded) until
   * `watm_start_v1` is entered, not counting time spent in the host's dials and accepts.
   * Default 5000.
   */
  setupTimeoutMs: number;
  /** After the end of a stream, ms before the host closes the control pipe. Default 5000. */
  lingerMs: number;
  /** After the control pipe closes, ms before a worker still running is terminated. Default 2000. */
  stopGraceMs: number;
  /** Socket fds per instance (the control pipe and internal fd included). Default 8. */
  maxSlots: number;
  /** Bytes per direction buffered between the host and the module, per fd. Default 65536. */
  ringBytes: number;
}

/** Default {@linkcode InstanceLimits}. */
export const DEFAULT_INSTANCE_LIMITS: Readonly<InstanceLimits> = Object.freeze({
  setupTimeoutMs: 5000,
  lingerMs: 5000,
  stopGraceMs: 2000,
  maxSlots: 8,
  ringBytes: 65536,
});

/** A dial the module asked for: `water_dial_fixed` (the host's remote) or `water_dial`. */
export type DialRequest =
  | { readonly op: "dial_fixed" }
  | { readonly op: "dial"; readonly network: string; readonly address: string };

/**
 * Thrown by a host callback to answer the module with a WASI errno (e.g. `ACCES` for a dial the
 * policy denied); any other error answers `NOTCONN`, as the Go host does.
 */
export class HostCallError extends Error {
  /** The WASI errno (positive); the module receives its negative. */
  readonly errno: number;

  /** @param errno WASI errno, e.g. `WasiErrno.ACCES` */
  constructor(errno: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HostCallError";
    this.errno = errno;
  }
}

/** Options of {@linkcode WatmInstance}. */
export interface InstanceOptions {
  /** The compiled module, checked by `inspectWatm` for `role`. */
  module: WebAssembly.Module;
  /** Which entry point to call. */
  role: Role;
  /** Contents of `/conf/watm.cfg`; absent: no `/conf` directory. */
  config?: Uint8Array | undefined;
  /**
   * The internal (caller) connection: the app's plaintext for a dialer; the plaintext
   * connection to the remote for a listener. Unused by a relay.
   */
  internal?: StreamConn | undefined;
  /** Answers `water_dial_fixed` and `water_dial` (throw {@linkcode HostCallError} to refuse). */
  dial?: ((request: DialRequest) => Promise<StreamConn>) | undefined;
  /** Answers `water_accept` (listener, relay): the connection the module receives. */
  accept?: (() => Promise<StreamConn>) | undefined;
  /** URL of the worker script (`_worker.ts`, or its bundle in a browser). */
  workerUrl: string | URL;
  /** Bounds; see {@linkcode InstanceLimits}. */
  limits?: Partial<InstanceLimits> | undefined;
  /** Receives each line the module writes to stdout or stderr. */
  onOutput?: ((stream: "stdout" | "stderr", line: string) => void) | undefined;
}

/** How an instance ended: `watm_start_v1` returned `code`, or the one-line `error`. */
export type InstanceEnd =
  | { readonly ok: true; readonly code: number }
  | { readonly ok: false; readonly error: string };

interface HostSlot {
  conn: StreamConn;
  outWake: (() => void) | undefined;
  spaceWake: (() => void) | undefined;
  writer: Promise<void>;
}

/** Writes all of `data` to `conn`. */
async function writeAll(conn: StreamConn, data: Uint8Array): Promise<void> {
  let at = 0;
  while (at < data.length) at += await conn.write(data.subarray(at));
}

function closeQuietly(conn: StreamConn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/**
 * One running WATM v1 module instance. Construct it to start; await {@linkcode ended}. The
 * instance owns every connection it is given or dials, and closes them all when it ends.
 */
export class WatmInstance implements AsyncDisposable {
  /** Resolves once the instance has ended and every connection is closed. */
  readonly ended: Promise<InstanceEnd>;
  /**
   * Resolves true once `watm_start_v1` is entered, or false when the instance ends before (then
   * {@linkcode ended} tells why).
   */
  readonly running: Promise<boolean>;
  #resolveRunning: (running: boolean) => void = () => {};
  #lastCallError: string | undefined;
  readonly #opts: InstanceOptions;
  readonly #limits: InstanceLimits;
  readonly #v: SharedViews;
  readonly #worker: Worker;
  readonly #slots = new Map<number, HostSlot>();
  readonly #ctrlSlot = 0;
  #nextSlot = 1;
  #resolveEnded: (end: InstanceEnd) => void = () => {};
  #ending = false;
  #started = false;
  #setupTimer: ReturnType<typeof setTimeout> | undefined;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  #cancelled = false;
  #accepted = false;

  /** Starts the worker and the module. */
  constructor(options: InstanceOptions) {
    this.#opts = options;
    this.#limits = { ...DEFAULT_INSTANCE_LIMITS, ...options.limits };
    const layout: Layout = { maxSlots: this.#limits.maxSlots, ringBytes: this.#limits.ringBytes };
    const sab = new SharedArrayBuffer(sharedBytes(layout));
    this.#v = new SharedViews(sab, layout);
    this.ended = new Promise((resolve) => this.#resolveEnded = resolve);
    this.running = new Promise((resolve) => this.#resolveRunning = resolve);
    let internalSlot = -1;
    if (options.role !== "relay") {
      if (!options.internal) throw new TypeError(`a ${options.role} needs the internal connection`);
      internalSlot = this.#attach(options.internal);
    }
    this.#worker = new Worker(options.workerUrl, { type: "module" });
    this.#worker.onmessage = (e: MessageEvent<WorkerMessage>) => this.#onMessage(e.data);
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      void this.#finish({ ok: false, error: `the module's worker failed: ${e.message}` }, false);
    };
    const init: InitMessage = {
      t: "init",
      module: options.module,
      sab,
      layout,
      role: options.role,
      config: options.config ?? null,
      ctrlSlot: this.#ctrlSlot,
      internalSlot,
    };
    this.#worker.postMessage(init);
  }

  /** Whether `watm_start_v1` has been entered. */
  get started(): boolean {
    return this.#started;
  }

  /**
   * Stops the instance: one byte on the control pipe, then its end; a worker still running
   * `stopGraceMs` later is terminated. Resolves when it has ended.
   */
  stop(): Promise<InstanceEnd> {
    if (!this.#started) {
      void this.#finish({ ok: false, error: "stopped before the module started" }, false);
    } else this.#cancel();
    return this.ended;
  }

  /** {@linkcode stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #armSetupTimer(): void {
    clearTimeout(this.#setupTimer);
    const ms = this.#limits.setupTimeoutMs;
    this.#setupTimer = setTimeout(() => {
      void this.#finish({
        ok: false,
        error: `the module did not finish setting up (watm_init_v1 to watm_ctrlpipe_v1) ` +
          `within ${ms} ms; its worker was terminated`,
      }, false);
    }, ms);
  }

  #onMessage(m: WorkerMessage): void {
    switch (m.t) {
      case "out":
        if (m.slot === this.#ctrlSlot) {
          // Nothing reads what a module writes to its control pipe.
          this.#v.store(m.slot, OUT_R, this.#v.load(m.slot, OUT_W));
          this.#v.store(m.slot, OUT_NOTIFY, 0);
          return;
        }
        this.#slots.get(m.slot)?.outWake?.();
        return;
      case "space":
        this.#slots.get(m.slot)?.spaceWake?.();
        return;
      case "call":
        clearTimeout(this.#setupTimer);
        void this.#serveCall(m);
        return;
      case "loaded":
        this.#armSetupTimer();
        return;
      case "log":
        this.#opts.onOutput?.(m.stream, m.line);
        return;
      case "started":
        this.#started = true;
        clearTimeout(this.#setupTimer);
        this.#resolveRunning(true);
        return;
      case "exit":
        void this.#finish({ ok: true, code: m.code }, true);
        return;
      case "fail":
        void this.#finish({ ok: false, error: m.message }, true);
        return;
      default: {
        const never: never = m;
        throw new Error(`unknown worker message ${JSON.stringify(never)}`);
      }
    }
  }

  async #serveCall(m: Extract<WorkerMessage, { t: "call" }>): Promise<void> {
    let result: number;
    try {
      let conn: StreamConn;
      if (m.op === "accept") {
        if (!this.#opts.accept) throw new HostCallError(WasiErrno.NODEV, "no listener");
        if (this.#accepted) throw new HostCallError(WasiErrno.NOTCONN, "one accept per instance");
        this.#accepted = true;
        conn = await this.#opts.accept();
      } else {
        if (!this.#opts.dial) throw new HostCallError(WasiErrno.NODEV, "no dialer");
        conn = await this.#opts.dial(
          m.op === "dial_fixed"
            ? { op: "dial_fixed" }
            : { op: "dial", network: m.network ?? "", address: m.address ?? "" },
        );
      }
      if (this.#ending) {
        closeQuietly(conn);
        return;
      }
      if (this.#nextSlot >= this.#limits.maxSlots) {
        closeQuietly(conn);
        throw new HostCallError(WasiErrno.MFILE, `more than ${this.#limits.maxSlots} fds`);
      }
      result = this.#attach(conn);
    } catch (e) {
      result = -(e instanceof HostCallError ? e.errno : WasiErrno.NOTCONN);
      this.#lastCallError = `${m.op === "accept" ? "water_accept" : `water_${m.op}`}: ${
        (e as Error)?.message ?? String(e)
      }`;
    }
    if (this.#ending) return;
    const ints = this.#v.ints;
    Atomics.store(ints, CTL_CALL_RESULT, result);
    Atomics.store(ints, CTL_CALL_STATE, 2);
    Atomics.notify(ints, CTL_CALL_STATE);
    if (!this.#started) this.#armSetupTimer();
  }

  /** Gives `conn` a slot and starts its two pumps; returns the slot. */
  #attach(conn: StreamConn): number {
    const slot = this.#nextSlot++;
    const s: HostSlot = {
      conn,
      outWake: undefined,
      spaceWake: undefined,
      writer: Promise.resolve(),
    };
    this.#slots.set(slot, s);
    void this.#pumpIn(slot, s);
    s.writer = this.#pumpOut(slot, s);
    return slot;
  }

  /** Connection → inbound ring. */
  async #pumpIn(slot: number, s: HostSlot): Promise<void> {
    const v = this.#v;
    const cap = this.#limits.ringBytes;
    const ring = v.ring(slot, false);
    const buf = new Uint8Array(Math.min(cap, 65536));
    try {
      for (;;) {
        if (this.#ending) return;
        let room = cap - v.inFill(slot);
        if (room === 0) {
          v.store(slot, IN_WAIT, 1);
          room = cap - v.inFill(slot);
          if (room === 0) {
            await new Promise<void>((resolve) => s.spaceWake = resolve);
            s.spaceWake = undefined;
            continue;
          }
          v.store(slot, IN_WAIT, 0);
        }
        const n = await s.conn.read(buf.subarray(0, Math.min(room, buf.length)));
        if (this.#ending) return;
        if (n === null) {
          v.store(slot, IN_END, END_EOF);
          v.wake();
          this.#streamEnded();
          return;
        }
        const w = v.load(slot, IN_W);
        v.put(ring, w, buf.subarray(0, n));
        v.store(slot, IN_W, (w + n) | 0);
        v.wake();
      }
    } catch {
      if (this.#ending) return;
      v.store(slot, IN_END, END_ERROR);
      v.wake();
      this.#streamEnded();
    }
  }

  /** Outbound ring → connection; after the instance ends, drains what is left, then returns. */
  async #pumpOut(slot: number, s: HostSlot): Promise<void> {
    const v = this.#v;
    const ring = v.ring(slot, true);
    for (;;) {
      const fill = v.outFill(slot);
      if (fill > 0) {
        const r = v.load(slot, OUT_R);
        const chunk = new Uint8Array(Math.min(fill, 65536));
        v.take(ring, r, chunk);
        try {
          await writeAll(s.conn, chunk);
        } catch {
          Atomics.or(v.ints, v.at(slot, OUT_FLAGS), OUT_BROKEN);
          v.wake();
          return;
        }
        v.store(slot, OUT_R, (r + chunk.length) | 0);
        v.wake();
        continue;
      }
      if (v.load(slot, OUT_FLAGS) & OUT_CLOSED) {
        closeQuietly(s.conn);
        return;
      }
      if (this.#ending) return;
      v.store(slot, OUT_NOTIFY, 0);
      if (v.outFill(slot) > 0 || (v.load(slot, OUT_FLAGS) & OUT_CLOSED)) continue;
      await new Promise<void>((resolve) => s.outWake = resolve);
      s.outWake = undefined;
    }
  }

  /** A stream the host reads ended: stop after `lingerMs` unless the module returns first. */
  #streamEnded(): void {
    if (this.#lingerTimer !== undefined || this.#ending) return;
    this.#lingerTimer = setTimeout(() => this.#cancel(), this.#limits.lingerMs);
  }

  /** Control pipe: one byte, then end of stream; terminate after `stopGraceMs`. */
  #cancel(): void {
    if (this.#cancelled || this.#ending) return;
    this.#cancelled = true;
    const v = this.#v;
    const slot = this.#ctrlSlot;
    const w = v.load(slot, IN_W);
    v.put(v.ring(slot, false), w, new Uint8Array(1));
    v.store(slot, IN_W, (w + 1) | 0);
    v.store(slot, IN_END, END_EOF);
    v.wake();
    const ms = this.#limits.stopGraceMs;
    this.#graceTimer = setTimeout(() => {
      void this.#finish({
        ok: false,
        error: `the module did not return from watm_start_v1 within ${ms} ms after its ` +
          `control pipe closed; its worker was terminated`,
      }, false);
    }, ms);
  }

  /** Ends once: flushes the outbound rings (when `drain`), closes everything, resolves. */
  async #finish(end: InstanceEnd, drain: boolean): Promise<void> {
    if (this.#ending) return;
    this.#ending = true;
    if (!end.ok && !this.#started && this.#lastCallError !== undefined) {
      end = { ok: false, error: `${end.error} (after ${this.#lastCallError})` };
    }
    this.#resolveRunning(false);
    clearTimeout(this.#setupTimer);
    clearTimeout(this.#lingerTimer);
    clearTimeout(this.#graceTimer);
    this.#worker.terminate();
    const ints = this.#v.ints;
    Atomics.store(ints, CTL_CALL_STATE, 2);
    for (const s of this.#slots.values()) {
      s.spaceWake?.();
      s.outWake?.();
    }
    if (drain) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all([...this.#slots.values()].map((s) => s.writer)),
        new Promise<void>((resolve) => timer = setTimeout(resolve, this.#limits.stopGraceMs)),
      ]);
      clearTimeout(timer);
    }
    for (const s of this.#slots.values()) closeQuietly(s.conn);
    await Promise.all([...this.#slots.values()].map((s) => s.writer));
    this.#resolveEnded(end);
  }
}

/** One line for an {@linkcode InstanceEnd} (`watm_start_v1 returned 0`, or the error). */
export function describeEnd(end: InstanceEnd): string {
  return end.ok ? `watm_start_v1 returned ${errnoText(end.code)}` : end.error;
}

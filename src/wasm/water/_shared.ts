/**
 * The shared-memory layout between a WATM instance's host side (`instance.ts`, on the event
 * loop) and its worker (`_worker.ts`, which runs the module and may block in `Atomics.wait`).
 * Browser-safe: nothing here touches `Deno.*`.
 *
 * One `SharedArrayBuffer` per instance:
 *
 * ```
 * [control: CTL_INTS × i32][slot headers: maxSlots × SLOT_INTS × i32][rings: maxSlots × 2 × ringBytes]
 * ```
 *
 * A slot is one socket fd of the module: an inbound ring (host → module: bytes the host read
 * from the connection) and an outbound ring (module → host: bytes the module wrote). Ring
 * positions are free-running 32-bit counters (`w - r` is the fill level, wrap-safe while a ring
 * is below 2 GiB). Every change the host makes bumps `CTL_SEQ` and notifies it, so a worker that
 * waits for "anything" (`poll_oneoff`, a blocking read) waits on one word.
 *
 * @module
 */

/** Control word: bumped (and notified) by the host on every state change the worker may await. */
export const CTL_SEQ = 0;
/** Control word: 0 idle, 1 a host call is pending, 2 its result is in `CTL_CALL_RESULT`. */
export const CTL_CALL_STATE = 1;
/** Control word: the result of the last host call (a slot index ≥ 0, or a negative WASI errno). */
export const CTL_CALL_RESULT = 2;
/** Number of control words. */
export const CTL_INTS = 4;

/** Slot word: inbound bytes written by the host (free-running). */
export const IN_W = 0;
/** Slot word: inbound bytes consumed by the module (free-running). */
export const IN_R = 1;
/** Slot word: the inbound stream ended: 0 open, {@linkcode END_EOF} or {@linkcode END_ERROR}. */
export const IN_END = 2;
/** Slot word: 1 while the host waits for inbound space (the worker then posts `space`). */
export const IN_WAIT = 3;
/** Slot word: outbound bytes written by the module (free-running). */
export const OUT_W = 4;
/** Slot word: outbound bytes the host has taken (free-running). */
export const OUT_R = 5;
/** Slot word: flags: {@linkcode OUT_CLOSED} (module closed the fd), {@linkcode OUT_BROKEN}. */
export const OUT_FLAGS = 6;
/** Slot word: 1 once the worker has posted `out` and the host has not drained yet. */
export const OUT_NOTIFY = 7;
/** Words per slot header. */
export const SLOT_INTS = 8;

/** `IN_END`: the peer ended the stream. */
export const END_EOF = 1;
/** `IN_END`: reading the connection failed. */
export const END_ERROR = 2;
/** `OUT_FLAGS` bit: the module closed the fd. */
export const OUT_CLOSED = 1;
/** `OUT_FLAGS` bit: the host can no longer write to the connection (EPIPE for the module). */
export const OUT_BROKEN = 2;

/** WASI preview 1 errno values the host and worker use (wasi_snapshot_preview1 `errno`). */
export const WasiErrno = {
  SUCCESS: 0,
  ACCES: 2,
  AGAIN: 6,
  BADF: 8,
  CANCELED: 11,
  CONNREFUSED: 14,
  INVAL: 28,
  IO: 29,
  MFILE: 33,
  NODEV: 43,
  NOSYS: 52,
  NOTCONN: 53,
  PIPE: 64,
  TIMEDOUT: 73,
} as const;

/** Names of the WASI errno values (for messages), by number. */
export const ERRNO_NAMES: Readonly<Record<number, string>> = Object.freeze({
  0: "SUCCESS",
  1: "2BIG",
  2: "ACCES",
  6: "AGAIN",
  8: "BADF",
  10: "BUSY",
  11: "CANCELED",
  13: "CONNABORTED",
  14: "CONNREFUSED",
  15: "CONNRESET",
  28: "INVAL",
  29: "IO",
  33: "MFILE",
  43: "NODEV",
  44: "NOENT",
  52: "NOSYS",
  53: "NOTCONN",
  58: "NOTSUP",
  63: "PERM",
  64: "PIPE",
  71: "PROTO",
  73: "TIMEDOUT",
});

/** `N (NAME)` for a WASI errno, e.g. `53 (NOTCONN)`. */
export function errnoText(errno: number): string {
  const name = ERRNO_NAMES[Math.abs(errno)];
  return name ? `${errno} (${name})` : String(errno);
}

/** Shape of one instance's shared buffer. */
export interface Layout {
  /** Socket slots (fds backed by a host connection, the control pipe included). */
  readonly maxSlots: number;
  /** Bytes per ring (each slot has two). */
  readonly ringBytes: number;
}

/** Byte size of the shared buffer for `layout`. */
export function sharedBytes(layout: Layout): number {
  return (CTL_INTS + layout.maxSlots * SLOT_INTS) * 4 + layout.maxSlots * 2 * layout.ringBytes;
}

/** Views over one instance's shared buffer. */
export class SharedViews {
  /** Control words and slot headers. */
  readonly ints: Int32Array;
  /** The rings. */
  readonly bytes: Uint8Array;
  /** The layout. */
  readonly layout: Layout;

  /** @param sab the instance's buffer, {@linkcode sharedBytes} long. */
  constructor(sab: SharedArrayBuffer, layout: Layout) {
    this.layout = layout;
    const ints = CTL_INTS + layout.maxSlots * SLOT_INTS;
    this.ints = new Int32Array(sab, 0, ints);
    this.bytes = new Uint8Array(sab, ints * 4);
  }

  /** Index in {@linkcode ints} of word `word` of slot `slot`. */
  at(slot: number, word: number): number {
    return CTL_INTS + slot * SLOT_INTS + word;
  }

  /** Atomically loads word `word` of slot `slot`. */
  load(slot: number, word: number): number {
    return Atomics.load(this.ints, this.at(slot, word));
  }

  /** Atomically stores word `word` of slot `slot`. */
  store(slot: number, word: number, value: number): void {
    Atomics.store(this.ints, this.at(slot, word), value);
  }

  /** Bytes waiting in slot `slot`'s inbound ring. */
  inFill(slot: number): number {
    return (this.load(slot, IN_W) - this.load(slot, IN_R)) | 0;
  }

  /** Bytes waiting in slot `slot`'s outbound ring. */
  outFill(slot: number): number {
    return (this.load(slot, OUT_W) - this.load(slot, OUT_R)) | 0;
  }

  /** Offset in {@linkcode bytes} of slot `slot`'s inbound (`out` false) or outbound ring. */
  ring(slot: number, out: boolean): number {
    return (slot * 2 + (out ? 1 : 0)) * this.layout.ringBytes;
  }

  /** Copies `src` into a ring at free-running position `pos` (wrapping). */
  put(ring: number, pos: number, src: Uint8Array): void {
    const cap = this.layout.ringBytes;
    const at = (pos >>> 0) % cap;
    const first = Math.min(src.length, cap - at);
    this.bytes.set(src.subarray(0, first), ring + at);
    if (first < src.length) this.bytes.set(src.subarray(first), ring);
  }

  /** Copies `dst.length` bytes out of a ring from free-running position `pos` (wrapping). */
  take(ring: number, pos: number, dst: Uint8Array): void {
    const cap = this.layout.ringBytes;
    const at = (pos >>> 0) % cap;
    const first = Math.min(dst.length, cap - at);
    dst.set(this.bytes.subarray(ring + at, ring + at + first));
    if (first < dst.length) dst.set(this.bytes.subarray(ring, ring + dst.length - first), first);
  }

  /** Host side: bumps the sequence word and wakes the worker. */
  wake(): void {
    Atomics.add(this.ints, CTL_SEQ, 1);
    Atomics.notify(this.ints, CTL_SEQ);
  }
}

/** The role a module instance plays (the WATM v1 entry point the host calls). */
export type Role = "dialer" | "listener" | "relay";

/** Host → worker: the one message that starts an instance. */
export interface InitMessage {
  readonly t: "init";
  /** The compiled module (already checked for the WATM v1 exports). */
  readonly module: WebAssembly.Module;
  /** The instance's shared buffer. */
  readonly sab: SharedArrayBuffer;
  /** Its layout. */
  readonly layout: Layout;
  /** The role. */
  readonly role: Role;
  /** Contents of `/conf/watm.cfg`, or null for no `/conf` directory. */
  readonly config: Uint8Array | null;
  /** Slot of the control pipe. */
  readonly ctrlSlot: number;
  /** Slot of the internal (caller) connection (dialer, listener), or -1 (relay). */
  readonly internalSlot: number;
}

/** Worker → host messages. */
export type WorkerMessage =
  | { readonly t: "out"; readonly slot: number }
  | { readonly t: "space"; readonly slot: number }
  | {
    readonly t: "call";
    readonly op: "dial" | "dial_fixed" | "accept";
    readonly network?: string;
    readonly address?: string;
  }
  | { readonly t: "loaded" }
  | { readonly t: "log"; readonly stream: "stdout" | "stderr"; readonly line: string }
  | { readonly t: "started" }
  | { readonly t: "exit"; readonly code: number }
  | { readonly t: "fail"; readonly message: string };

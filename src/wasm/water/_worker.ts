/**
 * The worker that runs one WATM v1 module instance. The module's calls block here (in
 * `Atomics.wait`), never on the host's event loop; the host side (`instance.ts`) does the real
 * I/O and moves bytes through the shared rings (`_shared.ts`).
 *
 * WASI preview 1 is `@bjorn3/browser_wasi_shim`; this file adds only what it lacks for WATM:
 * socket fds backed by the shared rings (non-blocking reads answer EAGAIN = 6, end of stream is
 * a 0-byte read, the non-blocking flag through `fd_fdstat_get`/`fd_fdstat_set_flags`),
 * `poll_oneoff` over any number of fd subscriptions with or without a clock (the shim takes one
 * clock subscription and spins), and the `env.water_dial`/`water_dial_fixed`/`water_accept`
 * imports, which the host answers.
 *
 * Browser-safe (bundle it as its own script for a page: `browser.ts` takes its URL).
 *
 * @module
 */
import {
  ConsoleStdout,
  Fd,
  File,
  OpenFile,
  PreopenDirectory,
  WASI,
  wasi,
  WASIProcExit,
} from "@bjorn3/browser_wasi_shim";
import {
  CTL_CALL_RESULT,
  CTL_CALL_STATE,
  CTL_SEQ,
  END_EOF,
  errnoText,
  IN_END,
  IN_R,
  IN_WAIT,
  type InitMessage,
  OUT_BROKEN,
  OUT_CLOSED,
  OUT_FLAGS,
  OUT_NOTIFY,
  OUT_W,
  SharedViews,
  WasiErrno,
  type WorkerMessage,
} from "./_shared.ts";

/** The worker global, as much of it as this file uses. */
interface WorkerScope {
  onmessage: ((e: MessageEvent<InitMessage>) => void) | null;
  postMessage(message: WorkerMessage): void;
}
const scope = globalThis as unknown as WorkerScope;

/** How long a non-blocking write waits for ring space before a short write or EAGAIN, ms. */
const STALLED_WRITE_MS = 1000;
/** Longest string `water_dial` reads from each iovec array (as the Go host). */
const MAX_DIAL_STRING = 256;
/** Rights reported for socket fds (all of preview 1's). */
const ALL_RIGHTS = 0x1fffffffn;

/** A socket fd: one slot of the shared buffer. Reads and writes are served in `fd_read`. */
class SocketFd extends Fd {
  /** Slot index. */
  readonly slot: number;
  /** O_NONBLOCK, set by `fd_fdstat_set_flags`. */
  nonblock = false;
  readonly #closed: () => void;

  constructor(slot: number, closed: () => void) {
    super();
    this.slot = slot;
    this.#closed = closed;
  }

  override fd_fdstat_get(): { ret: number; fdstat: wasi.Fdstat | null } {
    const fdstat = new wasi.Fdstat(
      wasi.FILETYPE_SOCKET_STREAM,
      this.nonblock ? wasi.FDFLAGS_NONBLOCK : 0,
    );
    fdstat.fs_rights_base = ALL_RIGHTS;
    fdstat.fs_rights_inherited = ALL_RIGHTS;
    return { ret: 0, fdstat };
  }

  override fd_fdstat_set_flags(flags: number): number {
    this.nonblock = (flags & wasi.FDFLAGS_NONBLOCK) !== 0;
    return 0;
  }

  override fd_close(): number {
    this.#closed();
    return 0;
  }
}

/** One iovec: where and how long. */
interface Iovec {
  ptr: number;
  len: number;
}

function iovecs(view: DataView, ptr: number, count: number): Iovec[] {
  const out: Iovec[] = [];
  for (let i = 0; i < count; i++) {
    out.push({
      ptr: view.getUint32(ptr + i * 8, true),
      len: view.getUint32(ptr + i * 8 + 4, true),
    });
  }
  return out;
}

/** Runs one instance: everything after the `init` message. */
class Runner {
  readonly #msg: InitMessage;
  readonly #v: SharedViews;
  readonly #wasi: WASI;
  #memory: WebAssembly.Memory | undefined;

  constructor(msg: InitMessage) {
    this.#msg = msg;
    this.#v = new SharedViews(msg.sab, msg.layout);
    const out = (stream: "stdout" | "stderr") =>
      ConsoleStdout.lineBuffered((line) => scope.postMessage({ t: "log", stream, line }));
    const fds: Fd[] = [new OpenFile(new File(new Uint8Array(0))), out("stdout"), out("stderr")];
    if (msg.config !== null) {
      fds.push(
        new PreopenDirectory(
          "/conf",
          new Map([["watm.cfg", new File(msg.config, { readonly: true })]]),
        ),
      );
    }
    this.#wasi = new WASI([], [], fds, { debug: false });
  }

  get #mem(): ArrayBuffer {
    if (!this.#memory) throw new Error("memory not ready");
    return this.#memory.buffer as ArrayBuffer;
  }

  /** Adds a socket fd for `slot`; returns the fd number. */
  #socket(slot: number): number {
    const fd = new SocketFd(slot, () => {
      const v = this.#v;
      Atomics.or(v.ints, v.at(slot, OUT_FLAGS), OUT_CLOSED);
      if (Atomics.exchange(v.ints, v.at(slot, OUT_NOTIFY), 1) === 0) {
        scope.postMessage({ t: "out", slot });
      }
    });
    this.#wasi.fds.push(fd);
    return this.#wasi.fds.length - 1;
  }

  #sockRead(f: SocketFd, iovsPtr: number, iovsLen: number, nreadPtr: number): number {
    const v = this.#v;
    const slot = f.slot;
    for (;;) {
      const seq = Atomics.load(v.ints, CTL_SEQ);
      const fill = v.inFill(slot);
      const view = new DataView(this.#mem);
      if (fill > 0) {
        const mem = new Uint8Array(this.#mem);
        let r = v.load(slot, IN_R);
        let n = 0;
        for (const io of iovecs(view, iovsPtr, iovsLen)) {
          const k = Math.min(io.len, fill - n);
          if (k <= 0) break;
          v.take(v.ring(slot, false), r, mem.subarray(io.ptr, io.ptr + k));
          r = (r + k) | 0;
          n += k;
        }
        v.store(slot, IN_R, r);
        if (Atomics.exchange(v.ints, v.at(slot, IN_WAIT), 0) === 1) {
          scope.postMessage({ t: "space", slot });
        }
        view.setUint32(nreadPtr, n, true);
        return WasiErrno.SUCCESS;
      }
      const end = v.load(slot, IN_END);
      if (end !== 0) {
        view.setUint32(nreadPtr, 0, true);
        return end === END_EOF ? WasiErrno.SUCCESS : 15; // CONNRESET
      }
      if (f.nonblock) return WasiErrno.AGAIN;
      Atomics.wait(v.ints, CTL_SEQ, seq);
    }
  }

  /**
   * Writes every iovec into the outbound ring. Writes complete whole while the host drains the
   * ring (modules built with TinyGo treat a short write as an error): a non-blocking write
   * returns short, or EAGAIN when nothing went in, only after {@linkcode STALLED_WRITE_MS}
   * without room.
   */
  #sockWrite(f: SocketFd, iovsPtr: number, iovsLen: number, nwrittenPtr: number): number {
    const v = this.#v;
    const slot = f.slot;
    const cap = v.layout.ringBytes;
    const ring = v.ring(slot, true);
    const ios = iovecs(new DataView(this.#mem), iovsPtr, iovsLen);
    const total = ios.reduce((sum, io) => sum + io.len, 0);
    let done = 0;
    let stalledSince = performance.now();
    for (;;) {
      const seq = Atomics.load(v.ints, CTL_SEQ);
      if (v.load(slot, OUT_FLAGS) & (OUT_BROKEN | OUT_CLOSED)) {
        if (done > 0) break;
        return WasiErrno.PIPE;
      }
      const room = cap - v.outFill(slot);
      if (room > 0 && done < total) {
        const mem = new Uint8Array(this.#mem);
        let w = v.load(slot, OUT_W);
        let k = Math.min(room, total - done);
        let skip = done;
        for (const io of ios) {
          if (k === 0) break;
          if (skip >= io.len) {
            skip -= io.len;
            continue;
          }
          const part = Math.min(io.len - skip, k);
          v.put(ring, w, mem.subarray(io.ptr + skip, io.ptr + skip + part));
          w = (w + part) | 0;
          done += part;
          k -= part;
          skip = 0;
        }
        v.store(slot, OUT_W, w);
        if (Atomics.exchange(v.ints, v.at(slot, OUT_NOTIFY), 1) === 0) {
          scope.postMessage({ t: "out", slot });
        }
        stalledSince = performance.now();
      }
      if (done >= total) break;
      const waited = performance.now() - stalledSince;
      if (f.nonblock && waited >= STALLED_WRITE_MS) {
        if (done > 0) break;
        return WasiErrno.AGAIN;
      }
      Atomics.wait(v.ints, CTL_SEQ, seq, f.nonblock ? STALLED_WRITE_MS - waited : undefined);
    }
    new DataView(this.#mem).setUint32(nwrittenPtr, done, true);
    return WasiErrno.SUCCESS;
  }

  /**
   * `poll_oneoff` over any mix of clock and fd subscriptions (level-triggered, as poll(2)):
   * returns at once with every ready subscription, else waits for the host's next change or the
   * earliest clock deadline. Without a clock it waits until an fd is ready.
   */
  #poll(inPtr: number, outPtr: number, nsubs: number, neventsPtr: number): number {
    if (nsubs === 0) return WasiErrno.INVAL;
    const v = this.#v;
    const subs: {
      userdata: bigint;
      type: number;
      fd: number;
      deadline: number;
    }[] = [];
    {
      const view = new DataView(this.#mem);
      for (let i = 0; i < nsubs; i++) {
        const at = inPtr + i * 48;
        const userdata = view.getBigUint64(at, true);
        const type = view.getUint8(at + 8);
        if (type === wasi.EVENTTYPE_CLOCK) {
          const id = view.getUint32(at + 16, true);
          const timeoutMs = Number(view.getBigUint64(at + 24, true)) / 1e6;
          const abs = (view.getUint16(at + 40, true) & 1) !== 0;
          const now = performance.now();
          let deadline = now + timeoutMs;
          if (abs) {
            deadline = id === wasi.CLOCKID_REALTIME ? now + (timeoutMs - Date.now()) : timeoutMs;
          }
          subs.push({ userdata, type, fd: -1, deadline });
        } else if (type === wasi.EVENTTYPE_FD_READ || type === wasi.EVENTTYPE_FD_WRITE) {
          subs.push({ userdata, type, fd: view.getUint32(at + 16, true), deadline: Infinity });
        } else return WasiErrno.INVAL;
      }
    }
    for (;;) {
      const seq = Atomics.load(v.ints, CTL_SEQ);
      const now = performance.now();
      const events: {
        userdata: bigint;
        error: number;
        type: number;
        nbytes: number;
        hup: boolean;
      }[] = [];
      let wait = Infinity;
      for (const s of subs) {
        if (s.type === wasi.EVENTTYPE_CLOCK) {
          if (now >= s.deadline) {
            events.push({ userdata: s.userdata, error: 0, type: s.type, nbytes: 0, hup: false });
          } else wait = Math.min(wait, s.deadline - now);
          continue;
        }
        const f = this.#wasi.fds[s.fd];
        if (f === undefined) {
          events.push({
            userdata: s.userdata,
            error: WasiErrno.BADF,
            type: s.type,
            nbytes: 0,
            hup: false,
          });
        } else if (!(f instanceof SocketFd)) {
          events.push({ userdata: s.userdata, error: 0, type: s.type, nbytes: 0, hup: false });
        } else if (s.type === wasi.EVENTTYPE_FD_READ) {
          const fill = v.inFill(f.slot);
          const end = v.load(f.slot, IN_END) !== 0;
          if (fill > 0 || end) {
            events.push({
              userdata: s.userdata,
              error: 0,
              type: s.type,
              nbytes: fill,
              hup: end && fill === 0,
            });
          }
        } else {
          const room = v.layout.ringBytes - v.outFill(f.slot);
          const broken = (v.load(f.slot, OUT_FLAGS) & (OUT_BROKEN | OUT_CLOSED)) !== 0;
          if (room > 0 || broken) {
            events.push({
              userdata: s.userdata,
              error: broken ? WasiErrno.PIPE : 0,
              type: s.type,
              nbytes: room,
              hup: broken,
            });
          }
        }
      }
      if (events.length > 0) {
        const view = new DataView(this.#mem);
        events.forEach((e, i) => {
          const at = outPtr + i * 32;
          new Uint8Array(this.#mem, at, 32).fill(0);
          view.setBigUint64(at, e.userdata, true);
          view.setUint16(at + 8, e.error, true);
          view.setUint8(at + 10, e.type);
          if (e.type !== wasi.EVENTTYPE_CLOCK) {
            view.setBigUint64(at + 16, BigInt(e.nbytes), true);
            view.setUint16(at + 24, e.hup ? 1 : 0, true);
          }
        });
        view.setUint32(neventsPtr, events.length, true);
        return WasiErrno.SUCCESS;
      }
      Atomics.wait(v.ints, CTL_SEQ, seq, wait === Infinity ? undefined : Math.max(0, wait));
    }
  }

  /** Asks the host to dial or accept; resolves a new fd number or a negative errno. */
  #call(message: Extract<WorkerMessage, { t: "call" }>): number {
    const ints = this.#v.ints;
    Atomics.store(ints, CTL_CALL_STATE, 1);
    scope.postMessage(message);
    while (Atomics.load(ints, CTL_CALL_STATE) !== 2) Atomics.wait(ints, CTL_CALL_STATE, 1);
    const result = Atomics.load(ints, CTL_CALL_RESULT);
    Atomics.store(ints, CTL_CALL_STATE, 0);
    return result < 0 ? result : this.#socket(result);
  }

  #string(iovsPtr: number, iovsLen: number): string {
    const view = new DataView(this.#mem);
    const parts: Uint8Array[] = [];
    let n = 0;
    for (const io of iovecs(view, iovsPtr, iovsLen)) {
      const k = Math.min(io.len, MAX_DIAL_STRING - n);
      if (k <= 0) break;
      parts.push(new Uint8Array(this.#mem, io.ptr, k).slice());
      n += k;
    }
    const all = new Uint8Array(n);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return new TextDecoder().decode(all);
  }

  #imports(): WebAssembly.Imports {
    const shim = this.#wasi.wasiImport;
    const fds = this.#wasi.fds;
    const imports: Record<string, (...args: never[]) => unknown> = { ...shim };
    imports.fd_read = (fd: number, iovs: number, len: number, nread: number): unknown => {
      const f = fds[fd];
      return f instanceof SocketFd
        ? this.#sockRead(f, iovs, len, nread)
        : shim.fd_read?.(fd, iovs, len, nread);
    };
    imports.fd_write = (fd: number, iovs: number, len: number, nwritten: number): unknown => {
      const f = fds[fd];
      return f instanceof SocketFd
        ? this.#sockWrite(f, iovs, len, nwritten)
        : shim.fd_write?.(fd, iovs, len, nwritten);
    };
    imports.poll_oneoff = (inPtr: number, outPtr: number, nsubs: number, nevents: number) =>
      this.#poll(inPtr, outPtr, nsubs, nevents);
    return {
      wasi_snapshot_preview1: imports as WebAssembly.ModuleImports,
      env: {
        water_dial: (netPtr: number, netLen: number, addrPtr: number, addrLen: number): number =>
          this.#call({
            t: "call",
            op: "dial",
            network: this.#string(netPtr, netLen),
            address: this.#string(addrPtr, addrLen),
          }),
        water_dial_fixed: (): number => this.#call({ t: "call", op: "dial_fixed" }),
        water_accept: (): number => this.#call({ t: "call", op: "accept" }),
      },
    };
  }

  /** Runs `_start`, `watm_init_v1`, the role's call, `watm_ctrlpipe_v1`, `watm_start_v1`. */
  run(): void {
    const msg = this.#msg;
    let step = "instantiation";
    try {
      const instance = new WebAssembly.Instance(msg.module, this.#imports());
      const ex = instance.exports as Record<string, unknown>;
      this.#memory = ex.memory as WebAssembly.Memory;
      this.#wasi.inst = { exports: { memory: this.#memory } };
      const fn = (name: string): ((...args: number[]) => number) | undefined => {
        const f = ex[name];
        return typeof f === "function" ? f as (...args: number[]) => number : undefined;
      };
      const call = (name: string, ...args: number[]): number => {
        step = name;
        const f = fn(name);
        if (!f) throw new Error(`the module does not export ${name}`);
        return Number(f(...args));
      };
      const start = fn("_start");
      if (start) {
        step = "_start";
        try {
          start();
        } catch (e) {
          if (!(e instanceof WASIProcExit) || e.code !== 0) throw e;
        }
      }
      const init = call("watm_init_v1");
      if (init !== 0) return this.#fail(`watm_init_v1 returned errno ${errnoText(init)}`);
      const checkFd = (name: string, fd: number): boolean => {
        if (fd < 0) {
          this.#fail(`${name} returned ${fd} (${errnoText(-fd)})`);
          return false;
        }
        if (!(this.#wasi.fds[fd] instanceof SocketFd)) {
          this.#fail(`${name} returned fd ${fd}, which is not a connection the host gave it`);
          return false;
        }
        return true;
      };
      if (msg.role === "relay") {
        const r = call("watm_associate_v1");
        if (r !== 0) return this.#fail(`watm_associate_v1 returned errno ${errnoText(r)}`);
      } else {
        const internal = this.#socket(msg.internalSlot);
        const name = msg.role === "listener"
          ? "watm_accept_v1"
          : fn("watm_dial_v1")
          ? "watm_dial_v1"
          : "watm_dial_fixed_v1";
        if (!checkFd(name, call(name, internal))) return;
      }
      const ctrl = call("watm_ctrlpipe_v1", this.#socket(msg.ctrlSlot));
      if (ctrl !== 0) return this.#fail(`watm_ctrlpipe_v1 returned errno ${errnoText(ctrl)}`);
      scope.postMessage({ t: "started" });
      const code = call("watm_start_v1");
      scope.postMessage({ t: "exit", code });
    } catch (e) {
      if (e instanceof WASIProcExit) {
        this.#fail(`the module exited (proc_exit ${e.code}) in ${step}`);
      } else if (e instanceof WebAssembly.RuntimeError) {
        this.#fail(`the module trapped in ${step}: ${e.message}`);
      } else {
        this.#fail(`${step} failed: ${(e as Error)?.message ?? String(e)}`);
      }
    }
  }

  #fail(message: string): void {
    scope.postMessage({ t: "fail", message });
  }
}

scope.onmessage = (e: MessageEvent<InitMessage>): void => {
  scope.onmessage = null;
  scope.postMessage({ t: "loaded" });
  new Runner(e.data).run();
};

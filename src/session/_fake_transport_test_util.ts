/**
 * Test doubles for the session's two seams, for unit tests only (not exported from any `mod.ts`;
 * the name keeps `deno test` from running it as a test file):
 *
 * - {@linkcode FakeTransport}: a scriptable {@linkcode Transport} — lookup answers per name, dials
 *   and TLS handshakes that succeed, fail or wait until the test settles them — whose
 *   connections ({@linkcode FakeConn}, {@linkcode FakeDatagramConn}, {@linkcode FakeListener}) are
 *   in-memory queues the test drives. It records every call and every connection it opened, so a
 *   test can assert that nothing was left open.
 * - {@linkcode FakeChannel}: a {@linkcode WireChannel} that decodes every frame the session sends
 *   into {@linkcode WireEvent}s, with a settable `bufferedAmount` and a log of
 *   `pauseReading`/`resumeReading` calls.
 *
 * The fakes keep the transport's contract (`src/transport/types.ts`) unless a test asks
 * otherwise: an aborted lookup, dial or handshake rejects with `signal.reason`; a dial or
 * handshake the test completes after the abort is closed by the fake, as the real transport
 * closes a late socket; closing a connection rejects its pending read and writes with an error
 * named `BadResource`.
 *
 * @module
 */
import { decodeEvent, type WireEvent } from "../protocol/mod.ts";
import type {
  AcceptedConn,
  DatagramConn,
  NetAddr,
  StreamConn,
  StreamListener,
  Transport,
} from "../transport/mod.ts";
import type { WireChannel } from "./session.ts";

const encoder = new TextEncoder();

/** An error with a runtime-neutral `name`, as the transport words OS errors. */
export function netError(name: string, message: string): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}

/** `ConnectionRefused: Connection refused (os error 111)`. */
export function refused(): Error {
  return netError("ConnectionRefused", "Connection refused (os error 111)");
}

/** The error a closed fake connection rejects its pending operations with. */
function closedError(): Error {
  return netError("BadResource", "Bad resource ID");
}

/** A promise with its settle functions, settled at most once. */
class Deferred<T> {
  readonly promise: Promise<T>;
  settled = false;
  #resolve!: (value: T) => void;
  #reject!: (reason: unknown) => void;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  resolve(value: T): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.#resolve(value);
    return true;
  }

  reject(reason: unknown): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.#reject(reason);
    return true;
  }
}

/** Polls `cond` every millisecond until it holds; throws `timed out waiting for WHAT` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Lets every pending promise reaction run (one macrotask turn). */
export function tick(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/** One `write` the test completes by hand ({@linkcode FakeConn.manualWrites}). */
export interface PendingWrite {
  /** The bytes offered (a copy). */
  readonly data: Uint8Array;
  /**
   * Completes the write with `n` bytes written (default: all of them); those bytes are appended
   * to {@linkcode FakeConn.written}.
   */
  complete(n?: number): void;
  /** Fails the write. */
  fail(e: Error): void;
}

/**
 * An in-memory {@linkcode StreamConn} (and {@linkcode AcceptedConn}). The test pushes what the
 * peer sends ({@linkcode FakeConn.push}, {@linkcode FakeConn.pushEof},
 * {@linkcode FakeConn.pushError}) and reads what the session wrote ({@linkcode FakeConn.written},
 * {@linkcode FakeConn.text}). Writes complete at once unless {@linkcode FakeConn.manualWrites} is
 * set; {@linkcode FakeConn.maxWriteBytes} makes them partial; {@linkcode FakeConn.writeError}
 * makes them fail.
 */
export class FakeConn implements AcceptedConn {
  /** Bytes written by the session, in order (copies). */
  readonly written: Uint8Array[] = [];
  /** Writes waiting for the test, oldest first (only with `manualWrites`). */
  readonly pendingWrites: PendingWrite[] = [];
  /** When true, each write waits until the test completes it from `pendingWrites`. */
  manualWrites = false;
  /** Most bytes one write accepts (partial writes); default unlimited. */
  maxWriteBytes = Infinity;
  /** When set, every later write rejects with it. */
  writeError: Error | undefined;
  /** When true, `closeWrite` waits until the connection is closed, then rejects (a silent peer). */
  holdCloseWrite = false;
  /** `read` calls so far. */
  reads = 0;
  /** `write` calls so far. */
  writes = 0;
  /** `close` calls so far (a second one throws, as `Deno.TcpConn.close` does). */
  closeCalls = 0;
  /** `closeWrite` calls so far. */
  closeWriteCalls = 0;
  /** The peer's address (for accepted connections). */
  readonly remoteAddr: NetAddr;

  readonly #inbound: (Uint8Array | null | Error)[] = [];
  /** Manual writes still pending: `close` rejects them. */
  readonly #rejectOnClose = new Set<Deferred<number>>();
  #reader: Deferred<void> | undefined;
  readonly #inner: FakeConn | undefined;
  readonly #onClose: (conn: FakeConn) => void;

  /**
   * @param label what the connection is, e.g. `tcp 192.0.2.1:80` or `tls example.com`.
   * @param onClose told once when the connection closes (the transport's bookkeeping).
   * @param inner the TCP connection a TLS connection runs over (closed with it).
   */
  constructor(
    readonly label: string,
    onClose: (conn: FakeConn) => void = () => {},
    inner?: FakeConn,
    remote: NetAddr = { transport: "tcp", hostname: "192.0.2.200", port: 40000 },
  ) {
    this.#onClose = onClose;
    this.#inner = inner;
    this.remoteAddr = remote;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.closeCalls > 0;
  }

  /** Everything written so far, as one array. */
  get bytes(): Uint8Array {
    const total = this.written.reduce((n, c) => n + c.byteLength, 0);
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of this.written) {
      out.set(c, off);
      off += c.byteLength;
    }
    return out;
  }

  /** Everything written so far, decoded as UTF-8. */
  get text(): string {
    return new TextDecoder().decode(this.bytes);
  }

  /** Whether a `read` is waiting for the peer. */
  get reading(): boolean {
    return this.#reader !== undefined;
  }

  /** The peer sends `data` (a string is UTF-8 encoded). */
  push(data: Uint8Array | string): void {
    this.#feed(typeof data === "string" ? encoder.encode(data) : data.slice());
  }

  /** The peer closes its side: the next read (after queued data) returns `null`. */
  pushEof(): void {
    this.#feed(null);
  }

  /** The next read (after queued data) rejects with `e`. */
  pushError(e: Error): void {
    this.#feed(e);
  }

  #feed(item: Uint8Array | null | Error): void {
    this.#inbound.push(item);
    const r = this.#reader;
    this.#reader = undefined;
    r?.resolve();
  }

  /** Reads queued peer bytes (waiting for some), `null` at EOF. */
  async read(buffer: Uint8Array): Promise<number | null> {
    if (this.#reader) throw new Error("FakeConn: two concurrent reads");
    this.reads++;
    while (this.#inbound.length === 0) {
      if (this.closed) throw closedError();
      const r = new Deferred<void>();
      this.#reader = r;
      await r.promise;
    }
    if (this.closed) throw closedError();
    const head = this.#inbound[0];
    if (head === undefined || head === null) return null; // EOF stays queued
    if (head instanceof Error) {
      this.#inbound.shift();
      throw head;
    }
    const n = Math.min(head.byteLength, buffer.byteLength);
    buffer.set(head.subarray(0, n));
    if (n === head.byteLength) this.#inbound.shift();
    else this.#inbound[0] = head.subarray(n);
    return n;
  }

  /** Writes up to `maxWriteBytes` of `data`, at once or when the test completes it. */
  write(data: Uint8Array): Promise<number> {
    this.writes++;
    if (this.closed) return Promise.reject(closedError());
    if (this.writeError) return Promise.reject(this.writeError);
    const offered = data.slice(0, Math.min(data.byteLength, this.maxWriteBytes));
    if (!this.manualWrites) {
      this.written.push(offered);
      return Promise.resolve(offered.byteLength);
    }
    const d = new Deferred<number>();
    const pending: PendingWrite = {
      data: offered,
      complete: (n = offered.byteLength) => {
        this.#dropPending(pending);
        if (this.closed) throw new Error("FakeConn: completing a write after close");
        this.written.push(offered.slice(0, n));
        d.resolve(n);
      },
      fail: (e) => {
        this.#dropPending(pending);
        d.reject(e);
      },
    };
    this.pendingWrites.push(pending);
    this.#rejectOnClose.add(d);
    d.promise.then(() => this.#rejectOnClose.delete(d), () => this.#rejectOnClose.delete(d));
    return d.promise;
  }

  #dropPending(w: PendingWrite): void {
    const i = this.pendingWrites.indexOf(w);
    if (i >= 0) this.pendingWrites.splice(i, 1);
  }

  /** Completes the oldest pending write with `n` bytes (default all); throws if none waits. */
  completeWrite(n?: number): void {
    const w = this.pendingWrites[0];
    if (w === undefined) throw new Error(`FakeConn ${this.label}: no pending write`);
    w.complete(n);
  }

  /** Half-close (TLS close_notify): recorded; resolves at once unless `holdCloseWrite`. */
  closeWrite(): Promise<void> {
    this.closeWriteCalls++;
    if (this.closed) return Promise.reject(closedError());
    if (!this.holdCloseWrite) return Promise.resolve();
    const d = new Deferred<number>();
    this.#rejectOnClose.add(d);
    return d.promise.then(() => {});
  }

  /** Closes the connection (and the TCP one under a TLS one); pending operations reject. */
  close(): void {
    this.closeCalls++;
    if (this.closeCalls > 1) throw closedError();
    const r = this.#reader;
    this.#reader = undefined;
    r?.resolve(); // the read loop sees `closed` and throws
    for (const d of this.#rejectOnClose) d.reject(closedError());
    this.#rejectOnClose.clear();
    this.pendingWrites.length = 0;
    if (this.#inner && !this.#inner.closed) this.#inner.close();
    this.#onClose(this);
  }
}

/** A scripted lookup answer: addresses, an error, or `"hold"` (the test settles it). */
export type LookupScript = readonly string[] | Error | "hold";
/** A scripted dial or TLS outcome: success, an error, or `"hold"` (the test settles it). */
export type ConnectScript = "open" | Error | "hold";

/** A lookup, dial or TLS handshake held for the test ({@linkcode FakeTransport.held}). */
export interface Held {
  /** `lookup NAME`, `dial IP:PORT` or `tls NAME`. */
  readonly what: string;
  /** The signal the session passed. */
  readonly signal: AbortSignal;
  /** Whether it has been settled (by the test or by the abort). */
  readonly settled: boolean;
  /**
   * Completes a held dial or handshake and returns the new connection. If the signal has
   * already aborted and the transport honours aborts, the fake closes that connection (as the
   * real transport closes a dial that completes late) and the promise stays rejected.
   */
  open(): FakeConn;
  /** Completes a held lookup with `addrs`. */
  answer(addrs: readonly string[]): void;
  /** Completes a held `openUdp` or `listenTcp` (see {@linkcode FakeTransport.binds}). */
  bind(): void;
  /** Fails it with `e`. */
  reject(e: Error): void;
}

/** An in-memory {@linkcode DatagramConn}. The test delivers datagrams with `deliver`. */
export class FakeDatagramConn implements DatagramConn {
  /** Datagrams the session sent: bytes (copies) and destination. */
  readonly sent: { data: Uint8Array; addr: NetAddr }[] = [];
  /** True once closed. */
  closed = false;
  readonly #inbox: [Uint8Array, NetAddr][] = [];
  #receiver: Deferred<void> | undefined;
  readonly #onClose: () => void;

  /** @param addr local address. @param onClose told once on close. */
  constructor(readonly addr: NetAddr, onClose: () => void) {
    this.#onClose = onClose;
  }

  /** A datagram from `hostname:port` arrives. */
  deliver(data: Uint8Array | string, hostname: string, port: number): void {
    const bytes = typeof data === "string" ? encoder.encode(data) : data.slice();
    this.#inbox.push([bytes, { transport: "udp", hostname, port }]);
    const r = this.#receiver;
    this.#receiver = undefined;
    r?.resolve();
  }

  /** Waits for the next delivered datagram. */
  async receive(): Promise<[Uint8Array, NetAddr]> {
    for (;;) {
      if (this.closed) throw closedError();
      const next = this.#inbox.shift();
      if (next) return next;
      const r = new Deferred<void>();
      this.#receiver = r;
      await r.promise;
    }
  }

  /** Records the datagram. */
  send(data: Uint8Array, addr: NetAddr): Promise<number> {
    if (this.closed) return Promise.reject(closedError());
    this.sent.push({ data: data.slice(), addr });
    return Promise.resolve(data.byteLength);
  }

  /** Closes; a pending `receive` rejects. */
  close(): void {
    if (this.closed) throw closedError();
    this.closed = true;
    const r = this.#receiver;
    this.#receiver = undefined;
    r?.resolve();
    this.#onClose();
  }
}

/** An in-memory {@linkcode StreamListener}; the test makes connections arrive with `arrive`. */
export class FakeListener implements StreamListener {
  /** True once closed. */
  closed = false;
  readonly #backlog: FakeConn[] = [];
  #acceptor: Deferred<void> | undefined;
  readonly #transport: FakeTransport;

  /** @param addr local address. @param transport owner (tracks accepted connections). */
  constructor(readonly addr: NetAddr, transport: FakeTransport) {
    this.#transport = transport;
  }

  /** A client connects from `hostname:port`; returns the server side the session will get. */
  arrive(hostname = "192.0.2.200", port = 40000): FakeConn {
    const conn = this.#transport.track(
      new FakeConn(
        `accepted ${hostname}:${port}`,
        undefined,
        undefined,
        { transport: "tcp", hostname, port },
      ),
    );
    this.#backlog.push(conn);
    const a = this.#acceptor;
    this.#acceptor = undefined;
    a?.resolve();
    return conn;
  }

  /** Waits for the next arriving connection. */
  async accept(): Promise<AcceptedConn> {
    for (;;) {
      if (this.closed) throw closedError();
      const next = this.#backlog.shift();
      if (next) return next;
      const a = new Deferred<void>();
      this.#acceptor = a;
      await a.promise;
    }
  }

  /** Stops listening; a pending `accept` rejects; connections never accepted are closed. */
  close(): void {
    if (this.closed) throw closedError();
    this.closed = true;
    const a = this.#acceptor;
    this.#acceptor = undefined;
    a?.resolve();
    for (const c of this.#backlog.splice(0)) c.close();
  }
}

/**
 * A scriptable {@linkcode Transport}. Script lookups with {@linkcode FakeTransport.answers}
 * (unscripted names fail with `NotFound`), dials with {@linkcode FakeTransport.dials} keyed by
 * `ip:port` or `ip` (default: open), TLS handshakes with {@linkcode FakeTransport.handshakes} keyed
 * by server name (default: open). Held operations wait in {@linkcode FakeTransport.held} for the
 * test. Every call is appended to {@linkcode FakeTransport.log} (`lookup NAME`, `dial IP:PORT`,
 * `tls NAME`, `udp 4`, `listen IP:PORT`).
 */
export class FakeTransport implements Transport {
  /** Every call, in order. */
  readonly log: string[] = [];
  /** Lookup answers per name. */
  readonly answers = new Map<string, LookupScript>();
  /** Dial outcomes per `ip:port` (checked first) or `ip`. */
  readonly dials = new Map<string, ConnectScript>();
  /** TLS handshake outcomes per server name. */
  readonly handshakes = new Map<string, ConnectScript>();
  /** Operations waiting for the test, oldest first (settled ones are removed). */
  readonly held: Held[] = [];
  /** Every stream connection made (dials, handshakes, accepted), in order. */
  readonly conns: FakeConn[] = [];
  /** Every UDP socket opened. */
  readonly udps: FakeDatagramConn[] = [];
  /** Every listener opened. */
  readonly listeners: FakeListener[] = [];
  /**
   * When false, aborting a held operation does nothing and the test may still resolve it (a
   * transport that breaks the contract, or a completion racing the abort). Default true.
   */
  honourAborts = true;
  /**
   * Called with each new dialled or TLS connection before the session gets it (e.g. to push a
   * banner).
   */
  onConnect: ((conn: FakeConn) => void) | undefined;
  /** When set, `listenTcp` fails with it (thrown, or rejected when `binds` is not `sync`). */
  listenError: Error | undefined;
  /** When set, `openUdp` fails with it (thrown, or rejected when `binds` is not `sync`). */
  udpError: Error | undefined;
  /**
   * How `openUdp` and `listenTcp` answer: `sync` returns the socket (Deno), `async` a promise of
   * it (node:dgram, node:net), `hold` a promise the test settles with {@linkcode Held.bind}.
   */
  binds: "sync" | "async" | "hold" = "sync";
  #nextPort = 50000;

  /** Registers a connection made elsewhere (accepted ones). */
  track(conn: FakeConn): FakeConn {
    this.conns.push(conn);
    return conn;
  }

  /** Connections, sockets and listeners still open, by label. */
  get open(): string[] {
    return [
      ...this.conns.filter((c) => !c.closed).map((c) => c.label),
      ...this.udps.filter((u) => !u.closed).map((u) => `udp ${u.addr.port}`),
      ...this.listeners.filter((l) => !l.closed).map((l) => `listener ${l.addr.port}`),
    ];
  }

  /** Dials made, as `ip:port`, in order. */
  get dialled(): string[] {
    return this.log.filter((l) => l.startsWith("dial ")).map((l) => l.slice(5));
  }

  /** The last connection made (throws if none). */
  get lastConn(): FakeConn {
    const c = this.conns.at(-1);
    if (c === undefined) throw new Error("FakeTransport: no connection yet");
    return c;
  }

  /** Waits until an operation is held whose `what` starts with `prefix`; returns it. */
  async waitHeld(prefix: string): Promise<Held> {
    let found: Held | undefined;
    await until(
      () => (found = this.held.find((h) => h.what.startsWith(prefix))) !== undefined,
      `held ${prefix}`,
    );
    return found as Held;
  }

  /** Answers from {@linkcode FakeTransport.answers}; an unscripted name fails with `NotFound`. */
  lookup(name: string, signal: AbortSignal): Promise<string[]> {
    this.log.push(`lookup ${name}`);
    if (signal.aborted) return Promise.reject(signal.reason);
    const script = this.answers.get(name) ?? netError("NotFound", `getaddrinfo ENOTFOUND ${name}`);
    if (script instanceof Error) return Promise.reject(script);
    if (script !== "hold") return Promise.resolve([...script]);
    return this.#hold(`lookup ${name}`, signal, (addrs) => [...addrs]);
  }

  /** Dials as {@linkcode FakeTransport.dials} says (default: a new open {@linkcode FakeConn}). */
  connectTcp(ip: string, port: number, signal: AbortSignal): Promise<StreamConn> {
    const key = `${ip.includes(":") ? `[${ip}]` : ip}:${port}`;
    this.log.push(`dial ${key}`);
    if (signal.aborted) return Promise.reject(signal.reason);
    const script = this.dials.get(key) ?? this.dials.get(ip) ?? "open";
    const make = (): FakeConn => {
      const conn = this.track(new FakeConn(`tcp ${key}`));
      this.onConnect?.(conn);
      return conn;
    };
    if (script instanceof Error) return Promise.reject(script);
    if (script === "open") return Promise.resolve(make());
    return this.#hold(`dial ${key}`, signal, make);
  }

  /**
   * Handshakes as {@linkcode FakeTransport.handshakes} says (default: a TLS {@linkcode FakeConn}
   * over `conn`, closing both when closed); `conn` is closed when the handshake fails or aborts.
   */
  startTls(conn: StreamConn, serverName: string, signal: AbortSignal): Promise<StreamConn> {
    this.log.push(`tls ${serverName}`);
    const tcp = conn as FakeConn;
    const fail = (e: unknown): Promise<never> => {
      // The connection belongs to the transport from the call on: closed when the handshake fails.
      if (!tcp.closed) tcp.close();
      return Promise.reject(e);
    };
    if (signal.aborted) return fail(signal.reason);
    const script = this.handshakes.get(serverName) ?? "open";
    const make = (): FakeConn => {
      const tls = this.track(new FakeConn(`tls ${serverName}`, undefined, tcp));
      this.onConnect?.(tls);
      return tls;
    };
    if (script instanceof Error) return fail(script);
    if (script === "open") return Promise.resolve(make());
    return this.#hold(`tls ${serverName}`, signal, make).catch(fail);
  }

  /** A {@linkcode FakeDatagramConn} on the next fake port, as {@linkcode FakeTransport.binds} says. */
  openUdp(family: 4 | 6): DatagramConn | Promise<DatagramConn> {
    this.log.push(`udp ${family}`);
    return this.#bind(`udp ${family}`, this.udpError, () => {
      const addr: NetAddr = {
        transport: "udp",
        hostname: family === 4 ? "0.0.0.0" : "::",
        port: this.#nextPort++,
      };
      const udp = new FakeDatagramConn(addr, () => {});
      this.udps.push(udp);
      return udp;
    });
  }

  /** A {@linkcode FakeListener} (port 0 picks a fake port), as {@linkcode FakeTransport.binds} says. */
  listenTcp(ip: string, port: number): StreamListener | Promise<StreamListener> {
    this.log.push(`listen ${ip}:${port}`);
    return this.#bind(`listen ${ip}:${port}`, this.listenError, () => {
      const listener = new FakeListener(
        { transport: "tcp", hostname: ip, port: port === 0 ? this.#nextPort++ : port },
        this,
      );
      this.listeners.push(listener);
      return listener;
    });
  }

  #bind<T>(what: string, error: Error | undefined, make: () => T): T | Promise<T> {
    if (this.binds === "sync") {
      if (error) throw error;
      return make();
    }
    if (this.binds === "async") return error ? Promise.reject(error) : Promise.resolve(make());
    return this.#hold(what, new AbortController().signal, () => {
      if (error) throw error;
      return make();
    });
  }

  #hold<T>(
    what: string,
    signal: AbortSignal,
    make: (addrs: readonly string[]) => T,
  ): Promise<T> {
    const d = new Deferred<T>();
    const onAbort = (): void => {
      if (this.honourAborts) settle(() => d.reject(signal.reason));
    };
    const settle = (fn: () => void): void => {
      if (d.settled) return;
      signal.removeEventListener("abort", onAbort);
      const i = this.held.indexOf(held);
      if (i >= 0) this.held.splice(i, 1);
      fn();
    };
    const complete = (addrs: readonly string[]): T => {
      let value: T;
      try {
        value = make(addrs);
      } catch (e) {
        settle(() => d.reject(e));
        throw e;
      }
      if (d.settled && value instanceof FakeConn) value.close(); // completed after the abort
      settle(() => d.resolve(value));
      return value;
    };
    const held: Held = {
      what,
      signal,
      get settled(): boolean {
        return d.settled;
      },
      open: (): FakeConn => {
        if (!what.startsWith("dial") && !what.startsWith("tls")) {
          throw new Error(`${what}: not a dial or handshake`);
        }
        return complete([]) as FakeConn;
      },
      answer: (addrs): void => {
        if (!what.startsWith("lookup")) throw new Error(`${what}: not a lookup`);
        complete(addrs);
      },
      bind: (): void => {
        if (!what.startsWith("udp") && !what.startsWith("listen")) {
          throw new Error(`${what}: not a bind`);
        }
        try {
          complete([]);
        } catch {
          // the scripted bind error: the promise rejected with it
        }
      },
      reject: (e): void => settle(() => d.reject(e)),
    };
    signal.addEventListener("abort", onAbort, { once: true });
    this.held.push(held);
    return d.promise;
  }
}

/** Options of {@linkcode FakeChannel}. */
export interface FakeChannelOptions {
  /** Whether the channel can pause reading the client (default true). */
  readonly pausable?: boolean;
}

/**
 * A {@linkcode WireChannel} that records the session's frames decoded as events. Set
 * `bufferedAmount` to simulate a slow client; `pauses`/`resumes` count read backpressure calls,
 * and `log` interleaves them with the events (`pause`, `resume`, `connected 1`, ...).
 */
export class FakeChannel implements WireChannel {
  /** What the session reports as queued on the WebSocket. */
  bufferedAmount = 0;
  /** Every event sent, decoded, in order. */
  readonly events: WireEvent[] = [];
  /** Raw frames sent, in order. */
  readonly frames: (string | Uint8Array)[] = [];
  /** `pause`, `resume` and `EV ID` entries in call order. */
  readonly log: string[] = [];
  /** `pauseReading` calls. */
  pauses = 0;
  /** `resumeReading` calls. */
  resumes = 0;
  /** Whether reading is paused now (from the calls). */
  paused = false;
  /** Present unless constructed with `pausable: false`. */
  readonly pauseReading?: () => void;
  /** Present unless constructed with `pausable: false`. */
  readonly resumeReading?: () => void;
  #taken = 0;

  /** @param options whether the channel can pause reading. */
  constructor(options: FakeChannelOptions = {}) {
    if (options.pausable ?? true) {
      this.pauseReading = () => {
        this.pauses++;
        this.paused = true;
        this.log.push("pause");
      };
      this.resumeReading = () => {
        this.resumes++;
        this.paused = false;
        this.log.push("resume");
      };
    }
  }

  /** Decodes and records one frame. */
  send(data: string | Uint8Array): void {
    this.frames.push(data);
    const ev = decodeEvent(data);
    this.events.push(ev);
    this.log.push(`${ev.ev} ${ev.id}`);
  }

  /** Events for `id`, in order. */
  eventsFor(id: number): WireEvent[] {
    return this.events.filter((e) => e.id === id);
  }

  /** Events for `id` other than `data`, in order. */
  controlFor(id: number): WireEvent[] {
    return this.eventsFor(id).filter((e) => e.ev !== "data");
  }

  /** Events sent since the last `take()`. */
  take(): WireEvent[] {
    const out = this.events.slice(this.#taken);
    this.#taken = this.events.length;
    return out;
  }

  /** Concatenated payload of the `data` events for `id`. */
  dataFor(id: number): Uint8Array {
    return concat(this.events.flatMap((e) => e.ev === "data" && e.id === id ? [e.data] : []));
  }

  /** Waits until an event for `id` matches `ev` (a name); returns the first such event. */
  async waitFor(id: number, ev: WireEvent["ev"], ms = 2000): Promise<WireEvent> {
    let found: WireEvent | undefined;
    await until(
      () => (found = this.events.find((e) => e.id === id && e.ev === ev)) !== undefined,
      `${ev} ${id} (got ${JSON.stringify(this.log)})`,
      ms,
    );
    return found as WireEvent;
  }
}

/** The bytes of `parts`, one after another, in a new array. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

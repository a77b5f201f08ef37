/**
 * The harness host ABI (JonCooperWorks/harness `plugin/wasm.go` and its `std::net` polyfill):
 * the `env` host functions `tcp_*`, `udp_*` and `icmp_*` over Extism memory blocks, built on a
 * {@linkcode HarnessNet} that does the networking (the server's transport under the policy in
 * `harness.ts`, or a `WasmnetClient` in `browser_harness.ts`). Browser-safe: it imports only the
 * pure `protocol/host_port.ts` and `protocol/base64.ts` (and a type from `transport/types.ts`).
 *
 * Every function returns 0 for "nothing" (a refused or failed connect, a failed send, nothing
 * received in time, an unknown id), as the reference host does, and logs why.
 *
 * @module
 */

import { type HostPort, parseHostPort } from "../protocol/host_port.ts";
import { encodeBase64 } from "../protocol/base64.ts";
import type { IcmpEchoReply } from "../transport/types.ts";

export { type HostPort, parseHostPort };

/** How long `tcp_recv`/`udp_recv` wait for data before returning 0, in ms (the reference's 5 s). */
export const RECV_WAIT_MS = 5_000;

/** How long `tcp_send`/`udp_send` may take before returning 0, in ms (the reference's 5 s). */
export const SEND_WAIT_MS = 5_000;

/** The most bytes one `tcp_recv`/`udp_recv` returns, whatever `max_len` asks (64 KiB). */
export const MAX_RECV_BYTES = 65_536;

/** Log levels the host uses. */
export type HarnessLogLevel = "debug" | "info" | "warn" | "error";

/** Where the host's lines go: a level, a message, structured fields. Must not throw. */
export type HarnessLog = (
  level: HarnessLogLevel,
  msg: string,
  fields: Record<string, string | number | boolean | undefined>,
) => void;

/** A connected TCP stream or connected UDP socket, as the ABI needs it. */
export interface HarnessSocket {
  /**
   * Sends `data` (all of it for TCP; one datagram for UDP); resolves the bytes sent, or 0 when
   * the send failed or was refused (logged by the implementation).
   */
  send(data: Uint8Array, signal: AbortSignal): Promise<number>;
  /**
   * The next bytes (TCP: at most `maxLen`, the rest kept for the next call; UDP: one datagram
   * from the connected peer, cut to `maxLen`), waiting at most `waitMs`; undefined when nothing
   * came in time, at end of stream, or on error.
   */
  receive(maxLen: number, waitMs: number, signal: AbortSignal): Promise<Uint8Array | undefined>;
  /** Closes the socket. Idempotent. */
  close(): void;
}

/**
 * An echo reply as `icmp_recv` hands it to the plugin (JSON; `data` base64): the transport's
 * {@linkcode IcmpEchoReply} without the round-trip time, which the harness ABI does not carry.
 */
export type HarnessIcmpReply = Omit<IcmpEchoReply, "rttMs">;

/** The networking under the ABI. Each method logs its own refusals and failures. */
export interface HarnessNet {
  /** Opens a TCP connection; undefined when denied or failed. */
  connectTcp(dest: HostPort, signal: AbortSignal): Promise<HarnessSocket | undefined>;
  /** Opens a connected UDP socket; undefined when denied or failed. */
  connectUdp(dest: HostPort, signal: AbortSignal): Promise<HarnessSocket | undefined>;
  /** Sends an echo request to `target` (a name or IP, no port); false when denied or failed. */
  icmpSend(target: string, seq: number, data: Uint8Array, signal: AbortSignal): Promise<boolean>;
  /** The next echo reply within `timeoutMs`; undefined on timeout or when nothing was sent. */
  icmpReceive(timeoutMs: number, signal: AbortSignal): Promise<HarnessIcmpReply | undefined>;
  /** Most TCP + UDP sockets open at once (the policy's `max_connections`). */
  readonly maxConnections: number;
  /** Closes everything the net holds (ICMP sockets). Idempotent. */
  close(): void;
}

/**
 * The slice of Extism's `CallContext` the host functions use: `read` a block by its address,
 * `store` bytes as a new block (throws when the memory limit is reached).
 */
export interface BlockMemory {
  /** The block at `addr`, or null. */
  read(addr: bigint | number): { bytes(): Uint8Array } | null;
  /** Stores `data` as a new block; resolves its address. */
  store(data: string | Uint8Array): bigint;
}

/** A host function as Extism calls it: the call context, then the wasm arguments. */
// deno-lint-ignore no-explicit-any
export type HostFunction = (ctx: any, ...args: any[]) => Promise<number | bigint | void>;

/** Options of {@linkcode harnessFunctions}. */
export interface HarnessFunctionsOptions {
  /** The networking. */
  readonly net: HarnessNet;
  /** Where lines go. */
  readonly log: HarnessLog;
  /** Aborts every host call in flight (the plugin is being stopped). */
  readonly signal: AbortSignal;
  /** `tcp_recv`/`udp_recv` wait, in ms (default {@linkcode RECV_WAIT_MS}). */
  readonly recvWaitMs?: number;
}

/** The socket tables of one plugin instance (ids start at 1 per kind; 0 means failure). */
class Table {
  readonly #sockets = new Map<number, HarnessSocket>();
  #next = 1;

  add(socket: HarnessSocket): number {
    while (this.#sockets.has(this.#next) || this.#next === 0) {
      this.#next = (this.#next + 1) >>> 0;
    }
    const id = this.#next;
    this.#sockets.set(id, socket);
    this.#next = (this.#next + 1) >>> 0;
    return id;
  }
  get(id: number): HarnessSocket | undefined {
    return this.#sockets.get(id);
  }
  delete(id: number): HarnessSocket | undefined {
    const socket = this.#sockets.get(id);
    this.#sockets.delete(id);
    return socket;
  }
  get size(): number {
    return this.#sockets.size;
  }
  closeAll(): void {
    for (const socket of this.#sockets.values()) socket.close();
    this.#sockets.clear();
  }
}

/** The `env` host functions of one plugin instance, and how to close what they opened. */
export interface HarnessFunctions {
  /** For the Extism `functions` option: `{ env: { tcp_connect, ... } }`. */
  readonly functions: { env: Record<string, HostFunction> };
  /** Closes every socket the plugin opened and the net. Idempotent. */
  close(): void;
}

/**
 * Builds the ten harness host functions over `options.net` (one instance's socket tables).
 * Signatures (namespace `env`, as the reference):
 *
 * | function | params | result |
 * | --- | --- | --- |
 * | `tcp_connect` | i64 addr block | i32 id, 0 on failure |
 * | `tcp_send` | i32 id, i64 data block, i64 len | i32 bytes sent, 0 on failure |
 * | `tcp_recv` | i32 id, i32 max_len | i64 block, 0 if nothing within 5 s / EOF / error |
 * | `tcp_close` | i32 id | — |
 * | `udp_connect` / `udp_send` / `udp_recv` / `udp_close` | as TCP | as TCP |
 * | `icmp_send` | i64 target block, i64 payload block, i64 len, i32 seq | i32 1 ok / 0 failed |
 * | `icmp_recv` | i32 timeout_ms | i64 JSON block, 0 on timeout |
 */
export function harnessFunctions(options: HarnessFunctionsOptions): HarnessFunctions {
  const { net, log, signal } = options;
  const recvWaitMs = options.recvWaitMs ?? RECV_WAIT_MS;
  const tables = { tcp: new Table(), udp: new Table() };

  const readText = (ctx: BlockMemory, addr: bigint, fn: string): string | undefined => {
    const block = addr === 0n ? null : ctx.read(addr);
    if (block === null) {
      log("warn", "bad memory block", { fn, offset: String(addr) });
      return undefined;
    }
    return new TextDecoder().decode(block.bytes());
  };
  const readBytes = (
    ctx: BlockMemory,
    addr: bigint,
    len: bigint,
    fn: string,
  ): Uint8Array | undefined => {
    const block = addr === 0n ? null : ctx.read(addr);
    if (block === null) {
      log("warn", "bad memory block", { fn, offset: String(addr) });
      return undefined;
    }
    const bytes = block.bytes();
    // The reference reads the whole block and uses at most `len` bytes of it.
    const n = len < 0n ? 0 : Number(len < BigInt(bytes.length) ? len : BigInt(bytes.length));
    return bytes.slice(0, n);
  };
  const store = (ctx: BlockMemory, data: string | Uint8Array, fn: string): bigint => {
    try {
      return ctx.store(data);
    } catch (e) {
      log("warn", "cannot store the result in plugin memory", {
        fn,
        reason: (e as Error).message,
      });
      return 0n;
    }
  };
  const open = (kind: "tcp" | "udp") => async (ctx: BlockMemory, addr: bigint): Promise<number> => {
    const fn = `${kind}_connect`;
    const text = readText(ctx, BigInt(addr), fn);
    if (text === undefined) return 0;
    const dest = parseHostPort(text);
    if (typeof dest === "string") {
      log("warn", "invalid address", { fn, dest: text, reason: dest });
      return 0;
    }
    if (tables.tcp.size + tables.udp.size >= net.maxConnections) {
      log("info", "socket refused", {
        fn,
        dest: text,
        reason: `max_connections (${net.maxConnections}) reached`,
      });
      return 0;
    }
    const socket = kind === "tcp"
      ? await net.connectTcp(dest, signal)
      : await net.connectUdp(dest, signal);
    signal.throwIfAborted();
    if (socket === undefined) return 0;
    const id = tables[kind].add(socket);
    log("debug", "socket open", { fn, dest: text, id });
    return id;
  };
  const send =
    (kind: "tcp" | "udp") =>
    async (ctx: BlockMemory, id: number, addr: bigint, len: bigint): Promise<number> => {
      const fn = `${kind}_send`;
      const socket = tables[kind].get(Number(id));
      if (socket === undefined) {
        log("warn", "unknown id", { fn, id: Number(id) });
        return 0;
      }
      const data = readBytes(ctx, BigInt(addr), BigInt(len), fn);
      if (data === undefined) return 0;
      const sent = await socket.send(data, signal);
      signal.throwIfAborted();
      return sent;
    };
  const recv =
    (kind: "tcp" | "udp") =>
    async (ctx: BlockMemory, id: number, maxLen: number): Promise<bigint> => {
      const fn = `${kind}_recv`;
      const socket = tables[kind].get(Number(id));
      if (socket === undefined) {
        log("warn", "unknown id", { fn, id: Number(id) });
        return 0n;
      }
      const max = Math.min(Number(maxLen) >>> 0, MAX_RECV_BYTES);
      if (max === 0) return 0n;
      const data = await socket.receive(max, recvWaitMs, signal);
      signal.throwIfAborted();
      if (data === undefined) return 0n;
      return store(ctx, data, fn);
    };
  const close = (kind: "tcp" | "udp") => async (_ctx: BlockMemory, id: number): Promise<void> => {
    const socket = tables[kind].delete(Number(id));
    if (socket === undefined) {
      log("warn", "unknown id", { fn: `${kind}_close`, id: Number(id) });
      return;
    }
    socket.close();
    log("debug", "socket closed", { fn: `${kind}_close`, id: Number(id) });
    await Promise.resolve();
  };

  const env: Record<string, HostFunction> = {
    tcp_connect: open("tcp"),
    tcp_send: send("tcp"),
    tcp_recv: recv("tcp"),
    tcp_close: close("tcp"),
    udp_connect: open("udp"),
    udp_send: send("udp"),
    udp_recv: recv("udp"),
    udp_close: close("udp"),
    icmp_send: async (
      ctx: BlockMemory,
      target: bigint,
      payload: bigint,
      len: bigint,
      seq: number,
    ): Promise<number> => {
      const text = readText(ctx, BigInt(target), "icmp_send");
      if (text === undefined) return 0;
      const data = readBytes(ctx, BigInt(payload), BigInt(len), "icmp_send");
      if (data === undefined) return 0;
      const ok = await net.icmpSend(text, (Number(seq) >>> 0) & 0xffff, data, signal);
      signal.throwIfAborted();
      return ok ? 1 : 0;
    },
    icmp_recv: async (ctx: BlockMemory, timeoutMs: number): Promise<bigint> => {
      const reply = await net.icmpReceive(Number(timeoutMs) >>> 0, signal);
      signal.throwIfAborted();
      if (reply === undefined) return 0n;
      const json = JSON.stringify({
        source: reply.source,
        type: reply.type,
        code: reply.code,
        id: reply.id,
        seq: reply.seq,
        data: encodeBase64(reply.data),
      });
      return store(ctx, json, "icmp_recv");
    },
  };
  return {
    functions: { env },
    close(): void {
      tables.tcp.closeAll();
      tables.udp.closeAll();
      net.close();
    },
  };
}

/**
 * Waits for a send to complete, at most {@linkcode SEND_WAIT_MS}: resolves `bytes` when it did, 0
 * when it timed out or failed (logged for `fn`), as `tcp_send`/`udp_send` answer. `sending` keeps
 * running after a time-out (its rejection is handled).
 *
 * @throws {unknown} `signal.reason` when `signal` aborts first.
 */
export async function sendWithin(
  sending: Promise<unknown>,
  bytes: number,
  fn: "tcp_send" | "udp_send",
  log: HarnessLog,
  signal: AbortSignal,
): Promise<number> {
  sending.catch(() => undefined);
  try {
    if (await waitAtMost(sending, SEND_WAIT_MS, signal) !== TIMED_OUT) return bytes;
    log("warn", "send timed out", { fn, bytes });
    return 0;
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    log("warn", "send failed", { fn, reason: e instanceof Error ? e.message : String(e) });
    return 0;
  }
}

/** Sentinel of {@linkcode waitAtMost} for "the time ran out". */
export const TIMED_OUT: unique symbol = Symbol("timed out");

/**
 * Waits for `promise` at most `ms`; resolves its value, or {@linkcode TIMED_OUT}. The timer and
 * the abort listener are always removed; `promise` keeps running (the caller keeps it for later).
 *
 * @throws {unknown} `signal.reason` when `signal` aborts first; whatever `promise` rejects with.
 */
export function waitAtMost<T>(
  promise: Promise<T>,
  ms: number,
  signal: AbortSignal,
): Promise<T | typeof TIMED_OUT> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T | typeof TIMED_OUT>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    };
    const onAbort = (): void => {
      done();
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      done();
      resolve(TIMED_OUT);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then((v) => {
      done();
      resolve(v);
    }, (e) => {
      done();
      reject(e);
    });
  });
}

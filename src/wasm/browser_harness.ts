/**
 * The harness host in a browser page: the same `env` functions (`tcp_*`, `udp_*`, `icmp_*`) as
 * the server host, backed by a {@linkcode WasmnetClient}, so a plugin reaches the network through
 * the wasmnet proxy under the server's policy (a denied destination returns 0, as on the server).
 * Browser-safe: imports `src/client` and `@extism/extism` only.
 *
 * Differences from the server host: the policy, `max_connections` and bandwidth are the server's
 * (per WebSocket session); `icmp_send` waits for the server's answer to the `ping` op (at most
 * {@linkcode BROWSER_PING_TIMEOUT_MS}) so that a denial returns 0, and `icmp_recv` hands over the
 * reply it got; without `crossOriginIsolated` (no SharedArrayBuffer) the plugin runs on the page's
 * thread with host calls suspended through JSPI, so the time limit is enforced only while the
 * plugin waits in a host call: a loop without host calls blocks the page.
 *
 * @example
 * ```ts ignore
 * import { WasmnetClient } from "../client/mod.ts";
 * import { loadBrowserPlugin } from "./browser_harness.ts";
 * const client = new WasmnetClient("ws://127.0.0.1:9000/");
 * await client.ready();
 * const plugin = await loadBrowserPlugin(wasmBytes, { client });
 * const page = new TextDecoder().decode(await plugin.call("run", "example.com:80/"));
 * await plugin.close();
 * ```
 *
 * @module
 */
import type {
  Datagram,
  WasmnetClient,
  WasmnetDatagramSocket,
  WasmnetSocket,
} from "../client/mod.ts";
import {
  type HarnessIcmpReply,
  type HarnessLog,
  type HarnessNet,
  type HarnessSocket,
  type HostPort,
  MAX_RECV_BYTES,
  sendWithin,
  TIMED_OUT,
  waitAtMost,
} from "./_abi.ts";
import { HarnessPlugin, type PluginLimits } from "./_plugin.ts";
import { formatHostPort } from "../protocol/host_port.ts";

export { HarnessPlugin, PluginError, type PluginErrorCode } from "./_plugin.ts";

/** How long the server waits for an echo reply of a plugin's `icmp_send`, in ms. */
export const BROWSER_PING_TIMEOUT_MS = 5_000;

/** Options of {@linkcode loadBrowserPlugin}. */
export interface BrowserHarnessOptions extends PluginLimits {
  /** A connected client: every socket of the plugin is one of its sockets. */
  readonly client: WasmnetClient;
  /** Where host lines go (default: nowhere). */
  readonly log?: HarnessLog | undefined;
  /**
   * Run the module in a worker (needs `crossOriginIsolated`; default: when the page is): the
   * time limit then stops loops without host calls too.
   */
  readonly runInWorker?: boolean | undefined;
}

/**
 * Loads `wasm` as a harness plugin whose sockets are `options.client`'s.
 *
 * @throws {PluginError} `invalid` when `wasm` is not WebAssembly or does not instantiate (for
 *   example, a browser without JSPI and not cross-origin isolated cannot run async host
 *   functions).
 */
export function loadBrowserPlugin(
  wasm: Uint8Array,
  options: BrowserHarnessOptions,
): Promise<HarnessPlugin> {
  const log = options.log ?? ((): void => {});
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  return HarnessPlugin.load(wasm, {
    net: new ClientNet(options.client, log),
    log,
    runInWorker: options.runInWorker ?? isolated,
    timeoutMs: options.timeoutMs,
    maxMemoryMib: options.maxMemoryMib,
    recvWaitMs: options.recvWaitMs,
  });
}

function reason(e: unknown): { code: string; msg: string } {
  const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "";
  return { code, msg: e instanceof Error ? e.message : String(e) };
}

class ClientNet implements HarnessNet {
  readonly #client: WasmnetClient;
  readonly #log: HarnessLog;
  readonly #replies: HarnessIcmpReply[] = [];
  readonly maxConnections = Infinity;

  constructor(client: WasmnetClient, log: HarnessLog) {
    this.#client = client;
    this.#log = log;
  }

  #refused(fn: string, dest: string, e: unknown): undefined {
    const { code, msg } = reason(e);
    this.#log(
      code === "EDENIED" ? "info" : "warn",
      code === "EDENIED" ? "socket denied" : "socket failed",
      {
        fn,
        dest,
        code,
        reason: msg,
      },
    );
    return undefined;
  }

  connectTcp(dest: HostPort, signal: AbortSignal): Promise<HarnessSocket | undefined> {
    return this.#open(
      "tcp_connect",
      this.#client.openTcp(dest.host, dest.port),
      dest,
      signal,
      (s) => new ClientStream(s, this.#log),
    );
  }

  connectUdp(dest: HostPort, signal: AbortSignal): Promise<HarnessSocket | undefined> {
    return this.#open(
      "udp_connect",
      this.#client.openUdp(dest.host, dest.port),
      dest,
      signal,
      (s) => new ClientDatagrams(s, this.#log),
    );
  }

  /** Waits (at most 60 s) for `socket` to open, then wraps it; a refusal is logged, undefined. */
  async #open<S extends { opened: Promise<unknown>; close(): Promise<void> }>(
    fn: "tcp_connect" | "udp_connect",
    socket: S,
    dest: HostPort,
    signal: AbortSignal,
    wrap: (socket: S) => HarnessSocket,
  ): Promise<HarnessSocket | undefined> {
    try {
      await waitAtMost(socket.opened, 60_000, signal);
    } catch (e) {
      if (signal.aborted) {
        void socket.close().catch(() => undefined);
        throw signal.reason;
      }
      return this.#refused(fn, formatHostPort(dest.host, dest.port), e);
    }
    return wrap(socket);
  }

  async icmpSend(
    target: string,
    seq: number,
    data: Uint8Array,
    signal: AbortSignal,
  ): Promise<boolean> {
    const ping = this.#client.ping(target, { seq, data, timeoutMs: BROWSER_PING_TIMEOUT_MS });
    ping.catch(() => undefined);
    try {
      const reply = await waitAtMost(ping, BROWSER_PING_TIMEOUT_MS + 5_000, signal);
      if (reply !== TIMED_OUT) {
        // The echo identifier is the server's; the ping op does not carry it.
        this.#replies.push({ ...reply, id: 0 });
      }
      return true;
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      const { code, msg } = reason(e);
      // The request went out; no reply came in time: icmp_recv will say so.
      if (code === "ESERVER" && /timed out/.test(msg)) return true;
      this.#refused("icmp_send", target, e);
      return false;
    }
  }

  icmpReceive(_timeoutMs: number, _signal: AbortSignal): Promise<HarnessIcmpReply | undefined> {
    return Promise.resolve(this.#replies.shift());
  }

  close(): void {
    this.#replies.length = 0;
  }
}

type Read = { ok: true; bytes: Uint8Array | undefined } | { ok: false; error: unknown };

/** A client TCP socket: a read survives a recv's timeout and is kept for the next recv. */
class ClientStream implements HarnessSocket {
  readonly #socket: WasmnetSocket;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #log: HarnessLog;
  #pending: Promise<Read> | undefined;
  #rest: Uint8Array | undefined;
  #ended = false;

  constructor(socket: WasmnetSocket, log: HarnessLog) {
    this.#socket = socket;
    this.#reader = socket.readable.getReader();
    this.#writer = socket.writable.getWriter();
    this.#log = log;
  }

  send(data: Uint8Array, signal: AbortSignal): Promise<number> {
    return sendWithin(this.#writer.write(data), data.length, "tcp_send", this.#log, signal);
  }

  async receive(
    maxLen: number,
    waitMs: number,
    signal: AbortSignal,
  ): Promise<Uint8Array | undefined> {
    if (this.#rest === undefined) {
      if (this.#ended) return undefined;
      this.#pending ??= this.#reader.read().then(
        (r): Read => ({ ok: true, bytes: r.done ? undefined : r.value }),
        (error): Read => ({ ok: false, error }),
      );
      const read = await waitAtMost(this.#pending, waitMs, signal);
      if (read === TIMED_OUT) return undefined;
      this.#pending = undefined;
      if (!read.ok || read.bytes === undefined) {
        this.#ended = true;
        return undefined;
      }
      this.#rest = read.bytes;
    }
    const max = Math.min(maxLen, MAX_RECV_BYTES);
    const out = this.#rest.subarray(0, max);
    this.#rest = this.#rest.length > max ? this.#rest.subarray(max) : undefined;
    return out;
  }

  close(): void {
    this.#reader.releaseLock();
    this.#writer.releaseLock();
    void this.#socket.close().catch(() => undefined);
  }
}

type Received = IteratorResult<Datagram> | { error: unknown };

/** A client UDP socket "connected" by the server (`connect_udp`). */
class ClientDatagrams implements HarnessSocket {
  readonly #socket: WasmnetDatagramSocket;
  readonly #iterator: AsyncIterator<Datagram>;
  readonly #log: HarnessLog;
  #pending: Promise<Received> | undefined;

  constructor(socket: WasmnetDatagramSocket, log: HarnessLog) {
    this.#socket = socket;
    this.#iterator = socket[Symbol.asyncIterator]();
    this.#log = log;
  }

  send(data: Uint8Array, signal: AbortSignal): Promise<number> {
    return sendWithin(this.#socket.send(data), data.length, "udp_send", this.#log, signal);
  }

  async receive(
    maxLen: number,
    waitMs: number,
    signal: AbortSignal,
  ): Promise<Uint8Array | undefined> {
    this.#pending ??= this.#iterator.next().catch((error) => ({ error }));
    const got = await waitAtMost(this.#pending, waitMs, signal);
    if (got === TIMED_OUT) return undefined;
    this.#pending = undefined;
    if ("error" in got || got.done) return undefined;
    return got.value.data.subarray(0, maxLen);
  }

  close(): void {
    void this.#socket.close().catch(() => undefined);
  }
}

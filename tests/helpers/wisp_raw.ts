/**
 * A minimal Wisp client on a browser-style `WebSocket` and the project's own codec, for tests
 * that need to see and time every packet (handshakes, CONTINUE credit, CLOSE reasons). It behaves
 * like a real client where that matters: it spends one credit per DATA packet and waits for a
 * CONTINUE when it has none.
 *
 * @module
 */
import {
  decodePacket,
  encodeInfo,
  encodePacket,
  ExtensionId,
  StreamType,
  type WispExtension,
  type WispPacket,
} from "../../src/wisp/mod.ts";

/** How long {@linkcode RawWisp.next} waits by default, in ms. */
const WAIT_MS = 10_000;

/** Options of {@linkcode RawWisp.open}. */
export interface RawWispOptions {
  /** Offer this subprotocol (Wisp v2); none = v1. */
  protocol?: string;
  /**
   * v2: answer the server's INFO with these extensions (default: UDP and stream open
   * confirmation); `false` = send no INFO (a test of the handshake itself).
   */
  info?: readonly WispExtension[] | false;
}

/** A Wisp connection whose packets a test reads one by one. */
export class RawWisp implements AsyncDisposable {
  readonly ws: WebSocket;
  /** Every packet received, in order (consumed by {@linkcode RawWisp.next}). */
  readonly #inbox: WispPacket[] = [];
  #wake: (() => void) | undefined;
  /** Credit per stream: the last CONTINUE value minus the DATA packets sent since. */
  readonly credit = new Map<number, number>();
  /** The buffer size from CONTINUE on stream 0. */
  buffer = 0;
  /** Close code and reason once the WebSocket closed. */
  closed: { code: number; reason: string } | undefined;
  readonly #closedPromise: Promise<void>;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    let markClosed = (): void => {};
    this.#closedPromise = new Promise((r) => markClosed = r);
    ws.onmessage = (e: MessageEvent) => {
      if (typeof e.data === "string") return;
      const packet = decodePacket(new Uint8Array(e.data as ArrayBuffer));
      if (packet.type === "continue") {
        if (packet.stream === 0) this.buffer = packet.remaining;
        else this.credit.set(packet.stream, packet.remaining);
      }
      this.#inbox.push(packet);
      this.#notify();
    };
    ws.onclose = (e: CloseEvent) => {
      this.closed = { code: e.code, reason: e.reason };
      markClosed();
      this.#notify();
    };
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Opens a WebSocket to `url` (e.g. `ws://127.0.0.1:PORT/wisp/`) without any handshake. */
  static async connect(url: string, protocol?: string): Promise<RawWisp> {
    const ws = protocol === undefined ? new WebSocket(url) : new WebSocket(url, protocol);
    ws.binaryType = "arraybuffer";
    const client = new RawWisp(ws);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`WebSocket to ${url} failed`));
    });
    return client;
  }

  /**
   * Connects and completes the handshake: v1 waits for CONTINUE(0); v2 waits for INFO, sends the
   * client's INFO, then waits for CONTINUE(0).
   */
  static async open(url: string, options: RawWispOptions = {}): Promise<RawWisp> {
    const client = await RawWisp.connect(url, options.protocol);
    try {
      if (options.protocol !== undefined) {
        await client.next((p) => p.type === "info");
        if (options.info === false) return client;
        const none = new Uint8Array(0);
        client.send(encodeInfo(
          2,
          0,
          options.info ?? [
            { id: ExtensionId.udp, payload: none },
            { id: ExtensionId.streamOpen, payload: none },
          ],
        ));
      }
      await client.next((p) => p.type === "continue" && p.stream === 0);
    } catch (e) {
      await client.close();
      throw e;
    }
    return client;
  }

  /** Sends raw bytes (a packet, or anything a hostile test wants). */
  send(bytes: Uint8Array | string): void {
    this.ws.send(bytes);
  }

  /** Sends CONNECT for `stream` and gives it the connection's buffer as credit. */
  connect(stream: number, host: string, port: number, udp = false): void {
    this.credit.set(stream, this.buffer);
    this.send(encodePacket({
      type: "connect",
      stream,
      streamType: udp ? StreamType.udp : StreamType.tcp,
      port,
      host,
    }));
  }

  /** Sends DATA on `stream`, spending one credit (TCP streams). */
  data(stream: number, payload: Uint8Array): void {
    this.credit.set(stream, (this.credit.get(stream) ?? 0) - 1);
    this.send(encodePacket({ type: "data", stream, payload }));
  }

  /** Sends CLOSE on `stream` with `reason`. */
  closeStream(stream: number, reason = 0x02): void {
    this.send(encodePacket({ type: "close", stream, reason }));
  }

  /**
   * The first unread packet that `match` accepts (earlier non-matching ones stay unread).
   *
   * @throws {Error} after `timeoutMs`, or when the WebSocket closed first.
   */
  async next(match: (p: WispPacket) => boolean, timeoutMs = WAIT_MS): Promise<WispPacket> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const i = this.#inbox.findIndex(match);
      if (i >= 0) return this.#inbox.splice(i, 1)[0] as WispPacket;
      if (this.closed) {
        throw new Error(`WebSocket closed (${this.closed.code} ${this.closed.reason})`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a Wisp packet");
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** The CLOSE packet of `stream` (its reason). */
  async closeOf(stream: number, timeoutMs = WAIT_MS): Promise<number> {
    const p = await this.next((p) => p.type === "close" && p.stream === stream, timeoutMs);
    return (p as Extract<WispPacket, { type: "close" }>).reason;
  }

  /** Collects `bytes` of DATA on `stream`. */
  async collect(stream: number, bytes: number, timeoutMs = WAIT_MS): Promise<Uint8Array> {
    const out = new Uint8Array(bytes);
    let got = 0;
    while (got < bytes) {
      const p = await this.next(
        (p) => (p.type === "data" || p.type === "close") && p.stream === stream,
        timeoutMs,
      );
      if (p.type === "close") throw new Error(`stream ${stream} closed (reason ${p.reason})`);
      if (p.type !== "data") continue;
      out.set(p.payload.subarray(0, bytes - got), got);
      got += p.payload.byteLength;
    }
    return out;
  }

  /** Resolves once the server closed the WebSocket (or after `timeoutMs`, rejecting). */
  async waitClosed(timeoutMs = WAIT_MS): Promise<{ code: number; reason: string }> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#closedPromise,
      new Promise((_, reject) =>
        timer = setTimeout(() => reject(new Error("WebSocket did not close")), timeoutMs)
      ),
    ]).finally(() => clearTimeout(timer));
    return this.closed ?? { code: 0, reason: "" };
  }

  /** Closes the WebSocket and waits for the close to complete. Idempotent. */
  async close(): Promise<void> {
    if (!this.closed) {
      try {
        this.ws.close();
      } catch {
        // already closing
      }
    }
    await this.#closedPromise;
  }

  /** Same as {@linkcode RawWisp.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The Wisp URL of a server whose wasmnet URL is `url` (`ws://host:port/`). */
export function wispUrl(url: string, prefix = "/wisp/"): string {
  return new URL(prefix, url).href;
}

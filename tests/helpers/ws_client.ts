/**
 * A real WebSocket client for end-to-end tests: sends wasmnet requests in JSON or binary framing
 * and waits for events.
 *
 * @module
 */
import {
  decodeEvent,
  encodeRequest,
  type Framing,
  type Request,
  type WireEvent,
} from "../../src/protocol/mod.ts";

/** An id no test opens: `close` on it is a cheap round trip (see {@linkcode TestClient.settle}). */
export const PROBE_ID = 4_000_000_000;

/** Default time a test waits for an event, in ms. */
export const EVENT_TIMEOUT_MS = 10_000;

/** A wasmnet test client over a real WebSocket. */
export class TestClient implements AsyncDisposable {
  readonly ws: WebSocket;
  framing: Framing;
  readonly #events: WireEvent[] = [];
  readonly #waiters = new Set<() => void>();
  #closed: Promise<void>;
  #isClosed = false;
  /** Raw messages received, in order (string for text, Uint8Array for binary). */
  readonly raw: (string | Uint8Array)[] = [];
  /** Keep raw messages (off by default to save memory). */
  keepRaw = false;

  private constructor(ws: WebSocket, framing: Framing) {
    this.ws = ws;
    this.framing = framing;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e: MessageEvent<string | ArrayBuffer>) => {
      const msg = typeof e.data === "string" ? e.data : new Uint8Array(e.data);
      if (this.keepRaw) this.raw.push(msg);
      this.#events.push(decodeEvent(msg));
      this.#wake();
    };
    this.#closed = new Promise((resolve) => {
      ws.addEventListener("close", (e: CloseEvent) => {
        this.closeCode = e.code;
        this.#isClosed = true;
        this.#wake();
        resolve();
      });
    });
  }

  /** Opens a WebSocket to `url` and resolves once it is open. */
  static async open(url: string, framing: Framing = "json"): Promise<TestClient> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = (e) =>
        reject(new Error(`WebSocket to ${url} failed: ${(e as ErrorEvent).message}`));
    });
    ws.onerror = null;
    return new TestClient(ws, framing);
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  /** The close status code (RFC 6455 §7.4), once the WebSocket has closed. */
  closeCode: number | undefined;

  /** True once the server closed the WebSocket. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Sends a request in this client's framing. */
  send(req: Request): void {
    this.ws.send(encodeRequest(req, this.framing));
  }

  /** Sends a raw message (text or binary) as is. */
  sendRaw(msg: string | Uint8Array): void {
    this.ws.send(msg);
  }

  /**
   * Resolves the first received event (in order) matching `match`, removing it; events before it
   * stay queued.
   *
   * @throws {Error} after `timeoutMs` or when the WebSocket closes first.
   */
  async next(
    match: (ev: WireEvent) => boolean = () => true,
    timeoutMs = EVENT_TIMEOUT_MS,
  ): Promise<WireEvent> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const i = this.#events.findIndex(match);
      const [found] = i >= 0 ? this.#events.splice(i, 1) : [];
      if (found) return found;
      if (this.#isClosed) {
        throw new Error(`WebSocket closed while waiting; queued: ${this.describeQueue()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for an event; queued: ${this.describeQueue()}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.add(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** Next event for socket `id`. */
  nextFor(id: number, timeoutMs?: number): Promise<WireEvent> {
    return this.next((ev) => ev.id === id, timeoutMs);
  }

  /**
   * Makes a round trip (`close` on an id no test opens, answered `unknown id`), so every event the
   * server emitted before answering it is in this client's queue.
   */
  async settle(): Promise<void> {
    this.send({ op: "close", id: PROBE_ID });
    const ev = await this.nextFor(PROBE_ID);
    if (ev.ev !== "error" || ev.msg !== `unknown id ${PROBE_ID}`) {
      throw new Error(`settle: unexpected ${JSON.stringify(ev)}`);
    }
  }

  /** Events for `id` still queued (not taken by `next`). */
  queuedFor(id: number): WireEvent[] {
    return this.#events.filter((e) => e.id === id);
  }

  /** Events queued and not yet taken. */
  get queued(): readonly WireEvent[] {
    return this.#events;
  }

  /** A short description of the queued events, for failure messages. */
  describeQueue(): string {
    return JSON.stringify(
      this.#events.slice(0, 10).map((e) => ("data" in e ? { ...e, data: e.data.byteLength } : e)),
    );
  }

  /**
   * Collects `data` payload of socket `id` until `bytes` bytes arrived; fails on another event
   * for `id` (closed, error) before that.
   */
  async collect(id: number, bytes: number, timeoutMs = 30_000): Promise<Uint8Array> {
    const out = new Uint8Array(bytes);
    let have = 0;
    while (have < bytes) {
      const ev = await this.nextFor(id, timeoutMs);
      if (ev.ev !== "data") throw new Error(`expected data for ${id}, got ${JSON.stringify(ev)}`);
      if (have + ev.data.byteLength > bytes) throw new Error(`more data than expected for ${id}`);
      out.set(ev.data, have);
      have += ev.data.byteLength;
    }
    return out;
  }

  /** Connects socket `id` to `addr:port` and asserts `connected`. */
  async connect(id: number, addr: string, port: number): Promise<void> {
    this.send({ op: "connect", id, addr, port });
    const ev = await this.nextFor(id);
    if (ev.ev !== "connected") {
      throw new Error(`connect ${id} to ${addr}:${port}: ${JSON.stringify(ev)}`);
    }
  }

  /** Closes the WebSocket and waits for the close to complete. */
  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close();
    await this.#closed;
  }

  /** Waits until the server closes the WebSocket. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  /** Same as {@linkcode TestClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** `n` random bytes. */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

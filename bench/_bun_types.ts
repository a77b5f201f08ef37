/**
 * The few shapes of Bun's API that `toy_bun.ts` uses, so Deno can type-check it (Bun's own
 * `@types/bun` is not installed). Reach the global as
 * `(globalThis as unknown as { Bun: BunApi }).Bun`. Types only.
 *
 * @module
 */

/** A TCP socket of `Bun.connect` (`T`: the `data` slot a handler keeps on it). */
export interface BunSocket {
  /** Writes what the kernel takes now; returns the bytes taken (the rest is the caller's). */
  write(data: Uint8Array): number;
  /** Half-closes after the pending writes. */
  end(): void;
  /** Stops / restarts reading (the `data` handler). */
  pause(): void;
  resume(): void;
}

/** The handlers of a `Bun.connect` socket. */
export interface BunSocketHandlers {
  open?(socket: BunSocket): void;
  data?(socket: BunSocket, data: Uint8Array): void;
  /** The socket can take more writes. */
  drain?(socket: BunSocket): void;
  close?(socket: BunSocket): void;
  error?(socket: BunSocket, error: Error): void;
  connectError?(socket: BunSocket, error: Error): void;
}

/** A server-side WebSocket of `Bun.serve` (`T`: its `data`). */
export interface BunServerWebSocket<T> {
  data: T;
  /** -1: queued, but the send buffer is over its limit (wait for `drain`); 0: dropped; else bytes. */
  send(data: Uint8Array | string): number;
  close(code?: number, reason?: string): void;
}

/** What `Bun.serve` hands `fetch`. */
export interface BunServer {
  /** Upgrades to a WebSocket with `data`; false when the request is no WebSocket handshake. */
  upgrade(req: Request, options?: { data?: unknown }): boolean;
  readonly port: number;
  readonly hostname: string;
}

/** The `websocket` handlers of `Bun.serve`. */
export interface BunWebSocketHandlers<T> {
  open?(ws: BunServerWebSocket<T>): void;
  message(ws: BunServerWebSocket<T>, message: string | Uint8Array): void;
  /** The send buffer went below its limit again. */
  drain?(ws: BunServerWebSocket<T>): void;
  close?(ws: BunServerWebSocket<T>, code: number, reason: string): void;
}

/** The `Bun` global, as far as the benchmark uses it. */
export interface BunApi {
  serve<T>(options: {
    hostname: string;
    port: number;
    fetch(req: Request, server: BunServer): Response | undefined;
    websocket: BunWebSocketHandlers<T>;
  }): BunServer;
  connect(options: {
    hostname: string;
    port: number;
    socket: BunSocketHandlers;
  }): Promise<BunSocket>;
}

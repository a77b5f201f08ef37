/**
 * Inbound TCP through `node:net` (`net.createServer`, Node 22 API, as Bun implements it).
 *
 * @module
 */
import * as net from "node:net";
import type { NetAddr, StreamListener } from "../types.ts";
import { BadResource, osError } from "../errors.ts";
import { NodeSocketConn, tcpAddr } from "../_node_conn.ts";

/**
 * Most accepted connections waiting for `accept()`: 128 (the usual listen backlog). The kernel
 * queue cannot be left to fill as with `Deno.listen`, because `node:net` accepts on its own;
 * a connection beyond this bound is closed at once.
 */
export const MAX_PENDING_ACCEPTS = 128;

/**
 * Listens for TCP connections on `ip:port` (port 0 picks a free port; read it from `addr`), and
 * resolves the listener once it listens (`node:net` reports the outcome asynchronously). The
 * backlog is the runtime's default.
 *
 * @throws {Error} (as a rejected promise) named as Deno names the OS error: `AddrInUse` with
 * message `Address already in use (os error 98)`, `AddrNotAvailable`, `PermissionDenied`, ...
 */
export function listenTcp(ip: string, port: number): Promise<NodeTcpListener> {
  return new Promise<NodeTcpListener>((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true });
    const onError = (e: Error): void => {
      server.off("listening", onListening);
      server.close();
      reject(osError(e));
    };
    const onListening = (): void => {
      server.off("error", onError);
      resolve(new NodeTcpListener(server));
    };
    server.once("error", onError);
    server.once("listening", onListening);
    try {
      server.listen({ host: ip, port, exclusive: true });
    } catch (e) {
      server.off("error", onError);
      server.off("listening", onListening);
      reject(osError(e));
    }
  });
}

/**
 * A listening `net.Server` as a {@linkcode StreamListener}: connections wait in a queue of at
 * most {@linkcode MAX_PENDING_ACCEPTS} until `accept()` takes them, as
 * {@linkcode NodeSocketConn}s (TCP_NODELAY on, half-close allowed) with `remoteAddr`.
 */
export class NodeTcpListener implements StreamListener {
  /** The local address (the bound port). */
  readonly addr: NetAddr;
  readonly #server: net.Server;
  readonly #pending: NodeSocketConn[] = [];
  #waiters: (() => void)[] = [];
  #closed = false;
  #error: unknown;

  /** @param server a listening server (owned by this object from now on). */
  constructor(server: net.Server) {
    this.#server = server;
    const local = server.address();
    if (local === null || typeof local === "string") {
      throw new TypeError("Cannot use the server: it is not a listening TCP server");
    }
    this.addr = tcpAddr(local.address, local.port);
    server.on("connection", (sock: net.Socket) => {
      if (this.#closed || this.#pending.length >= MAX_PENDING_ACCEPTS) {
        sock.destroy();
        return;
      }
      sock.setNoDelay(true);
      this.#pending.push(new NodeSocketConn(sock));
      this.#wake();
    });
    server.on("error", (e: Error) => {
      this.#error ??= osError(e);
      this.#wake();
    });
  }

  /**
   * Waits for the next connection.
   *
   * @throws {BadResource} once the listener is closed (also while waiting); the server's error
   * when it failed.
   */
  async accept(): Promise<NodeSocketConn> {
    for (;;) {
      if (this.#closed) throw new BadResource("the listener is closed");
      const conn = this.#pending.shift();
      if (conn !== undefined) return conn;
      if (this.#error !== undefined) throw this.#error;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /**
   * Stops listening at once (the listening socket is closed; accepted connections stay open) and
   * closes connections not yet accepted. A pending `accept` rejects with `BadResource`.
   * Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const conn of this.#pending.splice(0)) conn.close();
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    if (waiters.length === 0) return;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

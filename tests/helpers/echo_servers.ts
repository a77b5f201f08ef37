/**
 * Real loopback peers for end-to-end tests: TCP/TLS echo, TCP sink, UDP echo and a
 * one-body HTTP server. Every helper listens on port 0, tracks what it opened, and
 * closes all of it in `close()` / `[Symbol.asyncDispose]`, so tests pass the op and
 * resource sanitizers with `await using`.
 *
 * @module
 */

/** Loopback addresses the helpers listen on. */
export type LoopbackHostname = "127.0.0.1" | "::1";

/** Options shared by the TCP helpers. */
export interface TcpServerOptions {
  /** Loopback address to listen on; defaults to `127.0.0.1`. */
  hostname?: LoopbackHostname;
}

/** A running stream server (TCP or TLS echo). */
export interface StreamServer extends AsyncDisposable {
  /** The address the server listens on. */
  readonly hostname: LoopbackHostname;
  /** The port the OS picked. */
  readonly port: number;
  /** Connections accepted so far (live or finished). */
  readonly accepted: number;
  /** Connections currently open. */
  readonly live: number;
  /** Stops listening, closes every live connection and waits for all tasks. Idempotent. */
  close(): Promise<void>;
}

/** A running TCP sink: reads and counts everything, never writes. */
export interface TcpSink extends StreamServer {
  /** Bytes received so far over all connections. */
  readonly bytes: number;
  /**
   * Resolves once at least `count` bytes arrived in total; rejects with an `Error` if the
   * sink is closed first. Creates no timer; bound it with the test's own timeout.
   */
  waitForBytes(count: number): Promise<void>;
}

/** Options for {@linkcode startTlsEcho}. */
export interface TlsEchoOptions extends TcpServerOptions {
  /** PEM certificate chain served to clients. */
  cert: string;
  /** PEM private key of `cert`. */
  key: string;
}

/** Options for {@linkcode startUdpEcho}. */
export interface UdpEchoOptions {
  /** Loopback address to listen on; defaults to `127.0.0.1`. */
  hostname?: LoopbackHostname;
}

/** A running UDP echo server. */
export interface UdpEcho extends AsyncDisposable {
  /** The address the server listens on. */
  readonly hostname: LoopbackHostname;
  /** The UDP port the OS picked. */
  readonly port: number;
  /** Datagrams received (and echoed) so far. */
  readonly datagrams: number;
  /** Closes the socket and waits for the receive loop. Idempotent. */
  close(): Promise<void>;
}

/** A running HTTP server that answers every request with the same body. */
export interface HttpServer extends AsyncDisposable {
  /** Always `127.0.0.1`. */
  readonly hostname: "127.0.0.1";
  /** The TCP port the OS picked. */
  readonly port: number;
  /** Requests answered so far. */
  readonly requests: number;
  /** Shuts the server down gracefully and waits until it has finished. Idempotent. */
  close(): Promise<void>;
}

const READ_BUFFER_BYTES = 64 * 1024;

/** Errors that only mean "the peer or our own close() ended this connection". */
function isConnectionEnd(err: unknown): boolean {
  return err instanceof Deno.errors.BadResource ||
    err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.NotConnected ||
    err instanceof Deno.errors.ConnectionAborted ||
    // TLS: handshake failures and a peer that vanished without close_notify.
    err instanceof Deno.errors.InvalidData ||
    err instanceof Deno.errors.UnexpectedEof;
}

function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // already closed
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/** Handles one accepted connection; the caller closes it when the returned promise settles. */
type ConnHandler = (conn: Deno.Conn) => Promise<void>;

interface ServedListener {
  accepted(): number;
  live(): number;
  close(): Promise<void>;
}

/**
 * Runs an accept loop over `listener`, one `handler` task per connection. close() stops
 * the listener, closes every live connection (which unblocks their reads) and awaits every
 * task. Unexpected errors are kept and rethrown by close().
 */
function serveListener(listener: Deno.Listener, handler: ConnHandler): ServedListener {
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  let closed = false;
  let failure: unknown;

  const fail = (err: unknown): void => {
    if (!closed && !isConnectionEnd(err)) failure ??= err;
  };

  const acceptLoop = (async (): Promise<void> => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (closed || err instanceof Deno.errors.BadResource) return;
        // A handshake-level failure of one client must not stop the server.
        if (isConnectionEnd(err)) continue;
        throw err;
      }
      if (closed) {
        closeQuietly(conn);
        return;
      }
      accepted++;
      conns.add(conn);
      const task = handler(conn).catch(fail).finally(() => {
        conns.delete(conn);
        closeQuietly(conn);
        tasks.delete(task);
      });
      tasks.add(task);
    }
  })().catch(fail);

  let closing: Promise<void> | undefined;
  return {
    accepted: () => accepted,
    live: () => conns.size,
    close(): Promise<void> {
      closing ??= (async () => {
        closed = true;
        closeQuietly(listener);
        for (const conn of conns) closeQuietly(conn);
        await acceptLoop;
        await Promise.all(tasks);
        if (failure !== undefined) throw failure;
      })();
      return closing;
    },
  };
}

function streamServer(
  hostname: LoopbackHostname,
  listener: Deno.Listener,
  served: ServedListener,
): StreamServer {
  const server: StreamServer = {
    hostname,
    port: (listener.addr as Deno.NetAddr).port,
    get accepted(): number {
      return served.accepted();
    },
    get live(): number {
      return served.live();
    },
    close: (): Promise<void> => served.close(),
    [Symbol.asyncDispose]: (): Promise<void> => served.close(),
  };
  return server;
}

/** Echoes every byte back; on EOF half-closes its write side, then closes. */
async function echo(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(READ_BUFFER_BYTES);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) break;
    await writeAll(conn, buf.subarray(0, n));
  }
  await conn.closeWrite();
}

/**
 * Starts a TCP echo server on loopback port 0. Each connection gets back every byte it
 * sends; when the client half-closes (EOF), the server half-closes too and drops the
 * connection. close() closes the listener and all live connections.
 *
 * @example Echo one message
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { startTcpEcho } from "./echo_servers.ts";
 *
 * await using server = await startTcpEcho();
 * using conn = await Deno.connect({ hostname: server.hostname, port: server.port });
 * await conn.write(new TextEncoder().encode("hi"));
 * await conn.closeWrite();
 * const reply = await new Response(conn.readable).text();
 * strictEqual(reply, "hi");
 * ```
 */
export function startTcpEcho(options: TcpServerOptions = {}): Promise<StreamServer> {
  const hostname = options.hostname ?? "127.0.0.1";
  const listener = Deno.listen({ transport: "tcp", hostname, port: 0 });
  return Promise.resolve(streamServer(hostname, listener, serveListener(listener, echo)));
}

/**
 * Starts a TCP server on loopback port 0 that reads and counts every byte and never
 * writes. A connection is closed when the client sends EOF.
 *
 * @example Count bytes
 * ```ts
 * import { startTcpSink } from "./echo_servers.ts";
 *
 * await using sink = await startTcpSink();
 * using conn = await Deno.connect({ hostname: sink.hostname, port: sink.port });
 * await conn.write(new Uint8Array(1000));
 * await sink.waitForBytes(1000);
 * ```
 */
export function startTcpSink(options: TcpServerOptions = {}): Promise<TcpSink> {
  const hostname = options.hostname ?? "127.0.0.1";
  const listener = Deno.listen({ transport: "tcp", hostname, port: 0 });
  let bytes = 0;
  const waiters = new Set<{ count: number; resolve(): void; reject(err: Error): void }>();
  let closed = false;

  const served = serveListener(listener, async (conn) => {
    const buf = new Uint8Array(READ_BUFFER_BYTES);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) return;
      bytes += n;
      for (const waiter of waiters) {
        if (bytes >= waiter.count) {
          waiters.delete(waiter);
          waiter.resolve();
        }
      }
    }
  });
  const close = async (): Promise<void> => {
    closed = true;
    for (const waiter of waiters) {
      waiter.reject(new Error(`Cannot wait for ${waiter.count} bytes: sink closed at ${bytes}`));
    }
    waiters.clear();
    await served.close();
  };
  const base = streamServer(hostname, listener, served);
  const sink: TcpSink = {
    hostname,
    port: base.port,
    get accepted(): number {
      return base.accepted;
    },
    get live(): number {
      return base.live;
    },
    get bytes(): number {
      return bytes;
    },
    waitForBytes(count: number): Promise<void> {
      if (bytes >= count) return Promise.resolve();
      if (closed) {
        return Promise.reject(new Error(`Cannot wait for ${count} bytes: sink closed at ${bytes}`));
      }
      return new Promise((resolve, reject) => waiters.add({ count, resolve, reject }));
    },
    close,
    [Symbol.asyncDispose]: close,
  };
  return Promise.resolve(sink);
}

/**
 * Starts a TLS echo server on loopback port 0 with the given certificate (see
 * `makeTestPki()` in `tls_certs.ts`). Behaves like {@linkcode startTcpEcho} once the
 * handshake is done; a client that fails the handshake is dropped and not counted as an error.
 *
 * @example Echo over TLS verified against the test CA
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { startTlsEcho } from "./echo_servers.ts";
 * import { makeTestPki } from "./tls_certs.ts";
 *
 * const pki = await makeTestPki();
 * await using server = await startTlsEcho({ cert: pki.serverCert, key: pki.serverKey });
 * const tcp = await Deno.connect({ hostname: server.hostname, port: server.port });
 * using tls = await Deno.startTls(tcp, { hostname: "localhost", caCerts: [pki.caCert] });
 * await tls.write(new TextEncoder().encode("hi"));
 * await tls.closeWrite();
 * strictEqual(await new Response(tls.readable).text(), "hi");
 * ```
 */
export function startTlsEcho(options: TlsEchoOptions): Promise<StreamServer> {
  const hostname = options.hostname ?? "127.0.0.1";
  const listener = Deno.listenTls({
    transport: "tcp",
    hostname,
    port: 0,
    cert: options.cert,
    key: options.key,
  });
  return Promise.resolve(streamServer(hostname, listener, serveListener(listener, echo)));
}

/**
 * Starts a UDP server on loopback port 0 that sends every datagram back to its sender.
 *
 * @example Echo one datagram
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { startUdpEcho } from "./echo_servers.ts";
 *
 * await using server = await startUdpEcho({ hostname: "127.0.0.1" });
 * const client = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * try {
 *   await client.send(new Uint8Array([1, 2, 3]), {
 *     transport: "udp",
 *     hostname: server.hostname,
 *     port: server.port,
 *   });
 *   const [data] = await client.receive();
 *   deepStrictEqual(data, new Uint8Array([1, 2, 3]));
 * } finally {
 *   client.close();
 * }
 * ```
 */
export function startUdpEcho(options: UdpEchoOptions = {}): Promise<UdpEcho> {
  const hostname = options.hostname ?? "127.0.0.1";
  const socket = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  let datagrams = 0;
  let closed = false;
  let failure: unknown;

  const loop = (async (): Promise<void> => {
    while (!closed) {
      const [data, from] = await socket.receive();
      datagrams++;
      await socket.send(data, from);
    }
  })().catch((err: unknown) => {
    if (!closed) failure = err;
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      closed = true;
      closeQuietly(socket);
      await loop;
      if (failure !== undefined) throw failure;
    })();
    return closing;
  };
  return Promise.resolve({
    hostname,
    port: (socket.addr as Deno.NetAddr).port,
    get datagrams(): number {
      return datagrams;
    },
    close,
    [Symbol.asyncDispose]: close,
  });
}

/**
 * Starts `Deno.serve` on `127.0.0.1` port 0, answering every request with `200` and `body`
 * (`text/plain`).
 *
 * @example Fetch the body
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { startHttpServer } from "./echo_servers.ts";
 *
 * await using server = await startHttpServer("hello");
 * const res = await fetch(`http://127.0.0.1:${server.port}/`);
 * strictEqual(await res.text(), "hello");
 * ```
 */
export function startHttpServer(body: string): Promise<HttpServer> {
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen(): void {} }, () => {
    requests++;
    return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
  });
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await server.shutdown();
      await server.finished;
    })();
    return closing;
  };
  return Promise.resolve({
    hostname: "127.0.0.1",
    port: server.addr.port,
    get requests(): number {
      return requests;
    },
    close,
    [Symbol.asyncDispose]: close,
  });
}

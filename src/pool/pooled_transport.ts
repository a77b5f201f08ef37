/**
 * A {@linkcode Transport} whose TCP dials go through a {@linkcode ConnectionPool}.
 *
 * @module
 */
import type { StreamConn, Transport } from "../transport/mod.ts";
import { type ConnectionPool, PooledConn } from "./connection_pool.ts";

/**
 * Wraps `base` so that `connectTcp` is served by `pool` (a pre-dialled connection when one is
 * idle for the `ip:port`, a fresh dial otherwise); every other operation is `base`'s.
 *
 * The session calls `connectTcp` only with an address its policy allowed, so pooled connections
 * are handed out only for checked addresses. The pool's dial function should be `base.connectTcp`.
 *
 * TLS: `startTls` cannot run over a pooled connection, because the pool keeps a read in flight on
 * it (to see peer closes and banners) and the handshake needs the first bytes. So the first `startTls` to
 * an address excludes it from the pool ({@linkcode ConnectionPool.exclude}); if the connection
 * came from the pool, it is closed and a fresh connection is dialled for the handshake. Later TLS
 * dials to that address bypass the pool.
 *
 * @example
 * ```ts ignore
 * import { ConnectionPool, pooledTransport } from "./mod.ts";
 * import { denoTransport } from "../transport/mod.ts";
 * const base = denoTransport();
 * await using pool = new ConnectionPool({ perKey: 2, idleMs: 30_000, dial: base.connectTcp });
 * const transport = pooledTransport(base, pool);
 * ```
 */
export function pooledTransport(base: Transport, pool: ConnectionPool): Transport {
  // Fresh dials made by the pool on a miss, so startTls can exclude their address.
  const dialled = new WeakMap<StreamConn, { ip: string; port: number }>();
  return {
    lookup: (name, signal) => base.lookup(name, signal),
    connectTcp: async (ip, port, signal): Promise<StreamConn> => {
      if (pool.isExcluded(ip, port)) return await base.connectTcp(ip, port, signal);
      const conn = await pool.acquire(ip, port, signal);
      if (!(conn instanceof PooledConn)) dialled.set(conn, { ip, port });
      return conn;
    },
    startTls: async (conn: StreamConn, serverName, signal): Promise<StreamConn> => {
      if (!(conn instanceof PooledConn)) {
        const addr = dialled.get(conn);
        if (addr !== undefined) pool.exclude(addr.ip, addr.port);
        return await base.startTls(conn, serverName, signal);
      }
      pool.exclude(conn.ip, conn.port);
      try {
        conn.close();
      } catch {
        // already closed
      }
      const fresh = await base.connectTcp(conn.ip, conn.port, signal);
      return await base.startTls(fresh, serverName, signal);
    },
    openUdp: (family) => base.openUdp(family),
    listenTcp: (ip, port) => base.listenTcp(ip, port),
  };
}

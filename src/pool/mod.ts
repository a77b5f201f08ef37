/**
 * Pre-dialled connection pool: spare, never-used upstream TCP connections per checked `ip:port`,
 * and a transport wrapper that serves `connectTcp` from it.
 *
 * @module
 */
export {
  ConnectionPool,
  type ConnectionPoolOptions,
  DEFAULT_POOL_DIAL_TIMEOUT_MS,
  DEFAULT_POOL_IDLE_SECS,
  DEFAULT_POOL_MAX_BUFFERED_BYTES,
  DEFAULT_POOL_MAX_TOTAL,
  DEFAULT_POOL_PER_KEY,
  type DialFunction,
  PooledConn,
  type PoolStats,
} from "./connection_pool.ts";
export { pooledTransport } from "./pooled_transport.ts";

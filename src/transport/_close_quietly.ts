/**
 * Closing that tolerates "already closed".
 *
 * @module
 */

/** Calls `conn.close()`, ignoring the error of a resource that is already closed. */
export function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/**
 * The transport's default bounds (re-exported by `transport/mod.ts`).
 *
 * @module
 */

/** Default most DNS lookups in flight per transport (per server): 256. */
export const DEFAULT_MAX_LOOKUPS = 256;

/** Default most TCP dials in flight per transport (per server): 1024. */
export const DEFAULT_MAX_DIALS = 1024;

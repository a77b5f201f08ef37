/** The wasmnet (Deno) version, as in deno.json. */
export const VERSION = "0.2.0";

/** The wasmnet wire protocol version this server is compatible with. */
export const PROTOCOL_VERSION = "0.1.3";

/**
 * Constants shared by the benchmark's upstream peer and load generators (`_scenarios.mjs`, the
 * Node load generators' scenarios, repeats them: Node cannot import TypeScript).
 *
 * @module
 */

/** First byte: echo mode. */
export const MODE_ECHO = 0x45; // "E"
/** First byte: sink mode (followed by u64 BE expected total; acks the running total as u64 BE). */
export const MODE_SINK = 0x53; // "S"
/**
 * First byte: upload mode (followed by u64 BE expected total): like sink, but the total is
 * written back once, when every byte has arrived — a file upload that gets one answer at the end.
 */
export const MODE_UPLOAD = 0x55; // "U"
/** First byte: download mode (followed by u64 BE byte count). */
export const MODE_DOWNLOAD = 0x44; // "D"
/** The sink acks at least this often, in bytes. */
export const ACK_EVERY = 256 * 1024;
/** Message / write size of the throughput scenarios. */
export const CHUNK_BYTES = 64 * 1024;
/** Most unacknowledged upload bytes in flight per socket (below wasmnet's 8 MiB queue). */
export const UPLOAD_WINDOW = 4 * 1024 * 1024;

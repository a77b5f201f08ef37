/**
 * The one place that knows which runtime wasmnet runs on. It picks the runtime's server adapter
 * (`server/deno/`, `server/bun/`), transport (`transport/deno/`, `transport/bun/`) and process
 * services (arguments, files, signals, output, exit); everything below the CLI only sees the
 * neutral seams (`ServerAdapter`, `Transport`).
 *
 * @module
 */
import type { ServerAdapter } from "../server/mod.ts";
import type { Transport, TransportOptions } from "../transport/mod.ts";

/** The runtimes wasmnet runs on. */
export type RuntimeName = "deno" | "bun";

/** A runtime's adapters and process services, as the CLI uses them. */
export interface Runtime {
  /** `deno` or `bun`. */
  readonly name: RuntimeName;
  /** The runtime's version, e.g. `2.9.6` (Deno) or `1.4.5` (Bun). */
  readonly version: string;
  /** The command-line arguments after the script (or the compiled binary's name). */
  args(): string[];
  /**
   * An environment variable, or undefined when it is unset or may not be read (Deno: without the
   * env permission for it; never prompts).
   */
  env(name: string): string | undefined;
  /** Reads a UTF-8 text file. @throws {Error} the runtime's error (not found, permission, ...). */
  readTextFile(path: string): Promise<string>;
  /**
   * Queues `text` for stdout or stderr and returns at once: the runtime writes it asynchronously
   * (one write in flight per stream), so a reader that does not drain the output never blocks the
   * event loop. At most 1 MiB waits per stream; text beyond that is dropped and counted
   * (`droppedLogLines()` in `src/log/`). Never throws.
   */
  write(stream: "stdout" | "stderr", text: string): void;
  /**
   * Resolves once what {@linkcode Runtime.write} queued has been written, or after `timeoutMs`
   * (an undrained output must not hold the process at exit).
   */
  flush(timeoutMs: number): Promise<void>;
  /**
   * Calls `stop` on SIGINT and SIGTERM (SIGINT only on Windows); returns a function that removes
   * the handlers.
   */
  onStopSignals(stop: () => void): () => void;
  /**
   * Calls `reload` on SIGHUP (the operator's "reload your files": policy, certificates); returns a
   * function that removes the handler. Does nothing on Windows (no SIGHUP).
   */
  onReloadSignal(reload: () => void): () => void;
  /**
   * Calls `changed` when the file at `path` changes (written, replaced, renamed over), at most
   * once per `debounceMs` burst (default 200 ms); returns a function that stops watching.
   *
   * @throws {Error} when the file cannot be watched (missing, permission).
   */
  watchFile(path: string, changed: () => void, debounceMs?: number): () => void;
  /** Ends the process with `code`. */
  exit(code: number): never;
  /** The runtime's HTTP + WebSocket server adapter (with read backpressure where it can). */
  adapter(): ServerAdapter;
  /**
   * The runtime's transport.
   *
   * @throws {RangeError} for a bad bound; {@linkcode TypeError} for a bad CA certificate.
   */
  transport(options?: TransportOptions): Transport;
}

/** `bun` when the Bun global is present, else `deno`. */
export function detectRuntime(): RuntimeName {
  return "Bun" in globalThis ? "bun" : "deno";
}

let loaded: Promise<Runtime> | undefined;

/** Loads the current runtime's adapters (once; later calls share the first). */
export function currentRuntime(): Promise<Runtime> {
  loaded ??= detectRuntime() === "bun"
    ? import("./_runtime_bun.ts").then((m) => m.bunRuntime())
    : import("./_runtime_deno.ts").then((m) => m.denoRuntime());
  return loaded;
}

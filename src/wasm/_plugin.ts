/**
 * One Extism plugin instance with the harness host functions, a time limit per call and a memory
 * limit, shared by the server host (`harness.ts`) and the browser host (`browser_harness.ts`).
 * Browser-safe: imports `@extism/extism` and this folder only.
 *
 * @module
 */
import createPlugin, { type ExtismPluginOptions, type Plugin } from "@extism/extism";
import {
  type HarnessFunctions,
  harnessFunctions,
  type HarnessLog,
  type HarnessNet,
} from "./_abi.ts";
import { isWasmBinary, limitMemory, MemoryLimitError, WASM_PAGE_BYTES } from "./_memory_limit.ts";

/** Default time limit of one plugin call, in ms (30 s). */
export const DEFAULT_PLUGIN_TIMEOUT_MS = 30_000;

/** How long {@linkcode HarnessPlugin.close} waits for the worker to terminate, in ms. */
const CLOSE_WAIT_MS = 2_000;

/** Default memory limit of a plugin, in MiB (its linear memory; host blocks likewise). */
export const DEFAULT_PLUGIN_MEMORY_MIB = 256;

/**
 * What went wrong with a plugin: `invalid` (not WebAssembly, or it does not instantiate: a missing
 * import, initial memory above the limit), `unknown-function` (no such export), `trap` (the wasm
 * trapped: `unreachable`, out of bounds, out of memory through a language runtime's abort),
 * `plugin` (the plugin reported an error through Extism's `error_set`), `timeout` (the call ran
 * longer than the time limit; the instance is stopped), `closed` (the instance was closed).
 */
export type PluginErrorCode =
  | "invalid"
  | "unknown-function"
  | "trap"
  | "plugin"
  | "timeout"
  | "closed";

/** A plugin failure, with a {@linkcode PluginErrorCode} and a one-line message. */
export class PluginError extends Error {
  /** What went wrong. */
  readonly code: PluginErrorCode;
  /**
   * @param code What went wrong.
   * @param message One line (e.g. `plugin ran longer than 100 ms`).
   */
  constructor(code: PluginErrorCode, message: string) {
    super(message);
    this.name = "PluginError";
    this.code = code;
  }
}

/** Limits and settings of a plugin instance. */
export interface PluginLimits {
  /** Time limit of one call, in ms (default {@linkcode DEFAULT_PLUGIN_TIMEOUT_MS}). */
  readonly timeoutMs?: number | undefined;
  /**
   * Memory limit in MiB (default {@linkcode DEFAULT_PLUGIN_MEMORY_MIB}): the module's own linear
   * memory is capped by rewriting its maximum, and Extism's host blocks by `memory.maxPages`.
   */
  readonly maxMemoryMib?: number | undefined;
  /** `tcp_recv`/`udp_recv` wait in ms (default the reference's 5 s). */
  readonly recvWaitMs?: number | undefined;
}

/** Internal options of {@linkcode HarnessPlugin.load}. */
export interface LoadOptions extends PluginLimits {
  /** The networking under the host functions. */
  readonly net: HarnessNet;
  /** Where host and plugin lines go. */
  readonly log: HarnessLog;
  /**
   * Run the module in a worker (Extism `runInWorker`): the host can terminate it (a loop without
   * host calls is stopped at the time limit); host functions still run on this thread, where the
   * worker waits on them (Atomics.wait). Without it (browsers that are not cross-origin isolated),
   * host functions suspend the module through JSPI and the time limit is checked only while the
   * plugin is in a host call or between calls.
   */
  readonly runInWorker: boolean;
}

/**
 * A loaded plugin: call its exports, close it. Calls run one at a time (the module is not
 * reentrant); sockets it opens stay open across calls until {@linkcode HarnessPlugin.close}.
 */
export class HarnessPlugin implements AsyncDisposable {
  readonly #plugin: Plugin;
  readonly #host: HarnessFunctions;
  readonly #stop: AbortController;
  readonly #timeoutMs: number;
  #closed = false;
  #busy: Promise<unknown> = Promise.resolve();

  private constructor(
    plugin: Plugin,
    host: HarnessFunctions,
    stop: AbortController,
    timeoutMs: number,
  ) {
    this.#plugin = plugin;
    this.#host = host;
    this.#stop = stop;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Validates `wasm`, caps its memory and instantiates it with the harness host functions.
   *
   * @throws {PluginError} `invalid` for a file that is not WebAssembly, does not compile or does
   *   not instantiate (the message says why), or whose initial memory is above the limit.
   */
  static async load(wasm: Uint8Array, options: LoadOptions): Promise<HarnessPlugin> {
    const maxMemoryMib = options.maxMemoryMib ?? DEFAULT_PLUGIN_MEMORY_MIB;
    const maxPages = Math.max(1, Math.floor(maxMemoryMib * 1024 * 1024 / WASM_PAGE_BYTES));
    if (!isWasmBinary(wasm)) {
      throw new PluginError("invalid", "not a WebAssembly module (bad magic number)");
    }
    let limited: Uint8Array;
    try {
      limited = limitMemory(wasm, maxPages);
    } catch (e) {
      if (e instanceof MemoryLimitError) throw new PluginError("invalid", e.message);
      throw e;
    }
    try {
      await WebAssembly.compile(limited as Uint8Array<ArrayBuffer>);
    } catch (e) {
      throw new PluginError("invalid", `not a valid WebAssembly module: ${messageOf(e)}`);
    }
    const stop = new AbortController();
    const host = harnessFunctions({
      net: options.net,
      log: options.log,
      signal: stop.signal,
      ...(options.recvWaitMs !== undefined ? { recvWaitMs: options.recvWaitMs } : {}),
    });
    const log = options.log;
    const logger = {
      trace: (msg: string) => log("debug", "plugin log", { text: msg }),
      debug: (msg: string) => log("debug", "plugin log", { text: msg }),
      info: (msg: string) => log("info", "plugin log", { text: msg }),
      warn: (msg: string) => log("warn", "plugin log", { text: msg }),
      error: (msg: string) => log("error", "plugin log", { text: msg }),
      log: (msg: string) => log("info", "plugin log", { text: msg }),
    };
    let plugin: Plugin;
    try {
      plugin = await createPlugin({ wasm: [{ data: limited }] }, {
        useWasi: false,
        runInWorker: options.runInWorker,
        functions: host.functions,
        memory: { maxPages, maxVarBytes: maxPages * WASM_PAGE_BYTES },
        logger: logger as unknown as NonNullable<ExtismPluginOptions["logger"]>,
        logLevel: "info",
        // Deno's node:worker_threads refuses Node's default execArgv flags.
        nodeWorkerArgs: { execArgv: [] },
      });
    } catch (e) {
      host.close();
      throw new PluginError("invalid", `cannot instantiate the plugin: ${messageOf(e)}`);
    }
    return new HarnessPlugin(
      plugin,
      host,
      stop,
      options.timeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS,
    );
  }

  /** True once closed (by {@linkcode HarnessPlugin.close} or a call that ran too long). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Calls the export `name` with `input` (Extism input) and resolves its output (empty when the
   * plugin set none). Calls are queued one after another.
   *
   * @throws {PluginError} `unknown-function`, `trap`, `plugin`, `timeout` (the instance is closed
   *   then: its worker terminated, its sockets closed) or `closed`.
   */
  call(name: string, input: string | Uint8Array = new Uint8Array()): Promise<Uint8Array> {
    const run = this.#busy.then(() => this.#call(name, input));
    this.#busy = run.catch(() => undefined);
    return run;
  }

  async #call(name: string, input: string | Uint8Array): Promise<Uint8Array> {
    if (this.#closed) throw new PluginError("closed", "the plugin is closed");
    if (!(await this.#plugin.functionExists(name))) {
      throw new PluginError("unknown-function", `no exported function "${name}"`);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.#timeoutMs);
    });
    const call = this.#plugin.call(name, input);
    // Rejections after the race is decided (a stopped worker) must not go unhandled.
    call.catch(() => undefined);
    try {
      const result = await Promise.race([call, timedOut]);
      if (result === "timeout") {
        await this.close();
        throw new PluginError("timeout", `plugin ran longer than ${this.#timeoutMs} ms`);
      }
      return result === null ? new Uint8Array() : result.bytes().slice();
    } catch (e) {
      if (e instanceof PluginError) throw e;
      if (this.#stop.signal.aborted && this.#closed) {
        throw new PluginError("closed", "the plugin was closed during the call");
      }
      throw classify(e);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops the plugin: aborts host calls in flight, terminates its worker, closes its sockets.
   * Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort(new PluginError("closed", "the plugin was stopped"));
    this.#host.close();
    // Terminating a worker that spins in wasm may never settle on some runtimes (Bun): wait at
    // most CLOSE_WAIT_MS for it.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#plugin.close().catch(() => undefined),
      new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_WAIT_MS)),
    ]);
    clearTimeout(timer);
  }

  /** Same as {@linkcode HarnessPlugin.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === "object" && e !== null && "message" in e) return String(e.message);
  return String(e);
}

/**
 * A call's rejection as a {@linkcode PluginError}. Errors crossing Extism's worker arrive as
 * plain objects `{ message, originalStack }` (the stack's first line names the class, e.g.
 * `RuntimeError: unreachable`); on the main thread they are `WebAssembly.RuntimeError`s.
 */
function classify(e: unknown): PluginError {
  const message = messageOf(e);
  const plugin = /^Plugin-originated error: ([\s\S]*)$/.exec(message);
  if (plugin) return new PluginError("plugin", `plugin error: ${plugin[1]}`);
  const missing = /^Plugin error: function "(.*)" does not exist/.exec(message);
  if (missing) return new PluginError("unknown-function", `no exported function "${missing[1]}"`);
  const stack = typeof e === "object" && e !== null && "originalStack" in e
    ? String(e.originalStack)
    : "";
  if (e instanceof WebAssembly.RuntimeError || stack.startsWith("RuntimeError")) {
    return new PluginError("trap", `plugin trapped: ${message}`);
  }
  return new PluginError("trap", `plugin failed: ${message}`);
}

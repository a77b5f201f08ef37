/**
 * A W.A.T.E.R. dialer for web pages: the page speaks plaintext to a WATM v1 module instance,
 * and the module's network connections are wasmnet sockets through a {@linkcode WasmnetClient}
 * (so the proxy's policy decides every dial). Browser-safe.
 *
 * The module runs in a worker and blocks in `Atomics.wait`, so the page must be cross-origin
 * isolated (`Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy:
 * require-corp`) for `SharedArrayBuffer`. The worker is `_worker.ts` bundled on its own (e.g.
 * `deno bundle --platform browser src/wasm/water/_worker.ts`); pass its URL as `workerUrl`.
 *
 * @example
 * ```ts ignore
 * import { WasmnetClient } from "../../client/mod.ts";
 * import { WaterDialer } from "./browser.ts";
 * const client = new WasmnetClient("wss://proxy.example/");
 * const dialer = await WaterDialer.create({
 *   client,
 *   module: new Uint8Array(await (await fetch("/xor.wasm")).arrayBuffer()),
 *   config: new TextEncoder().encode("key"),
 *   remote: { host: "bridge.example", port: 443 },
 *   workerUrl: "/water-worker.js",
 * });
 * const conn = await dialer.dial();
 * const writer = conn.writable.getWriter();
 * await writer.write(new TextEncoder().encode("hello"));
 * ```
 *
 * @module
 */
import type { WasmnetClient, WasmnetSocket } from "../../client/mod.ts";
import type { StreamConn } from "../../transport/types.ts";
import { parseHostPort } from "../../protocol/host_port.ts";
import { memoryPipe } from "./_pipe.ts";
import { WasiErrno } from "./_shared.ts";
import {
  describeEnd,
  type DialRequest,
  HostCallError,
  type InstanceEnd,
  type InstanceLimits,
  WatmInstance,
} from "./instance.ts";
import { compileWatm, inspectWatm } from "./watm.ts";

/** Options of {@linkcode WaterDialer.create}. */
export interface WaterDialerOptions {
  /** The client whose sockets carry the module's connections (ready or not). */
  client: WasmnetClient;
  /** The WATM v1 module: bytes or compiled. */
  module: Uint8Array<ArrayBuffer> | WebAssembly.Module;
  /** What `water_dial_fixed` dials (through the proxy). */
  remote: { host: string; port: number };
  /** Contents of `/conf/watm.cfg`. */
  config?: Uint8Array | undefined;
  /** URL of the bundled worker script. */
  workerUrl: string | URL;
  /** Per-instance bounds. */
  limits?: Partial<InstanceLimits> | undefined;
  /** Receives the module's stdout/stderr lines. */
  onOutput?: ((stream: "stdout" | "stderr", line: string) => void) | undefined;
}

/** One plaintext connection through a module instance. */
export interface WaterConnection {
  /** Plaintext from the remote, after the module. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Plaintext to the remote, before the module. Closing it ends the stream (EOF). */
  readonly writable: WritableStream<Uint8Array>;
  /** Resolves when the instance has ended. */
  readonly ended: Promise<InstanceEnd>;
  /** Stops the instance and closes everything. */
  close(): Promise<void>;
}

/** A {@linkcode StreamConn} over a wasmnet socket's streams. */
function socketConn(sock: WasmnetSocket): StreamConn {
  const reader = sock.readable.getReader();
  const writer = sock.writable.getWriter();
  let rest: Uint8Array | undefined;
  return {
    async read(buffer: Uint8Array): Promise<number | null> {
      if (!rest || rest.length === 0) {
        const { value, done } = await reader.read();
        if (done) return null;
        rest = value;
      }
      const n = Math.min(buffer.length, rest.length);
      buffer.set(rest.subarray(0, n));
      rest = rest.subarray(n);
      return n;
    },
    async write(data: Uint8Array): Promise<number> {
      await writer.write(data.slice());
      return data.length;
    },
    async closeWrite(): Promise<void> {
      await writer.close();
    },
    close(): void {
      void sock.close().catch(() => {});
    },
  };
}

/** Readable/writable streams over the app's end of the pipe. */
function streamsOf(conn: StreamConn): Pick<WaterConnection, "readable" | "writable"> {
  return {
    readable: new ReadableStream<Uint8Array>({
      async pull(controller): Promise<void> {
        const buf = new Uint8Array(65536);
        const n = await conn.read(buf).catch(() => null);
        if (n === null) controller.close();
        else controller.enqueue(buf.slice(0, n));
      },
      cancel(): void {
        conn.close();
      },
    }),
    writable: new WritableStream<Uint8Array>({
      async write(chunk): Promise<void> {
        let at = 0;
        while (at < chunk.length) at += await conn.write(chunk.subarray(at));
      },
      async close(): Promise<void> {
        await conn.closeWrite?.();
      },
      abort(): void {
        conn.close();
      },
    }),
  };
}

/** Dials through a WATM v1 module, one instance per {@linkcode WaterDialer.dial}. */
export class WaterDialer {
  readonly #opts: WaterDialerOptions;
  readonly #module: WebAssembly.Module;

  private constructor(options: WaterDialerOptions, module: WebAssembly.Module) {
    this.#opts = options;
    this.#module = module;
  }

  /**
   * Compiles and checks the module (WATM v1, with `watm_dial_v1` or `watm_dial_fixed_v1`).
   *
   * @throws {WatmError} for a module that is not WATM v1 or cannot dial.
   */
  static async create(options: WaterDialerOptions): Promise<WaterDialer> {
    const module = options.module instanceof WebAssembly.Module
      ? (inspectWatm(options.module, "dialer"), options.module)
      : (await compileWatm(options.module, "dialer")).module;
    return new WaterDialer(options, module);
  }

  /**
   * Starts an instance; resolves once the module has dialled and entered `watm_start_v1`.
   *
   * @throws {Error} with the instance's one-line error when it fails before (a dial the proxy
   *   denied: `... (after water_dial_fixed: <the proxy's denial>)`).
   */
  async dial(): Promise<WaterConnection> {
    const [app, internal] = memoryPipe();
    const client = this.#opts.client;
    const remote = this.#opts.remote;
    const dial = async (request: DialRequest): Promise<StreamConn> => {
      let host = remote.host;
      let port = remote.port;
      if (request.op === "dial") {
        const hp = parseHostPort(request.address);
        if (typeof hp === "string" || !/^tcp[46]?$/.test(request.network)) {
          throw new HostCallError(WasiErrno.INVAL, `invalid address ${request.address}`);
        }
        ({ host, port } = hp);
      }
      await client.ready();
      const sock = client.openTcp(host, port);
      try {
        await sock.opened;
      } catch (e) {
        const code = (e as { code?: string }).code;
        throw new HostCallError(
          code === "EDENIED" ? WasiErrno.ACCES : WasiErrno.NOTCONN,
          (e as Error).message,
        );
      }
      return socketConn(sock);
    };
    const instance = new WatmInstance({
      module: this.#module,
      role: "dialer",
      config: this.#opts.config,
      internal,
      dial,
      workerUrl: this.#opts.workerUrl,
      limits: this.#opts.limits,
      onOutput: this.#opts.onOutput,
    });
    if (!(await instance.running)) {
      app.close();
      throw new Error(describeEnd(await instance.ended));
    }
    return {
      ...streamsOf(app),
      ended: instance.ended,
      close: async (): Promise<void> => {
        app.close();
        await instance.stop();
      },
    };
  }
}

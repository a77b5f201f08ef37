/**
 * The real server as a child process (`deno run mod.ts`, the launcher's permissions), for tests
 * that measure the server itself: its resident memory and open file descriptors come from
 * `/proc/PID`, apart from the test's own.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { delay } from "./wait.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Memory figures of a process from `/proc/PID/status`, in bytes. */
export interface ProcMemory {
  /** Resident set size now (`VmRSS`). */
  rss: number;
  /** Peak resident set size so far (`VmHWM`). */
  peak: number;
}

/** A wasmnet server running in a child process; kill it with `await using` or `stop()`. */
export class ServerProcess implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  #output = "";
  readonly #pumps: Promise<void>[];
  #status: Deno.CommandStatus | undefined;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    const pump = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this.#output += text;
    };
    this.#pumps = [pump(child.stdout), pump(child.stderr)];
    void child.status.then((s) => this.#status = s);
  }

  /**
   * Starts `mod.ts` on 127.0.0.1 port 0 with `args` appended (e.g. `--no-policy`), with the
   * permissions of `bin/wasmnet`, and resolves once it logs `listening`.
   *
   * @throws {Error} when the process exits first or does not listen within 30 s.
   */
  static async start(args: string[] = []): Promise<ServerProcess> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-env=WASMNET_LOG,WS_NO_BUFFER_UTIL",
        "mod.ts",
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        "--no-demo",
        ...args,
      ],
      cwd: ROOT,
      env: { WASMNET_LOG: "info" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const server = new ServerProcess(child);
    const deadline = Date.now() + 30_000;
    while (server.port === undefined) {
      if (server.#status !== undefined || Date.now() > deadline) {
        await server.stop();
        throw new Error(`the server did not start:\n${server.output}`);
      }
      await delay(20);
    }
    return server;
  }

  /** Everything the server printed so far. */
  get output(): string {
    return this.#output;
  }

  /** The port it listens on, once it logged `listening`. */
  get port(): number | undefined {
    const m = /listening addr=127\.0\.0\.1:(\d+)/.exec(this.#output);
    return m ? Number(m[1]) : undefined;
  }

  /** `ws://127.0.0.1:PORT/`. */
  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  /** The child's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /**
   * Resident and peak memory of the server process now. (`/proc/PID` is read through `cat`/`ls`:
   * Deno itself allows reading another process's `/proc` entries only with `--allow-all`.)
   */
  async memory(): Promise<ProcMemory> {
    const status = await procText("cat", `/proc/${this.pid}/status`);
    const kib = (key: string): number =>
      Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
    return { rss: kib("VmRSS"), peak: kib("VmHWM") };
  }

  /** Open file descriptors of the server process now. */
  async fds(): Promise<number> {
    return (await procText("ls", `/proc/${this.pid}/fd`)).split("\n").filter(Boolean).length;
  }

  /** Sends SIGTERM and resolves the exit status once all output is read. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.#child.kill(signal);
    } catch {
      // already exited
    }
    const status = await this.#child.status;
    await Promise.all(this.#pumps);
    return status;
  }

  /** Same as {@linkcode ServerProcess.stop} with SIGKILL when the server is still running. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#status === undefined) await this.stop("SIGKILL");
    else await Promise.all(this.#pumps);
  }
}

async function procText(command: string, path: string): Promise<string> {
  const out = await new Deno.Command(command, { args: [path], stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`${command} ${path}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

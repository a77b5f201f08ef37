/**
 * The real server as a child process — the command `WASMNET_TEST_SERVER` chooses
 * (`tests/helpers/target.ts`: `deno run mod.ts` with the launcher's permissions by default,
 * `bun run mod.ts`, or `dist/wasmnet`) — for tests that measure the server itself (its resident
 * memory and open file descriptors come from `/proc/PID`, apart from the test's own), and for
 * `startTestServer` in child mode.
 *
 * @module
 */
import { delay } from "./wait.ts";
import { type ChildTarget, ROOT, serverCommand } from "./target.ts";

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
  #stderr = "";
  readonly #pumps: Promise<void>[];
  #status: Deno.CommandStatus | undefined;
  /** Resolves with the exit status once the process has exited and all its output is read. */
  readonly exited: Promise<Deno.CommandStatus>;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    const pump = async (stream: ReadableStream<Uint8Array>, err: boolean): Promise<void> => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        this.#output += text;
        if (err) this.#stderr += text;
      }
    };
    this.#pumps = [pump(child.stdout, false), pump(child.stderr, true)];
    void child.status.then((s) => this.#status = s);
    this.exited = Promise.all([child.status, ...this.#pumps]).then(([status]) => status);
  }

  /**
   * Starts the server command on 127.0.0.1 port 0 with `args` appended (e.g. `--no-policy`), and
   * `--no-demo` unless `args` has `--demo`, and resolves once it logs `listening`. It logs at
   * `info`, or at `WASMNET_LOG` when that is `debug` or `trace`.
   *
   * `target` overrides `WASMNET_TEST_SERVER` (e.g. `"bun"` for a test of the Bun server itself).
   *
   * @throws {Error} when the process exits first or does not listen within 30 s (with its output),
   *   or when the chosen server command is missing.
   */
  static async start(args: string[] = [], target?: ChildTarget): Promise<ServerProcess> {
    const { cmd, args: prefix } = serverCommand(target);
    const level = Deno.env.get("WASMNET_LOG");
    const child = new Deno.Command(cmd, {
      args: [
        ...prefix,
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        ...(args.includes("--demo") ? [] : ["--no-demo"]),
        ...args,
      ],
      cwd: ROOT,
      env: { WASMNET_LOG: level === "debug" || level === "trace" ? level : "info" },
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

  /** Everything the server printed so far (stdout and stderr, as they came). */
  get output(): string {
    return this.#output;
  }

  /** What the server printed on stderr so far (warnings, errors). */
  get stderr(): string {
    return this.#stderr;
  }

  /** The port it listens on, once it logged `listening` (as text or, `--log-format json`, JSON). */
  get port(): number | undefined {
    const m =
      /listening addr=(?:127\.0\.0\.1|0\.0\.0\.0):(\d+)|"msg":"listening","addr":"(?:127\.0\.0\.1|0\.0\.0\.0):(\d+)"/
        .exec(this.#output);
    return m ? Number(m[1] ?? m[2]) : undefined;
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
    return await this.exited;
  }

  /** Same as {@linkcode ServerProcess.stop} with SIGKILL when the server is still running. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#status === undefined) await this.stop("SIGKILL");
    else await this.exited;
  }
}

async function procText(command: string, path: string): Promise<string> {
  const out = await new Deno.Command(command, { args: [path], stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`${command} ${path}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

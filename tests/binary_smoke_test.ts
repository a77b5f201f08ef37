/**
 * Smoke test of the compiled executable, `dist/wasmnet` (`deno task binary`: Bun 1.4.5's
 * `bun build --compile`; `bin/test` builds it before the tests run). It is started the way a user
 * who downloaded only that file would: from an empty temporary directory, with an environment of
 * nothing but `PATH=/usr/bin:/bin` (where neither `deno` nor `bun` is found). It must log
 * `listening`, answer `GET /healthz`, relay a TCP echo through a wasmnet session in JSON and in
 * binary framing, and exit 0 on SIGTERM with its port closed. A missing or stale `dist/wasmnet`
 * fails the test (it is never skipped): run `deno task binary` first.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { randomBytes, TestClient } from "./helpers/ws_client.ts";
import { delay } from "./helpers/wait.ts";
import { VERSION } from "../src/version.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BINARY = `${ROOT}dist/wasmnet`;
/** The only PATH the binary gets: system folders, without Deno or Bun. */
const BARE_PATH = "/usr/bin:/bin";
/** Hang guard for startup and for shutdown, in ms (not a timing assertion). */
const GUARD_MS = 30_000;

/** Files whose change makes `dist/wasmnet` stale (what `bun build` bundles, and its inputs). */
function sources(): string[] {
  const out = [`${ROOT}mod.ts`, `${ROOT}package.json`, `${ROOT}bun.lock`];
  const walk = (dir: string): void => {
    for (const e of Deno.readDirSync(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) walk(path);
      else if (e.isFile && /\.(ts|js|json)$/.test(e.name)) out.push(path);
    }
  };
  walk(`${ROOT}src`);
  return out;
}

/**
 * Asserts that `dist/wasmnet` exists and is newer than every source file it bundles.
 *
 * @throws {Error} "run deno task binary first", naming what is missing or newer.
 */
function requireFreshBinary(): void {
  let built: Date | null;
  try {
    built = Deno.statSync(BINARY).mtime;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`${BINARY} is missing: run deno task binary first`);
    }
    throw e;
  }
  assert.ok(built, "no mtime for dist/wasmnet");
  const newer = sources().filter((p) => (Deno.statSync(p).mtime ?? built) > built);
  if (newer.length > 0) {
    throw new Error(
      `${BINARY} is older than ${newer.slice(0, 3).map((p) => p.slice(ROOT.length)).join(", ")}${
        newer.length > 3 ? ` and ${newer.length - 3} more` : ""
      }: run deno task binary first`,
    );
  }
}

/** Runs `args` in a shell-free child with only `BARE_PATH`; resolves its exit code and output. */
async function runBare(
  cmd: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(cmd, {
    args,
    cwd,
    clearEnv: true,
    env: { PATH: BARE_PATH },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

/** The compiled server as a child process, with its output collected. */
class BinaryServer implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  output = "";
  readonly #pumps: Promise<void>[];
  #exited = false;

  constructor(cwd: string, args: string[]) {
    this.child = new Deno.Command(BINARY, {
      args,
      cwd,
      clearEnv: true,
      env: { PATH: BARE_PATH, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this.output += text;
    };
    this.#pumps = [pump(this.child.stdout), pump(this.child.stderr)];
    void this.child.status.then(() => this.#exited = true);
  }

  /**
   * Resolves the port once the server logged `listening addr=127.0.0.1:PORT`.
   *
   * @throws {Error} with the output when it exits first or takes longer than {@linkcode GUARD_MS}.
   */
  async listening(): Promise<number> {
    const deadline = Date.now() + GUARD_MS;
    while (true) {
      const m = /listening addr=127\.0\.0\.1:(\d+)/.exec(this.output);
      if (m) return Number(m[1]);
      if (this.#exited || Date.now() > deadline) {
        throw new Error(`dist/wasmnet did not log listening:\n${this.output}`);
      }
      await delay(10);
    }
  }

  /** Sends `signal` and resolves the exit status once all output is read. */
  async stop(signal: Deno.Signal): Promise<Deno.CommandStatus> {
    if (!this.#exited) this.child.kill(signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const guard = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`still running ${GUARD_MS} ms after ${signal}`)),
        GUARD_MS,
      );
    });
    try {
      const status = await Promise.race([this.child.status, guard]);
      await Promise.all(this.#pumps);
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the child if a test failed before stopping it. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#exited) this.child.kill("SIGKILL");
    await this.child.status;
    await Promise.all(this.#pumps);
  }
}

Deno.test("binary smoke: PATH /usr/bin:/bin finds neither deno nor bun", async () => {
  for (const name of ["deno", "bun"]) {
    const { code, out } = await runBare("/usr/bin/which", [name], "/");
    assert.notEqual(code, 0, `\`which ${name}\` found ${out.trim()} in ${BARE_PATH}`);
  }
});

Deno.test("binary smoke: dist/wasmnet runs from another directory without deno or bun", async () => {
  requireFreshBinary();
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-binary-" });
  try {
    const version = await runBare(BINARY, ["--version"], dir);
    assert.equal(version.code, 0, version.out);
    assert.match(
      version.out,
      new RegExp(`^wasmnet ${VERSION.replaceAll(".", "\\.")} .*bun 1\\.4\\.5`),
    );

    // A relative file argument is read from the caller's directory.
    await Deno.copyFile(`${ROOT}policy.example.toml`, `${dir}/policy.toml`);
    const check = await runBare(
      BINARY,
      ["check-policy", "policy.toml", "--explain", "10.0.0.5:22"],
      dir,
    );
    assert.equal(check.code, 0, check.out);
    assert.match(check.out, /^denied: 10\.0\.0\.5:22 /m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("binary smoke: listens, /healthz, TCP echo through a session, SIGTERM exits 0", async () => {
  requireFreshBinary();
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-binary-" });
  // The executable is built with --no-compile-autoload-dotenv: a .env in the directory it starts
  // in must not change it (were it read, WASMNET_LOG=silent would hide the `listening` line).
  await Deno.writeTextFile(`${dir}/.env`, "WASMNET_LOG=silent\n");
  try {
    await using echo = await startTcpEcho();
    await using server = new BinaryServer(dir, ["-H", "127.0.0.1", "-p", "0", "--no-policy"]);
    const port = await server.listening();

    // The process is the executable itself (no wrapper that could swallow SIGTERM).
    const exe = await runBare("/usr/bin/readlink", [`/proc/${server.child.pid}/exe`], "/");
    assert.equal(exe.out.trim(), BINARY);

    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      status: "ok",
      version: VERSION,
      sessions: 0,
      protocols: { wasmnet: 0, wisp: 0, wsproxy: 0 },
    });

    for (const [id, framing] of [[1, "json"], [2, "binary"]] as const) {
      await using client = await TestClient.open(`ws://127.0.0.1:${port}/`, framing);
      await client.connect(id, "127.0.0.1", echo.port);
      const payload = randomBytes(100_000);
      client.send({ op: "send", id, data: payload });
      assert.deepEqual(await client.collect(id, payload.byteLength), payload, framing);
      client.send({ op: "close", id });
      const closed = await client.nextFor(id);
      assert.equal(closed.ev, "closed", JSON.stringify(closed));
    }

    const status = await server.stop("SIGTERM");
    assert.equal(
      status.code,
      0,
      `exit ${status.code} (signal ${status.signal}):\n${server.output}`,
    );
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port }),
      Deno.errors.ConnectionRefused,
      `port ${port} still open after exit`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

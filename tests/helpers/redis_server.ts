/**
 * A real `redis-server` (Debian package `redis-server`) on a free loopback port for a test, with no
 * persistence, in a temporary directory. When the binary is missing the test FAILS with the
 * install command; it never skips.
 *
 * @module
 */
import { delay } from "./wait.ts";

/** A running Redis server from {@linkcode startRedis}; `await using` stops it. */
export interface RedisServer extends AsyncDisposable {
  /** Its TCP port on 127.0.0.1. */
  port: number;
  /** What it logged so far (stdout and stderr). */
  log(): string;
}

/** The `redis-server` binary: `$WASMNET_REDIS_SERVER`, else `redis-server` on PATH. */
export const REDIS_SERVER: string = Deno.env.get("WASMNET_REDIS_SERVER") ?? "redis-server";

/** A port that was free a moment ago on 127.0.0.1 (bound to port 0, then closed). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Drains `stream` into `sink` until it ends. */
export async function drainText(
  stream: ReadableStream<Uint8Array>,
  sink: { text: string },
): Promise<void> {
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) sink.text += chunk;
}

/** True once a Redis server on `port` answers `PING` with `+PONG`. */
async function pings(port: number): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buf = new Uint8Array(16);
    const n = await conn.read(buf);
    return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG");
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}

/**
 * Starts `redis-server` on 127.0.0.1 at a free port (no RDB/AOF files, protected mode off) and
 * waits until it answers `PING`.
 *
 * @throws {Error} naming `apt-get install -y redis-server` when the binary is missing; with its
 *   log when it exits or does not answer within 15 s.
 */
export async function startRedis(): Promise<RedisServer> {
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-redis-" });
  const port = freePort();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(REDIS_SERVER, {
      args: [
        "--bind",
        "127.0.0.1",
        "--port",
        String(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        "--dir",
        dir,
        "--daemonize",
        "no",
        "--logfile",
        "",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `${REDIS_SERVER} not found. Install it with: apt-get update && apt-get install -y ` +
          "redis-server (bin/test does; or point WASMNET_REDIS_SERVER at one). The test does not skip.",
      );
    }
    throw e;
  }
  const sink = { text: "" };
  const drained = Promise.all([drainText(child.stdout, sink), drainText(child.stderr, sink)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async (): Promise<void> => {
    if (!exited) child.kill("SIGTERM");
    await status;
    await drained;
    await Deno.remove(dir, { recursive: true });
  };
  const deadline = Date.now() + 15_000;
  while (!(await pings(port))) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server did not start on 127.0.0.1:${port}:\n${sink.text}`);
    }
    await delay(50);
  }
  return { port, log: () => sink.text, [Symbol.asyncDispose]: stop };
}

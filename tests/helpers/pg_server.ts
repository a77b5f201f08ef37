/**
 * A real PostgreSQL server (Debian package `postgresql`) on a free loopback port for a test: a
 * throw-away cluster made by `initdb` in a temporary directory (trust authentication, user
 * `postgres`), optionally with TLS on. `initdb` and `postgres` refuse to run as root, so under
 * root they run as the `postgres` user the Debian package creates. When the binaries are missing
 * the test FAILS with the install command; it never skips.
 *
 * @module
 */
import { join } from "node:path";
import { drainText, freePort } from "./redis_server.ts";
import { delay } from "./wait.ts";

/** A running server from {@linkcode startPostgres}; `await using` stops it and removes its data. */
export interface PgServer extends AsyncDisposable {
  /** Its TCP port on 127.0.0.1. */
  port: number;
  /** The superuser (trust authentication on 127.0.0.1): `postgres`. */
  user: string;
  /** What the server logged so far. */
  log(): string;
}

/** Options of {@linkcode startPostgres}. */
export interface PgOptions {
  /** Turn TLS on with this certificate and PKCS#8 key (PEM); clients may then ask for SSL. */
  tls?: { cert: string; key: string };
}

/**
 * The directory of `initdb` and `postgres`: `$WASMNET_PG_BIN`, else the newest
 * `/usr/lib/postgresql/VERSION/bin`.
 *
 * @throws {Error} naming `apt-get install -y postgresql` when there is none.
 */
export function pgBinDir(): string {
  const env = Deno.env.get("WASMNET_PG_BIN");
  if (env !== undefined) return env;
  const versions: number[] = [];
  try {
    for (const entry of Deno.readDirSync("/usr/lib/postgresql")) {
      const v = Number(entry.name);
      if (Number.isFinite(v)) {
        try {
          Deno.statSync(`/usr/lib/postgresql/${entry.name}/bin/postgres`);
          versions.push(v);
        } catch { /* a version without the server */ }
      }
    }
  } catch { /* no /usr/lib/postgresql */ }
  const newest = versions.sort((a, b) => b - a)[0];
  if (newest === undefined) {
    throw new Error(
      "PostgreSQL not found (no /usr/lib/postgresql/*/bin/postgres). Install it with: " +
        "apt-get update && apt-get install -y postgresql (bin/test does; or point WASMNET_PG_BIN " +
        "at a bin directory). The test does not skip.",
    );
  }
  return `/usr/lib/postgresql/${newest}/bin`;
}

/** The uid/gid to run the server as: `postgres`'s under root, else none (this user). */
function runAs(): { uid: number; gid: number } | undefined {
  if (Deno.uid() !== 0) return undefined;
  const line = Deno.readTextFileSync("/etc/passwd").split("\n").find((l) =>
    l.startsWith("postgres:")
  );
  const [, , uid, gid] = line?.split(":") ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error(
      "running as root and there is no postgres user to run PostgreSQL as (the Debian package " +
        "postgresql creates it: apt-get install -y postgresql)",
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

async function chownAll(
  path: string,
  who: { uid: number; gid: number } | undefined,
): Promise<void> {
  if (who === undefined) return;
  await Deno.chown(path, who.uid, who.gid);
  const info = await Deno.stat(path);
  if (!info.isDirectory) return;
  for await (const entry of Deno.readDir(path)) await chownAll(join(path, entry.name), who);
}

/**
 * Makes a cluster with `initdb` (trust authentication, superuser `postgres`, fsync off) and starts
 * `postgres` on 127.0.0.1 at a free port; waits until it accepts connections.
 *
 * @throws {Error} from {@linkcode pgBinDir}; with the output when `initdb` fails or the server
 *   exits or is not ready within 30 s.
 */
export async function startPostgres(options: PgOptions = {}): Promise<PgServer> {
  const bin = pgBinDir();
  const who = runAs();
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-pg-" });
  const data = join(dir, "data");
  try {
    await chownAll(dir, who);
    const init = await new Deno.Command(`${bin}/initdb`, {
      args: ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      ...(who ?? {}),
    }).output();
    if (init.code !== 0) {
      const dec = new TextDecoder();
      throw new Error(
        `initdb failed (exit ${init.code}): ${dec.decode(init.stdout)}${dec.decode(init.stderr)}`,
      );
    }
    if (options.tls !== undefined) {
      await Deno.writeTextFile(join(data, "server.crt"), options.tls.cert);
      await Deno.writeTextFile(join(data, "server.key"), options.tls.key, { mode: 0o600 });
      await Deno.chmod(join(data, "server.key"), 0o600);
      await chownAll(data, who);
    }
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
  const port = freePort();
  const child = new Deno.Command(`${bin}/postgres`, {
    args: [
      "-D",
      data,
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-k",
      dir,
      "-c",
      "fsync=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "synchronous_commit=off",
      ...(options.tls === undefined ? [] : ["-c", "ssl=on"]),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(who ?? {}),
  }).spawn();
  const sink = { text: "" };
  const drained = Promise.all([drainText(child.stdout, sink), drainText(child.stderr, sink)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async (): Promise<void> => {
    if (!exited) child.kill("SIGINT"); // fast shutdown
    await status;
    await drained;
    await Deno.remove(dir, { recursive: true });
  };
  const deadline = Date.now() + 30_000;
  while (!sink.text.includes("ready to accept connections")) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`postgres did not start on 127.0.0.1:${port}:\n${sink.text}`);
    }
    await delay(50);
  }
  return { port, user: "postgres", log: () => sink.text, [Symbol.asyncDispose]: stop };
}

/**
 * Which server the end-to-end tests run against, chosen by the environment variable
 * `WASMNET_TEST_SERVER` (issue 15: the same test files, parameterised by the server command):
 *
 * | value             | server                                                                |
 * | ----------------- | --------------------------------------------------------------------- |
 * | unset or `inproc` | `startServer` in the test's own Deno process (the default)             |
 * | `deno`            | `deno run --allow-net --allow-read --allow-env=... mod.ts` as a child  |
 * | `bun`             | `bun run mod.ts` as a child (the pinned Bun: `WASMNET_BUN`, else       |
 * |                   | `.tools/bun/node_modules/.bin/bun`, where `bin/_bun.sh` installs it)   |
 * | `binary`          | `dist/wasmnet` (`deno task binary`) as a child                         |
 *
 * In a child mode, `startTestServer` turns its options into the product's command line; a test
 * whose options have no command-line form is left out with {@linkcode inProcessOnly}, which names
 * the reason and, at the end of the file, prints how many were left out and why. A chosen
 * command that is missing fails every test file that loads this module, at load time.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** The repository root (absolute, with a trailing slash). */
export const ROOT: string = fileURLToPath(new URL("../..", import.meta.url));

/** A value of `WASMNET_TEST_SERVER`. */
export type ServerTarget = "inproc" | "deno" | "bun" | "binary";

/** A server run as a child process. */
export type ChildTarget = Exclude<ServerTarget, "inproc">;

const TARGETS: readonly ServerTarget[] = ["inproc", "deno", "bun", "binary"];

/** A program and the arguments that go before wasmnet's own. */
export interface ServerCommand {
  /** The executable (absolute path). */
  cmd: string;
  /** Arguments before wasmnet's flags (`run mod.ts` for Bun; none for `bin/wasmnet` and the binary). */
  args: string[];
}

function readTarget(): ServerTarget {
  const raw = Deno.env.get("WASMNET_TEST_SERVER")?.trim() || "inproc";
  if (!(TARGETS as readonly string[]).includes(raw)) {
    throw new Error(
      `WASMNET_TEST_SERVER=${JSON.stringify(raw)} is not one of ${TARGETS.join(", ")}`,
    );
  }
  return raw as ServerTarget;
}

/** The server the tests run against (`WASMNET_TEST_SERVER`, default `inproc`). */
export const TARGET: ServerTarget = readTarget();

/** Whether the tests start their servers in their own process (`WASMNET_TEST_SERVER` unset). */
export function inProcess(): boolean {
  return TARGET === "inproc";
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * The pinned Bun: `$WASMNET_BUN`, else `.tools/bun/node_modules/.bin/bun` in the repository
 * (where `bin/_bun.sh` installs it).
 *
 * @throws {Error} naming every place looked at when none holds a file.
 */
export function bunPath(): string {
  const fromEnv = Deno.env.get("WASMNET_BUN");
  if (fromEnv) {
    if (!isFile(fromEnv)) throw new Error(`WASMNET_BUN=${fromEnv} is not a file`);
    return fromEnv;
  }
  const places = [`${ROOT}.tools/bun/node_modules/.bin/bun`];
  const found = places.find(isFile);
  if (!found) {
    throw new Error(
      `WASMNET_TEST_SERVER=bun: no Bun found (set WASMNET_BUN, or run bin/_bun.sh to install it at ${
        places.join(" or ")
      })`,
    );
  }
  return found;
}

/**
 * The command that runs the wasmnet server for `target` (default: the chosen child target, or
 * Deno when the tests run in process): `bin/wasmnet` for Deno (with the `deno` on PATH if it is
 * 2.9.6, else the one it installed in `.tools/`), `bun run mod.ts`, or `dist/wasmnet`.
 *
 * @throws {Error} when the chosen Bun or `dist/wasmnet` does not exist.
 */
export function serverCommand(target: ChildTarget = childTarget()): ServerCommand {
  switch (target) {
    case "deno":
      // bin/wasmnet itself (README's run command), so its permission list is the one tested.
      return { cmd: `${ROOT}bin/wasmnet`, args: [] };
    case "bun":
      return { cmd: bunPath(), args: ["run", "mod.ts"] };
    case "binary": {
      const binary = `${ROOT}dist/wasmnet`;
      if (!isFile(binary)) {
        throw new Error(`WASMNET_TEST_SERVER=binary: ${binary} is missing (deno task binary)`);
      }
      return { cmd: binary, args: [] };
    }
  }
}

/** The child target: the chosen one, or `deno` when the tests run in process. */
export function childTarget(): ChildTarget {
  return TARGET === "inproc" ? "deno" : TARGET;
}

// Fail loudly, once per test file, when the chosen command is missing.
if (!inProcess()) serverCommand();

/** Tests of this file left out in child mode, by reason. */
const leftOut = new Map<string, number>();

globalThis.addEventListener("unload", () => {
  if (leftOut.size === 0) return;
  const total = [...leftOut.values()].reduce((a, b) => a + b, 0);
  const why = [...leftOut].map(([reason, n]) => `${n} × ${reason}`).join("; ");
  // deno-lint-ignore no-console -- the one summary of what a child-mode run did not cover
  console.log(`[WASMNET_TEST_SERVER=${TARGET}] ${total} test(s) left out in child mode: ${why}`);
});

/**
 * Test options (`Deno.test(name, inProcessOnly(reason), fn)`) that leave a test out when the
 * server runs as a child, because what it needs cannot cross a command line: `reason` says what
 * (`"a fake transport"`, `"server.pool stats"`), and the file's summary line counts it.
 */
export function inProcessOnly(reason: string): { ignore: boolean } {
  if (inProcess()) return { ignore: false };
  leftOut.set(reason, (leftOut.get(reason) ?? 0) + 1);
  return { ignore: true };
}

/**
 * Bundles the client library (`src/client/mod.ts` and the protocol it imports) into one ES module,
 * `dist/wasmnet-client.js`, with its declarations in one file, `dist/wasmnet-client.d.ts`.
 *
 * Run from anywhere: `deno task bundle [--minify] [--output FILE]`. `--output` writes the module
 * to FILE instead (relative to the repository root, or absolute) and no declarations; the demo
 * page's build (`src/server/demo/build.ts`) uses it through {@linkcode buildBundle}.
 * It runs `deno bundle` (Deno 2.4+; esbuild, fetched once from the npm registry) with
 * `--no-config`, so the project's server-side npm imports and their Node types stay out of the
 * declaration build (the client imports none of them).
 *
 * Exit code 0 on success; 1 when `deno bundle` fails; 2 for bad arguments.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

const ENTRY = "src/client/mod.ts";
const OUT_JS = "dist/wasmnet-client.js";
const ROOT = new URL("../../", import.meta.url);

function say(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`${line}\n`));
}

/**
 * The `deno bundle` arguments that build the client into `outJs` (run from the repo root).
 * `--no-config` keeps the server-side npm imports and their Node types out of the build.
 */
export function bundleArgs(
  outJs: string,
  options: { declaration?: boolean; minify?: boolean } = {},
): string[] {
  return [
    "bundle",
    "--no-config",
    "--platform",
    "browser",
    "--format",
    "esm",
    ...(options.declaration ? ["--declaration"] : []),
    ...(options.minify ? ["--minify"] : []),
    "--output",
    outJs,
    ENTRY,
  ];
}

/** Options of {@linkcode buildBundle}. */
export interface BundleOptions {
  /**
   * Where to write the ES module: a path relative to the repository root, or an absolute path.
   * Default `dist/wasmnet-client.js`.
   */
  output?: string;
  /** Minify (esbuild's `--minify`). Default false. */
  minify?: boolean;
  /**
   * Also write the declarations, `NAME.d.ts` next to `NAME.js`. Default: true for the default
   * output, false for another `output`.
   */
  declaration?: boolean;
  /**
   * Capture `deno bundle`'s output (its progress lines and warnings) instead of passing it to this
   * process's stdout/stderr; it is then only shown in the error thrown on failure. Default false.
   */
  quiet?: boolean;
}

/**
 * Builds the client bundle with `deno bundle` (a subprocess, run from the repository root). The
 * output is deterministic for one Deno version, wherever it is written.
 *
 * @returns the absolute paths written: the module, then the declarations when asked for.
 * @throws {Error} `deno bundle failed (exit N)` when it fails (with its output when `quiet`).
 */
export async function buildBundle(options: BundleOptions = {}): Promise<string[]> {
  const output = options.output ?? OUT_JS;
  const declaration = options.declaration ?? options.output === undefined;
  const result = await new Deno.Command(Deno.execPath(), {
    args: bundleArgs(output, { declaration, minify: options.minify === true }),
    cwd: ROOT,
    stdout: options.quiet ? "piped" : "inherit",
    stderr: options.quiet ? "piped" : "inherit",
  }).output();
  if (result.code !== 0) {
    const dec = new TextDecoder();
    const text = options.quiet
      ? `: ${dec.decode(result.stdout)}${dec.decode(result.stderr)}`.trimEnd()
      : "";
    throw new Error(`deno bundle failed (exit ${result.code})${text}`);
  }
  const js = fileURLToPath(new URL(output, ROOT));
  return declaration ? [js, js.replace(/(\.m?js)?$/, ".d.ts")] : [js];
}

/**
 * Builds the bundle from command-line arguments: `--minify`, `--output FILE`.
 *
 * @returns the process exit code (0 ok, 1 `deno bundle` failed, 2 bad arguments).
 */
export async function bundle(args: string[]): Promise<number> {
  const options: BundleOptions = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = args[i + 1];
    if (arg === "--minify") options.minify = true;
    else if (arg === "--output" && value !== undefined) {
      options.output = value;
      i++;
    } else {
      say(`bundle: unexpected argument ${arg} (expected --minify, --output FILE)`);
      return 2;
    }
  }
  let files: string[];
  try {
    files = await buildBundle(options);
  } catch (e) {
    say((e as Error).message);
    return 1;
  }
  const root = fileURLToPath(ROOT);
  for (const file of files) {
    const name = file.startsWith(root) ? file.slice(root.length) : file;
    try {
      say(`${name}: ${(await Deno.stat(file)).size} bytes`);
    } catch {
      say(name); // outside the repository: no read permission to stat it
    }
  }
  return 0;
}

if (import.meta.main) Deno.exit(await bundle(Deno.args));

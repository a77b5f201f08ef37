/**
 * Bundles the client library (`src/client/mod.ts` and the protocol it imports) into one ES module,
 * `dist/wasmnet-client.js`, with its declarations in one file, `dist/wasmnet-client.d.ts`.
 *
 * Run from anywhere: `deno task bundle [--minify]`.
 * It runs `deno bundle` (Deno 2.4+; esbuild, fetched once from the npm registry) with
 * `--no-config`, so the project's server-side npm imports and their Node types stay out of the
 * declaration build (the client imports none of them).
 *
 * Exit code 0 on success; otherwise `deno bundle`'s exit code.
 *
 * @module
 */

const ENTRY = "src/client/mod.ts";
const OUT_JS = "dist/wasmnet-client.js";
const OUT_DTS = "dist/wasmnet-client.d.ts";

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

/**
 * Builds the bundle. `args` may contain `--minify`.
 *
 * @returns the process exit code.
 */
export async function bundle(args: string[]): Promise<number> {
  const root = new URL("../../", import.meta.url);
  const flags = bundleArgs(OUT_JS, {
    declaration: true,
    minify: args.includes("--minify"),
  });
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: flags,
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) return code;
  for (const file of [OUT_JS, OUT_DTS]) {
    const { size } = await Deno.stat(new URL(file, root));
    say(`${file}: ${size} bytes`);
  }
  return 0;
}

if (import.meta.main) Deno.exit(await bundle(Deno.args));

/**
 * `bin/wasmnet`, the launcher the README's commands use, for tests of subcommands: with its own
 * permission list (so a permission a subcommand needs and the launcher lacks fails the test) and
 * a PATH whose `deno` is the one running the tests (the launcher then never installs one).
 *
 * @module
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

/** The launcher's path. */
export const LAUNCHER = fileURLToPath(new URL("../../bin/wasmnet", import.meta.url));

/**
 * A `Deno.Command` running `bin/wasmnet ...args`.
 *
 * @param args the launcher's arguments (`plugin FILE.wasm ...`, `water ...`).
 * @param options `Deno.CommandOptions` besides `args` and `env` (`cwd`, `stdout`, ...); `env` is
 *   merged over `PATH`.
 */
export function launcher(
  args: string[],
  options: Omit<Deno.CommandOptions, "args"> = {},
): Deno.Command {
  return new Deno.Command(LAUNCHER, {
    ...options,
    args,
    env: { PATH: `${dirname(Deno.execPath())}:/usr/bin:/bin`, ...options.env },
  });
}

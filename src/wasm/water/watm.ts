/**
 * WATM (WebAssembly Transport Module) version detection and validation, by export names
 * (W.A.T.E.R. spec `transport-module/spec/v1.md`). Browser-safe.
 *
 * @module
 */
import type { Role } from "./_shared.ts";

/** The exports every WATM v1 module must have, whatever its role. */
export const WATM_V1_CORE_EXPORTS: readonly string[] = Object.freeze([
  "watm_init_v1",
  "watm_ctrlpipe_v1",
  "watm_start_v1",
]);

/**
 * The WATM v1 entry point each role calls. A dialer calls `watm_dial_v1` (the module dials the
 * host's remote through `water_dial_fixed`), or, when the module has only `watm_dial_fixed_v1`,
 * that one (the module picks the address and dials it through `water_dial`).
 */
export const WATM_V1_ROLE_EXPORTS: Readonly<Record<Role, readonly string[]>> = Object.freeze({
  dialer: Object.freeze(["watm_dial_v1", "watm_dial_fixed_v1"]),
  listener: Object.freeze(["watm_accept_v1"]),
  relay: Object.freeze(["watm_associate_v1"]),
});

/** The host functions a WATM v1 module may import from `env`. */
export const WATM_V1_HOST_IMPORTS: readonly string[] = Object.freeze([
  "water_dial",
  "water_dial_fixed",
  "water_accept",
]);

/** The WASI module name of preview 1. */
export const WASI_P1 = "wasi_snapshot_preview1";

/** Why a module cannot run: `version` (v0 or unknown), `exports`, `imports`, `invalid`. */
export type WatmErrorCode = "version" | "exports" | "imports" | "invalid";

/** A module this host cannot run; `message` is one line. */
export class WatmError extends Error {
  /** What is wrong. */
  readonly code: WatmErrorCode;

  /**
   * @param code what is wrong
   * @param message one line, e.g. `WATM v0 module (exports _water_v0): this host runs WATM v1`
   */
  constructor(code: WatmErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WatmError";
    this.code = code;
  }
}

/** What {@linkcode inspectWatm} found. */
export interface WatmInfo {
  /** The WATM version (only 1 passes). */
  readonly version: 1;
  /** Exported function names. */
  readonly exports: readonly string[];
  /** Whether the module exports `_start` (run before `watm_init_v1`). */
  readonly hasStart: boolean;
  /** The roles the module's exports allow. */
  readonly roles: readonly Role[];
}

/**
 * Detects the WATM version of a compiled module by its export names and checks it can run as
 * `role` here: the v1 core exports, the role's entry point, a `memory` export, and imports only
 * from `wasi_snapshot_preview1` and `env.water_dial`/`water_dial_fixed`/`water_accept`.
 *
 * @throws {WatmError} `version` for a v0 module (`_water_v0`) or one with no `watm_*_v1` export,
 *   `exports` for a missing export, `imports` for an import this host does not provide.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inspectWatm, WatmError } from "./watm.ts";
 * const empty = new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
 * assert.throws(() => inspectWatm(empty, "dialer"), WatmError);
 * ```
 */
export function inspectWatm(module: WebAssembly.Module, role?: Role): WatmInfo {
  const exps = WebAssembly.Module.exports(module);
  const fns = exps.filter((e) => e.kind === "function").map((e) => e.name);
  const names = new Set(fns);
  if (names.has("_water_v0")) {
    throw new WatmError(
      "version",
      "WATM v0 module (exports _water_v0): this host runs WATM v1 modules only",
    );
  }
  const v1 = fns.filter((n) => /^watm_\w+_v1$/.test(n));
  if (v1.length === 0) {
    const other = fns.find((n) => /^watm_\w+_v\d+$/.test(n));
    throw new WatmError(
      "version",
      other
        ? `unsupported WATM version (exports ${other}): this host runs WATM v1 modules only`
        : "not a WATM v1 module: it exports no watm_*_v1 function",
    );
  }
  const missing = WATM_V1_CORE_EXPORTS.filter((n) => !names.has(n));
  if (missing.length > 0) {
    throw new WatmError("exports", `WATM v1 module lacks the export ${missing.join(", ")}`);
  }
  if (!exps.some((e) => e.name === "memory" && e.kind === "memory")) {
    throw new WatmError("exports", "WATM v1 module lacks the export memory");
  }
  const roles = (Object.keys(WATM_V1_ROLE_EXPORTS) as Role[]).filter((r) =>
    WATM_V1_ROLE_EXPORTS[r].some((n) => names.has(n))
  );
  if (role !== undefined && !roles.includes(role)) {
    throw new WatmError(
      "exports",
      `WATM v1 module lacks the export ${
        WATM_V1_ROLE_EXPORTS[role].join(" or ")
      } (needed as ${role})`,
    );
  }
  for (const imp of WebAssembly.Module.imports(module)) {
    const ok = imp.module === WASI_P1
      ? imp.kind === "function"
      : imp.module === "env" && imp.kind === "function" && WATM_V1_HOST_IMPORTS.includes(imp.name);
    if (!ok) {
      throw new WatmError(
        "imports",
        `WATM v1 module imports ${imp.module}.${imp.name} (${imp.kind}), which this host does not provide`,
      );
    }
  }
  return { version: 1, exports: fns, hasStart: names.has("_start"), roles };
}

/**
 * Compiles `bytes` and checks them with {@linkcode inspectWatm}.
 *
 * @throws {WatmError} `invalid` when the bytes are not a WebAssembly module, else as
 *   {@linkcode inspectWatm}.
 */
export async function compileWatm(
  bytes: Uint8Array<ArrayBuffer>,
  role?: Role,
): Promise<{ module: WebAssembly.Module; info: WatmInfo }> {
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(bytes);
  } catch (e) {
    throw new WatmError("invalid", `not a WebAssembly module: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return { module, info: inspectWatm(module, role) };
}

/**
 * The one logging module of wasmnet (a thin layer over the npm `loglevel` package). Every line is
 * `<ISO time> <LEVEL> <logger>: <message> key=value ...`; `error` and `warn` go to stderr, the rest
 * to stdout. Nothing else in wasmnet writes to the console (the `no-console` lint rule is on).
 *
 * The level is `info` until {@linkcode setLogLevel} changes it; the CLI sets it from the
 * `WASMNET_LOG` environment variable (`trace`, `debug`, `info`, `warn`, `error`, `silent`; read by
 * {@linkcode logLevelFromEnv}) and `--log-level`.
 *
 * @example
 * ```ts
 * import { getLogger } from "./mod.ts";
 * const log = getLogger("session");
 * log.debug("socket open", { id: 7, dest: "127.0.0.1:80" });
 * ```
 *
 * @module
 */
import loglevel from "loglevel";

/** Log levels, most verbose first. `silent` logs nothing. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "silent"] as const;

/** A log level name. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Structured fields appended to a log line as `key=value` (strings with spaces are quoted). */
export type LogFields = Record<string, string | number | boolean | bigint | undefined>;

/** A named logger. Each method writes one line when its level is enabled. */
export interface Logger {
  /** Very detailed tracing (every frame). */
  trace(msg: string, fields?: LogFields): void;
  /** Per-socket detail: open/close with destination and byte counts. */
  debug(msg: string, fields?: LogFields): void;
  /** Lifecycle: server start/stop, session start/end. */
  info(msg: string, fields?: LogFields): void;
  /** Something unexpected that the server survived. */
  warn(msg: string, fields?: LogFields): void;
  /** A failure. */
  error(msg: string, fields?: LogFields): void;
  /** True when `level` would be written (lets callers skip building costly fields). */
  enabled(level: Exclude<LogLevel, "silent">): boolean;
}

const root = loglevel.getLogger("wasmnet");
root.setLevel("info", false);

function format(v: string | number | boolean | bigint): string {
  const s = String(v);
  return /[\s"=]/.test(s) || s === "" ? JSON.stringify(s) : s;
}

function line(level: string, name: string, msg: string, fields?: LogFields): string {
  let out = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${name}: ${msg}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) out += ` ${k}=${format(v)}`;
  }
  return out;
}

/**
 * Returns the logger named `name` (e.g. `server`, `session`, `cli`). All loggers share one level.
 */
export function getLogger(name: string): Logger {
  const at = (level: Exclude<LogLevel, "silent">) => (msg: string, fields?: LogFields): void => {
    if (root.getLevel() <= root.levels[level.toUpperCase() as Uppercase<typeof level>]) {
      root[level](line(level, name, msg, fields));
    }
  };
  return {
    trace: at("trace"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    enabled: (level) =>
      root.getLevel() <= root.levels[level.toUpperCase() as Uppercase<typeof level>],
  };
}

/** Sets the level of every wasmnet logger. */
export function setLogLevel(level: LogLevel): void {
  root.setLevel(level, false);
}

/** The environment variable that sets the log level. */
export const LOG_ENV_VAR = "WASMNET_LOG";

/**
 * The level named by the `WASMNET_LOG` environment variable, or `undefined` when it is unset or
 * empty. `env` reads a variable on the current runtime and answers undefined when it may not be
 * read (the CLI's runtime module does: on Deno without the env permission for it, the variable
 * counts as unset and nothing prompts).
 *
 * @throws {TypeError} when the variable holds an unknown level (see {@linkcode parseLogLevel}).
 *
 * @example
 * ```ts
 * import { logLevelFromEnv } from "./mod.ts";
 * const level = logLevelFromEnv(() => "debug"); // "debug"
 * ```
 */
export function logLevelFromEnv(env: (name: string) => string | undefined): LogLevel | undefined {
  const text = env(LOG_ENV_VAR);
  return text ? parseLogLevel(text) : undefined;
}

/**
 * Parses a level name, case-insensitively.
 *
 * @throws {TypeError} `Invalid log level "x": expected one of trace, debug, info, warn, error, silent`.
 */
export function parseLogLevel(text: string): LogLevel {
  const level = text.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new TypeError(`Invalid log level "${text}": expected one of ${LOG_LEVELS.join(", ")}`);
}

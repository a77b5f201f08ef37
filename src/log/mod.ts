/**
 * The one logging module of wasmnet (a thin layer over the npm `loglevel` package). In the `text`
 * format (the default) every line is `<ISO time> <LEVEL> <logger>: <message> key=value ...`; in
 * the `json` format ({@linkcode setLogFormat}, the CLI's `--log-format json`) every line is one
 * JSON object `{"time": "<ISO time>", "level": "info", "logger": "session", "msg": "...", ...fields}`.
 * `error` and `warn` go to stderr, the rest to stdout. Nothing else in wasmnet writes to the
 * console (the `no-console` lint rule is on).
 *
 * Lines go to the console through `loglevel` until {@linkcode setLogOutput} installs another
 * output; the CLI installs its runtime's bounded asynchronous writer ({@linkcode BoundedWriter}),
 * so a stdout nobody drains drops lines (counted by {@linkcode droppedLogLines}) instead of
 * blocking the server.
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

export {
  type AsyncWrite,
  BoundedWriter,
  type BoundedWriterOptions,
  DEFAULT_OUTPUT_BUFFER_BYTES,
  droppedLogLines,
} from "./output.ts";

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

/** Log line formats: `text` (`key=value` lines, the default) or `json` (one object per line). */
export const LOG_FORMATS = ["text", "json"] as const;

/** A log line format name. */
export type LogFormat = typeof LOG_FORMATS[number];

/**
 * Where log lines go: `stream` is `stderr` for `error` and `warn`, else `stdout`; `line` ends with
 * a newline. Must not block and must not throw.
 */
export type LogOutput = (stream: "stdout" | "stderr", line: string) => void;

const root = loglevel.getLogger("wasmnet");
/** loglevel's number of each level (`root.levels`), by our lower-case names. */
const LEVELS: Record<Exclude<LogLevel, "silent">, number> = {
  trace: root.levels.TRACE,
  debug: root.levels.DEBUG,
  info: root.levels.INFO,
  warn: root.levels.WARN,
  error: root.levels.ERROR,
};
root.setLevel("info", false);
let lineFormat: LogFormat = "text";
let output: LogOutput | undefined;

function format(v: string | number | boolean | bigint): string {
  const s = String(v);
  return /[\s"=]/.test(s) || s === "" ? JSON.stringify(s) : s;
}

/** Keys every JSON line starts with; a field of the same name is left out. */
const JSON_KEYS = new Set(["time", "level", "logger", "msg"]);

function line(level: string, name: string, msg: string, fields?: LogFields): string {
  const time = new Date().toISOString();
  if (lineFormat === "json") {
    const object: Record<string, string | number | boolean> = { time, level, logger: name, msg };
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined || JSON_KEYS.has(k)) continue;
        object[k] = typeof v === "bigint"
          ? (Number.isSafeInteger(Number(v)) ? Number(v) : String(v))
          : v;
      }
    }
    return JSON.stringify(object);
  }
  let out = `${time} ${level.toUpperCase().padEnd(5)} ${name}: ${msg}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) out += ` ${k}=${format(v)}`;
  }
  return out;
}

/**
 * Returns the logger named `name` (e.g. `server`, `session`, `cli`). All loggers share one level.
 */
export function getLogger(name: string): Logger {
  const at = (level: Exclude<LogLevel, "silent">) => {
    const threshold = LEVELS[level];
    return (msg: string, fields?: LogFields): void => {
      if (root.getLevel() > threshold) return;
      const text = line(level, name, msg, fields);
      if (output === undefined) root[level](text);
      else output(level === "error" || level === "warn" ? "stderr" : "stdout", `${text}\n`);
    };
  };
  return {
    trace: at("trace"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    enabled: (level) => root.getLevel() <= LEVELS[level],
  };
}

/** Sets the level of every wasmnet logger. */
export function setLogLevel(level: LogLevel): void {
  root.setLevel(level, false);
}

/**
 * Sets the line format of every wasmnet logger: `text` (default) or `json` (see the module doc).
 * JSON lines carry the fields as JSON values (a `bigint` as a number when it is a safe integer,
 * else as a string); a field named `time`, `level`, `logger` or `msg` is left out.
 *
 * @example
 * ```ts
 * import { setLogFormat } from "./mod.ts";
 * setLogFormat("json");
 * setLogFormat("text");
 * ```
 */
export function setLogFormat(format: LogFormat): void {
  lineFormat = format;
}

/** The line format in force (see {@linkcode setLogFormat}). */
export function logFormat(): LogFormat {
  return lineFormat;
}

/**
 * Sends every log line to `out` instead of the console (undefined restores the console). The CLI
 * passes its runtime's `write`, which never blocks.
 */
export function setLogOutput(out: LogOutput | undefined): void {
  output = out;
}

/**
 * Parses a format name, case-insensitively.
 *
 * @throws {TypeError} `Invalid log format "x": expected one of text, json`.
 */
export function parseLogFormat(text: string): LogFormat {
  const format = text.trim().toLowerCase();
  if ((LOG_FORMATS as readonly string[]).includes(format)) return format as LogFormat;
  throw new TypeError(`Invalid log format "${text}": expected one of ${LOG_FORMATS.join(", ")}`);
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

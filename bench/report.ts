/**
 * Rendering of a benchmark run: the markdown report (the relay table with ratios to the naive
 * server and the runtime that wins each row, wasmnet against the hand-written relays, the goals
 * for the Deno and the Bun server side by side, the Deno load generator's tables with ratios to
 * raw TCP, memory) and a self-made SVG chart of the relay table. Pure: no I/O.
 *
 * @module
 */

/**
 * The stated memory budget of an idle session (a WebSocket with no sockets), in KiB: the
 * `idle_sessions` goal is 10,000 of them on one server within 10,000 × this.
 */
export const IDLE_SESSION_BUDGET_KIB = 20;
/** The goal's most server memory per idle proxied socket (KiB). */
export const IDLE_SOCKET_BUDGET_KIB = 16;

/** The machine the run was on. */
export interface Machine {
  nproc: number;
  cpu: string;
  kernel: string;
  deno: string;
  node: string;
  /** `bun --version` of the pinned Bun, or "n/a". */
  bun: string;
  /** `chromium --version`, or "n/a". */
  chromium: string;
  memGiB: number;
  /** `/proc/loadavg` (1, 5, 15 min) when the run started and when it ended. */
  loadStart: string;
  loadEnd: string;
}

/** Median and spread of one metric for one system. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** One system's results from the Deno load generator. */
export interface Row {
  key: string;
  label: string;
  calibration: boolean;
  perSocketWs: boolean;
  driver: "deno" | "node";
  /** The runtime of a wasmnet server row (the runtime comparison). */
  runtime?: "deno" | "bun";
  values: Record<string, Stat>;
  /** Metric → why every run failed (the server did not start, the driver failed). */
  failures?: Record<string, string>;
}

/** One column of the relay table. */
export interface RelayColumn {
  key: string;
  label: string;
  /** One WebSocket per proxied socket (no multiplexing). */
  perSocketWs: boolean;
  /** The naive column this one's ratio is taken against (none: a naive column). */
  naive?: string;
  /** The runtime of a wasmnet server or a hand-written relay. */
  runtime?: "deno" | "bun" | "node";
  /** Not a proxy (the load generator's WebSocket without one). */
  calibration?: boolean;
}

/** One cell of the relay table: the successful runs' figures and the failed runs. */
export interface RelayCell extends Stat {
  /** Runs that failed (an upload the server refused, a timeout, ...). */
  failed: number;
  /** The first failure's message. */
  failure?: string;
}

/** Sizes and durations of a run. */
export interface Params {
  /** Bytes of each throughput run (Node and Deno load generators). */
  bytes: number;
  /** Bytes of each browser download. */
  browserBytes: number;
  rtt: number;
  connLat: number;
  rateSecs: number;
  sessSecs: number;
  idle: number;
  /** Sessions of the `idle_sessions` scenario. */
  idleSessions: number;
  limSecs: number;
  otherReps: number;
}

/** One server's memory with `sockets` idle sockets (or sessions). */
export interface MemoryRow {
  /** The system's key (`wasmnet-bin`, `bun-bin`, `wisp`, `websockify`). */
  system: string;
  label?: string;
  /** Idle sockets (or sessions) held while measured. */
  sockets: number;
  /** What was measured (`VmRSS`, PSS of a process tree). */
  how: string;
  /** KiB before and with the idle sockets. */
  base: number;
  loaded: number;
  perSocketKiB: number;
  /** Seconds it took to open them. */
  openSecs: number;
  /** Why there are no figures. */
  failure?: string;
}

/** One column of the Wisp table. */
export interface WispColumn extends RelayColumn {
  /** What the wisp-js client spoke to it (`Wisp v2`; `Wisp v1` when it fell back). */
  protocol?: string;
}

/**
 * The Wisp table: our Wisp personality under Deno (`wisp-deno`) and Bun (`wisp-bun`) against the
 * wisp-js server (`wisp`), all through the wisp-js client. Metrics: `up`, `up10`, `down`,
 * `down10` (MiB/s, the total of the streams), `rtt_p50`, `rtt_p99` (µs), `conn_rate` (/s).
 */
export interface WispReport {
  columns: WispColumn[];
  /** Metric → column key → cell. */
  cells: Record<string, Record<string, RelayCell>>;
  /** Server memory with idle streams, one row per column (`sockets` counts streams). */
  memory: MemoryRow[];
}

/** Everything a run produced (also written as `latest.json`). */
export interface Report {
  date: string;
  /** The commit the server ran from (`abc1234`, plus any uncommitted changes to its files). */
  revision: string;
  mode: "quick" | "full";
  /** Repetitions of every relay-table cell. */
  reps: number;
  /** Repetitions of the Deno load generator's scenarios. */
  otherReps: number;
  params: Params;
  machine: Machine;
  /** The relay table: metric → column key → cell. */
  relay: { columns: RelayColumn[]; cells: Record<string, Record<string, RelayCell>> };
  /** The Deno load generator's systems. */
  rows: Row[];
  /** The Wisp table (absent in reports of runs before it existed). */
  wisp?: WispReport;
  /** Server memory with idle proxied sockets. */
  memory: MemoryRow[];
  /** Server memory with idle sessions (no sockets); `sockets` and `perSocketKiB` count sessions. */
  idleSessions: MemoryRow[];
  limiter: Array<{ mbps: number; upMbps: number; downMbps: number }>;
  pool: { status: string };
  /** The scenarios this run included (`--only`, quick). */
  ran: string[];
  skipped: Record<string, string>;
  /** Servers that did not start (at least once): label → why. */
  failedToStart: Record<string, string>;
  errors: string[];
  notes: string[];
  secs: number;
}

interface MetricDef {
  key: string;
  title: string;
  unit: string;
  /** true: bigger is better. */
  higher: boolean;
}

/** Rows of the relay table. */
const RELAY: MetricDef[] = [
  { key: "up_free", title: "upload, 1 socket, free-running", unit: "MiB/s", higher: true },
  { key: "up_ack", title: "upload, 1 socket, acknowledged", unit: "MiB/s", higher: true },
  { key: "down", title: "download, 1 socket (Node client)", unit: "MiB/s", higher: true },
  { key: "down_browser", title: "download, 1 socket (Chromium)", unit: "MiB/s", higher: true },
  { key: "rtt_p50", title: "64 B round trip p50", unit: "µs", higher: false },
  { key: "rtt_p99", title: "64 B round trip p99", unit: "µs", higher: false },
  { key: "conn_rate", title: "connect+close, 16 in flight", unit: "/s", higher: true },
];
const THROUGHPUT10: MetricDef[] = [
  { key: "up10", title: "upload, 10 sockets", unit: "MiB/s", higher: true },
  { key: "down10", title: "download, 10 sockets", unit: "MiB/s", higher: true },
];
const LATENCY: MetricDef[] = [
  { key: "conn_p50", title: "connect p50", unit: "µs", higher: false },
  { key: "conn_p99", title: "connect p99", unit: "µs", higher: false },
  { key: "sess_rate", title: "200 sessions, 1000 B RT", unit: "/s", higher: true },
  { key: "sess_p99", title: "200 sessions p99", unit: "µs", higher: false },
];
/** Ratios closer to 1 than this are reported as a tie. */
const TIE = 0.05;

function num(x: number): string {
  if (!Number.isFinite(x)) return "–";
  if (Math.abs(x) >= 100) return Math.round(x).toLocaleString("en-US");
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function spreadOf(s: Stat): string {
  return s.n > 1 && s.median !== 0
    ? ` ±${Math.round(50 * (s.max - s.min) / Math.abs(s.median))}%`
    : "";
}

function stat(row: Row | undefined, key: string): number {
  return row?.values[key]?.median ?? NaN;
}

function cell(row: Row, raw: Row | undefined, def: MetricDef): string {
  const s = row.values[def.key];
  const why = row.failures?.[def.key];
  if (why !== undefined && (!s || s.n === 0)) return `failed: ${why.slice(0, 70)}`;
  if (!s || s.n === 0 || !Number.isFinite(s.median)) return "n/a";
  const r = stat(raw, def.key);
  const ratio = row.key !== "raw" && Number.isFinite(r) && r !== 0
    ? ` (${(s.median / r).toFixed(2)}×)`
    : "";
  return `${num(s.median)}${spreadOf(s)}${ratio}`;
}

/**
 * Which runtime's server wins: `a` (Deno) against `b` (Bun) on one metric, as "Deno 1.23×",
 * "Bun 1.10×", "tie" (within {@link TIE}) or "–" (one of them has no figure).
 */
function winner(a: number, b: number, higher: boolean): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || a <= 0 || b <= 0) return "–";
  const r = higher ? a / b : b / a; // > 1: Deno better
  if (Math.abs(r - 1) <= TIE) return "tie";
  return r > 1 ? `Deno ${r.toFixed(2)}×` : `Bun ${(1 / r).toFixed(2)}×`;
}

function table(rows: Row[], raw: Row | undefined, defs: MetricDef[]): string {
  const head = `| system | ${defs.map((d) => `${d.title} (${d.unit})`).join(" | ")} |`;
  const sep = `| --- | ${defs.map(() => "---:").join(" | ")} |`;
  const body = rows.map((r) =>
    `| ${r.label}${r.perSocketWs ? "¹" : ""} | ${defs.map((d) => cell(r, raw, d)).join(" | ")} |`
  );
  const deno = rows.filter((r) => r.runtime === "deno");
  const bun = rows.filter((r) => r.runtime === "bun");
  if (deno.length && bun.length) {
    const by = (list: Row[], framing: string): Row | undefined =>
      list.find((r) => r.key.endsWith(framing));
    const w = (d: MetricDef): string =>
      ["bin", "json"].map((f) => {
        const t = winner(stat(by(deno, f), d.key), stat(by(bun, f), d.key), d.higher);
        return t === "–" ? "" : `${f === "bin" ? "binary" : "JSON"}: ${t}`;
      }).filter((x) => x !== "").join(", ") || "–";
    body.push(`| *faster runtime (Deno vs Bun)* | ${defs.map(w).join(" | ")} |`);
  }
  return [head, sep, ...body].join("\n");
}

// ---------------------------------------------------------------------------------------------
// the relay table

/** Metric → column key → cell (the relay table's, the Wisp table's). */
type Cells = Record<string, Record<string, RelayCell>>;

/** The median of a cell with at least one successful run, else `NaN`. */
function cellMedian(cells: Cells, metric: string, col: string | undefined): number {
  const c = col === undefined ? undefined : cells[metric]?.[col];
  return c && c.n > 0 ? c.median : NaN;
}

function relayMedian(rep: Report, metric: string, col: string | undefined): number {
  return cellMedian(rep.relay.cells, metric, col);
}

/**
 * A cell's text: median, ± spread, (×) the ratio to column `base`'s median of the same metric,
 * and the failed runs; "–" when the column did not run the metric.
 */
function cellText(cells: Cells, metric: string, col: string, base: string | undefined): string {
  const c = cells[metric]?.[col];
  if (!c) return "–";
  const runs = c.n + c.failed;
  if (c.n === 0) {
    const why = (c.failure ?? "").slice(0, 70);
    return why.startsWith("failed: ") ? why : `**fails** ${c.failed}/${runs}: ${why}`;
  }
  const b = cellMedian(cells, metric, base);
  const ratio = base && Number.isFinite(b) && b !== 0 ? ` (${(c.median / b).toFixed(2)}×)` : "";
  const failed = c.failed ? ` ⚠ ${c.failed}/${runs} failed: ${(c.failure ?? "").slice(0, 50)}` : "";
  return `${num(c.median)}${spreadOf(c)}${ratio}${failed}`;
}

function relayCellText(rep: Report, def: MetricDef, col: RelayColumn): string {
  return cellText(rep.relay.cells, def.key, col.key, col.naive);
}

/** Whether both runtimes' wasmnet columns are in the relay table. */
function hasBoth(rep: Report): boolean {
  const keys = rep.relay.columns.map((c) => c.key);
  return keys.includes("wasmnet-bin") && keys.includes("bun-bin");
}

/** The winner cell of a relay row: binary and JSON, Deno against Bun. */
function relayWinner(rep: Report, def: MetricDef): string {
  const parts = [["binary", "wasmnet-bin", "bun-bin"], ["JSON", "wasmnet-json", "bun-json"]]
    .map(([label, d, b]) => {
      const t = winner(relayMedian(rep, def.key, d), relayMedian(rep, def.key, b), def.higher);
      return t === "–" ? "" : `${label}: ${t}`;
    }).filter((x) => x !== "");
  return parts.join(", ") || "–";
}

function relayTable(rep: Report): string {
  const cols = rep.relay.columns;
  const both = hasBoth(rep);
  const head = `| row | ${cols.map((c) => `${c.label}${c.perSocketWs ? "¹" : ""}`).join(" | ")} |${
    both ? " faster runtime |" : ""
  }`;
  const sep = `| --- | ${cols.map(() => "---:").join(" | ")} |${both ? " --- |" : ""}`;
  const body = RELAY.filter((d) => rep.relay.cells[d.key]).map((d) =>
    `| ${d.title} (${d.unit}) | ${cols.map((c) => relayCellText(rep, d, c)).join(" | ")} |${
      both ? ` ${relayWinner(rep, d)} |` : ""
    }`
  );
  return [head, sep, ...body].join("\n");
}

/** A wasmnet server's column (Deno's or Bun's, either framing). */
function isWasmnet(col: RelayColumn): boolean {
  return /^(wasmnet|bun)-(bin|json)$/.test(col.key);
}

/** One wasmnet-vs-naive comparison of a row. */
interface Versus {
  def: MetricDef;
  col: RelayColumn;
  naive: RelayColumn;
  value: number;
  base: number;
  /** value / base. */
  ratio: number;
  /** > 0: wasmnet better by that fraction; < 0: worse. */
  gain: number;
  /** Whether the two min–max ranges overlap (the difference is within run-to-run noise). */
  overlap: boolean;
}

function versus(rep: Report): Versus[] {
  const out: Versus[] = [];
  for (const col of rep.relay.columns) {
    if (!isWasmnet(col) || !col.naive) continue;
    const naive = rep.relay.columns.find((c) => c.key === col.naive);
    if (!naive) continue;
    for (const def of RELAY) {
      const a = rep.relay.cells[def.key]?.[col.key];
      const b = rep.relay.cells[def.key]?.[naive.key];
      if (!a || !b || a.n === 0 || b.n === 0) continue;
      const ratio = a.median / b.median;
      out.push({
        def,
        col,
        naive,
        value: a.median,
        base: b.median,
        ratio,
        gain: def.higher ? ratio - 1 : 1 / ratio - 1,
        overlap: a.min <= b.max && b.min <= a.max,
      });
    }
  }
  return out;
}

function versusLine(v: Versus): string {
  const pct = Math.round(Math.abs(v.gain) * 100);
  return `${v.def.title}: ${v.col.label} ${num(v.value)} vs ${v.naive.label} ${num(v.base)} ` +
    `${v.def.unit} (${v.ratio.toFixed(2)}×, ${v.gain < 0 ? "worse" : "better"} by ${pct}%` +
    `${v.overlap ? "; the min–max ranges overlap" : ""})`;
}

/** Rows of the comparison with the hand-written relays. */
const TOY_ROWS = ["up_free", "down", "rtt_p50"];

/**
 * wasmnet binary against the hand-written relays: each runtime's column against the toy of its
 * own runtime and against Node's. Ratio cells (value / toy); "–" when either is missing.
 */
function toyTable(rep: Report): string | undefined {
  const pairs: Array<[string, string]> = [];
  for (const [col, own] of [["wasmnet-bin", "toy-deno"], ["bun-bin", "toy-bun"]] as const) {
    if (!rep.relay.columns.some((c) => c.key === col)) continue;
    for (const toy of [own, "toy-node"]) {
      if (rep.relay.columns.some((c) => c.key === toy)) pairs.push([col, toy]);
    }
  }
  const defs = RELAY.filter((d) => TOY_ROWS.includes(d.key) && rep.relay.cells[d.key]);
  if (pairs.length === 0 || defs.length === 0) return undefined;
  const label = (k: string): string => rep.relay.columns.find((c) => c.key === k)?.label ?? k;
  const head = `| row | ${pairs.map(([a, b]) => `${label(a)} ÷ ${label(b)}`).join(" | ")} |`;
  const sep = `| --- | ${pairs.map(() => "---:").join(" | ")} |`;
  const body = defs.map((d) =>
    `| ${d.title} | ${
      pairs.map(([a, b]) => {
        const r = relayMedian(rep, d.key, a) / relayMedian(rep, d.key, b);
        return Number.isFinite(r) ? `${r.toFixed(2)}×` : "–";
      }).join(" | ")
    } |`
  );
  return [head, sep, ...body].join("\n");
}

// ---------------------------------------------------------------------------------------------
// the Wisp table

/** Rows of the Wisp table (keys of `WispReport.cells`); memory per idle stream follows them. */
const WISP_ROWS: MetricDef[] = [
  { key: "up", title: "upload, 1 stream, free-running", unit: "MiB/s", higher: true },
  { key: "up10", title: "upload, 10 streams, free-running, total", unit: "MiB/s", higher: true },
  { key: "down", title: "download, 1 stream", unit: "MiB/s", higher: true },
  { key: "down10", title: "download, 10 streams, total", unit: "MiB/s", higher: true },
  { key: "rtt_p50", title: "64 B round trip p50", unit: "µs", higher: false },
  { key: "rtt_p99", title: "64 B round trip p99", unit: "µs", higher: false },
  { key: "conn_rate", title: "connect+close, 16 in flight", unit: "/s", higher: true },
];
/** The Wisp table's reference column: the wisp-js server. */
const WISP_REF = "wisp";
/** Our Wisp personality's columns, by runtime. */
const WISP_OURS = { deno: "wisp-deno", bun: "wisp-bun" } as const;

/** One row of the Wisp table: the medians (or the memory rows) of its columns. */
interface WispRow {
  title: string;
  higher: boolean;
  /** Column key → median (`NaN`: none). */
  value: (col: string) => number;
  /** Column key → cell text. */
  text: (col: string) => string;
}

function wispRows(w: WispReport, streams: number): WispRow[] {
  const rows: WispRow[] = WISP_ROWS.filter((d) => w.cells[d.key]).map((d) => ({
    title: `${d.title} (${d.unit})`,
    higher: d.higher,
    value: (col) => cellMedian(w.cells, d.key, col),
    text: (col) => cellText(w.cells, d.key, col, col === WISP_REF ? undefined : WISP_REF),
  }));
  if (w.memory.length) {
    const perStream = (col: string): number =>
      w.memory.find((m) => m.system === col && !m.failure)?.perSocketKiB ?? NaN;
    rows.push({
      title: `server memory per idle stream (KiB; ${streams} streams)`,
      higher: false,
      value: perStream,
      text: (col) => {
        const m = w.memory.find((x) => x.system === col);
        if (!m) return "–";
        if (m.failure) return m.failure.slice(0, 70);
        const ref = perStream(WISP_REF);
        const ratio = col !== WISP_REF && Number.isFinite(ref) && ref > 0
          ? ` (${(m.perSocketKiB / ref).toFixed(2)}×)`
          : "";
        return `${num(m.perSocketKiB)}${ratio}`;
      },
    });
  }
  return rows;
}

/** The Wisp section: the table, how each of ours compares with wisp-js, and the method. */
function wispSection(rep: Report): string[] {
  const w = rep.wisp;
  const lines = ["## Wisp: wasmnet's Wisp personality against the wisp-js server", ""];
  const wanted = rep.ran.some((s) => s.startsWith("wisp_"));
  if (!w || w.columns.length === 0 || (!Object.keys(w.cells).length && !w.memory.length)) {
    lines.push(wanted ? "No figures (see left out and errors)." : "Not run (--only).");
    return lines;
  }
  const cols = w.columns;
  const has = (k: string): boolean => cols.some((c) => c.key === k);
  const both = has(WISP_OURS.deno) && has(WISP_OURS.bun);
  const streams = w.memory[0]?.sockets ?? rep.params.idle;
  const rows = wispRows(w, streams);
  lines.push(
    `| row | ${cols.map((c) => c.label).join(" | ")} |${both ? " faster runtime |" : ""}`,
  );
  lines.push(`| --- | ${cols.map(() => "---:").join(" | ")} |${both ? " --- |" : ""}`);
  for (const r of rows) {
    const win = both
      ? ` ${winner(r.value(WISP_OURS.deno), r.value(WISP_OURS.bun), r.higher)} |`
      : "";
    lines.push(`| ${r.title} | ${cols.map((c) => r.text(c.key)).join(" | ")} |${win}`);
  }
  lines.push("");
  const p = rep.params;
  lines.push(
    `Cells: median of ${rep.reps} runs, ±half the min–max spread in % of the median, (×) the ` +
      "ratio to the wisp-js server (for round trips and memory below 1× is better); " +
      "**fails** k/n: runs that ended with an error (a stream's unasked `CLOSE` is named by " +
      "its reason); `failed: …`: the server did not start. faster runtime: our Deno server " +
      `against our Bun server (a tie within ${TIE * 100}%).`,
  );
  lines.push("");
  for (const key of [WISP_OURS.deno, WISP_OURS.bun]) {
    const col = cols.find((c) => c.key === key);
    if (!col || !has(WISP_REF)) continue;
    const worse: string[] = [];
    let better = 0;
    let compared = 0;
    for (const r of rows) {
      const a = r.value(key);
      const b = r.value(WISP_REF);
      if (!Number.isFinite(a) || !Number.isFinite(b) || a <= 0 || b <= 0) continue;
      compared++;
      const gain = r.higher ? a / b - 1 : b / a - 1;
      if (gain > TIE) better++;
      else if (gain < -TIE) worse.push(`${r.title.replace(/ \(.*$/, "")} ${(a / b).toFixed(2)}×`);
    }
    lines.push(
      `- **${col.label}** against the wisp-js server: better by more than ${TIE * 100}% in ` +
        `${better} of ${compared} rows; worse in ${worse.length ? worse.join(", ") : "none"}.`,
    );
  }
  const spoke = cols.filter((c) => c.protocol).map((c) => `${c.label}: ${c.protocol}`);
  if (spoke.length) {
    lines.push(
      `- What the wisp-js client spoke (it offers v2 and falls back to v1 when the v2 ` +
        `handshake fails): ${spoke.join("; ")}.`,
    );
  }
  lines.push("");
  lines.push(
    "- Every column is driven by the same client, `@mercuryworkshop/wisp-js`'s own " +
      "`ClientConnection` under Node (`bench/driver_wisp.mjs`), with the scenarios of the relay " +
      "table, all streams on one Wisp connection. **ours**: the wasmnet servers of the relay " +
      "table (same command line, fresh per scenario), their Wisp endpoint `ws://…/wisp/`. " +
      "**wisp-js server**: its CLI under Node (`server_cli.mjs`, loopback and private " +
      "addresses allowed).",
  );
  lines.push(
    `- **upload**: ${p.bytes / 2 ** 20} MiB in 64 KiB DATA packets over 1 stream, or split ` +
      "over 10 streams (the total rate), sent while the WebSocket's `bufferedAmount` plus the " +
      "stream's queue waiting for `CONTINUE` credit hold under 4 MiB; timed until the upstream " +
      `peer reports the last byte. **download**: the upstream peer writes ${
        p.bytes / 2 ** 20
      } MiB (1 stream, or 10 streams with a tenth each); timed until the last byte arrived. A ` +
      "warm-up run precedes each.",
  );
  lines.push(
    `- **round trip**: ${p.rtt} sequential 64 B echoes on one stream. **connect+close**: 16 ` +
      `loops for ${p.rateSecs} s of CONNECT, one byte echoed end to end, CLOSE (Wisp has no ` +
      "acknowledgement of either). **memory**: a fresh server per column; the server's VmRSS " +
      `after one Wisp connection opened and closed 50 streams, then with ${streams} idle ` +
      "streams open on it (each proven by one echoed byte, each with its upstream TCP " +
      "connection), 1 s after the last opened: (loaded − base) / streams.",
  );
  return lines;
}

// ---------------------------------------------------------------------------------------------
// goals

/** One measured goal figure: a ratio (or KiB), or why there is none. */
interface Figure {
  value: number;
  /** Why there is no value (a server that did not start, a failed run). */
  why?: string;
}

/** One goal, measured for each runtime's server. */
interface Goal {
  goal: string;
  target: number;
  /** "ge": value ≥ target passes; "le": value ≤ target passes. */
  cmp: "ge" | "le";
  unit: string;
  deno: Figure;
  bun: Figure;
}

/** The two runtimes' wasmnet servers, by the keys of their columns and rows. */
const RUNTIMES = {
  deno: { bin: "wasmnet-bin", json: "wasmnet-json", toy: "toy-deno" },
  bun: { bin: "bun-bin", json: "bun-json", toy: "toy-bun" },
} as const;

/** The issue 15 goals, each for the Deno and the Bun server (ratios within this run). */
function goals(rep: Report): Goal[] {
  const relayFig = (metric: string, a: string, b: string): Figure => {
    const value = relayMedian(rep, metric, a) / relayMedian(rep, metric, b);
    if (Number.isFinite(value)) return { value };
    const c = rep.relay.cells[metric]?.[a];
    return c?.n === 0 && c.failure ? { value: NaN, why: "failed" } : { value: NaN };
  };
  const by = (k: string): Row | undefined => rep.rows.find((r) => r.key === k);
  const rowFig = (metric: string, a: string, b: string): Figure => {
    const value = stat(by(a), metric) / stat(by(b), metric);
    return Number.isFinite(value) || !by(a)?.failures?.[metric]
      ? { value }
      : { value: NaN, why: "failed" };
  };
  const memFig = (list: MemoryRow[], key: string): Figure => {
    const m = list.find((x) => x.system === key);
    return m?.failure ? { value: NaN, why: "failed" } : { value: m?.perSocketKiB ?? NaN };
  };
  const both = (f: (k: typeof RUNTIMES.deno | typeof RUNTIMES.bun) => Figure) => ({
    deno: f(RUNTIMES.deno),
    bun: f(RUNTIMES.bun),
  });
  const g = (
    goal: string,
    cmp: "ge" | "le",
    target: number,
    figs: { deno: Figure; bun: Figure },
    unit = "×",
  ): Goal => ({ goal, cmp, target, unit, ...figs });
  const sessions = rep.idleSessions[0]?.sockets ?? rep.params.idleSessions;
  return [
    g(
      "binary upload (free-running), 1 socket ≥ 1.5× websockify",
      "ge",
      1.5,
      both((k) => relayFig("up_free", k.bin, "websockify")),
    ),
    g(
      "binary download, 1 socket ≥ 1.5× websockify",
      "ge",
      1.5,
      both((k) => relayFig("down", k.bin, "websockify")),
    ),
    g(
      "binary upload, 1 socket ≥ 1.2× the wisp-js server",
      "ge",
      1.2,
      both((k) => relayFig("up_free", k.bin, "wisp")),
    ),
    g(
      "binary download, 1 socket ≥ 1.2× the wisp-js server",
      "ge",
      1.2,
      both((k) => relayFig("down", k.bin, "wisp")),
    ),
    g(
      "binary upload, 1 socket ≥ the hand-written relay of the same runtime",
      "ge",
      1,
      both((k) => relayFig("up_free", k.bin, k.toy)),
    ),
    g(
      "binary download, 1 socket ≥ the hand-written relay of the same runtime",
      "ge",
      1,
      both((k) => relayFig("down", k.bin, k.toy)),
    ),
    g(
      "64 B round trip p50 ≤ 1.3× the load generator's WebSocket without a proxy",
      "le",
      1.3,
      both((k) => relayFig("rtt_p50", k.bin, "ws-direct")),
    ),
    g(
      "200 sessions × 1000 B round trips/s ≥ 1.5× the wisp-js server",
      "ge",
      1.5,
      both((k) => rowFig("sess_rate", k.bin, "wisp")),
    ),
    g(
      `server memory per idle proxied socket ≤ ${IDLE_SOCKET_BUDGET_KIB} KiB`,
      "le",
      IDLE_SOCKET_BUDGET_KIB,
      both((k) => memFig(rep.memory, k.bin)),
      " KiB",
    ),
    g(
      `${
        sessions.toLocaleString("en-US")
      } idle sessions on one server, ≤ ${IDLE_SESSION_BUDGET_KIB} ` +
        "KiB each (the budget)",
      "le",
      IDLE_SESSION_BUDGET_KIB,
      both((k) => memFig(rep.idleSessions, k.bin)),
      " KiB",
    ),
  ];
}

/** The goals of earlier work, for the Deno server only (kept for comparison between runs). */
function earlierGoals(rep: Report): Array<Omit<Goal, "bun">> {
  const by = (k: string): Row | undefined => rep.rows.find((r) => r.key === k);
  const r = (metric: string, a: string, b: string): Figure => ({
    value: relayMedian(rep, metric, a) / relayMedian(rep, metric, b),
  });
  const legacy = (a: string, b: string, k: string): Figure => ({
    value: stat(by(a), k) / stat(by(b), k),
  });
  const failedUploads = ["wasmnet-bin", "wasmnet-json"].reduce(
    (n, k) => n + (rep.relay.cells.up_free?.[k]?.failed ?? NaN),
    0,
  );
  const worst = (framing: string): Figure => {
    const vs = versus(rep).filter((v) => v.col.key === `wasmnet-${framing}`);
    return { value: vs.length ? Math.min(...vs.map((v) => 1 + v.gain)) : NaN };
  };
  const g = (
    goal: string,
    deno: Figure,
    cmp: "ge" | "le",
    target: number,
    unit = "×",
  ): Omit<Goal, "bun"> => ({ goal, deno, target, cmp, unit });
  return [
    g("free-running uploads that failed (both framings)", { value: failedUploads }, "le", 0, ""),
    g("binary, worst row vs the naive server (1 = as good)", worst("bin"), "ge", 1 - TIE),
    g("JSON, worst row vs the naive server (1 = as good)", worst("json"), "ge", 1 - TIE),
    g(
      "binary free-running upload ≥ 75% of raw TCP",
      r("up_free", "wasmnet-bin", "raw"),
      "ge",
      0.75,
    ),
    g("binary download ≥ 75% of raw TCP", r("down", "wasmnet-bin", "raw"), "ge", 0.75),
    g("binary upload, 10 sockets ≥ Wisp", legacy("wasmnet-bin", "wisp", "up10"), "ge", 1),
    g("binary download, 10 sockets ≥ Wisp", legacy("wasmnet-bin", "wisp", "down10"), "ge", 1),
    g(
      "JSON free-running upload ≥ 50% of binary",
      r("up_free", "wasmnet-json", "wasmnet-bin"),
      "ge",
      0.5,
    ),
    g("JSON download ≥ 50% of binary", r("down", "wasmnet-json", "wasmnet-bin"), "ge", 0.5),
    g("64 B round trip p50 ≤ 1.5× raw TCP", r("rtt_p50", "wasmnet-bin", "raw"), "le", 1.5),
    g("connect+close rate ≥ 50% of raw TCP", r("conn_rate", "wasmnet-bin", "raw"), "ge", 0.5),
    g(
      "200-session round trips/s ≥ 50% of raw",
      legacy("wasmnet-bin", "raw", "sess_rate"),
      "ge",
      0.5,
    ),
  ];
}

/** "1.52×" and "✅"/"❌", "failed", or "n/a". */
function goalCells(f: Figure, cmp: "ge" | "le", target: number, unit: string): [string, string] {
  if (!Number.isFinite(f.value)) return [f.why ?? "n/a", f.why ? "❌" : "n/a"];
  const ok = cmp === "ge" ? f.value >= target : f.value <= target;
  return [`${num(f.value)}${unit}`, ok ? "✅ met" : "❌ not met"];
}

function goalTables(rep: Report): string[] {
  const lines: string[] = [];
  lines.push("| goal | target | Deno | met | Bun | met | better runtime |");
  lines.push("| --- | ---: | ---: | :---: | ---: | :---: | --- |");
  for (const g of goals(rep)) {
    const [dv, dm] = goalCells(g.deno, g.cmp, g.target, g.unit);
    const [bv, bm] = goalCells(g.bun, g.cmp, g.target, g.unit);
    const w = winner(g.deno.value, g.bun.value, g.cmp === "ge");
    lines.push(
      `| ${g.goal} | ${
        g.cmp === "ge" ? "≥" : "≤"
      } ${g.target}${g.unit} | ${dv} | ${dm} | ${bv} | ${bm} | ${w} |`,
    );
  }
  lines.push("");
  lines.push(
    "Each figure is a ratio of medians within this run (memory: KiB per idle socket or session " +
      "from the server's VmRSS). Throughput and round-trip goals use the relay table (Node " +
      "load generator; 1 socket = free-running upload and download); the 200-session goal uses " +
      "the Deno load generator (1000 B, see below) and the memory goals their own fresh servers " +
      "(full runs; n/a when not run). **failed**: the server did not start or every run failed " +
      "(see below). better runtime: which server's figure is better, Deno's or Bun's (a tie " +
      `within ${TIE * 100}%).`,
  );
  lines.push("");
  lines.push("### Earlier targets (Deno server)");
  lines.push("");
  lines.push("| goal | measured | target | met |");
  lines.push("| --- | ---: | ---: | :---: |");
  for (const g of earlierGoals(rep)) {
    const [v, ok] = goalCells(g.deno, g.cmp, g.target, g.unit);
    lines.push(`| ${g.goal} | ${v} | ${g.cmp === "ge" ? "≥" : "≤"} ${g.target}${g.unit} | ${ok} |`);
  }
  return lines;
}

function machineLine(m: Machine): string {
  return `${m.nproc} × ${m.cpu}, ${m.memGiB} GiB, Linux ${m.kernel}, Deno ${m.deno}, ` +
    `Node ${m.node}, Bun ${m.bun ?? "n/a"}, ${m.chromium}`;
}

/** The memory table of `rows` (sockets or sessions). */
function memoryTable(rows: MemoryRow[], what: string): string[] {
  const lines = [
    `| server | ${what}s | measured | before (KiB) | with ${what}s (KiB) | per ${what} (KiB) |`,
    "| --- | ---: | --- | ---: | ---: | ---: |",
  ];
  for (const m of rows) {
    const figures = m.failure
      ? `${m.failure.slice(0, 90)} | | | `
      : `${num(m.base)} | ${num(m.loaded)} | ${num(m.perSocketKiB)}`;
    lines.push(`| ${m.label ?? m.system} | ${m.sockets} | ${m.how} | ${figures} |`);
  }
  return lines;
}

/** The markdown report. */
export function renderMarkdown(rep: Report): string {
  const p = rep.params;
  const lines: string[] = [];
  const ran = (s: string): boolean => rep.ran.includes(s);
  lines.push(`# wasmnet benchmark (${rep.mode}) — ${rep.date}`);
  lines.push("");
  lines.push(`Machine: ${machineLine(rep.machine)}. Server code: ${rep.revision}.`);
  lines.push("");
  lines.push(
    `Load average (1/5/15 min) ${rep.machine.loadStart} at the start, ${rep.machine.loadEnd} at ` +
      "the end. The machine is shared: figures taken while other work runs are noisy, so compare " +
      "columns of one run (the repetitions are interleaved across systems), not runs with each " +
      "other, and read the ± spreads. All on loopback; every server, the upstream peer and each " +
      `load-generator run are separate processes. Run took ${rep.secs.toFixed(0)} s.`,
  );
  lines.push("");
  if (Object.keys(rep.failedToStart ?? {}).length) {
    lines.push("**Servers that did not start** (their cells say `failed: …`):");
    lines.push("");
    for (const [k, v] of Object.entries(rep.failedToStart)) lines.push(`- ${k}: ${v}`);
    lines.push("");
  }
  lines.push("## wasmnet against a naive relay (Node `ws` load generator and Chromium)");
  lines.push("");
  lines.push(relayTable(rep));
  lines.push("");
  lines.push(
    `Cells: median of ${rep.reps} runs, ±half the min–max spread in % of the median, (×) the ` +
      "ratio to the naive server of the same framing (raw TCP, the hand-written relays, " +
      "websockify and Wisp: to naive binary); for latencies above 1× is worse. **fails** k/n: " +
      "runs that ended with an error; `failed: …`: the server did not start. – : not run for " +
      "that column (the hand-written relays and the WebSocket without proxy run the rows of " +
      "one WebSocket per socket). faster runtime: wasmnet's Deno server against its Bun server " +
      `per framing, the better one's ratio (a tie within ${TIE * 100}%).`,
  );
  lines.push("");
  lines.push(
    "- **naive**: `bench/naive_server.mjs`, a wasmnet-protocol relay in ~150 lines of Node + " +
      "npm `ws` over `node:http` (plain `npm install ws`, no `bufferutil`): connect/send/close " +
      "over TCP in both framings, no policy, no limits; it stops reading the client " +
      "(`ws.pause()`) while an upstream write is pending and stops reading upstream while more " +
      "than 4 MiB wait to go to the client. It is the floor: what a user writes in an afternoon.",
  );
  lines.push(
    "- **wasmnet (Deno)** runs as users run it: `bin/wasmnet --no-policy` (npm `ws` over " +
      "`node:http`, read backpressure above 2 MiB queued upstream; `ws` unmasks frames with npm " +
      "`bufferutil`'s native code). **wasmnet (Bun)**: the same " +
      "code under the pinned Bun, `bun run mod.ts --no-policy` (Bun's server adapter and " +
      "transport; it is also what the compiled binary runs).",
  );
  lines.push(
    "- **toy Deno / toy Bun / toy Node**: `bench/toy_deno.ts` (`Deno.serve` + " +
      "`Deno.upgradeWebSocket`), `bench/toy_bun.ts` (`Bun.serve` websocket; pauses the TCP " +
      "socket while `send()` reports backpressure, until `drain`), `bench/toy_node.mjs` " +
      "(`node:http` + npm `ws`, `createWebSocketStream` piped to the socket and back): ~40-line " +
      "hand-written relays, one WebSocket = one TCP connection to a fixed upstream, wsproxy " +
      "style — the floor of each runtime. **WebSocket, no proxy**: the load generator against " +
      "the upstream peer's own WebSocket endpoint (no relay in between): the round-trip " +
      "calibration.",
  );
  lines.push(
    "- Load generator: `bench/loadgen_node.mjs`, Node + npm `ws` (a browser-like client: no " +
      "Nagle stall on large messages, unlike Deno's WebSocket client), one process per run; " +
      "Wisp through its own client (`driver_wisp.mjs`, same scenarios); raw TCP is `node:net` " +
      "straight to the upstream peer (the ceiling).",
  );
  lines.push(
    `- **free-running upload**: ${p.bytes / 2 ** 20} MiB in 64 KiB messages, sent while the ` +
      "client's `bufferedAmount` is under 4 MiB (waiting for its own sends to complete above), " +
      "nothing acknowledged; timed until the upstream peer reports the last byte. This is what " +
      "a browser uploading a file does. **acknowledged**: the upstream peer acknowledges every " +
      "256 KiB and the client keeps at most 4 MiB unacknowledged (the old bench mode).",
  );
  lines.push(
    `- **download**: the upstream peer writes ${p.bytes / 2 ** 20} MiB; timed until the last ` +
      "byte arrived; JSON `data` events are parsed and their base64 decoded " +
      `(\`Buffer.from(s, "base64")\`). **Chromium**: ${p.browserBytes / 2 ** 20} MiB into a ` +
      "page of headless Chromium whose own WebSocket receives the events (JSON: `JSON.parse` + " +
      "`Uint8Array.fromBase64`, like the wasmnet client), one browser per repetition, a fresh " +
      "context per column. Every throughput run follows an unmeasured warm-up run.",
  );
  lines.push(
    `- **round trip**: ${p.rtt} sequential 64 B echoes on one socket. **connect+close**: 16 ` +
      `loops on one session for ${p.rateSecs} s: connect, one byte echoed end to end, close, ` +
      "until the close completed (`closed`; websockify: a WebSocket per socket).",
  );
  lines.push("");
  const vs = versus(rep);
  const losses = vs.filter((v) => v.gain < -TIE);
  const wins = vs.filter((v) => v.gain > TIE);
  lines.push(`### Where wasmnet loses to the naive server (by more than ${TIE * 100}%)`);
  lines.push("");
  if (vs.length === 0) lines.push("Nothing to compare in this run.");
  else if (losses.length === 0) lines.push("Nowhere.");
  for (const v of losses) lines.push(`- ${versusLine(v)}`);
  lines.push("");
  lines.push(`Where it wins by more than ${TIE * 100}%:`);
  lines.push("");
  if (wins.length === 0) lines.push("Nowhere.");
  for (const v of wins) lines.push(`- ${versusLine(v)}`);
  lines.push("");
  lines.push(
    "¹ One WebSocket per proxied socket (no multiplexing): each connect includes a WebSocket " +
      "handshake (websockify forks a process per connection).",
  );
  lines.push("");
  const toys = toyTable(rep);
  if (toys) {
    lines.push("### wasmnet against the hand-written relays (binary, 1 socket)");
    lines.push("");
    lines.push(toys);
    lines.push("");
    lines.push(
      "Ratio of the medians above: each wasmnet server against the hand-written relay of its " +
        "own runtime and against Node's; above 1× is better for throughput, worse for the round " +
        "trip.",
    );
    lines.push("");
  }
  lines.push(...wispSection(rep));
  lines.push("");
  lines.push("## Goals (ratios from this run)");
  lines.push("");
  lines.push(...goalTables(rep));
  lines.push("");
  lines.push("## More sockets, connect latency, 200 sessions (Deno load generator)");
  lines.push("");
  const raw = rep.rows.find((r) => r.key === "raw");
  const proxies = rep.rows.filter((r) => !r.calibration);
  if (rep.rows.length === 0) {
    lines.push(`Not run (${rep.mode === "quick" ? "full runs only" : "--only"}).`);
  } else {
    lines.push(table(proxies, raw, [...THROUGHPUT10, ...LATENCY]));
    lines.push("");
    lines.push(
      `\`bench/driver.ts\` (Deno's WebSocket client), median of ${rep.otherReps} runs, (×) ratio ` +
        `to raw TCP from the same generator. 10 sockets: ${p.bytes / 2 ** 20} MiB over 10 ` +
        "sockets of one session (upload acknowledged, 4 MiB window per socket). Connect: open a " +
        `socket, one byte echoed end to end, close; ${p.connLat} sequential cycles. 200 ` +
        "sessions: 200 WebSockets (raw: 200 TCP connections) × 1 socket, 1000 B echo in a closed " +
        `loop for ${p.sessSecs} s (1000 B, not 1024: Deno's WebSocket client stalls ~44 ms on ` +
        "every frame payload above 1024 B, Nagle + delayed ACK; wasmnet JSON is left out for " +
        "that reason).",
    );
    const calib = rep.rows.filter((r) => r.calibration || r.key === "raw");
    if (calib.length > 1) {
      lines.push("");
      lines.push(table(calib, raw, THROUGHPUT10));
      lines.push("");
      lines.push(
        '"WebSocket, no proxy" is the Deno generator against a WebSocket endpoint of the ' +
          "upstream peer that answers directly (its ceiling over WebSockets).",
      );
    }
  }
  lines.push("");
  lines.push("## Server memory with idle proxied sockets");
  lines.push("");
  if (rep.memory.length === 0) {
    lines.push(ran("memory") ? "No figures (see errors)." : "Not run (full runs only).");
  } else {
    lines.push(...memoryTable(rep.memory, "socket"));
    lines.push("");
    lines.push(
      "A fresh server per system; the baseline is taken after one session opened and closed 50 " +
        "sockets (warm code paths), the loaded figure 1 s after the last socket opened. Each " +
        "proxied socket includes its upstream TCP connection.",
    );
  }
  lines.push("");
  lines.push("## Server memory with idle sessions (no sockets)");
  lines.push("");
  const idle = rep.idleSessions ?? [];
  if (idle.length === 0) {
    lines.push(ran("idle_sessions") ? "No figures (see errors)." : "Not run (full runs only).");
  } else {
    lines.push(...memoryTable(idle, "session"));
    lines.push("");
    lines.push(
      `The budget: ${IDLE_SESSION_BUDGET_KIB} KiB per idle session, so ` +
        `${p.idleSessions.toLocaleString("en-US")} sessions within ` +
        `${(p.idleSessions * IDLE_SESSION_BUDGET_KIB / 1024).toFixed(0)} MiB above the idle ` +
        "server. A fresh server per runtime; the Node load generator opens and closes 100 " +
        "sessions (warm-up), then opens the sessions 100 at a time, WebSockets with no socket; " +
        "the loaded figure is taken 1 s after the last one opened.",
    );
  }
  lines.push("");
  lines.push("## Bandwidth limiter accuracy (`--max-bandwidth-mbps N`, wasmnet binary, 1 socket)");
  lines.push("");
  if (rep.limiter.length === 0) lines.push("Not run (full runs only).");
  else {
    lines.push("| limit (Mbps) | upload (Mbps) | accuracy | download (Mbps) | accuracy |");
    lines.push("| ---: | ---: | ---: | ---: | ---: |");
    for (const l of rep.limiter) {
      lines.push(
        `| ${l.mbps} | ${num(l.upMbps)} | ${num(l.upMbps / l.mbps)}× | ${num(l.downMbps)} | ${
          num(l.downMbps / l.mbps)
        }× |`,
      );
    }
    lines.push("");
    lines.push(`Each direction moves ${p.limSecs} s worth of bytes at the limit, without warm-up.`);
  }
  lines.push("");
  lines.push(
    `Connection pool (\`--pool-per-key 4 --pool-idle-secs 30\`, connect latency above): ${rep.pool.status}.`,
  );
  lines.push("");
  if (Object.keys(rep.skipped).length) {
    lines.push("## Left out");
    lines.push("");
    for (const [k, v] of Object.entries(rep.skipped)) lines.push(`- ${k}: ${v}`);
    lines.push("");
  }
  if (rep.errors.length) {
    lines.push("## Errors during the run");
    lines.push("");
    for (const e of rep.errors) lines.push(`- ${e}`);
    lines.push("");
  }
  for (const n of rep.notes) lines.push(`- ${n}`);
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// SVG

const COLORS = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#e15759",
  "#76b7b2",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
  "#1f77b4",
  "#8c564b",
  "#17becf",
  "#bcbd22",
];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function barPanel(
  x0: number,
  y0: number,
  w: number,
  h: number,
  title: string,
  unit: string,
  groups: string[],
  series: Array<{ label: string; values: number[] }>,
  legend = true,
): string {
  const parts: string[] = [];
  const max = Math.max(1, ...series.flatMap((s) => s.values.filter(Number.isFinite)));
  const nice = 10 ** Math.floor(Math.log10(max));
  const top = Math.ceil(max / nice) * nice;
  const plotL = x0 + 60;
  const plotW = w - 70;
  const plotT = y0 + 30;
  const plotH = h - 80;
  parts.push(
    `<text x="${x0}" y="${y0 + 15}" font-size="14" font-weight="bold">${esc(title)}</text>`,
  );
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    const y = plotT + plotH - (plotH * i) / 4;
    parts.push(`<line x1="${plotL}" y1="${y}" x2="${plotL + plotW}" y2="${y}" stroke="#ddd"/>`);
    parts.push(
      `<text x="${plotL - 5}" y="${y + 4}" font-size="10" text-anchor="end">${num(v)}</text>`,
    );
  }
  parts.push(
    `<text x="${x0 + 10}" y="${plotT + plotH / 2}" font-size="11" transform="rotate(-90 ${
      x0 + 10
    } ${plotT + plotH / 2})" text-anchor="middle">${esc(unit)}</text>`,
  );
  const gw = plotW / groups.length;
  const bw = Math.max(2, (gw - 10) / series.length);
  groups.forEach((g, gi) => {
    const gx = plotL + gi * gw + 5;
    series.forEach((s, si) => {
      const v = s.values[gi] ?? NaN;
      if (!Number.isFinite(v)) return;
      const bh = (plotH * v) / top;
      const x = gx + si * bw;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${(plotT + plotH - bh).toFixed(1)}" width="${
          (bw - 1).toFixed(1)
        }" height="${bh.toFixed(1)}" fill="${COLORS[si % COLORS.length]}"><title>${
          esc(`${g} ${s.label}: ${num(v)} ${unit}`)
        }</title></rect>`,
      );
      parts.push(
        `<text x="${(x + bw / 2).toFixed(1)}" y="${
          (plotT + plotH - bh - 2).toFixed(1)
        }" font-size="8" text-anchor="middle">${num(v)}</text>`,
      );
    });
    parts.push(
      `<text x="${(gx + (gw - 10) / 2).toFixed(1)}" y="${
        plotT + plotH + 14
      }" font-size="10" text-anchor="middle">${esc(g)}</text>`,
    );
  });
  if (!legend) return parts.join("\n");
  const perRow = Math.min(series.length, 7); // legend rows of at most 7 labels
  series.forEach((s, si) => {
    const lx = plotL + (si % perRow) * (plotW / perRow);
    const ly = plotT + plotH + 26 + Math.floor(si / perRow) * 14;
    parts.push(
      `<rect x="${lx.toFixed(1)}" y="${ly}" width="10" height="10" fill="${
        COLORS[si % COLORS.length]
      }"/>`,
    );
    parts.push(
      `<text x="${(lx + 14).toFixed(1)}" y="${ly + 9}" font-size="10">${esc(s.label)}</text>`,
    );
  });
  return parts.join("\n");
}

/** The relay table as bars: throughput, round trip, connect+close, one colour per column. */
export function renderSvg(rep: Report): string {
  const W = 1000;
  const cols = rep.relay.columns;
  const series = (defs: MetricDef[]): Array<{ label: string; values: number[] }> =>
    cols.map((c) => ({ label: c.label, values: defs.map((d) => relayMedian(rep, d.key, c.key)) }));
  // The rows this run measured (all of a unit when it measured none: an empty panel).
  const defsOf = (unit: string): MetricDef[] => {
    const all = RELAY.filter((d) => d.unit === unit);
    const ran = all.filter((d) => rep.relay.cells[d.key]);
    return ran.length ? ran : all;
  };
  const tputDefs = defsOf("MiB/s");
  const rttDefs = defsOf("µs");
  const connDefs = defsOf("/s");
  const tput = barPanel(
    20,
    56,
    W - 40,
    340,
    "Throughput, 1 socket (median, MiB/s; higher is better)",
    "MiB/s",
    tputDefs.map((d) => d.title),
    series(tputDefs),
  );
  const half = (W - 40) / 2;
  const rtt = barPanel(
    20,
    416,
    half - 10,
    340,
    "64 B round trip (median of runs, µs; lower is better)",
    "µs",
    rttDefs.map((d) => d.title.replace("64 B round trip ", "")),
    series(rttDefs),
    false,
  );
  const conn = barPanel(
    30 + half,
    416,
    half - 10,
    340,
    "connect+close, 16 in flight (/s; higher is better)",
    "/s",
    connDefs.map(() => ""),
    series(connDefs),
    false,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="770" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="22" font-size="16" font-weight="bold">wasmnet against a naive relay (${rep.mode}, ${
    esc(rep.date)
  })</text>
<text x="20" y="40" font-size="11">${esc(machineLine(rep.machine))}; load ${
    esc(rep.machine.loadStart)
  } → ${esc(rep.machine.loadEnd)}</text>
${tput}
${rtt}
${conn}
</svg>
`;
}

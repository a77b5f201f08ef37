/**
 * Rendering of a benchmark run: the markdown report (tables, ratios to raw TCP, goals) and a
 * self-made SVG chart of throughput and latency by system. Pure: no I/O.
 *
 * @module
 */

/** The machine the run was on. */
export interface Machine {
  nproc: number;
  cpu: string;
  kernel: string;
  deno: string;
  node: string;
  memGiB: number;
}

/** Median and spread of one metric for one system. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** One system's results. */
export interface Row {
  key: string;
  label: string;
  calibration: boolean;
  perSocketWs: boolean;
  driver: "deno" | "node";
  values: Record<string, Stat>;
}

/** Sizes and durations of a run. */
export interface Params {
  bytes: number;
  rtt: number;
  connLat: number;
  rateSecs: number;
  sessSecs: number;
  idle: number;
  limSecs: number;
  otherReps: number;
}

/** Everything a run produced (also written as `latest.json`). */
export interface Report {
  date: string;
  mode: "quick" | "full";
  reps: number;
  otherReps: number;
  params: Params;
  machine: Machine;
  rows: Row[];
  memory: Array<{
    system: string;
    sockets: number;
    how: string;
    base: number;
    loaded: number;
    perSocketKiB: number;
    openSecs: number;
  }>;
  limiter: Array<{ mbps: number; enforced: boolean; upMbps: number; downMbps: number }>;
  pool: { status: string };
  skipped: Record<string, string>;
  errors: string[];
  notes: string[];
  secs: number;
}

interface MetricDef {
  key: string;
  title: string;
  unit: string;
  /** true: bigger is better (ratio = system / raw). */
  higher: boolean;
}

const THROUGHPUT: MetricDef[] = [
  { key: "up1", title: "upload, 1 socket", unit: "MiB/s", higher: true },
  { key: "down1", title: "download, 1 socket", unit: "MiB/s", higher: true },
  { key: "up10", title: "upload, 10 sockets", unit: "MiB/s", higher: true },
  { key: "down10", title: "download, 10 sockets", unit: "MiB/s", higher: true },
];
const LATENCY: MetricDef[] = [
  { key: "rtt_p50", title: "64 B RTT p50", unit: "µs", higher: false },
  { key: "rtt_p99", title: "64 B RTT p99", unit: "µs", higher: false },
  { key: "conn_p50", title: "connect p50", unit: "µs", higher: false },
  { key: "conn_p99", title: "connect p99", unit: "µs", higher: false },
  { key: "conn_rate", title: "connect+close", unit: "/s", higher: true },
  { key: "sess_rate", title: "200 sessions, 1000 B RT", unit: "/s", higher: true },
  { key: "sess_p99", title: "200 sessions p99", unit: "µs", higher: false },
];

function num(x: number): string {
  if (!Number.isFinite(x)) return "–";
  if (Math.abs(x) >= 100) return Math.round(x).toLocaleString("en-US");
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function stat(row: Row | undefined, key: string): number {
  return row?.values[key]?.median ?? NaN;
}

function cell(row: Row, raw: Row | undefined, def: MetricDef): string {
  const s = row.values[def.key];
  if (!s || s.n === 0 || !Number.isFinite(s.median)) return "n/a";
  const spread = s.n > 1 && s.median !== 0
    ? ` ±${Math.round(50 * (s.max - s.min) / Math.abs(s.median))}%`
    : "";
  const r = stat(raw, def.key);
  const ratio = row.key !== "raw" && Number.isFinite(r) && r !== 0
    ? ` (${(s.median / r).toFixed(2)}×)`
    : "";
  return `${num(s.median)}${spread}${ratio}`;
}

function table(rows: Row[], raw: Row | undefined, defs: MetricDef[]): string {
  const head = `| system | ${defs.map((d) => `${d.title} (${d.unit})`).join(" | ")} |`;
  const sep = `| --- | ${defs.map(() => "---:").join(" | ")} |`;
  const body = rows.map((r) =>
    `| ${r.label}${r.perSocketWs ? "¹" : ""} | ${defs.map((d) => cell(r, raw, d)).join(" | ")} |`
  );
  return [head, sep, ...body].join("\n");
}

interface Goal {
  goal: string;
  value: number;
  target: number;
  /** "ge": value ≥ target passes; "le": value ≤ target passes. */
  cmp: "ge" | "le";
  unit: string;
}

function goals(rep: Report): Goal[] {
  const by = (k: string): Row | undefined => rep.rows.find((r) => r.key === k);
  const raw = by("raw");
  const bin = by("wasmnet-bin");
  const json = by("wasmnet-json");
  const wsk = by("websockify");
  const wisp = by("wisp");
  const ratio = (a: Row | undefined, b: Row | undefined, k: string): number =>
    stat(a, k) / stat(b, k);
  const mem = rep.memory.find((m) => m.system === "wasmnet-bin");
  return [
    {
      goal: "binary upload, 1 socket ≥ 75% of raw TCP",
      value: ratio(bin, raw, "up1"),
      target: 0.75,
      cmp: "ge",
      unit: "×",
    },
    {
      goal: "binary download, 1 socket ≥ 75% of raw TCP",
      value: ratio(bin, raw, "down1"),
      target: 0.75,
      cmp: "ge",
      unit: "×",
    },
    {
      goal: "binary upload ≥ 3× websockify",
      value: ratio(bin, wsk, "up1"),
      target: 3,
      cmp: "ge",
      unit: "×",
    },
    {
      goal: "binary upload, 1 socket ≥ Wisp",
      value: ratio(bin, wisp, "up1"),
      target: 1,
      cmp: "ge",
      unit: "×",
    },
    {
      goal: "binary download, 1 socket ≥ Wisp",
      value: ratio(bin, wisp, "down1"),
      target: 1,
      cmp: "ge",
      unit: "×",
    },
    {
      goal: "binary upload, 10 sockets ≥ Wisp",
      value: ratio(bin, wisp, "up10"),
      target: 1,
      cmp: "ge",
      unit: "×",
    },
    {
      goal: "binary download, 10 sockets ≥ Wisp",
      value: ratio(bin, wisp, "down10"),
      target: 1,
      cmp: "ge",
      unit: "×",
    },
    {
      goal: "JSON upload ≥ 50% of binary",
      value: ratio(json, bin, "up1"),
      target: 0.5,
      cmp: "ge",
      unit: "×",
    },
    {
      goal: "JSON download ≥ 50% of binary",
      value: ratio(json, bin, "down1"),
      target: 0.5,
      cmp: "ge",
      unit: "×",
    },
    {
      goal: "64 B round trip p50 ≤ 1.5× raw TCP",
      value: ratio(bin, raw, "rtt_p50"),
      target: 1.5,
      cmp: "le",
      unit: "×",
    },
    {
      goal: "200-session round trips/s ≥ 50% of raw",
      value: ratio(bin, raw, "sess_rate"),
      target: 0.5,
      cmp: "ge",
      unit: "×",
    },
    {
      goal: "connect+close rate ≥ 50% of raw",
      value: ratio(bin, raw, "conn_rate"),
      target: 0.5,
      cmp: "ge",
      unit: "×",
    },
    {
      goal: "server memory per idle proxied socket ≤ 50 KiB",
      value: mem?.perSocketKiB ?? NaN,
      target: 50,
      cmp: "le",
      unit: " KiB",
    },
  ];
}

function machineLine(m: Machine): string {
  return `${m.nproc} × ${m.cpu}, ${m.memGiB} GiB, Linux ${m.kernel}, Deno ${m.deno}, Node ${m.node}`;
}

/** The markdown report. */
export function renderMarkdown(rep: Report): string {
  const raw = rep.rows.find((r) => r.key === "raw");
  const proxies = rep.rows.filter((r) => !r.calibration);
  const calib = rep.rows.filter((r) => r.calibration || r.key === "raw");
  const p = rep.params;
  const lines: string[] = [];
  lines.push(`# wasmnet benchmark (${rep.mode}) — ${rep.date}`);
  lines.push("");
  lines.push(
    `Machine: ${machineLine(rep.machine)}. All on loopback; every server, the upstream peer and`,
  );
  lines.push(`each load-generator run are separate processes. Run took ${rep.secs.toFixed(0)} s.`);
  lines.push("");
  lines.push(
    `Cells: median of ${rep.reps} runs (throughput 1 socket, RTT) or ${rep.otherReps} runs (the rest), ` +
      `±half the min–max spread in % of the median, (×) ratio to raw TCP. Throughput runs move ` +
      `${
        p.bytes / 2 ** 20
      } MiB each after an unmeasured 16 MiB warm-up; upload is timed until the ` +
      `upstream sink acknowledged every byte (4 MiB window), download until the last byte arrived.`,
  );
  lines.push("");
  lines.push("## Throughput (MiB/s, higher is better)");
  lines.push("");
  lines.push(table(proxies, raw, THROUGHPUT));
  lines.push("");
  lines.push("## Latency and concurrency");
  lines.push("");
  lines.push(table(proxies, raw, LATENCY));
  lines.push("");
  lines.push(
    `RTT: ${p.rtt} sequential echoes of 64 bytes on one socket. Connect: open a socket through ` +
      `the proxy, one byte echoed end to end (Wisp has no connect acknowledgement, so this is the ` +
      `common definition of "usable"), close; latency from ${p.connLat} sequential cycles; the rate ` +
      `from 16 concurrent loops for ${p.rateSecs} s including the wait for every close to complete. ` +
      `200 sessions: 200 WebSockets (raw: 200 TCP connections) × 1 socket, 1000 B echo in a closed ` +
      `loop for ${p.sessSecs} s (1000 B, not 1024: Deno's WebSocket client stalls ~44 ms on every ` +
      `frame payload above 1024 B, Nagle + delayed ACK; a wasmnet 1 KiB send is a 1033 B frame).`,
  );
  lines.push("");
  lines.push(
    '¹ One WebSocket per proxied socket (no multiplexing): "10 sockets on one session" is 10 ' +
      "WebSockets, and each connect includes a WebSocket handshake.",
  );
  lines.push("");
  lines.push("## Goals (ratios from this run)");
  lines.push("");
  lines.push("| goal | measured | target | met |");
  lines.push("| --- | ---: | ---: | :---: |");
  for (const g of goals(rep)) {
    const ok = Number.isFinite(g.value)
      ? (g.cmp === "ge" ? g.value >= g.target : g.value <= g.target)
      : undefined;
    lines.push(
      `| ${g.goal} | ${num(g.value)}${g.unit} | ${
        g.cmp === "ge" ? "≥" : "≤"
      } ${g.target}${g.unit} | ${ok === undefined ? "n/a" : ok ? "✅" : "❌"} |`,
    );
  }
  lines.push("");
  lines.push("## Server memory with idle proxied sockets");
  lines.push("");
  if (rep.memory.length === 0) lines.push("Not run.");
  else {
    lines.push(
      "| server | sockets | measured | before (KiB) | with sockets (KiB) | per socket (KiB) |",
    );
    lines.push("| --- | ---: | --- | ---: | ---: | ---: |");
    for (const m of rep.memory) {
      lines.push(
        `| ${m.system} | ${m.sockets} | ${m.how} | ${num(m.base)} | ${num(m.loaded)} | ${
          num(m.perSocketKiB)
        } |`,
      );
    }
    lines.push("");
    lines.push(
      "A fresh server per system; the baseline is taken after one session opened and closed 50 " +
        "sockets (warm code paths), the loaded figure 1 s after the last socket opened. Raw TCP has " +
        "no proxy, so no ratio. Each proxied socket includes its upstream TCP connection.",
    );
  }
  lines.push("");
  lines.push("## Bandwidth limiter accuracy (`--max-bandwidth-mbps N`, wasmnet binary, 1 socket)");
  lines.push("");
  if (rep.limiter.length === 0) lines.push("Not run.");
  else {
    lines.push(
      "| limit (Mbps) | upload (Mbps) | accuracy | download (Mbps) | accuracy | enforced? |",
    );
    lines.push("| ---: | ---: | ---: | ---: | ---: | --- |");
    for (const l of rep.limiter) {
      lines.push(
        `| ${l.mbps} | ${num(l.upMbps)} | ${num(l.upMbps / l.mbps)}× | ${num(l.downMbps)} | ${
          num(l.downMbps / l.mbps)
        }× | ${l.enforced ? "yes (flag active)" : '**no**: server logs "not built yet"'} |`,
      );
    }
    lines.push("");
    lines.push(`Each direction moves ${p.limSecs} s worth of bytes at the limit, without warm-up.`);
  }
  lines.push("");
  lines.push(`Connection pool (\`--pool-per-key 4 --pool-idle-secs 30\`): ${rep.pool.status}.`);
  lines.push("");
  lines.push("## Load generator capability (calibration, not proxies)");
  lines.push("");
  lines.push(table(calib, raw, [...THROUGHPUT, LATENCY[0] as MetricDef]));
  lines.push("");
  lines.push(
    "raw TCP is the Deno load generator with no proxy: every proxy figure is far below it, so the " +
      'generator is not the bottleneck for TCP. "WebSocket, no proxy" is the same generator ' +
      "against a WebSocket endpoint of the upstream peer that answers directly (its upload and " +
      "download ceilings over WebSockets, including the peer's own sending). Wisp is driven from " +
      "Node with the package's own client; the Node raw-TCP row is that generator's ceiling.",
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

const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1"];

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
  series.forEach((s, si) => {
    const lx = plotL + si * (plotW / series.length);
    parts.push(
      `<rect x="${lx.toFixed(1)}" y="${plotT + plotH + 26}" width="10" height="10" fill="${
        COLORS[si % COLORS.length]
      }"/>`,
    );
    parts.push(
      `<text x="${(lx + 14).toFixed(1)}" y="${plotT + plotH + 35}" font-size="10">${
        esc(s.label)
      }</text>`,
    );
  });
  return parts.join("\n");
}

/** Throughput and latency by system, with the machine description. */
export function renderSvg(rep: Report): string {
  const W = 1000;
  const rows = rep.rows.filter((r) => !r.calibration);
  const systemsT = rows.map((r) => r.label);
  const tput = barPanel(
    20,
    50,
    W - 40,
    320,
    "Throughput (median, MiB/s)",
    "MiB/s",
    THROUGHPUT.map((d) => d.title),
    rows.map((r) => ({ label: r.label, values: THROUGHPUT.map((d) => stat(r, d.key)) })),
  );
  const latDefs = LATENCY.filter((d) => d.unit === "µs");
  const lat = barPanel(
    20,
    390,
    W - 40,
    320,
    "Latency (median of runs, µs; lower is better)",
    "µs",
    latDefs.map((d) => d.title),
    rows.map((r) => ({ label: r.label, values: latDefs.map((d) => stat(r, d.key)) })),
  );
  void systemsT;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="740" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="22" font-size="16" font-weight="bold">wasmnet benchmark (${rep.mode}, ${
    esc(rep.date)
  })</text>
<text x="20" y="40" font-size="11">${esc(machineLine(rep.machine))}</text>
${tput}
${lat}
</svg>
`;
}

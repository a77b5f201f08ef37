// deno-lint-ignore-file explicit-function-return-type
/**
 * The Node load generator, for the Wisp peer: drives a Wisp server with the
 * `@mercuryworkshop/wisp-js` package's own client (which needs Node's `ws`), and raw TCP from Node
 * (to show what this generator can do without a proxy). Same scenarios, same upstream modes and
 * the same JSON output line as `driver.ts`, plus the free-running upload of `loadgen_node.mjs`
 * (`{name: "up", free: true}`: no acknowledgements; it sends while the WebSocket buffer plus the
 * stream's credit-starved queue hold under 4 MiB).
 *
 * Usage: `WISP_JS=/path/to/wisp-js node bench/driver_wisp.mjs '<DriverConfig JSON>'`
 * where `DriverConfig.system` is `{kind:"wisp", url, host, port}` or `{kind:"raw", host, port}`.
 *
 * The scenarios (timing, warm-ups, pacing, percentiles, the interactive `idle`) are in
 * `_scenarios.mjs`, shared with `loadgen_node.mjs`; this file only opens sessions and streams.
 * A `CLOSE` the scenario did not ask for ends its stream (`onEnd`): reason 0x02 as a clean end,
 * any other as a failure named by its reason (`CLOSE 0x48 (blocked)`), and a WebSocket that
 * closed under the streams as `the WebSocket closed (<code> <reason>)`. The result line also
 * says which Wisp version the client ended up speaking (`protocol`: `Wisp v2`, or `Wisp v1` when
 * it fell back); a failed connection says why its WebSockets failed.
 *
 * Only runs the package; nothing of it is copied here.
 *
 * @module
 */
import net from "node:net";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { main, noop, wakeup } from "./_scenarios.mjs";

function rawSession(host, port) {
  return {
    open() {
      return new Promise((resolve, reject) => {
        const sock = net.connect({ host, port, noDelay: true });
        const stream = {
          onData: noop,
          send(b) {
            if (sock.write(b)) return;
            return new Promise((r) => sock.once("drain", r));
          },
          close() {
            sock.destroy();
            return Promise.resolve();
          },
        };
        sock.on("data", (b) => stream.onData(b));
        sock.on("error", (e) => reject(e));
        sock.once("connect", () => resolve(stream));
      });
    },
    close: () => Promise.resolve(),
  };
}

/** The meaning of a Wisp `CLOSE` reason (protocol.md, v1.2 and v2 draft 6). */
const REASONS = {
  0x01: "unspecified",
  0x02: "voluntary",
  0x03: "network error",
  0x04: "incompatible extensions",
  0x41: "invalid information",
  0x42: "unreachable",
  0x43: "connection timeout",
  0x44: "connection refused",
  0x47: "data timeout",
  0x48: "blocked",
  0x49: "throttled",
  0x81: "client error",
};

/** Wisp versions the sessions of this run spoke (after the client's own v2 → v1 fallback). */
const versions = new Set();
/** Why the client's WebSockets failed (a v2 handshake it fell back from, a refused upgrade). */
const wsErrors = [];

let wisp;
async function wispSession(url, host, port) {
  if (!wisp) {
    const dir = process.env.WISP_JS;
    if (!dir) throw new Error("set WISP_JS to the wisp-js package directory");
    wisp = (await import(pathToFileURL(`${dir}/src/entrypoints/client.mjs`).href)).client;
  }
  const conn = new wisp.ClientConnection(url);
  // The client swaps in a new WebSocket when it falls back to v1 (in its own error handler,
  // which runs before this listener): record each error and follow the new WebSocket.
  const watch = (ws) =>
    ws.on("error", (e) => {
      if (wsErrors.length < 5) wsErrors.push(String(e?.message ?? e));
      if (conn.ws !== ws) watch(conn.ws);
    });
  watch(conn.ws);
  await new Promise((resolve, reject) => {
    conn.onopen = resolve;
    conn.onerror = () =>
      reject(new Error(`wisp connection error: ${wsErrors.join("; ") || "no detail"}`));
  });
  versions.add(conn.wisp_version);
  /** The WebSocket's close code and reason, once it closed. */
  let wsClosed;
  conn.ws.on("close", (code, reason) => wsClosed = `${code} ${String(reason)}`.trim());
  let ending = false;
  // Free-running uploads wait for the client's own sends to complete (as loadgen_node.mjs does):
  // every WebSocket send of the client gets a completion callback that wakes the waiters.
  const sent = wakeup();
  const wsSend = conn.ws.send.bind(conn.ws);
  conn.ws.send = (data, cb) => wsSend(data, cb ?? sent.wake);
  return {
    open() {
      const s = conn.create_stream(host, port);
      let closing = false;
      const stream = {
        onData: noop,
        onEnd: noop,
        send: (b) => s.send(b),
        /** Waits while the WebSocket buffer plus the stream's credit-starved queue hold `limit`. */
        async waitBelow(limit) {
          const queued = () => s.send_buffer.reduce((n, b) => n + b.byteLength, 0);
          while (conn.ws.bufferedAmount + queued() >= limit && !closing) await sent.wait();
        },
        close() {
          closing = true;
          s.close();
          return Promise.resolve(); // Wisp has no acknowledgement of a client's CLOSE
        },
      };
      s.onmessage = (b) => stream.onData(b);
      // A CLOSE the scenario did not ask for ends the stream: 0x02 (voluntary) as a clean end,
      // any other reason as a failure; the client's own 0x03 for every stream when the WebSocket
      // closed, with the WebSocket's close code (which its listener records just after).
      s.onclose = (reason) => {
        if (closing || ending) return;
        closing = true;
        sent.wake();
        if (conn.ws.readyState >= 2) {
          setTimeout(() => stream.onEnd(`the WebSocket closed (${wsClosed ?? "no close frame"})`));
          return;
        }
        const hex = `0x${reason.toString(16).padStart(2, "0")}`;
        stream.onEnd(
          reason === 0x02 ? undefined : `CLOSE ${hex} (${REASONS[reason] ?? "unknown reason"})`,
        );
      };
      return Promise.resolve(stream); // streams are usable at once (no connect ack in Wisp)
    },
    close() {
      ending = true;
      conn.close();
      return Promise.resolve();
    },
  };
}

function session(sys) {
  if (sys.kind === "raw") return Promise.resolve(rawSession(sys.host, sys.port));
  if (sys.kind === "wisp") return wispSession(sys.url, sys.host, sys.port);
  throw new Error(`unknown system ${sys.kind}`);
}

await main(
  session,
  ["up", "down", "rtt", "connect_latency", "connect_rate", "sessions", "idle"],
  () => versions.size ? { protocol: [...versions].map((v) => `Wisp v${v}`).join(", ") } : {},
);

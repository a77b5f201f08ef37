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
 * Its streams never report an unasked end (`onEnd`): Wisp's `CLOSE` reasons are not mapped, so a
 * stream the server drops makes the run hang until `run.ts` times it out.
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

let wisp;
async function wispSession(url, host, port) {
  if (!wisp) {
    const dir = process.env.WISP_JS;
    if (!dir) throw new Error("set WISP_JS to the wisp-js package directory");
    wisp = (await import(pathToFileURL(`${dir}/src/entrypoints/client.mjs`).href)).client;
  }
  const conn = new wisp.ClientConnection(url);
  await new Promise((resolve, reject) => {
    conn.onopen = resolve;
    conn.onerror = () => reject(new Error("wisp connection error"));
  });
  // Free-running uploads wait for the client's own sends to complete (as loadgen_node.mjs does):
  // every WebSocket send of the client gets a completion callback that wakes the waiter.
  const sent = wakeup();
  const wsSend = conn.ws.send.bind(conn.ws);
  conn.ws.send = (data, cb) => wsSend(data, cb ?? sent.wake);
  return {
    open() {
      const s = conn.create_stream(host, port);
      const stream = {
        onData: noop,
        send: (b) => s.send(b),
        /** Waits while the WebSocket buffer plus the stream's credit-starved queue hold `limit`. */
        async waitBelow(limit) {
          const queued = () => s.send_buffer.reduce((n, b) => n + b.byteLength, 0);
          while (conn.ws.bufferedAmount + queued() >= limit) await sent.wait();
        },
        close() {
          s.close();
          return Promise.resolve(); // Wisp has no acknowledgement of a client's CLOSE
        },
      };
      s.onmessage = (b) => stream.onData(b);
      s.onclose = (reason) => {
        if (reason !== 0x02 && reason !== 0x01) stream.onData = noop;
      };
      return Promise.resolve(stream); // streams are usable at once (no connect ack in Wisp)
    },
    close() {
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

await main(session, ["up", "down", "rtt", "connect_latency", "connect_rate", "sessions", "idle"]);

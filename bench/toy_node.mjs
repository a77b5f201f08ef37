/**
 * A hand-written WebSocket-to-TCP relay for Node, the benchmark's floor for the Node runtime: what
 * a user writes in an afternoon with `node:http` + npm `ws`, wsproxy style. One WebSocket is one
 * TCP connection to the fixed `--target`; the WebSocket becomes a stream (`ws`'s
 * `createWebSocketStream`) piped to the socket and back, so Node's streams do the flow control
 * both ways (a full socket pauses the WebSocket, a full WebSocket pauses the socket). No limits.
 *
 * Usage: `WASMNET_BENCH_NODE_MODULES=<dir with ws> node bench/toy_node.mjs --target
 * 127.0.0.1:PORT [-p 0]`; prints `listening addr=127.0.0.1:PORT`.
 *
 * @module
 */
import http from "node:http";
import net from "node:net";
import process from "node:process";
import { createRequire } from "node:module";

const { WebSocketServer, createWebSocketStream } = createRequire(
  `${process.env.WASMNET_BENCH_NODE_MODULES ?? process.cwd()}/`,
)("ws");
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] ?? fallback : fallback;
};
const [host, port] = arg("--target", "127.0.0.1:0").split(":");

const server = http.createServer((_req, res) => res.writeHead(426).end("WebSocket only\n"));
new WebSocketServer({ server }).on("connection", (ws) => {
  const tcp = net.connect({ host, port: Number(port) });
  const duplex = createWebSocketStream(ws);
  duplex.pipe(tcp).pipe(duplex);
  duplex.on("error", () => tcp.destroy());
  tcp.on("error", () => duplex.destroy());
});
server.listen(Number(arg("-p", "0")), "127.0.0.1", () => {
  const { address, port } = server.address();
  process.stdout.write(`listening addr=${address}:${port}\n`);
});

/**
 * Browser client for wasmnet: TCP, TLS, UDP, listeners and DNS over one WebSocket.
 *
 * Two APIs over one {@linkcode WasmnetClient}:
 * - the id-based API of wasmnet 0.1.3's npm client (`connect`, `send`, `onData`, ...), with its
 *   defects fixed, and
 * - a stream API in the shape of Cloudflare's `connect()`: {@linkcode WasmnetClient.openTcp}
 *   ({@linkcode WasmnetSocket} with `readable`/`writable`/`opened`/`closed`),
 *   {@linkcode WasmnetClient.openUdp} ({@linkcode WasmnetDatagramSocket}) and
 *   {@linkcode WasmnetClient.openListener} ({@linkcode WasmnetListener}).
 *
 * Imports only `src/protocol/`: runs in browsers, Deno and Node 22. Bundled to one ES module by
 * `src/client/bundle.ts`.
 *
 * @example
 * ```ts ignore
 * import { WasmnetClient } from "./mod.ts";
 * await using client = new WasmnetClient("ws://localhost:9000", { binary: true });
 * await client.ready();
 * await using sock = client.openTcp("example.com", 80);
 * const writer = sock.writable.getWriter();
 * await writer.write(new TextEncoder().encode("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"));
 * for await (const chunk of sock.readable) console.log(new TextDecoder().decode(chunk));
 * ```
 *
 * @module
 */
export {
  type AcceptCallback,
  type CloseCallback,
  type DataCallback,
  type DataFromCallback,
  type DebugLogger,
  type DisconnectInfo,
  type ErrorCallback,
  type Extension,
  type ListenResult,
  type OpenListenerOptions,
  type OpenTcpOptions,
  type OpenUdpOptions,
  type PingOptions,
  type PingReply,
  type SendData,
  WasmnetClient,
  type WasmnetClientOptions,
  type WebSocketConstructor,
} from "./wasmnet_client.ts";
export { type SocketInfo, WasmnetSocket } from "./socket.ts";
export { type Datagram, type DatagramInfo, WasmnetDatagramSocket } from "./datagram_socket.ts";
export { type ListenerInfo, WasmnetListener } from "./listener.ts";
export { WasmnetError, type WasmnetErrorCode } from "./errors.ts";

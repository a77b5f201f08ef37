/**
 * The Deno server adapters: `node:http` + npm `ws` (read backpressure; `_node_ws.ts`) when `ws`
 * may be loaded, else `Deno.serve` + `Deno.upgradeWebSocket` (the {@linkcode wasmnet} middleware,
 * also mountable in a user's own Hono app on Deno).
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import {
  admission,
  clientGate,
  type ClientSession,
  isRefusal,
  isUpgrade,
  remoteIpOf,
  router,
  sessionFactory,
  SessionRegistry,
  ticketGate,
  type WasmnetOptions,
} from "../app.ts";
import type { Listening, ListenRequest, ServerAdapter } from "../adapter.ts";
import { canUseWs, listenNodeWs } from "./_node_ws.ts";
import { denoTransport } from "../../transport/deno/mod.ts";
import { formatHostPort } from "../../protocol/mod.ts";
import { getLogger } from "../../log/mod.ts";

export { canUseWs } from "./_node_ws.ts";

const log = getLogger("server");

/** Options of {@linkcode denoAdapter}. */
export interface DenoAdapterOptions {
  /**
   * Serve WebSockets with read backpressure (`node:http` + npm `ws`): a session whose upstream
   * sockets hold more than `uploadHighWaterBytes` stops reading its client until they drain.
   * Default: on when the env permission for `WS_NO_BUFFER_UTIL` is granted (`ws` reads it when it
   * loads; {@linkcode canUseWs}), else off: `Deno.upgradeWebSocket`, whose reads cannot be paused.
   */
  readBackpressure?: boolean | undefined;
}

/**
 * The Deno server adapter (see the module doc). Its `listen` rejects with Node's `code`
 * (`EADDRINUSE`, ...) from `node:http`, or a `Deno.errors` class from `Deno.serve`.
 */
export function denoAdapter(options: DenoAdapterOptions = {}): ServerAdapter {
  const backpressure = options.readBackpressure ?? canUseWs();
  return {
    name: backpressure ? "deno+ws" : "deno",
    readBackpressure: backpressure,
    listen: (request) =>
      backpressure ? listenNodeWs(request) : Promise.resolve(listenDeno(request)),
  };
}

/** `Deno.serve` with the app; sessions through the app's `Deno.upgradeWebSocket` middleware. */
function listenDeno(request: ListenRequest): Listening {
  const app = request.app(wasmnet(request.options, request.registry));
  const tls = request.options.tls;
  const http = Deno.serve({
    hostname: request.hostname,
    port: request.port,
    ...(tls ? { cert: tls.cert, key: tls.key } : {}),
    onListen: () => {},
    onError: (err) => {
      log.error("http error", { error: String(err) });
      return new Response("internal error\n", { status: 500 });
    },
  }, app.fetch);
  return {
    addr: { hostname: http.addr.hostname, port: http.addr.port },
    ...(tls
      ? {
        reloadTls: () => {
          throw new Error(
            "Deno.serve cannot change its certificate while listening: restart the server, or " +
              "allow env WS_NO_BUFFER_UTIL so it serves with ws, which can",
          );
        },
      }
      : {}),
    close: () => http.shutdown(),
  };
}

function clientLabel(c: Context): string {
  try {
    const addr = (c.env as { remoteAddr?: Deno.NetAddr } | undefined)?.remoteAddr;
    return addr ? formatHostPort(addr.hostname, addr.port) : "";
  } catch {
    return "";
  }
}

/**
 * Hono middleware that accepts a wasmnet WebSocket on the route it is mounted on (the equivalent
 * of wasmnet's `handle_ws_upgrade`). A request that is not a WebSocket upgrade is passed to the
 * next handler. Each WebSocket gets its own {@linkcode Session}. Deno only
 * (`Deno.upgradeWebSocket`, whose reads cannot be paused: no read backpressure); the transport
 * defaults to `denoTransport()`.
 *
 * @example
 * ```ts ignore
 * import { Hono } from "hono";
 * import { wasmnet } from "./mod.ts";
 * const app = new Hono();
 * app.get("/net", wasmnet({}));
 * Deno.serve(app.fetch);
 * ```
 */
export function wasmnet(
  options: WasmnetOptions = {},
  registry: SessionRegistry = new SessionRegistry(options.metrics),
): MiddlewareHandler {
  const admit = admission(options, registry);
  const route = router(options);
  const checkTicket = ticketGate(options);
  const checkClient = clientGate(options, registry);
  const newSession = sessionFactory(
    { ...options, transport: options.transport ?? denoTransport() },
    registry,
  );
  return async (c, next) => {
    if (!isUpgrade(c)) return await next();
    const protocols = c.req.header("sec-websocket-protocol");
    const routed = checkClient(
      await checkTicket(
        admit(c.req.header("origin")) ?? route(c.req.path, protocols),
        c.req.url,
        protocols,
        clientLabel(c),
      ),
      remoteIpOf(c) ?? "",
      (name) => c.req.header(name),
    );
    if (isRefusal(routed)) return c.text(routed.body, routed.status);
    // The client's address must be read before the upgrade takes the request over.
    const label = clientLabel(c);
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(c.req.raw, {
        ...(options.idleTimeoutSecs !== undefined ? { idleTimeout: options.idleTimeoutSecs } : {}),
        // Wisp v2's subprotocol and a ticket's entry are echoed (browsers fail the handshake
        // otherwise).
        ...(routed.protocol !== undefined ? { protocol: routed.protocol } : {}),
      });
    } catch (e) {
      return c.text(`wasmnet: bad WebSocket upgrade: ${(e as Error).message}\n`, 400);
    }
    const { socket, response } = upgraded;
    socket.binaryType = "arraybuffer";
    const close = (code: number, reason: string): Promise<void> => {
      try {
        socket.close(code, reason);
      } catch {
        // already closed
      }
      return Promise.resolve();
    };
    // A personality may greet the client (Wisp's handshake): the session starts once it is open.
    let session: ClientSession | undefined;
    socket.onopen = () => {
      session = newSession(socket, label, close, routed);
    };
    socket.onmessage = (e: MessageEvent<string | ArrayBuffer>) => session?.handle(e.data);
    socket.onclose = () => {
      const ended = session;
      if (ended) void ended.close().finally(() => registry.delete(ended));
    };
    socket.onerror = () => {
      // The close event follows; nothing to do here.
    };
    return response;
  };
}

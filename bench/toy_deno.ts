/**
 * A hand-written WebSocket-to-TCP relay for Deno, the benchmark's floor for the Deno runtime: what
 * a user writes in an afternoon with `Deno.serve` + `Deno.upgradeWebSocket`, wsproxy style. One
 * WebSocket is one TCP connection to the fixed `--target`; binary messages go upstream as they
 * are, upstream bytes come back as binary messages. No flow control (Deno's WebSocket cannot
 * pause reading; the writer queues), no limits.
 *
 * Usage: `deno run --allow-net bench/toy_deno.ts --target 127.0.0.1:PORT [-p 0]`; prints
 * `listening addr=127.0.0.1:PORT`.
 *
 * @module
 */
const arg = (name: string, fallback: string): string => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] ?? fallback : fallback;
};
const [hostname = "127.0.0.1", port = "0"] = arg("--target", "").split(":");

Deno.serve({
  hostname: "127.0.0.1",
  port: Number(arg("-p", "0")),
  // deno-lint-ignore no-console
  onListen: (a) => console.log(`listening addr=${a.hostname}:${a.port}`),
}, (req) => {
  const asked = req.headers.get("sec-websocket-protocol")?.split(",")[0]?.trim();
  const { socket, response } = Deno.upgradeWebSocket(req, asked ? { protocol: asked } : {});
  socket.binaryType = "arraybuffer";
  const tcp = Deno.connect({ hostname, port: Number(port) });
  const writer = tcp.then((c) => c.writable.getWriter());
  socket.onmessage = (e: MessageEvent<ArrayBuffer>) => {
    writer.then((w) => w.write(new Uint8Array(e.data))).catch(() => socket.close());
  };
  socket.onclose = () => tcp.then((c) => c.close()).catch(() => {});
  tcp.then(async (c) => {
    for await (const chunk of c.readable) socket.send(chunk);
  }).catch(() => {}).finally(() => socket.close());
  return response;
});

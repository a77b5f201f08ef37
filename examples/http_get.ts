/**
 * Fetches a page through a wasmnet server using only the raw JSON protocol and a WebSocket.
 *
 * Usage: `deno run --allow-net examples/http_get.ts [ws://127.0.0.1:9000/] [host] [port] [path]`
 *
 * @module
 */

/**
 * Opens socket 1 to `host:port` through the wasmnet server at `url`, sends an HTTP/1.1 GET for
 * `path` and resolves the whole response (headers and body) once the server closes it.
 *
 * @throws {Error} when the proxy answers `denied` or `error`.
 */
export async function httpGetViaWasmnet(
  url: string,
  host: string,
  port: number,
  path = "/",
): Promise<string> {
  const ws = new WebSocket(url);
  const decoder = new TextDecoder();
  let response = "";
  try {
    return await new Promise<string>((resolve, reject) => {
      ws.onopen = () => ws.send(JSON.stringify({ op: "connect", id: 1, addr: host, port }));
      ws.onerror = () => reject(new Error(`cannot reach wasmnet at ${url}`));
      ws.onmessage = (e: MessageEvent<string>) => {
        const ev = JSON.parse(e.data);
        if (ev.ev === "connected") {
          const request = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
          const bytes = new TextEncoder().encode(request);
          ws.send(JSON.stringify({ op: "send", id: 1, data: btoa(String.fromCharCode(...bytes)) }));
        } else if (ev.ev === "data") {
          const bin = atob(ev.data);
          response += decoder.decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)), {
            stream: true,
          });
        } else if (ev.ev === "closed") {
          resolve(response);
        } else if (ev.ev === "denied" || ev.ev === "error") {
          reject(new Error(`${ev.ev}: ${ev.msg}`));
        }
      };
    });
  } finally {
    ws.close();
  }
}

if (import.meta.main) {
  const [url = "ws://127.0.0.1:9000/", host = "example.com", port = "80", path = "/"] = Deno.args;
  const text = await httpGetViaWasmnet(url, host, Number(port), path);
  await Deno.stdout.write(new TextEncoder().encode(text));
}

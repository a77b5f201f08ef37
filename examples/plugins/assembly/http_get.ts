// HTTP GET over the harness TCP functions (AssemblyScript).
// Input: "host:port/path" (e.g. "example.com:80/"). Output: the whole response, as received.
import { Host } from "@extism/as-pdk";
import { tcpClose, tcpConnect, tcpRecv, tcpSend, utf8 } from "./harness";

export function run(): i32 {
  const input = Host.inputString().trim();
  const slash = input.indexOf("/");
  const dest = slash < 0 ? input : input.substring(0, slash);
  const path = slash < 0 ? "/" : input.substring(slash);
  const colon = dest.lastIndexOf(":");
  const host = colon < 0 ? dest : dest.substring(0, colon);
  const id = tcpConnect(dest);
  if (id == 0) {
    Host.outputString("connect failed: " + dest);
    return 1;
  }
  tcpSend(id, utf8("GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\nConnection: close\r\n\r\n"));
  const parts: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const got = tcpRecv(id, 65536);
    if (got == null) break;
    parts.push(got);
    total += got.length;
  }
  tcpClose(id);
  const out = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < parts.length; i++) {
    out.set(parts[i], at);
    at += parts[i].length;
  }
  Host.output(out);
  return 0;
}

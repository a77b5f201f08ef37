// A DNS A-record query over the harness UDP functions (AssemblyScript).
// Input: "server:port name" (e.g. "1.1.1.1:53 example.com").
// Output: the IPv4 addresses of the answer, one per line (nothing when there are none).
import { Host } from "@extism/as-pdk";
import { udpClose, udpConnect, udpRecv, udpSend } from "./harness";

function query(name: string): Uint8Array {
  const labels = name.split(".");
  let size = 12 + 1 + 4;
  for (let i = 0; i < labels.length; i++) size += 1 + labels[i].length;
  const q = new Uint8Array(size);
  q[0] = 0x12; // id 0x1234
  q[1] = 0x34;
  q[2] = 0x01; // RD
  q[5] = 1; // QDCOUNT 1
  let at = 12;
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    q[at++] = <u8>label.length;
    for (let j = 0; j < label.length; j++) q[at++] = <u8>label.charCodeAt(j);
  }
  q[at++] = 0;
  q[at++] = 0; // QTYPE A
  q[at++] = 1;
  q[at++] = 0; // QCLASS IN
  q[at++] = 1;
  return q;
}

function skipName(m: Uint8Array, at: i32): i32 {
  while (at < m.length) {
    const len = m[at];
    if (len == 0) return at + 1;
    if ((len & 0xc0) == 0xc0) return at + 2;
    at += 1 + len;
  }
  return at;
}

export function run(): i32 {
  const input = Host.inputString().trim();
  const space = input.indexOf(" ");
  if (space < 0) {
    Host.outputString("usage: server:port name");
    return 1;
  }
  const server = input.substring(0, space);
  const name = input.substring(space + 1);
  const id = udpConnect(server);
  if (id == 0) {
    Host.outputString("connect failed: " + server);
    return 1;
  }
  udpSend(id, query(name));
  const m = udpRecv(id, 4096);
  udpClose(id);
  if (m == null || m.length < 12) {
    Host.outputString("no answer");
    return 1;
  }
  const answers = (<i32>m[6] << 8) | m[7];
  let at = skipName(m, 12) + 4;
  let out = "";
  for (let i = 0; i < answers && at + 10 <= m.length; i++) {
    at = skipName(m, at);
    const type = (<i32>m[at] << 8) | m[at + 1];
    const rdlen = (<i32>m[at + 8] << 8) | m[at + 9];
    at += 10;
    if (type == 1 && rdlen == 4 && at + 4 <= m.length) {
      out += m[at].toString() + "." + m[at + 1].toString() + "." + m[at + 2].toString() + "." +
        m[at + 3].toString() + "\n";
    }
    at += rdlen;
  }
  Host.outputString(out);
  return 0;
}

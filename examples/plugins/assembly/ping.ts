// ICMP echo over the harness ICMP functions (AssemblyScript).
// Input: "target [count]" (e.g. "127.0.0.1 3"). Output: one line per request: the reply JSON
// ({source,type,code,id,seq,data}) or "timeout seq=N" / "send failed seq=N".
import { Host } from "@extism/as-pdk";
import { icmpRecv, icmpSend, utf8 } from "./harness";

export function run(): i32 {
  const input = Host.inputString().trim();
  const space = input.indexOf(" ");
  const target = space < 0 ? input : input.substring(0, space);
  const count = space < 0 ? 1 : I32.parseInt(input.substring(space + 1));
  let out = "";
  for (let seq = 1; seq <= count; seq++) {
    if (!icmpSend(target, utf8("wasmnet ping " + seq.toString()), seq)) {
      out += "send failed seq=" + seq.toString() + "\n";
      continue;
    }
    const reply = icmpRecv(2000);
    out += reply == null ? "timeout seq=" + seq.toString() + "\n" : reply + "\n";
  }
  Host.outputString(out);
  return 0;
}

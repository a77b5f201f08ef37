/**
 * Harness test plugins, built from source on first use (WAT with npm `wabt`, AssemblyScript with
 * npm `assemblyscript` + `@extism/as-pdk`) and cached for the test process: the WAT probe and the
 * AssemblyScript examples of `examples/plugins/`, and an AssemblyScript probe with the same
 * exports as the WAT one (`tcp`, `udp`, `icmp`).
 *
 * @module
 */
import { compileAssemblyScript, compileWat } from "../../examples/plugins/build.ts";

const EXAMPLES = new URL("../../examples/plugins/", import.meta.url);

/** The AssemblyScript twin of `probe.wat`: same input ("dest\npayload") and outputs. */
const AS_PROBE = `
import { Host } from "@extism/as-pdk";
import { icmpRecv, icmpSend, tcpClose, tcpConnect, tcpRecv, tcpSend, udpClose, udpConnect,
  udpRecv, udpSend, utf8 } from "./harness";

function parse(): string[] {
  const s = Host.inputString();
  const nl = s.indexOf("\\n");
  return nl < 0 ? [s, ""] : [s.substring(0, nl), s.substring(nl + 1)];
}

export function tcp(): i32 {
  const a = parse();
  const id = tcpConnect(a[0]);
  if (id == 0) { Host.outputString("tcp_connect=0"); return 0; }
  tcpSend(id, utf8(a[1]));
  const got = tcpRecv(id, 65536);
  tcpClose(id);
  if (got == null) { Host.outputString("tcp_recv=0"); return 0; }
  Host.output(got);
  return 0;
}

export function udp(): i32 {
  const a = parse();
  const id = udpConnect(a[0]);
  if (id == 0) { Host.outputString("udp_connect=0"); return 0; }
  udpSend(id, utf8(a[1]));
  const got = udpRecv(id, 65536);
  udpClose(id);
  if (got == null) { Host.outputString("udp_recv=0"); return 0; }
  Host.output(got);
  return 0;
}

export function icmp(): i32 {
  const a = parse();
  if (!icmpSend(a[0], utf8(a[1]), 7)) { Host.outputString("icmp_send=0"); return 0; }
  const reply = icmpRecv(2000);
  Host.outputString(reply == null ? "icmp_recv=0" : reply);
  return 0;
}
`;

const cache = new Map<string, Promise<Uint8Array>>();

function once(key: string, build: () => Promise<Uint8Array>): Promise<Uint8Array> {
  let built = cache.get(key);
  if (built === undefined) {
    built = build();
    cache.set(key, built);
  }
  return built;
}

/** The test plugins by name. */
export type PluginName = "probe.wat" | "probe.as" | "http_get" | "dns_query" | "ping";

/**
 * The module `name`, built once per process: `probe.wat` (`examples/plugins/probe.wat`),
 * `probe.as` (the AssemblyScript twin), or an AssemblyScript example.
 */
export function plugin(name: PluginName): Promise<Uint8Array> {
  return once(name, async () => {
    switch (name) {
      case "probe.wat":
        return compileWat(await Deno.readTextFile(new URL("probe.wat", EXAMPLES)), "probe.wat");
      case "probe.as":
        return compileAssemblyScript("probe_as.ts", AS_PROBE);
      default:
        return compileAssemblyScript(new URL(`assembly/${name}.ts`, EXAMPLES).pathname);
    }
  });
}

/** The probes, for tests that run the same case from WAT and from AssemblyScript. */
export const PROBES: readonly PluginName[] = ["probe.wat", "probe.as"];

// The example app: the unmodified npm `pg` and `ioredis`, exposed to the page as `globalThis.app`
// (index.html and tests/node_browser_test.ts use them). `configure` sets the wasmnet server for
// net, tls, dns and dgram at once.
import pg from "pg";
import Redis from "ioredis";
import { Buffer } from "buffer";
import { configure } from "net";

globalThis.app = { pg, Redis, Buffer, configure };

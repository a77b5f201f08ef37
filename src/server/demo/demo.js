// The wasmnet demo page's script (served as /demo/demo.js; no framework, no build step of its
// own). One WasmnetClient on a WebSocket to the server that served the page; one TCP/TLS socket
// at a time through the stream API; DNS lookups; a log; payload throughput every 500 ms.
import { WasmnetClient } from "./wasmnet-client.js";

const RATE_INTERVAL_MS = 500;
const MAX_LOG_ENTRIES = 300;
const MAX_SHOWN_BYTES = 2048;

/** @param {string} id */
function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`demo page: #${id} is missing`);
  return node;
}

const ui = {
  status: byId("status"),
  connectForm: byId("connect-form"),
  host: /** @type {HTMLInputElement} */ (byId("host")),
  port: /** @type {HTMLInputElement} */ (byId("port")),
  tls: /** @type {HTMLInputElement} */ (byId("tls")),
  connect: /** @type {HTMLButtonElement} */ (byId("connect")),
  close: /** @type {HTMLButtonElement} */ (byId("close")),
  socketState: byId("socket-state"),
  sendForm: byId("send-form"),
  mode: /** @type {HTMLSelectElement} */ (byId("mode")),
  crlf: /** @type {HTMLInputElement} */ (byId("crlf")),
  payload: /** @type {HTMLTextAreaElement} */ (byId("payload")),
  send: /** @type {HTMLButtonElement} */ (byId("send")),
  resolveForm: byId("resolve-form"),
  name: /** @type {HTMLInputElement} */ (byId("name")),
  resolve: /** @type {HTMLButtonElement} */ (byId("resolve")),
  addresses: byId("addresses"),
  rateUp: byId("rate-up"),
  rateDown: byId("rate-down"),
  totalUp: byId("total-up"),
  totalDown: byId("total-down"),
  log: byId("log"),
  clearLog: byId("clear-log"),
};

// ---------- the WebSocket to this page's own server ----------

/** `ws://` or `wss://` URL of the directory this page was served from (the server upgrades any path). */
function serverUrl() {
  const url = new URL(".", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  return url.href;
}

/** @type {WasmnetClient | undefined} */
let client;

/** The live client, or a new one when there is none (first use, or the WebSocket closed). */
function getClient() {
  if (client) return client;
  const url = serverUrl();
  const c = new WasmnetClient(url, { binary: true });
  client = c;
  ui.status.textContent = `Connecting to ${url}…`;
  c.ready().then(
    () => {
      if (client === c) ui.status.textContent = `Connected to ${url} (binary framing).`;
    },
    () => {},
  );
  c.closed.then((info) => {
    if (client !== c) return;
    client = undefined;
    ui.status.textContent = `Disconnected from ${url} (WebSocket close code ${info.code}); ` +
      "the next action reconnects.";
    addEntry(
      "error",
      "WebSocket closed",
      `code ${info.code}${info.reason ? `: ${info.reason}` : ""}`,
    );
  });
  return c;
}

// ---------- log ----------

/** "12:34:56.789" */
function clock() {
  const d = new Date();
  const pad = (/** @type {number} */ n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${
    pad(d.getMilliseconds(), 3)
  }`;
}

/**
 * Appends a log entry: a time, a title, an optional detail and more content, and scrolls to it.
 * @param {"info" | "ok" | "sent" | "received" | "closed" | "error" | "denied"} kind
 * @param {string} title
 * @param {string} [detail]
 * @param {Node[]} more
 */
function addEntry(kind, title, detail, ...more) {
  const li = document.createElement("li");
  li.className = `entry ${kind}`;
  const meta = document.createElement("div");
  const time = document.createElement("time");
  time.textContent = clock();
  const label = document.createElement("span");
  label.className = "kind";
  label.textContent = title;
  meta.append(time, label);
  if (detail !== undefined) {
    const text = document.createElement("span");
    text.className = "detail";
    text.textContent = detail;
    meta.append(text);
  }
  li.append(meta, ...more);
  ui.log.append(li);
  while (ui.log.childElementCount > MAX_LOG_ENTRIES) ui.log.firstElementChild?.remove();
  ui.log.scrollTop = ui.log.scrollHeight;
}

/** The text view of bytes: line breaks (LF, CRLF) and tabs kept, other control characters as `\xNN`. */
function printable(/** @type {string} */ text) {
  return text.replace(/\r\n/g, "\n").replace(
    // deno-lint-ignore no-control-regex -- matching control characters is the point
    /[\u0000-\u0008\u000b-\u001f\u007f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** "48 69 0d 0a", 16 bytes a line. */
function hex(/** @type {Uint8Array} */ bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    lines.push(
      Array.from(bytes.subarray(i, i + 16), (b) => b.toString(16).padStart(2, "0")).join(" "),
    );
  }
  return lines.join("\n");
}

/**
 * A log entry for bytes sent or received, shown as text and as hex.
 * @param {"sent" | "received"} kind
 * @param {Uint8Array} bytes
 * @param {string} text the bytes decoded as UTF-8
 */
function addData(kind, bytes, text) {
  const more = bytes.length > MAX_SHOWN_BYTES ? ` (first ${MAX_SHOWN_BYTES} shown)` : "";
  const textView = document.createElement("pre");
  textView.className = "text";
  textView.textContent = printable(text.slice(0, MAX_SHOWN_BYTES));
  const hexView = document.createElement("pre");
  hexView.className = "hex";
  hexView.textContent = hex(bytes.subarray(0, MAX_SHOWN_BYTES));
  const count = `${bytes.length} byte${bytes.length === 1 ? "" : "s"}${more}`;
  addEntry(kind, kind, count, textView, hexView);
}

/**
 * A policy denial, shown distinctly: the server's message, and the rule it names.
 * Messages look like `127.0.0.1:22 is denied by rule "127.0.0.0/8" (loopback)`.
 * @param {string} message
 */
function addDenial(message) {
  const text = document.createElement("p");
  text.className = "message";
  text.textContent = message;
  const parts = [text];
  const m = /by (?:rule|default-deny range) "([^"]*)"(?: \(([^)]*)\))?/.exec(message);
  if (m) {
    const rule = document.createElement("p");
    rule.className = "rule";
    const code = document.createElement("code");
    code.textContent = m[1] ?? "";
    rule.append("Rule: ", code, m[2] ? ` (${m[2]})` : "");
    parts.push(rule);
  }
  addEntry("denied", "Denied by the server's policy", undefined, ...parts);
}

/** Logs an error from the client: denials distinctly, the rest as errors. */
function report(/** @type {string} */ what, /** @type {unknown} */ e) {
  const err = /** @type {{ code?: string; message?: string }} */ (e ?? {});
  if (err.code === "EDENIED") addDenial(err.message ?? String(e));
  else addEntry("error", `${what} failed`, `${err.code ? `${err.code}: ` : ""}${err.message ?? e}`);
}

ui.clearLog.addEventListener("click", () => ui.log.replaceChildren());

// ---------- throughput ----------

const traffic = { up: 0, down: 0, lastUp: 0, lastDown: 0, lastAt: performance.now() };

function formatBytes(/** @type {number} */ n) {
  if (n < 1024) return `${Math.round(n)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

function show(/** @type {HTMLElement} */ node, /** @type {number} */ value, suffix = "") {
  node.dataset.value = String(value);
  node.textContent = formatBytes(value) + suffix;
}

setInterval(() => {
  const now = performance.now();
  const secs = Math.max((now - traffic.lastAt) / 1000, 0.001);
  show(ui.rateUp, Math.round((traffic.up - traffic.lastUp) / secs), "/s");
  show(ui.rateDown, Math.round((traffic.down - traffic.lastDown) / secs), "/s");
  show(ui.totalUp, traffic.up);
  show(ui.totalDown, traffic.down);
  traffic.lastUp = traffic.up;
  traffic.lastDown = traffic.down;
  traffic.lastAt = now;
}, RATE_INTERVAL_MS);

// ---------- the socket ----------

/** @type {{ sock: import("./wasmnet-client.js").WasmnetSocket; writer?: WritableStreamDefaultWriter<Uint8Array>; closing: boolean } | undefined} */
let current;

/** @param {"idle" | "connecting" | "open"} state @param {string} text */
function setSocketState(state, text) {
  ui.connect.disabled = state !== "idle";
  ui.close.disabled = state === "idle";
  ui.send.disabled = state !== "open";
  ui.socketState.textContent = text;
  ui.socketState.classList.toggle("open", state === "open");
}

/** `host:port`, `[v6]:port`. */
function target(/** @type {string} */ host, /** @type {number} */ port) {
  return `${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`;
}

async function connect() {
  const host = ui.host.value.trim().replace(/^\[(.*)\]$/, "$1");
  const port = Number(ui.port.value);
  const tls = ui.tls.checked;
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    addEntry("error", "Connect", "enter a host and a port from 1 to 65535");
    return;
  }
  const where = `${tls ? "TLS" : "TCP"} ${target(host, port)}`;
  const sock = getClient().openTcp(host, port, { tls });
  /** @type {NonNullable<typeof current>} */
  const entry = { sock, closing: false };
  current = entry;
  setSocketState("connecting", `connecting to ${where}…`);
  addEntry("info", "connecting", where);
  try {
    await sock.opened;
  } catch (e) {
    if (current === entry) current = undefined;
    setSocketState("idle", "not connected");
    if (entry.closing) addEntry("closed", "cancelled", where);
    else report(`Connect to ${where}`, e);
    return;
  }
  const writer = sock.writable.getWriter();
  entry.writer = writer;
  setSocketState("open", `connected to ${where}`);
  addEntry("ok", "connected", where);
  void readAll(sock);
  sock.closed.then(
    () => addEntry("closed", "closed", `${where}${entry.closing ? "" : " (closed by the peer)"}`),
    (e) => report(`Connection to ${where}`, e),
  ).finally(() => {
    if (current === entry) current = undefined;
    setSocketState("idle", "not connected");
  });
}

/** Logs every chunk received until the socket ends (its end is reported by `closed`). */
async function readAll(/** @type {import("./wasmnet-client.js").WasmnetSocket} */ sock) {
  const decoder = new TextDecoder();
  const reader = sock.readable.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      traffic.down += value.length;
      addData("received", value, decoder.decode(value, { stream: true }));
    }
  } catch {
    // the socket failed: `closed` rejects and reports it
  } finally {
    reader.releaseLock();
  }
}

/** The bytes the send form describes. @throws {Error} for malformed hex. */
function payloadBytes() {
  const raw = ui.payload.value;
  if (ui.mode.value !== "hex") {
    return new TextEncoder().encode(ui.crlf.checked ? raw.replace(/\r?\n/g, "\r\n") : raw);
  }
  const digits = raw.replace(/(^|[\s,;:])0x/gi, "$1").replace(/[\s,;:]+/g, "");
  if (!/^[0-9a-f]*$/i.test(digits)) {
    throw new Error("hex data may only hold 0-9, a-f, spaces, commas and 0x prefixes");
  }
  if (digits.length % 2 !== 0) throw new Error("hex data needs two digits per byte");
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

async function send() {
  const entry = current;
  if (!entry?.writer) return;
  let data;
  try {
    data = payloadBytes();
  } catch (e) {
    addEntry("error", "Send", /** @type {Error} */ (e).message);
    return;
  }
  if (data.length === 0) return;
  addData("sent", data, new TextDecoder().decode(data));
  try {
    await entry.writer.write(data);
    traffic.up += data.length;
  } catch (e) {
    report("Send", e);
  }
}

async function closeSocket() {
  const entry = current;
  if (!entry) return;
  entry.closing = true;
  ui.close.disabled = true;
  await entry.sock.close().catch(() => {});
}

ui.connectForm.addEventListener("submit", (e) => {
  e.preventDefault();
  void connect();
});
ui.close.addEventListener("click", () => void closeSocket());
ui.sendForm.addEventListener("submit", (e) => {
  e.preventDefault();
  void send();
});
ui.mode.addEventListener("change", () => {
  ui.crlf.disabled = ui.mode.value === "hex";
});
ui.payload.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    if (!ui.send.disabled) void send();
  }
});

// ---------- DNS ----------

async function resolveName() {
  const name = ui.name.value.trim();
  if (!name) return;
  ui.resolve.disabled = true;
  ui.addresses.replaceChildren();
  try {
    const addrs = await getClient().resolve(name);
    const items = addrs.map((a) => {
      const li = document.createElement("li");
      li.textContent = a;
      return li;
    });
    if (items.length === 0) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "no addresses";
      items.push(li);
    }
    ui.addresses.replaceChildren(...items);
    addEntry("ok", "resolved", `${name} → ${addrs.join(", ") || "no addresses"}`);
  } catch (e) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "lookup failed (see the log)";
    ui.addresses.replaceChildren(li);
    report(`Lookup of ${name}`, e);
  } finally {
    ui.resolve.disabled = false;
  }
}

ui.resolveForm.addEventListener("submit", (e) => {
  e.preventDefault();
  void resolveName();
});

setSocketState("idle", "not connected");
ui.crlf.disabled = ui.mode.value === "hex"; // the browser may restore the form after a reload
getClient();
document.documentElement.dataset.ready = "true";

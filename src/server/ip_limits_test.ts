import assert from "node:assert/strict";
import { IpLimiter } from "./ip_limits.ts";

Deno.test("ip limits: sessions at once per address, released at the end", () => {
  const l = new IpLimiter({ sessionsPerIp: 2 });
  for (let i = 0; i < 2; i++) {
    assert.equal(l.admitSession("1.1.1.1"), undefined);
    l.sessionStarted("1.1.1.1");
  }
  assert.match(
    l.admitSession("1.1.1.1") ?? "",
    /too many sessions from 1\.1\.1\.1 \(limit 2 at once\)/,
  );
  assert.equal(l.admitSession("2.2.2.2"), undefined, "another address has its own count");
  l.sessionEnded("1.1.1.1");
  assert.equal(l.admitSession("1.1.1.1"), undefined);
});

Deno.test("ip limits: new sessions per minute refill evenly", () => {
  let now = 0;
  const l = new IpLimiter({ newSessionsPerMinute: 3 }, () => now);
  for (let i = 0; i < 3; i++) assert.equal(l.admitSession("1.1.1.1"), undefined);
  assert.match(l.admitSession("1.1.1.1") ?? "", /3 per minute/);
  now += 19_000;
  assert.notEqual(l.admitSession("1.1.1.1"), undefined, "not yet a token (20 s each)");
  now += 1_000;
  assert.equal(l.admitSession("1.1.1.1"), undefined);
});

Deno.test("ip limits: dials per minute; no limit when 0", () => {
  let now = 0;
  const l = new IpLimiter({ dialsPerMinute: 2 }, () => now);
  assert.equal(l.admitDial("::1"), undefined);
  assert.equal(l.admitDial("::1"), undefined);
  assert.match(l.admitDial("::1") ?? "", /too many dials from ::1 \(limit 2 per minute\)/);
  now += 30_000;
  assert.equal(l.admitDial("::1"), undefined);
  const none = new IpLimiter({});
  assert.equal(none.active, false);
  for (let i = 0; i < 1000; i++) assert.equal(none.admitDial("x"), undefined);
});

// Usage: node bench.mjs <pub|cons|warm|seed> <ioredis|iovalkey|redis|ioredis-noap>
// Prints one JSON line with results on stdout.
import { makeClient, KEY, now, payload, verify, SIZE } from './clients.mjs';

const [role, name] = process.argv.slice(2);
const N = Number(process.env.N ?? 20000);
const BATCH = Number(process.env.BATCH ?? 256); // commands issued per event-loop turn (none awaited individually)
const out = (o) => process.stdout.write(JSON.stringify({ role, client: name, ...o }) + '\n');
const pct = (a, p) => a[Math.min(a.length - 1, Math.floor(a.length * p))];

if (role === 'pub') {
  const c = await makeClient(name);
  const bufs = Array.from({ length: N }, (_, i) => payload(i)); // pre-built outside the timed region
  const cpu0 = process.cpuUsage(); const t0 = now();
  const ps = new Array(N);
  for (let i = 0; i < N; i++) {
    bufs[i].writeDoubleLE(now(), 0);
    ps[i] = c.xadd(KEY, bufs[i]);
    if ((i + 1) % BATCH === 0) await new Promise(setImmediate); // let the socket drain / replies arrive
  }
  await Promise.all(ps);
  const dt = now() - t0; const cpu = process.cpuUsage(cpu0);
  out({ n: N, ms: +dt.toFixed(1), entriesPerSec: Math.round(N / dt * 1000), cpuUsPerEntry: +((cpu.user + cpu.system) / N).toFixed(2) });
  await c.quit();
} else if (role === 'cons') {
  const c = await makeClient(name);
  process.stdout.write('READY\n');
  let lastId = '0-0', got = 0, bad = 0, checked = 0, cpu0 = null, lastSeq = -1;
  const lags = [], toServer = [], fromServer = [];
  const deadline = Date.now() + 60000;
  while (lastSeq < N - 1 && Date.now() < deadline) {
    const entries = await c.xread(KEY, lastId, 1000, 100);
    if (!entries) { if (got > 0) break; else continue; } // 1 s idle after data started => done
    const t = now();
    if (!cpu0) cpu0 = process.cpuUsage();
    for (const e of entries) {
      const sent = e.b.readDoubleLE(0), srv = Number(e.id.split('-')[0]);
      lags.push(t - sent); toServer.push(srv - sent); fromServer.push(t - srv);
      const seq = e.b.readUInt32LE(8); lastSeq = seq;
      if (seq % 100 === 0) { checked++; if (!verify(e.b)) bad++; }
      lastId = e.id; got++;
    }
  }
  const cpu = process.cpuUsage(cpu0);
  for (const a of [lags, toServer, fromServer]) a.sort((a, b) => a - b);
  out({ got, expected: N, missedByTrim: N - got, checked, bad, cpuUsPerEntry: +((cpu.user + cpu.system) / got).toFixed(2),
    lagP50ms: +pct(lags, 0.5).toFixed(1), lagP99ms: +pct(lags, 0.99).toFixed(1),
    pubToServerP50ms: +pct(toServer, 0.5).toFixed(1), serverToConsP50ms: +pct(fromServer, 0.5).toFixed(1) });
  await c.quit();
} else if (role === 'seed') { // exactly 5000 x 4 KiB entries for the warm-start test
  const c = await makeClient(name);
  await c.del(KEY);
  const ps = []; for (let i = 0; i < 5000; i++) ps.push(c.xadd(KEY, payload(i)));
  await Promise.all(ps); await c.trim(KEY, 5000);
  out({ xlen: await c.xlen(KEY) });
  await c.quit();
} else if (role === 'warm') {
  const tc = now();
  const c = await makeClient(name);
  const tConn = now() - tc;
  const cpu0 = process.cpuUsage(); const t0 = now();
  let start = '-', n = 0, bad = 0, pages = 0;
  for (;;) {
    const page = await c.xrange(KEY, start, 1000);
    if (page.length === 0) break;
    pages++;
    for (const e of page) { n++; if (n % 100 === 0 && !verify(e.b)) bad++; }
    if (page.length < 1000) break;
    start = '(' + page[page.length - 1].id;
  }
  const dt = now() - t0; const cpu = process.cpuUsage(cpu0);
  out({ n, pages, bad, readMs: +dt.toFixed(1), connectMs: +tConn.toFixed(1), cpuMs: +((cpu.user + cpu.system) / 1000).toFixed(1), bytes: n * SIZE });
  await c.quit();
} else {
  console.error('usage: node bench.mjs <pub|cons|warm|seed> <client>'); process.exit(2);
}

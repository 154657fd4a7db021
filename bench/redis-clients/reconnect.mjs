// Usage: node reconnect.mjs <client> <variant>
// Kills the server (redis-cli shutdown nosave) under a connected client, keeps issuing 4 KiB XADDs
// while it is down (2 s), restarts it on the same port, and reports what the client did.
import { execFileSync } from 'node:child_process';
import { makeClient, KEY, PORT, payload } from './clients.mjs';

const [name, variant = 'default'] = process.argv.slice(2);
const VARIANTS = {
  default: {},
  // ioredis / iovalkey: reject instead of queue while not connected; give up on in-flight after 1 retry
  bounded: name.startsWith('io') ? { enableOfflineQueue: false, maxRetriesPerRequest: 1 }
    : { disableOfflineQueue: true, commandsQueueMaxLength: 1000 },
  // node-redis: keep offline queue but cap it
  cap: name === 'redis' ? { commandsQueueMaxLength: 1000 } : { maxRetriesPerRequest: 1 },
  // ioredis 6: client-side guard for blocking commands
  blockguard: name.startsWith('io') ? { blockingTimeout: 1, enableOfflineQueue: false, maxRetriesPerRequest: 1 } : {},
};
const opts = VARIANTS[variant];
const log = [];
const t0 = Date.now();
const ev = (s) => log.push(`${((Date.now() - t0) / 1000).toFixed(2)}s ${s}`);
let uncaught = 0, unhandled = 0;
process.on('uncaughtException', (e) => { uncaught++; ev('UNCAUGHT ' + e.message); });
process.on('unhandledRejection', (e) => { unhandled++; ev('UNHANDLED ' + e?.message); });

const a = await makeClient(name, opts); // command connection
const b = await makeClient(name, opts); // blocking-read connection
let errors = 0; const errMsgs = new Set();
for (const [tag, c] of [['A', a.raw], ['B', b.raw]]) {
  c.on('error', (e) => { errors++; errMsgs.add(`${e.constructor.name}: ${e.message}`.slice(0, 90)); });
  for (const e of ['close', 'end', 'reconnecting', 'ready', 'connect']) c.on(e, () => ev(`${tag} '${e}'`));
}
const heap = () => Math.round((process.memoryUsage().heapUsed + process.memoryUsage().external) / 1048576);
const queued = () => (a.raw.offlineQueue ? `offlineQueue=${a.raw.offlineQueue.length} commandQueue=${a.raw.commandQueue.length}` : '');

// pending blocking read
const tb = Date.now();
let xreadResult = 'still pending (hung)';
b.xread(KEY, '$', 10000, 100).then((r) => { xreadResult = `resolved ${r === null ? 'null' : r.length + ' entries'} after ${Date.now() - tb}ms`; ev('XREAD ' + xreadResult); },
  (e) => { xreadResult = `rejected after ${Date.now() - tb}ms: ${e.constructor.name} ${e.message}`.slice(0, 140); ev('XREAD ' + xreadResult); });

await new Promise((r) => setTimeout(r, 300));
ev('SHUTDOWN server'); const heap0 = heap();
try { execFileSync('redis-cli', ['-p', String(PORT), 'shutdown', 'nosave'], { stdio: 'ignore' }); } catch {}
// issue 50 XADD of 4 KiB every 100 ms for 2 s while down
let issued = 0, fastRejected = 0, okAfter = 0, rejAfter = 0; const rejKinds = new Set(); const pend = [];
const tDown = Date.now();
while (Date.now() - tDown < 2000) {
  for (let i = 0; i < 50; i++) {
    const ti = Date.now(); issued++;
    pend.push(a.xadd(KEY, payload(i)).then(() => okAfter++, (e) => { if (Date.now() - ti < 50) fastRejected++; else rejAfter++; rejKinds.add(`${e.constructor.name}: ${e.message}`.slice(0, 80)); }));
  }
  await new Promise((r) => setTimeout(r, 100));
}
const heapDown = heap(); const qDown = queued();
ev(`RESTART server (issued ${issued} XADD while down, heap+ext ${heap0}->${heapDown} MiB ${qDown})`);
execFileSync('redis-server', ['--port', String(PORT), '--save', '', '--appendonly', 'no', '--daemonize', 'yes']);
const tUp = Date.now();
// wait for reconnect: PING via A, up to 15 s
let pingOk = 'no';
while (Date.now() - tUp < 15000) {
  try { await Promise.race([a.raw.ping(), new Promise((_, j) => setTimeout(() => j(new Error('t')), 500))]); pingOk = `yes, ${Date.now() - tUp}ms after restart`; break; } catch { await new Promise((r) => setTimeout(r, 100)); }
}
await Promise.race([Promise.allSettled(pend), new Promise((r) => setTimeout(r, 8000))]);
await new Promise((r) => setTimeout(r, 11000 - (Date.now() - tb) > 0 ? 11000 - (Date.now() - tb) : 0)); // give XREAD its 10 s
console.log(JSON.stringify({ client: name, variant, opts, uncaught, unhandled, errorEvents: errors, errorKinds: [...errMsgs].slice(0, 4),
  reconnected: pingOk, xreadDuringOutage: xreadResult, whileDown: { issued, fastRejected, resolvedAfterRestart: okAfter, rejectedLater: rejAfter, stillPending: issued - fastRejected - okAfter - rejAfter, rejKinds: [...rejKinds] },
  heapExtMiB: { before: heap0, whileDown: heapDown }, queueWhileDown: qDown, timeline: log }, null, 1));
process.exit(0);

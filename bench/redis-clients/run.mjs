// Driver: node run.mjs [rounds=3] [clients=ioredis,iovalkey,redis]
// Alternates clients each round; publisher, consumer, warm-start each run in their own process.
import { spawn, execFileSync } from 'node:child_process';
import { PORT, KEY } from './clients.mjs';

const ROUNDS = Number(process.argv[2] ?? 3);
const CLIENTS = (process.argv[3] ?? 'ioredis,iovalkey,redis').split(',');
const cli = (...a) => execFileSync('redis-cli', ['-p', String(PORT), ...a]).toString().trim();

function proc(role, client, onReady) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['bench.mjs', role, client], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    p.stdout.on('data', (d) => { buf += d; if (onReady && buf.includes('READY\n')) { onReady(); onReady = null; } });
    p.on('exit', (code) => code === 0 ? resolve(JSON.parse(buf.split('\n').filter((l) => l.startsWith('{')).pop())) : reject(new Error(`${role} ${client} exit ${code}`)));
  });
}

const results = {};
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 ? [...CLIENTS].reverse() : CLIENTS;
  for (const c of order) {
    cli('del', KEY);
    let ready; const readyP = new Promise((res) => (ready = res));
    const consP = proc('cons', c, ready);
    await readyP;
    const pub = await proc('pub', c);
    const cons = await consP;
    await proc('seed', c);
    const warm = await proc('warm', c);
    (results[c] ??= []).push({ pub, cons, warm });
    console.error(`round ${r + 1} ${c}: pub ${pub.entriesPerSec}/s ${pub.cpuUsPerEntry}us | cons ${cons.cpuUsPerEntry}us got ${cons.got} bad ${cons.bad} lag ${cons.lagP50ms}/${cons.lagP99ms}ms (pub->srv ${cons.pubToServerP50ms}, srv->cons ${cons.serverToConsP50ms}) | warm ${warm.readMs}ms bad ${warm.bad}`);
  }
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
console.log('\nclient        | pub entries/s | pub us CPU/entry | cons us CPU/entry | lag p50 ms | lag p99 ms | got/20000 | warm read ms (5000x4KiB)');
for (const [c, rs] of Object.entries(results)) {
  const m = (f) => med(rs.map(f));
  console.log(`${c.padEnd(13)} | ${String(m((x) => x.pub.entriesPerSec)).padStart(13)} | ${String(m((x) => x.pub.cpuUsPerEntry)).padStart(16)} | ${String(m((x) => x.cons.cpuUsPerEntry)).padStart(17)} | ${String(m((x) => x.cons.lagP50ms)).padStart(10)} | ${String(m((x) => x.cons.lagP99ms)).padStart(10)} | ${String(m((x) => x.cons.got)).padStart(9)} | ${m((x) => x.warm.readMs)}`);
}
console.log(JSON.stringify(results));

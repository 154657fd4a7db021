// `npm run load` as a user meets it: a preflight that fails fast, a non-zero exit when a
// stage failed, Ctrl-C writing a partial report (exit 130), and fair comparisons of several
// --urls on simulated pods (each from a reset fleet). Real sockets, a real simulated pod,
// the CLI in its own process where signals matter. Reports go to a temp dir.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, planFromArgs, type Io } from '../bench/load/cli.ts';
import { interleavedOrder } from '../bench/load/compare.ts';
import { decideReset, resetPods } from '../bench/load/fleet-reset.ts';
import { parseErrorRate, stagesOverBudget } from '../bench/load/outcome.ts';
import { preflight } from '../bench/load/preflight.ts';
import type { Report } from '../bench/load/report.ts';
import { runStages } from '../bench/load/runner.ts';
import { makeWorkload } from '../bench/load/workloads.ts';
import { startSimPod, type SimPod } from '../bench/sim/server.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'llm-epp-load-robust-'));

function capture(): Io & { outText: () => string; errText: () => string } {
  let out = '';
  let err = '';
  return { out: (s) => void (out += s), err: (s) => void (err += s), outText: () => out, errText: () => err };
}

const readReport = (prefix: string) => JSON.parse(readFileSync(`${prefix}.json`, 'utf8')) as Report;

let pod: SimPod;
let url: string;
beforeAll(async () => {
  pod = await startSimPod({ model: 'sim-model', timeScale: 0.05, enablePromptTokensDetails: true, name: 'sim-0' });
  url = `http://127.0.0.1:${pod.port}`;
});
afterAll(async () => {
  await pod.close();
});

const SMALL = ['--groups', '2', '--prompts-per-group', '3', '--system-tokens', '400', '--question-tokens', '20', '--output-tokens', '4'];

describe('load: fail fast, and fail loudly', () => {
  it('a preflight request says that nothing listens, and the run exits 1 (it used to exit 0 with every request failed)', async () => {
    const io = capture();
    const code = await main(['--url', 'http://127.0.0.1:1', '--rates', '5', '--duration', '1s', '--out', join(dir, 'refused')], io);
    expect(code).toBe(1);
    expect(io.errText()).toBe('error: nothing listens on http://127.0.0.1:1; start it with npm run sim (simulated pods) or npm run gateway (a gateway in front of them)\n');
    expect(existsSync(join(dir, 'refused.json'))).toBe(false);
  });

  it('the preflight names a wrong model', async () => {
    await expect(preflight(url, { model: 'meta-llama/nope' })).rejects.toThrow(/answered HTTP 404: The model `meta-llama\/nope` does not exist\. — is --model right\?/);
    await expect(preflight(url, { model: 'sim-model' })).resolves.toMatchObject({ simulated: true, pod: 'sim-0' });
  });

  it('exits 1 when every request of a stage failed, or when --max-error-rate is exceeded', async () => {
    const io = capture();
    const code = await main(['--url', 'http://127.0.0.1:1', '--skip-preflight', '--concurrency', '2', '--max-requests', '4', '--out', join(dir, 'allfail'), ...SMALL], io);
    expect(code).toBe(1);
    expect(io.errText()).toMatch(/error: default · c=2: every request failed \(4\): ECONNREFUSED × 4/);
    expect(readReport(join(dir, 'allfail')).stages[0].failed).toBe(4);
    const r = { stages: [{ requests: 10, failed: 1 }, { requests: 10, failed: 0 }] } as unknown as Report;
    expect(stagesOverBudget(r)).toHaveLength(0);
    expect(stagesOverBudget(r, 0.05)).toHaveLength(1);
    expect(parseErrorRate('5%')).toBe(0.05);
    expect(() => parseErrorRate('2')).toThrow(/--max-error-rate/);
  });

  it('--help, and friendly usage errors', async () => {
    const io = capture();
    expect(await main(['--help'], io)).toBe(0);
    expect(io.outText()).toMatch(/--reset-between MODE/);
    expect(io.outText()).toMatch(/--interleave/);
    expect(io.outText()).toMatch(/Ctrl-C writes a partial report/);
    const bad = capture();
    expect(await main(['--url', 'localhost:8081', '--rates', '1'], bad)).toBe(2);
    expect(bad.errText()).toBe('error: --url: bad URL "localhost:8081" (e.g. http://127.0.0.1:8081)\nRun with --help for the options.\n');
  });
});

describe('demo: --help and friendly errors', () => {
  const demo = (args: string[]) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, ['bench/demo.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout!.on('data', (b: Buffer) => void (out += b.toString()));
      child.stderr!.on('data', (b: Buffer) => void (err += b.toString()));
      child.once('close', (code) => resolve({ code, out, err }));
    });

  it('prints its help, and a bad flag gives one line and exit 2, not a stack', async () => {
    const help = await demo(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/starts from a reset fleet/);
    expect(help.out).toMatch(/--unreliable-lag MS/);
    expect(help.out).not.toMatch(/shared\/reference/);
    const bad = await demo(['--pods', 'many']);
    expect(bad).toMatchObject({ code: 2, err: 'error: --pods must be an integer >= 1, got "many"\nRun with --help for the options.\n' });
  });
});

describe('load: Ctrl-C', () => {
  it('writes a partial report of what completed and exits 130 (it crashed with "e.slice is not a function")', async () => {
    const out = join(dir, 'interrupted');
    const child = spawn(process.execPath, ['bench/load/cli.ts', '--url', url, '--rates', '8', '--duration', '60s', '--progress', '--out', out, ...SMALL], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    await new Promise<void>((resolve) => {
      child.stderr!.on('data', (b: Buffer) => {
        err += b.toString();
        // Some requests done, and more in flight or coming.
        if (/done [1-9]/.test(err)) resolve();
      });
    });
    child.kill('SIGINT');
    expect(await exited, err).toBe(130);
    expect(err).not.toMatch(/TypeError/);
    const r = readReport(out);
    expect(r.partial).toBe(true);
    expect(r.stages).toHaveLength(1);
    expect(r.stages[0].completed).toBeGreaterThan(0);
    expect(r.stages[0].failed).toBe(0);
    for (const s of Object.keys(r.stages[0].errors)) expect(s).not.toBe('20');
  }, 60_000);

  it('a cancelled request is recorded as aborted, not as a failure of the target', async () => {
    const ac = new AbortController();
    const run = await runStages({
      url,
      workload: makeWorkload('no-sharing', { promptTokens: 50, outputTokens: 400 }),
      stages: [{ concurrency: 2, maxRequests: 100, durationMs: 60_000 }],
      progress: false,
      signal: ac.signal,
      onRecord: () => ac.abort(),
    });
    const recs = run.stages[0].records;
    expect(run.stages[0].aborted).toBe(true);
    expect(recs.filter((r) => r.aborted).length).toBeGreaterThan(0);
    for (const r of recs.filter((x) => x.aborted)) expect(r.error).toBe('aborted');
  });
});

describe('load: fair comparisons of several --url', () => {
  const compare = async (name: string, extra: string[]) => {
    const io = capture();
    const out = join(dir, name);
    const code = await main(['--url', `first=${url}`, '--url', `second=${url}`, '--metrics', `sim-0=${url}/metrics`, '--concurrency', '1', '--max-requests', '6', '--out', out, ...SMALL, ...extra], io);
    expect(code, io.errText()).toBe(0);
    const r = readReport(out);
    const [a, b] = r.strategies.map((s) => r.stages.find((x) => x.strategy === s)!);
    return { a, b, io, r };
  };

  it('on simulated pods each strategy starts from a reset fleet by default: the second does not inherit a warm cache', async () => {
    const { a, b, io, r } = await compare('fair', []);
    expect(io.errText()).toMatch(/fair comparison: each strategy starts from a reset fleet \(POST \/sim\/reset on 1 pods\)/);
    expect(a.prefixCacheHitRate!.queries).toBeGreaterThan(0);
    expect(b.prefixCacheHitRate!.hits).toBe(a.prefixCacheHitRate!.hits);
    expect(b.cachedTokenRate).toBe(a.cachedTokenRate);
    expect(r.meta).toMatchObject({ fairness: { reset: true } });
  });

  it('without the reset (--reset-between off) the second inherits the first one’s cache, and a warning says so', async () => {
    expect(await resetPods([url])).toEqual([]);
    const { a, b, io } = await compare('unfair', ['--reset-between', 'off']);
    expect(io.errText()).toMatch(/warning: later targets run on caches the earlier ones warmed/);
    expect(b.prefixCacheHitRate!.hits).toBeGreaterThan(a.prefixCacheHitRate!.hits);
  });

  it('interleaving rotates the order of the strategies per stage; reset decisions', async () => {
    expect([0, 1, 2].map((i) => interleavedOrder(['a', 'b', 'c'], i))).toEqual([['a', 'b', 'c'], ['b', 'c', 'a'], ['c', 'a', 'b']]);
    const io = capture();
    const out = join(dir, 'interleaved');
    const code = await main(['--url', `first=${url}`, '--url', `second=${url}`, '--metrics', `${url}/metrics`, '--interleave', '--concurrency', '1,2', '--max-requests', '3', '--out', out, ...SMALL], io);
    expect(code, io.errText()).toBe(0);
    expect(io.errText().match(/▶ \w+/g)).toEqual(['▶ first', '▶ second', '▶ second', '▶ first']);
    const r = readReport(out);
    expect(r.stages.map((s) => `${s.strategy} ${s.name}`).sort()).toEqual(['first c=1', 'first c=2', 'second c=1', 'second c=2']);
    await expect(decideReset('on', { targets: 2, simulated: true, pods: [], interleave: false })).rejects.toThrow(/--reset-between on needs the pods' own URLs/);
    await expect(decideReset('auto', { targets: 2, simulated: true, pods: [], interleave: false })).resolves.toMatchObject({ reset: false, warning: /give --metrics/ });
    await expect(decideReset('auto', { targets: 2, simulated: false, pods: [url], interleave: true })).resolves.toMatchObject({ reset: false });
    expect(planFromArgs(['--url', url, '--rates', '1'])).toMatchObject({ resetBetween: 'auto', interleave: false, preflight: true });
    expect(planFromArgs(['--url', url, '--rates', '1', '--lag-metrics', 'llm-epp=http://127.0.0.1:9090/metrics'])).toMatchObject({ lagMetrics: { 'llm-epp': 'http://127.0.0.1:9090/metrics' } });
    expect(() => planFromArgs(['--url', url, '--rates', '1', '--reset-between', 'maybe'])).toThrow(/--reset-between is auto, on or off/);
  });
});

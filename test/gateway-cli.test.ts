// `npm run gateway` as a person meets it: --help, and every mistake or start-up
// failure as one line on stderr with a non-zero exit (no stack), including
// the hint when the EPP speaks TLS and the gateway was not told.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import { startTestApp } from './helpers/app-harness.ts';
import { FakePod } from './helpers/fake-pod.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the gateway CLI until it exits, or until it prints its JSON ready line (then stop it). */
function gateway(args: string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['bench/gateway/gateway.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => {
      stdout += d;
      if (/^\{"port":\d+/m.test(stdout)) p.kill('SIGTERM');
    });
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** One line, no stack frames, and the exit code of a failure. */
function expectOneLine(o: Outcome, code: number, ...parts: string[]): void {
  expect(o.code, o.stderr).toBe(code);
  const lines = o.stderr.trimEnd().split('\n');
  expect(lines, o.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^gateway: /);
  expect(o.stderr).not.toMatch(/\n\s+at /);
  for (const p of parts) expect(lines[0]).toContain(p);
}

const apps: App[] = [];
const pods: FakePod[] = [];
const servers: Server[] = [];
afterAll(async () => {
  for (const a of apps) await a.stop(100);
  for (const p of pods) await p.stop();
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
});

async function epp(flags: string[]): Promise<App> {
  const pod = await new FakePod().start();
  pods.push(pod);
  const { app } = await startTestApp([`--endpoints=${pod.key}`, ...flags]);
  apps.push(app);
  return app;
}

describe('gateway command line', () => {
  it('--help prints the usage, flags included, and exits 0', async () => {
    for (const flag of ['--help', '-h']) {
      const o = await gateway([flag]);
      expect(o.code, o.stderr).toBe(0);
      expect(o.stdout).toMatch(/^Usage: npm run gateway/);
      for (const f of ['--strategy', '--epp ', '--epp-tls', '--epp-ca', '--epp-insecure-skip-verify', '--endpoints', '/gateway/stats']) expect(o.stdout).toContain(f);
      expect(o.stderr).toBe('');
    }
  });

  it('a mistaken flag or value is one line naming it, exit 2', async () => {
    expectOneLine(await gateway(['--nope']), 2, 'unknown flag --nope', '--help');
    expectOneLine(await gateway(['--port', 'abc', '--strategy=round-robin', '--endpoints=127.0.0.1:1']), 2, '--port', '"abc"');
    expectOneLine(await gateway(['--strategy', 'fastest']), 2, '--strategy', 'fastest');
    expectOneLine(await gateway(['--strategy=epp']), 2, '--epp');
    expectOneLine(await gateway(['--epp', 'nowhere']), 2, '--epp must be host:port');
    expectOneLine(await gateway(['--strategy=round-robin']), 2, '--endpoints');
    expectOneLine(await gateway(['--epp=127.0.0.1:1', '--epp-insecure-skip-verify']), 2, '--epp-tls');
    expectOneLine(await gateway(['--epp=127.0.0.1:1', '--epp-tls', '--epp-ca=/no/such/ca.pem']), 2, '--epp-ca', 'ENOENT');
  });

  it('a port in use is one line naming --port', async () => {
    const busy = createServer();
    servers.push(busy);
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as AddressInfo).port;
    expectOneLine(await gateway([`--port=${port}`, '--strategy=round-robin', '--endpoints=127.0.0.1:1']), 1, `--port ${port} is already in use`);
  });

  it('an EPP that is not there is one line saying so', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    expectOneLine(await gateway(['--port=0', `--epp=127.0.0.1:${port}`]), 1, `nothing listens at 127.0.0.1:${port}`);
  });

  it('an EPP that serves TLS gets the --epp-tls hint; with --epp-tls and --epp-insecure-skip-verify it serves', async () => {
    const app = await epp(['--secure-serving=true']);
    const at = `--epp=127.0.0.1:${app.ports.grpc}`;
    expectOneLine(await gateway(['--port=0', at]), 1, `the EPP at 127.0.0.1:${app.ports.grpc} speaks TLS`, 'pass --epp-tls', '--epp-insecure-skip-verify');
    // Its certificate is self-signed: verification fails, with what to do about it.
    expectOneLine(await gateway(['--port=0', at, '--epp-tls']), 1, 'cannot verify', '--epp-ca', '--epp-insecure-skip-verify');
    const ok = await gateway(['--port=0', at, '--epp-tls', '--epp-insecure-skip-verify']);
    expect(ok.stderr).toBe('');
    expect(JSON.parse(ok.stdout.split('\n')[0])).toMatchObject({ strategy: 'epp' });
  });

  it('--epp-tls against a plaintext EPP says it does not speak TLS', async () => {
    const app = await epp([]);
    expectOneLine(await gateway(['--port=0', `--epp=127.0.0.1:${app.ports.grpc}`, '--epp-tls', '--epp-insecure-skip-verify']), 1, 'does not speak TLS', 'drop --epp-tls');
  });
});

// What a newcomer meets first, run as a user runs it (src/main.ts in its own
// process): --check-config, start-up errors that can be read (text on a
// terminal, one JSON line otherwise), a port in use named by its flag with no
// stray gRPC line, and npm's install quiet on the machine's Node.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseFlags } from '../src/flags.ts';
import { resolveLogFormat } from '../src/log.ts';

const ROOT = new URL('..', import.meta.url).pathname;

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['src/main.ts', ...args], { cwd: ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

const BASE = ['--endpoints=127.0.0.1:9', '--secure-serving=false', '--grpc-health-port=0', '--metrics-port=0', '--shutdown-delay=0s'];

let servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  servers = [];
});

describe('--check-config', () => {
  it('a valid config: what it configures, exit 0', async () => {
    const r = await run(['--check-config', '--config-file=test/fixtures/llm-d-router-v0.10/deploy-config/epp-estimate-prefix-cache-config.yaml']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('epp-estimate-prefix-cache-config.yaml is valid (llm-d.ai/v1alpha1)');
    expect(r.stdout).toMatch(/profile default: filters \[decode-filter\], scorers \[prefix-cache-scorer ×1, load-aware-scorer ×1\], picker max-score-picker/);
  });

  it('without a config it checks the built-in default, and needs no endpoint source', async () => {
    const r = await run(['--check-config']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('the default config is valid');
  });

  it('an invalid config: the error on stderr, the YAML caret on its own lines, exit 1', async () => {
    const yaml = await run(['--check-config', '--config-text=plugins:\n  - type: [\n']);
    expect(yaml.code).toBe(1);
    expect(yaml.stderr).toMatch(/the config is not valid:\n {2}--config-text: invalid YAML/);
    expect(yaml.stderr.split('\n').some((l) => /^\s*\^/.test(l))).toBe(true);
    const field = await run(['--check-config', '--config-text=apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n  parameters: {bogus: 1}\n']);
    expect(field.code).toBe(1);
    expect(field.stderr).toContain('plugin "queue-scorer" (queue-scorer): unknown parameter "bogus"');
  });
});

describe('start-up errors', () => {
  it('--log-format=text: one readable message with its real newlines; json: one JSON line', async () => {
    const bad = ['--config-text=plugins:\n  - type: [\n', '--grpc-port=0', ...BASE];
    const text = await run([...bad, '--log-format=text']);
    expect(text.code).toBe(1);
    expect(text.stderr).toMatch(/^llm-epp: failed to start: --config-text: invalid YAML/m);
    expect(text.stderr.split('\n').length).toBeGreaterThan(3);
    const json = await run([...bad, '--log-format=json']);
    expect(json.code).toBe(1);
    const fatal = json.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((l) => l.level === 60);
    expect(fatal.msg).toBe('llm-epp failed to start');
    expect(fatal.err).toMatch(/invalid YAML/);
  });

  it('a port in use names its flag, and no stray grpc-js line is printed', async () => {
    const blocker = createServer();
    servers.push(blocker);
    await new Promise<void>((r) => blocker.listen(0, '0.0.0.0', r));
    const port = (blocker.address() as AddressInfo).port;
    const r = await run([...BASE, `--grpc-port=${port}`, '--log-format=text']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`llm-epp: failed to start: --grpc-port ${port}: the port is in use`);
    expect(r.stdout + r.stderr).not.toMatch(/No address added/);
  });

  it('auto picks text on a terminal and JSON otherwise; llm-d\'s --zap-encoder maps to it', () => {
    expect(resolveLogFormat('auto', true)).toBe('text');
    expect(resolveLogFormat('auto', false)).toBe('json');
    expect(resolveLogFormat('json', true)).toBe('json');
    const flags = (...a: string[]) => parseFlags(['--endpoints=127.0.0.1:1', ...a]);
    expect(flags('--zap-encoder=console').logFormat).toBe('text');
    expect(flags('--zap-encoder=json').logFormat).toBe('json');
    expect(flags('--zap-encoder=console', '--log-format=json').logFormat).toBe('json');
    expect(flags().logFormat).toBe('auto');
  });
});

describe('npm ci on the machine\'s Node', () => {
  it('the package accepts Node ≥ 20 (its scripts run the bundled Node 24) and npm prints errors only, so no EBADENGINE noise', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(pkg.engines.node).toBe('>=20');
    expect(pkg.devDependencies.node).toMatch(/^\^24/);
    expect(readFileSync(new URL('../.npmrc', import.meta.url), 'utf8')).toMatch(/^loglevel=error$/m);
  });
});

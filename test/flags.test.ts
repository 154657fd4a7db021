import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { FLAGS, FlagError, helpText, parseFlags } from '../src/flags.ts';
import { parseBytes, parseDuration } from '../src/units.ts';

const base = ['--endpoints=10.0.0.1:8000'];

describe('flags', () => {
  it('has the GAIE defaults', () => {
    const o = parseFlags(base);
    expect(o).toMatchObject({
      grpcPort: 9002,
      grpcHealthPort: 9003,
      metricsPort: 9090,
      secureServing: true,
      refreshMetricsIntervalMs: 50,
      metricsStalenessThresholdMs: 2000,
      maxRequestBodyBytes: 8 * 1024 * 1024,
      fallbackEndpoints: 2,
      logLevel: 'info',
    });
  });

  it('accepts --flag=value, --flag value, and Go-style -flag', () => {
    expect(parseFlags([...base, '--grpc-port=1234']).grpcPort).toBe(1234);
    expect(parseFlags([...base, '--grpc-port', '1234']).grpcPort).toBe(1234);
    expect(parseFlags([...base, '-grpc-port=1234']).grpcPort).toBe(1234);
    expect(parseFlags(['--endpoints', '10.0.0.1:1', '--refresh-metrics-interval', '1m30s', '--metrics-staleness-threshold=2m']).refreshMetricsIntervalMs).toBe(90_000);
    expect(() => parseFlags([...base, '--metrics-staleness-threshold=10ms'])).toThrow(/always stale/);
  });

  it('parses booleans as --x, --x=false and --x false', () => {
    expect(parseFlags([...base, '--secure-serving=false']).secureServing).toBe(false);
    expect(parseFlags([...base, '--secure-serving', 'false']).secureServing).toBe(false);
    expect(parseFlags([...base, '--disable-endpoint-subset-filter']).disableEndpointSubsetFilter).toBe(true);
    expect(() => parseFlags([...base, '--secure-serving=maybe'])).toThrow(/not a boolean/);
  });

  it('reads the Kubernetes source flags, the namespace from NAMESPACE by default', () => {
    const saved = process.env.NAMESPACE;
    process.env.NAMESPACE = 'inference';
    try {
      expect(parseFlags(['--pool-name=vllm'])).toMatchObject({ poolName: 'vllm', poolNamespace: 'inference', poolGroup: 'inference.networking.k8s.io' });
      expect(parseFlags(['--pool-name=vllm', '--pool-namespace=x']).poolNamespace).toBe('x');
      delete process.env.NAMESPACE;
      expect(parseFlags(['--pool-name=vllm']).poolNamespace).toBe('default');
      expect(parseFlags(['--endpoint-selector=app=vllm', '--endpoint-target-ports=8000,8001']).endpointTargetPorts).toEqual([8000, 8001]);
    } finally {
      if (saved === undefined) delete process.env.NAMESPACE;
      else process.env.NAMESPACE = saved;
    }
  });

  it('maps -v to log levels', () => {
    expect(parseFlags([...base, '-v=4']).logLevel).toBe('debug');
    expect(parseFlags([...base, '-v', '5']).logLevel).toBe('trace');
    expect(parseFlags([...base, '--v=2']).logLevel).toBe('info');
  });

  it('rejects bad input with messages naming the flag', () => {
    expect(() => parseFlags([...base, '--grpc-port=abc'])).toThrow(/--grpc-port/);
    expect(() => parseFlags([...base, '--refresh-metrics-interval=50'])).toThrow(/use a unit/);
    expect(() => parseFlags([...base, '--no-such-flag=1'])).toThrow(FlagError);
    expect(() => parseFlags(['--endpoints=a:1', '--endpoints-file=x'])).toThrow(/one endpoint source, not --endpoints and --endpoints-file/);
    expect(() => parseFlags(['--pool-name=p', '--endpoints=a:1'])).toThrow(/one endpoint source/);
    expect(() => parseFlags(['--endpoint-selector=app=x'])).toThrow(/needs --endpoint-target-ports/);
    expect(() => parseFlags(['--endpoint-selector=app=x', '--endpoint-target-ports=80,99999'])).toThrow(/not a list of ports/);
    expect(() => parseFlags([])).toThrow(/no endpoint source/);
    expect(() => parseFlags([...base, '--log-level=loud'])).toThrow(/one of/);
  });

  it('parses Go durations and byte sizes', () => {
    expect(parseDuration('50ms')).toBe(50);
    expect(parseDuration('2s')).toBe(2000);
    expect(parseDuration('1h2m')).toBe(3_720_000);
    expect(parseDuration('250us')).toBe(0.25);
    expect(parseDuration('0')).toBe(0);
    expect(() => parseDuration('2 s')).toThrow();
    expect(parseBytes('8Mi')).toBe(8 * 1024 * 1024);
    expect(parseBytes('1000')).toBe(1000);
    expect(() => parseBytes('lots')).toThrow();
  });

  it('documents every flag in --help', () => {
    const text = helpText();
    for (const f of ['--grpc-port', '--grpc-health-port', '--metrics-port', '--secure-serving', '--cert-path', '--endpoints', '--endpoints-file', '--refresh-metrics-interval', '--metrics-staleness-threshold', '--max-request-body-bytes', '--fallback-endpoints']) {
      expect(text).toContain(f);
    }
  });

  it('README documents every flag', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const f of FLAGS) expect(readme).toContain('`--' + f.name);
  });
});

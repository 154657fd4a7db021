import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { FLAGS, FlagError, GROUPS, helpText, parseFlags } from '../src/flags.ts';
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

  it('--help groups the flags: every flag under exactly one heading, the headings in order', () => {
    const text = helpText();
    const headings = Object.values(GROUPS).map((t) => text.indexOf(`\n${t}:\n`));
    expect(headings.every((i) => i > 0)).toBe(true);
    expect([...headings].sort((a, b) => a - b)).toEqual(headings);
    for (const f of FLAGS) expect(text.split(`  --${f.name}${f.kind === 'bool' ? '' : ' VALUE'}\n`).length, f.name).toBe(2);
  });
});

// Every flag of the llm-d Router v0.10 EPP binary (pkg/epp/server/options.go and
// pkg/common/observability/logging/options.go at the commit named in
// test/fixtures/llm-d-router-v0.10/SOURCE.md), with a value llm-d accepts: each is
// either accepted by llm-epp, or refused with a message naming the flag and what
// to use instead.
const LLMD_FLAGS: readonly (readonly [flag: string, value: string, outcome: 'ok' | RegExp])[] = [
  ['grpc-port', '9002', 'ok'],
  ['ha-enable-leader-election', 'false', 'ok'],
  ['drain-timeout', '30s', 'ok'],
  ['grpc-max-recv-msg-size', '10MiB', 'ok'],
  ['grpc-max-send-msg-size', '25MB', 'ok'],
  ['pool-group', 'inference.networking.k8s.io', 'ok'],
  ['pool-namespace', 'default', 'ok'],
  ['pool-name', '', 'ok'],
  ['endpoint-selector', '', 'ok'],
  ['endpoint-target-ports', '', 'ok'],
  ['disable-endpoint-subset-filter', 'true', 'ok'],
  ['emit-endpoint-scores', 'true', 'ok'],
  ['refresh-metrics-interval', '50ms', 'ok'],
  ['refresh-prometheus-metrics-interval', '5s', 'ok'],
  ['metrics-staleness-threshold', '2s', 'ok'],
  ['total-queued-requests-metric', 'vllm:num_requests_waiting', /--total-queued-requests-metric is deprecated .* engineConfigs/],
  ['total-running-requests-metric', 'vllm:num_requests_running', /--total-running-requests-metric is deprecated .* engineConfigs/],
  ['kv-cache-usage-percentage-metric', 'vllm:kv_cache_usage_perc', /--kv-cache-usage-percentage-metric is deprecated .* engineConfigs/],
  ['lora-info-metric', 'vllm:lora_requests_info', /--lora-info-metric is deprecated .* engineConfigs/],
  ['cache-info-metric', 'vllm:cache_config_info', /--cache-info-metric is deprecated .* engineConfigs/],
  ['tracing', 'false', 'ok'],
  ['health-checking', 'true', 'ok'],
  ['metrics-port', '9090', 'ok'],
  ['grpc-health-port', '9003', 'ok'],
  ['enable-pprof', 'true', /--enable-pprof: .*--cpu-prof/],
  ['enable-pprof', 'false', 'ok'],
  ['cert-path', '/tmp', 'ok'],
  ['enable-cert-reload', 'false', 'ok'],
  ['enable-grpc-stream-metrics', 'true', 'ok'],
  ['secure-serving', 'true', 'ok'],
  ['tls-min-version', 'VersionTLS13', 'ok'],
  ['tls-cipher-suites', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256', 'ok'],
  ['metrics-endpoint-auth', 'false', 'ok'],
  ['metrics-client-ca-file', '/ca.pem', /--metrics-client-ca-file requires --metrics-cert-dir/],
  ['metrics-cert-dir', '/certs', /--metrics-cert-dir enables metrics TLS without authentication/],
  ['config-file', '/config/epp.yaml', 'ok'],
  ['config-text', 'apiVersion: llm-d.ai/v1alpha1', 'ok'],
  ['allow-experimental-plugins', 'true', 'ok'],
  ['v', '3', 'ok'],
  ['zap-devel', 'true', 'ok'],
  ['zap-encoder', 'json', 'ok'],
  ['zap-encoder', 'console', 'ok'],
  ['zap-log-level', 'debug', 'ok'],
  ['zap-stacktrace-level', 'error', 'ok'],
  ['zap-time-encoding', 'rfc3339', 'ok'],
  ['zap-time-encoding', 'epoch', /--zap-time-encoding=epoch: .*ISO 8601/],
];

describe('llm-d Router v0.10 flags', () => {
  it.each(LLMD_FLAGS)('--%s=%s is accepted or refused with its equivalent named', (flag, value, outcome) => {
    const args = [...base, `--${flag}=${value}`];
    if (outcome === 'ok') expect(() => parseFlags(args)).not.toThrow();
    else expect(() => parseFlags(args)).toThrow(outcome);
  });

  it('the list above is every flag llm-d Router v0.10 defines (none of theirs is unknown here)', () => {
    const theirs = readFileSync(new URL('./fixtures/llm-d-router-v0.10/flags.txt', import.meta.url), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    expect(new Set(LLMD_FLAGS.map(([f]) => f))).toEqual(new Set(theirs));
    const ours = new Set([...FLAGS.map((f) => f.name), 'v']);
    for (const f of theirs) expect(ours.has(f), f).toBe(true);
  });

  it('the arguments llm-d\'s Helm chart passes parse as llm-d reads them', () => {
    const o = parseFlags(['--pool-name', 'llm-d', '--pool-namespace', 'ns', '--pool-group', 'inference.networking.k8s.io', '--zap-encoder', 'json', '--config-file', '/config/default-plugins.yaml', '--ha-enable-leader-election', '--grpc-health-port', '9003', '--tracing=false', '--metrics-endpoint-auth=false', '--v=4']);
    expect(o).toMatchObject({ poolName: 'llm-d', poolNamespace: 'ns', haEnableLeaderElection: true, tracing: false, metricsEndpointAuth: false, logLevel: 'debug' });
  });

  it('--zap-log-level sets the level unless --log-level is given; bad values are named', () => {
    expect(parseFlags([...base, '--zap-log-level=error']).logLevel).toBe('error');
    expect(parseFlags([...base, '--zap-log-level=5']).logLevel).toBe('trace');
    expect(parseFlags([...base, '--zap-log-level=error', '--log-level=warn']).logLevel).toBe('warn');
    expect(() => parseFlags([...base, '--zap-log-level=loud'])).toThrow(/--zap-log-level: "loud"/);
  });

  it('TLS flags are checked: unknown suites listed, reload needs a certificate directory, none of them without TLS', () => {
    expect(() => parseFlags([...base, '--tls-cipher-suites=TLS_RSA_WITH_RC4_128_SHA'])).toThrow(/unknown cipher suite "TLS_RSA_WITH_RC4_128_SHA" \(known: TLS_ECDHE/);
    expect(() => parseFlags([...base, '--enable-cert-reload'])).toThrow(/--enable-cert-reload needs --cert-path/);
    expect(() => parseFlags([...base, '--secure-serving=false', '--tls-min-version=VersionTLS13'])).toThrow(/--secure-serving, which is off/);
    expect(() => parseFlags([...base, '--tls-min-version=TLS13'])).toThrow(/--tls-min-version: "TLS13" is not one of/);
    expect(parseFlags([...base, '--grpc-max-recv-msg-size=10MiB']).grpcMaxRecvMsgSize).toBe(10 * 1024 * 1024);
  });

  it('a config may stand in for the endpoint flags (its dataLayer.discovery); with neither, the error says both ways', () => {
    expect(() => parseFlags(['--config-file=/c.yaml'])).not.toThrow();
    expect(() => parseFlags([])).toThrow(/no endpoint source: .*dataLayer.discovery is file-discovery/);
  });
});

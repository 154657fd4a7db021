// deploy/helm/llm-epp: the Helm chart, checked with the real helm binary
// (test/helpers/k8s-tools.ts; no cluster, no network). `helm lint` passes;
// `helm template` with the default values and with several value sets renders
// objects that validate against the vendored Kubernetes schemas, whose
// Deployment args llm-epp's own flag parser accepts, whose ConfigMap files
// llm-epp's config loader loads, and whose RBAC is the Kustomize base's
// least-privilege set (leases only with leader election). Values llm-d
// Router's charts have but llm-epp cannot honour make `helm template` fail
// with a message naming the value.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseFlags, type Options } from '../src/flags.ts';
import { READINESS_SERVICES } from '../src/health.ts';
import { createLogger } from '../src/log.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { loadConfig, parseConfigText, type LoadedConfig } from '../src/scheduling/config.ts';
import { helm, type ToolResult } from './helpers/k8s-tools.ts';
import {
  containerArgs,
  duplicates,
  EPP_GRANTS,
  find,
  grants,
  idOf,
  LEASE_RULES,
  parseYamlDocs,
  rbacProblems,
  readYamlDocs,
  ROOT,
  validateObject,
  type Obj,
} from './helpers/k8s-manifests.ts';

const CHART = join(ROOT, 'deploy', 'helm', 'llm-epp');
const RELEASE = 'vllm-llama3-8b-instruct';
const NAMESPACE = 'llm';
const EPP = `${RELEASE}-epp`;
const HELM_TIMEOUT = 120_000;

/** The one value the chart requires. */
const REQUIRED: Obj = { router: { modelServers: { matchLabels: { app: 'vllm-llama3-8b-instruct' } } } };

function merge(a: Obj, b: Obj): Obj {
  const out: Obj = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' ? merge(out[k], v) : v;
  }
  return out;
}

/** Run helm with `values` written to a values file (JSON is YAML), as `-f` would take a user's file. */
async function withValues(args: string[], values: Obj | undefined, allowFailure: boolean): Promise<ToolResult> {
  const dir = mkdtempSync(join(tmpdir(), 'llm-epp-helm-'));
  try {
    const file = join(dir, 'values.yaml');
    writeFileSync(file, JSON.stringify(values ?? {}));
    return await helm([...args, '-f', file], { allowFailure });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const templateRaw = (values: Obj | undefined) => withValues(['template', RELEASE, CHART, '--namespace', NAMESPACE], values, true);

async function template(values: Obj): Promise<Obj[]> {
  const r = await templateRaw(values);
  if (r.code !== 0) throw new Error(`helm template failed:\n${r.stderr}`);
  return parseYamlDocs(r.stdout, 'helm template') as Obj[];
}

// The value sets, rendered once for the whole file.
const CUSTOM_CONFIG_TEXT = readFileSync(join(ROOT, 'deploy', 'config', 'prefix-heavy-chat.yaml'), 'utf8');
const SETS: Record<string, Obj> = {
  defaults: REQUIRED,
  'leader election': merge(REQUIRED, { router: { epp: { replicas: 2 } } }),
  monitoring: merge(REQUIRED, { router: { monitoring: { interval: '15s', prometheus: { enabled: true, extraLabels: { release: 'kube-prometheus-stack' } } } } }),
  'custom config': merge(REQUIRED, {
    router: {
      epp: {
        pluginsConfigFile: 'prefix-heavy-chat.yaml',
        pluginsCustomConfig: { 'prefix-heavy-chat.yaml': CUSTOM_CONFIG_TEXT },
        parsers: ['openai-parser'],
        metricsDataSource: { scheme: 'https', path: '/stats/metrics', insecureSkipVerify: false },
        image: { registry: 'registry.example.com/team', repository: 'llm-epp', tag: 'v0.1.0', pullPolicy: 'IfNotPresent' },
        env: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=3072' }],
      },
      modelServers: { type: 'sglang', targetPorts: [{ number: 30000 }, { number: 30001 }] },
      inferenceObjectives: [{ name: 'interactive', priority: 10 }, { name: 'batch', priority: -1 }],
    },
    httpRoute: { create: true, inferenceGatewayName: 'my-gateway', inferenceGatewayNamespace: 'gateway-infra', headerMatches: { 'x-tenant': 'a' } },
  }),
  'payload agnostic': merge(REQUIRED, { router: { epp: { pluginsConfigFile: 'payload-agnostic.yaml' } } }),
  // Numbers from a values file reach templates as floats; booleans and turning TLS off.
  'flag values': merge(REQUIRED, {
    router: {
      epp: {
        replicas: 2,
        flags: { 'ha-enable-leader-election': false, 'max-request-body-bytes': 16777216, 'allow-experimental-plugins': true, 'secure-serving': false, 'refresh-metrics-interval': '100ms', v: 4, 'fallback-endpoints': null },
      },
    },
  }),
  'metrics token': merge(REQUIRED, {
    router: {
      epp: {
        flags: { 'metrics-endpoint-auth-token-file': '/var/run/metrics-token/token' },
        volumes: [{ name: 'metrics-token', secret: { secretName: 'llm-epp-metrics-token' } }],
        volumeMounts: [{ name: 'metrics-token', mountPath: '/var/run/metrics-token', readOnly: true }],
      },
      monitoring: { prometheus: { enabled: true, auth: { enabled: true, secretName: 'llm-epp-metrics-token' } } },
    },
  }),
};
const RENDERED = Object.fromEntries(await Promise.all(Object.entries(SETS).map(async ([name, v]) => [name, await template(v)] as const)));
const DEFAULTS = RENDERED.defaults;

const deploymentOf = (objects: Obj[]) => find(objects, 'Deployment', EPP);
const eppContainer = (objects: Obj[]) => {
  const c = deploymentOf(objects).spec.template.spec.containers;
  expect(c.map((x: Obj) => x.name)).toEqual(['epp']);
  return c[0];
};
/** The args as the kubelet passes them, parsed by llm-epp. */
const flagsOf = (objects: Obj[]): Options => parseFlags(containerArgs(eppContainer(objects), { NAMESPACE }));
const loadText = (text: string, source: string): LoadedConfig =>
  loadConfig(parseConfigText(text, source), createRegistry(), { pool: new Datastore(), log: createLogger('silent'), metrics: undefined, random: Math.random }, source);
/** The ConfigMap file llm-epp is started with, found through --config-file and the volume mount. */
function configFileOf(objects: Obj[]): { name: string; text: string } {
  const opts = flagsOf(objects);
  const c = eppContainer(objects);
  const mount = c.volumeMounts.find((m: Obj) => opts.configFile.startsWith(m.mountPath + '/'));
  expect(mount, `a volumeMount holding ${opts.configFile}`).toBeDefined();
  const vol = deploymentOf(objects).spec.template.spec.volumes.find((v: Obj) => v.name === mount.name);
  const cm = find(objects, 'ConfigMap', vol.configMap.name);
  const name = opts.configFile.slice(mount.mountPath.length + 1);
  expect(Object.keys(cm.data)).toContain(name);
  return { name, text: cm.data[name] };
}

describe('helm lint', () => {
  it('passes with the default values (lint does not enforce required values) and with each value set', async () => {
    const bare = await helm(['lint', '--strict', CHART]);
    expect(bare.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    for (const [name, values] of Object.entries(SETS)) {
      const r = await withValues(['lint', '--strict', CHART], values, true);
      expect(r.code, `${name}: ${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    }
  }, HELM_TIMEOUT);

  it('fails when values break the rendered YAML (the check can fail)', async () => {
    const r = await withValues(['lint', '--strict', CHART], merge(REQUIRED, { router: { epp: { podAnnotations: 'not-a-map' } } }), true);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/\[ERROR\] templates\/deployment\.yaml: unable to parse YAML/);
  }, HELM_TIMEOUT);
});

describe('helm template', () => {
  it.each(Object.keys(SETS))('%s: every object is a known kind, valid against its schema, unique, in the release namespace', (name) => {
    const objects = RENDERED[name];
    expect(objects.length).toBeGreaterThan(0);
    expect(objects.flatMap((o, i) => validateObject(o, `${name}[${i}] ${o.kind}`))).toEqual([]);
    expect(duplicates(objects)).toEqual([]);
    for (const o of objects) expect(o.metadata.namespace, idOf(o)).toBe(NAMESPACE);
    for (const o of objects) expect(o.metadata.labels, idOf(o)).toMatchObject({ 'app.kubernetes.io/part-of': 'llm-epp', 'app.kubernetes.io/instance': RELEASE, 'app.kubernetes.io/managed-by': 'Helm' });
  });

  it('the defaults render what deploy/kubernetes/base does, named as llm-d Router\'s chart names them', () => {
    expect(DEFAULTS.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      `ConfigMap/${EPP}`,
      `Deployment/${EPP}`,
      `InferencePool/${RELEASE}`,
      `Role/${EPP}`,
      `RoleBinding/${EPP}`,
      `Service/${EPP}`,
      `ServiceAccount/${EPP}`,
    ]);
  });

  it('without router.modelServers.matchLabels it fails, naming the value', async () => {
    const r = await templateRaw(undefined);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('router.modelServers.matchLabels is required');
  }, HELM_TIMEOUT);
});

describe('the Deployment', () => {
  it.each(Object.keys(SETS))('%s: its args parse with llm-epp\'s flag parser and agree with the pool, ports and config mount', (name) => {
    const objects = RENDERED[name];
    const opts = flagsOf(objects);
    const c = eppContainer(objects);
    const portOf = (p: string) => c.ports.find((x: Obj) => x.name === p)?.containerPort;
    expect(opts.poolName).toBe(find(objects, 'InferencePool').metadata.name);
    expect(opts.poolNamespace).toBe(NAMESPACE);
    expect(opts.poolGroup).toBe('inference.networking.k8s.io');
    expect([opts.grpcPort, opts.grpcHealthPort, opts.metricsPort]).toEqual([portOf('grpc'), portOf('grpc-health'), portOf('metrics')]);
    expect(opts.tracing).toBe(false);
    expect(opts.zapEncoder).toBe('json');
    const pod = deploymentOf(objects).spec.template.spec;
    expect((opts.shutdownDelayMs + opts.drainTimeoutMs) / 1000).toBeLessThan(pod.terminationGracePeriodSeconds);
    expect(c.env).toContainEqual({ name: 'NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
    configFileOf(objects);
  });

  it('defaults: the flags llm-d Router\'s chart passes, plus the base\'s', () => {
    const c = eppContainer(DEFAULTS);
    expect(c.args).toEqual([
      '--pool-name', RELEASE, '--pool-namespace', NAMESPACE, '--pool-group', 'inference.networking.k8s.io',
      '--zap-encoder', 'json', '--config-file', '/config/default-plugins.yaml',
      '--grpc-port', '9002', '--grpc-health-port', '9003',
      '--drain-timeout=110s', '--fallback-endpoints=0', '--v=2',
      '--tracing=false', '--metrics-endpoint-auth=false',
    ]);
    const opts = flagsOf(DEFAULTS);
    expect(opts.fallbackEndpoints).toBe(0);
    expect(opts.logLevel).toBe('info');
    expect(opts.metricsEndpointAuth).toBe(false);
    expect(opts.haEnableLeaderElection).toBe(false);
    expect(opts.secureServing).toBe(true);
  });

  it('defaults: the pod is the base\'s (image, probes, resources, security, grace period, /tmp)', () => {
    const base = find(readYamlDocs(join(ROOT, 'deploy', 'kubernetes', 'base', 'deployment.yaml')) as Obj[], 'Deployment');
    const bc = base.spec.template.spec.containers[0];
    const dep = deploymentOf(DEFAULTS);
    const pod = dep.spec.template.spec;
    const c = eppContainer(DEFAULTS);
    expect(c.image).toBe(bc.image);
    expect(dep.spec.replicas).toBe(1);
    expect(dep.spec.strategy).toEqual(base.spec.strategy);
    expect(c.livenessProbe).toEqual(bc.livenessProbe);
    expect(c.readinessProbe).toEqual(bc.readinessProbe);
    expect(READINESS_SERVICES).toContain(c.readinessProbe.grpc.service);
    expect(c.resources).toEqual(bc.resources);
    expect(c.securityContext).toEqual(bc.securityContext);
    expect(pod.securityContext).toEqual(base.spec.template.spec.securityContext);
    expect(pod.terminationGracePeriodSeconds).toBe(base.spec.template.spec.terminationGracePeriodSeconds);
    expect(pod.volumes.find((v: Obj) => v.name === 'tmp')).toEqual(base.spec.template.spec.volumes.find((v: Obj) => v.name === 'tmp'));
    expect(c.volumeMounts.map((m: Obj) => m.mountPath).sort()).toEqual(['/config', '/tmp']);
  });

  it('the pod carries a checksum of the config, so a config change rolls it', () => {
    const sum = (name: string) => deploymentOf(RENDERED[name]).spec.template.metadata.annotations['checksum/config'];
    expect(sum('defaults')).toMatch(/^[0-9a-f]{64}$/);
    expect(sum('custom config')).not.toBe(sum('defaults'));
    expect(sum('leader election')).toBe(sum('defaults'));
  });

  it('flag values: whole numbers stay whole, booleans and TLS off pass through, a null drops a default, leader election can be turned off', () => {
    const objects = RENDERED['flag values'];
    const c = eppContainer(objects);
    expect(c.args).toContain('--max-request-body-bytes=16777216');
    expect(c.args).toContain('--secure-serving=false');
    expect(c.args.some((a: string) => a.startsWith('--fallback-endpoints'))).toBe(false);
    const opts = flagsOf(objects);
    expect(opts.maxRequestBodyBytes).toBe(16777216);
    expect(opts.allowExperimentalPlugins).toBe(true);
    expect(opts.secureServing).toBe(false);
    expect(opts.refreshMetricsIntervalMs).toBe(100);
    expect(opts.logLevel).toBe('debug');
    expect(opts.fallbackEndpoints).toBe(2);
    // Two replicas, but active-active as the flag asks: no lease, no Recreate.
    expect(opts.haEnableLeaderElection).toBe(false);
    expect(deploymentOf(objects).spec.replicas).toBe(2);
    expect(deploymentOf(objects).spec.strategy.type).toBe('RollingUpdate');
    expect(objects.filter((o) => JSON.stringify(o).includes('leases'))).toEqual([]);
    // Plaintext ext_proc is announced as h2c.
    expect(find(objects, 'Service').spec.ports.find((p: Obj) => p.name === 'grpc-ext-proc').appProtocol).toBe('kubernetes.io/h2c');
    expect(find(DEFAULTS, 'Service').spec.ports.find((p: Obj) => p.name === 'grpc-ext-proc').appProtocol).toBe('http2');
  });

  it('custom config: image, env and the model servers\' ports come from the values', () => {
    const objects = RENDERED['custom config'];
    const c = eppContainer(objects);
    expect(c.image).toBe('registry.example.com/team/llm-epp:v0.1.0');
    expect(c.imagePullPolicy).toBe('IfNotPresent');
    expect(c.env).toContainEqual({ name: 'NODE_OPTIONS', value: '--max-old-space-size=3072' });
    expect(find(objects, 'InferencePool').spec.targetPorts).toEqual([{ number: 30000 }, { number: 30001 }]);
  });

  it('tracing.enabled renders --tracing=true and the OTEL_* environment (and only then)', async () => {
    const objects = await template(merge(REQUIRED, { router: { tracing: { enabled: true, otelExporterEndpoint: 'http://otel-collector.monitoring:4317', sampling: { samplerArg: 0.25 } } } }));
    const c = eppContainer(objects);
    expect(c.args).toContain('--tracing=true');
    expect(c.args).not.toContain('--tracing=false');
    const env = Object.fromEntries(c.env.filter((e: Obj) => 'value' in e).map((e: Obj) => [e.name, e.value]));
    expect(env).toMatchObject({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector.monitoring:4317', OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' });
    expect(eppContainer(DEFAULTS).env.map((e: Obj) => e.name)).toEqual(['NAMESPACE', 'POD_NAME']);
  }, HELM_TIMEOUT);
});

describe('the ConfigMap', () => {
  it.each(Object.keys(SETS))('%s: every file in it loads with llm-epp\'s config loader', (name) => {
    const cm = find(RENDERED[name], 'ConfigMap', EPP);
    expect(Object.keys(cm.data).length).toBeGreaterThanOrEqual(2);
    for (const [file, text] of Object.entries(cm.data as Record<string, string>)) {
      expect([...loadText(text, file).profiles.keys()], file).toEqual(['default']);
    }
  });

  it('default-plugins.yaml is deploy/config/gaie-default.yaml with the metrics source and engine written out', () => {
    const { name, text } = configFileOf(DEFAULTS);
    expect(name).toBe('default-plugins.yaml');
    const cfg = parseYamlDocs(text, name)[0] as Obj;
    const gaie = readYamlDocs(join(ROOT, 'deploy', 'config', 'gaie-default.yaml'))[0] as Obj;
    const dataLayer = ['metrics-data-source', 'core-metrics-extractor'];
    expect(cfg.plugins.filter((p: Obj) => !dataLayer.includes(p.type))).toEqual(gaie.plugins);
    expect(cfg.plugins.filter((p: Obj) => dataLayer.includes(p.type))).toEqual([
      { type: 'metrics-data-source', parameters: { scheme: 'http', path: '/metrics', insecureSkipVerify: true } },
      { type: 'core-metrics-extractor' },
    ]);
    expect(cfg.schedulingProfiles).toEqual(gaie.schedulingProfiles);
    expect(cfg.apiVersion).toBe(gaie.apiVersion);
    expect(cfg.requestHandler).toBeUndefined();
  });

  it('custom config: llm-epp runs the file given in pluginsCustomConfig, and default-plugins.yaml takes the parsers, metrics source and engine', () => {
    const objects = RENDERED['custom config'];
    const { name, text } = configFileOf(objects);
    expect(name).toBe('prefix-heavy-chat.yaml');
    expect(text).toBe(CUSTOM_CONFIG_TEXT);
    const loaded = loadText(text, name);
    expect([...loaded.profiles.keys()]).toEqual(['default']);
    const def = parseYamlDocs(find(objects, 'ConfigMap', EPP).data['default-plugins.yaml'], 'default-plugins.yaml')[0] as Obj;
    expect(def.plugins).toContainEqual({ type: 'metrics-data-source', parameters: { scheme: 'https', path: '/stats/metrics', insecureSkipVerify: false } });
    expect(def.plugins).toContainEqual({ type: 'core-metrics-extractor', parameters: { defaultEngine: 'sglang' } });
    expect(def.plugins).toContainEqual({ type: 'openai-parser' });
    expect(def.requestHandler).toEqual({ parsers: [{ pluginRef: 'openai-parser' }] });
    expect(loadText(find(objects, 'ConfigMap', EPP).data['default-plugins.yaml'], 'default-plugins.yaml').parsers).toBeDefined();
  });

  it('payload agnostic: --config-file points at payload-agnostic.yaml', () => {
    const { name, text } = configFileOf(RENDERED['payload agnostic']);
    expect(name).toBe('payload-agnostic.yaml');
    expect(parseYamlDocs(text, name)[0]).toMatchObject({ requestHandler: { parsers: [{ pluginRef: 'passthrough-parser' }] } });
  });
});

describe('Service, pool, ServiceAccount and bindings', () => {
  it.each(Object.keys(SETS))('%s: point at each other', (name) => {
    const objects = RENDERED[name];
    const dep = deploymentOf(objects);
    const c = eppContainer(objects);
    const svc = find(objects, 'Service', EPP);
    const pool = find(objects, 'InferencePool', RELEASE);
    expect(svc.spec.type).toBe('ClusterIP');
    expect(svc.spec.selector).toEqual(dep.spec.selector.matchLabels);
    expect(dep.spec.template.metadata.labels).toMatchObject(svc.spec.selector);
    for (const p of svc.spec.ports) expect(c.ports.map((cp: Obj) => cp.name), `Service port ${p.name}`).toContain(p.targetPort);
    const ext = svc.spec.ports.find((p: Obj) => p.name === 'grpc-ext-proc');
    expect(pool.spec.endpointPickerRef).toEqual({ name: svc.metadata.name, port: { number: ext.port }, failureMode: 'FailClose' });
    expect(pool.spec.selector.matchLabels).toEqual(SETS[name].router.modelServers.matchLabels);
    const sa = find(objects, 'ServiceAccount', EPP);
    expect(dep.spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
    for (const rb of objects.filter((o) => o.kind === 'RoleBinding')) {
      expect(find(objects, 'Role', rb.roleRef.name).metadata.name).toBe(rb.roleRef.name);
      expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: NAMESPACE }]);
    }
  });

  it('defaults: ports 9002 (ext_proc, http2), 9003 (health), 9090 (http-metrics), pool on port 8000', () => {
    const svc = find(DEFAULTS, 'Service');
    expect(svc.spec.ports.map((p: Obj) => [p.name, p.port, p.appProtocol ?? null])).toEqual([
      ['grpc-ext-proc', 9002, 'http2'],
      ['grpc-health', 9003, null],
      ['http-metrics', 9090, null],
    ]);
    expect(find(DEFAULTS, 'InferencePool').spec).toMatchObject({ targetPorts: [{ number: 8000 }], appProtocol: 'http' });
  });

  it('custom config: an HTTPRoute from the Gateway to the pool, and InferenceObjectives for it', () => {
    const objects = RENDERED['custom config'];
    const route = find(objects, 'HTTPRoute');
    expect(route.spec.parentRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'my-gateway', namespace: 'gateway-infra' }]);
    expect(route.spec.rules).toEqual([{
      matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [{ type: 'Exact', name: 'x-tenant', value: 'a' }] }],
      backendRefs: [{ group: 'inference.networking.k8s.io', kind: 'InferencePool', name: RELEASE }],
      timeouts: { request: '300s' },
    }]);
    const objectives = objects.filter((o) => o.kind === 'InferenceObjective');
    expect(objectives.map((o) => [o.apiVersion, o.metadata.name, o.spec.priority])).toEqual([['llm-d.ai/v1alpha2', 'interactive', 10], ['llm-d.ai/v1alpha2', 'batch', -1]]);
    for (const o of objectives) expect(o.spec.poolRef).toEqual({ group: 'inference.networking.k8s.io', name: RELEASE });
    expect(DEFAULTS.filter((o) => o.kind === 'HTTPRoute' || o.kind === 'InferenceObjective')).toEqual([]);
  });
});

describe('RBAC', () => {
  const isLeaseRole = (role: Obj) => role.metadata.name === `${EPP}-leader-election`;

  it.each(Object.keys(SETS))('%s: only namespaced, read-only Roles (and the lease Role), no cluster-wide grant', (name) => {
    const objects = RENDERED[name];
    expect(objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding' || o.kind === 'Secret').map(idOf)).toEqual([]);
    const roles = objects.filter((o) => o.kind === 'Role');
    expect(roles.flatMap((r) => rbacProblems(r, isLeaseRole(r)))).toEqual([]);
    expect(grants(find(objects, 'Role', EPP))).toEqual(EPP_GRANTS);
  });

  it('defaults: no lease permissions at all', () => {
    expect(DEFAULTS.filter((o) => o.kind === 'Role').map((o) => o.metadata.name)).toEqual([EPP]);
    expect(DEFAULTS.filter((o) => JSON.stringify(o).includes('leases'))).toEqual([]);
  });

  it('leader election: 2 replicas, --ha-enable-leader-election, Recreate, and get/create/update on leases bound to the ServiceAccount', () => {
    const objects = RENDERED['leader election'];
    const dep = deploymentOf(objects);
    expect(dep.spec.replicas).toBe(2);
    expect(dep.spec.strategy).toEqual({ type: 'Recreate' });
    expect(flagsOf(objects).haEnableLeaderElection).toBe(true);
    const role = find(objects, 'Role', `${EPP}-leader-election`);
    expect(role.rules).toEqual(LEASE_RULES);
    const rb = find(objects, 'RoleBinding', `${EPP}-leader-election`);
    expect(rb.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
    expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: EPP, namespace: NAMESPACE }]);
  });
});

describe('monitoring', () => {
  it('a ServiceMonitor on the Service\'s http-metrics port, with the extra labels', () => {
    const objects = RENDERED.monitoring;
    const sm = find(objects, 'ServiceMonitor');
    const svc = find(objects, 'Service');
    expect(sm.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack' });
    expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    expect(sm.spec.namespaceSelector).toEqual({ matchNames: [NAMESPACE] });
    expect(sm.spec.endpoints).toEqual([{ port: 'http-metrics', path: '/metrics', interval: '15s' }]);
    expect(svc.spec.ports.map((p: Obj) => p.name)).toContain('http-metrics');
    expect(flagsOf(objects).metricsEndpointAuth).toBe(false);
    expect(DEFAULTS.filter((o) => o.kind === 'ServiceMonitor')).toEqual([]);
  });

  it('metrics token: --metrics-endpoint-auth with the mounted token file, and the ServiceMonitor sends the Secret\'s token', () => {
    const objects = RENDERED['metrics token'];
    const opts = flagsOf(objects);
    expect(opts.metricsEndpointAuth).toBe(true);
    expect(opts.metricsEndpointAuthTokenFile).toBe('/var/run/metrics-token/token');
    const c = eppContainer(objects);
    expect(c.volumeMounts).toContainEqual({ name: 'metrics-token', mountPath: '/var/run/metrics-token', readOnly: true });
    expect(deploymentOf(objects).spec.template.spec.volumes).toContainEqual({ name: 'metrics-token', secret: { secretName: 'llm-epp-metrics-token' } });
    expect(find(objects, 'ServiceMonitor').spec.endpoints[0].authorization).toEqual({ credentials: { name: 'llm-epp-metrics-token', key: 'token' } });
  });
});

describe('values llm-epp cannot honour fail with a message naming them', () => {
  const CASES: [string, Obj, string][] = [
    ['the proxy sidecar', { router: { proxy: { enabled: true } } }, 'router.proxy.enabled'],
    ['the tokenizer sidecar', { router: { tokenizer: { enabled: true, modelName: 'x' } } }, 'router.tokenizer.enabled'],
    ['the latency predictor', { router: { latencyPredictor: { enabled: true } } }, 'router.latencyPredictor.enabled'],
    ['standalone mode without a pool', { router: { inferencePool: { create: false } } }, 'router.inferencePool.create=false'],
    ['a failure mode the CRD does not have', { router: { inferencePool: { failureMode: 'FailClosed' } } }, 'router.inferencePool.failureMode "FailClosed"'],
    ['gRPC model servers', { router: { modelServers: { protocol: 'grpc' } } }, 'router.modelServers.protocol "grpc"'],
    ['an engine llm-epp has no metrics for', { router: { modelServers: { type: 'triton' } } }, 'router.modelServers.type "triton"'],
    ['no target port', { router: { modelServers: { targetPorts: [] } } }, 'router.modelServers.targetPorts'],
    ['a flag the chart sets', { router: { epp: { flags: { 'pool-name': 'other' } } } }, 'router.epp.flags.pool-name'],
    ['tracing as a flag', { router: { epp: { flags: { tracing: true } } } }, 'router.epp.flags.tracing: the chart sets --tracing from router.tracing.enabled'],
    ['a bad flag name', { router: { epp: { flags: { 'bad name': 1 } } } }, 'router.epp.flags: "bad name" is not a flag name'],
    ['a config file that is not there', { router: { epp: { pluginsConfigFile: 'missing.yaml' } } }, 'router.epp.pluginsConfigFile "missing.yaml" is not a file of the ConfigMap'],
    ['a custom config given as a map', { router: { epp: { pluginsCustomConfig: { 'c.yaml': { plugins: [] } } } } }, 'router.epp.pluginsCustomConfig.c.yaml must be the config file\'s YAML text'],
    ['Google Managed Prometheus', { router: { monitoring: { provider: { name: 'gmp' } } } }, 'router.monitoring.provider.name'],
    ['metrics auth without a token file', { router: { monitoring: { prometheus: { auth: { enabled: true } } } } }, 'router.monitoring.prometheus.auth.enabled=true needs router.epp.flags.metrics-endpoint-auth-token-file'],
    ['a gateway provider', { provider: { name: 'istio' } }, 'provider.name'],
    ['the GAIE chart layout', { inferenceExtension: { replicas: 1 } }, 'top-level inferenceExtension'],
    ['zero replicas', { router: { epp: { replicas: 0 } } }, 'router.epp.replicas must be at least 1'],
    ['an InferenceObjective without a priority', { router: { inferenceObjectives: [{ name: 'x' }] } }, 'router.inferenceObjectives: each entry is {name, priority}'],
  ];
  const results = Promise.all(CASES.map(([, values]) => templateRaw(merge(REQUIRED, values))));

  it.each(CASES.map((c, i) => [c[0], i, c[2]] as const))('%s', async (_what, i, message) => {
    const r = (await results)[i];
    expect(r.code, r.stdout.slice(0, 200)).not.toBe(0);
    expect(r.stderr).toContain(message);
  }, HELM_TIMEOUT);
});

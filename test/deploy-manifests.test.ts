// deploy/kubernetes: every manifest is a known kind with valid fields, the
// kustomizations resolve and render, and the pieces fit together (flags,
// ports, names, RBAC, the Grafana dashboard's metrics).
//
// Schema-aware: each Kubernetes object is validated with ajv against the JSON
// schema of its apiVersion/kind, vendored in test/fixtures/k8s-schemas
// (generated from the Kubernetes 1.36 OpenAPI and the upstream CRDs by
// generate.ts there, kubeconform-"strict" style: additionalProperties false,
// so a misspelt field fails). A kind without a schema fails. Kustomization
// files are validated against the subset of kustomize's fields that the
// small renderer below implements; it resolves resources, components,
// configMapGenerator, patches (JSON 6902), labels and images, so the overlays
// are rendered and checked without network or binaries. Where kustomize
// itself is installed (`kustomize` or `kubectl kustomize`), the real render
// is checked too.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parseFlags } from '../src/flags.ts';
import { READINESS_SERVICES } from '../src/health.ts';
import { createLogger } from '../src/log.ts';
import { EppMetrics } from '../src/observability/metrics.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { loadConfig, parseConfigText } from '../src/scheduling/config.ts';

type Obj = Record<string, any>; // parsed YAML/JSON

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEPLOY = join(ROOT, 'deploy', 'kubernetes');
const SCHEMAS = join(ROOT, 'test', 'fixtures', 'k8s-schemas');
const rel = (p: string) => relative(ROOT, p);

// ---------------------------------------------------------------------------
// YAML

/** Parse every document of a YAML file; YAML errors, warnings and 1.1/1.2 ambiguities throw. */
function readYamlDocs(path: string): unknown[] {
  const text = readFileSync(path, 'utf8');
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  if (!Array.isArray(docs)) throw new Error(`${rel(path)}: not YAML`);
  const out: unknown[] = [];
  const legacy = parseAllDocuments(text, { version: '1.1' });
  docs.forEach((d, i) => {
    if (d.errors.length) throw new Error(`${rel(path)}: ${d.errors.map((e) => e.message).join('; ')}`);
    if (d.warnings.length) throw new Error(`${rel(path)}: ${d.warnings.map((e) => e.message).join('; ')}`);
    const v = d.toJS({ maxAliasCount: 0 });
    // kubectl reads YAML 1.1 (yes/no/on/off are booleans, 0644 is octal): a
    // value that reads differently there is a bug waiting to happen.
    const v11 = Array.isArray(legacy) ? legacy[i]?.toJS() : undefined;
    expect(v11, `${rel(path)} document ${i} reads differently as YAML 1.1 (quote the value)`).toEqual(v);
    if (v !== null && v !== undefined) out.push(v);
  });
  return out;
}

function walk(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

// ---------------------------------------------------------------------------
// Schemas

const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, strictTuples: false, strictRequired: false, unicodeRegExp: false });

/** apiVersion/kind → validator, from the vendored schemas. */
const K8S_SCHEMAS = new Map<string, ValidateFunction>();
for (const f of readdirSync(SCHEMAS).filter((n) => n.endsWith('.json')).sort()) {
  const schema = JSON.parse(readFileSync(join(SCHEMAS, f), 'utf8')) as Obj;
  const key = `${schema.properties.apiVersion.const}/${schema.properties.kind.const}`;
  K8S_SCHEMAS.set(key, ajv.compile(schema));
}

// The kustomize fields the renderer below implements, strictly.
const STR_LIST = { type: 'array', items: { type: 'string', minLength: 1 } };
const STR_MAP = { type: 'object', additionalProperties: { type: 'string' } };
const KUSTOMIZE_COMMON = {
  resources: STR_LIST,
  components: STR_LIST,
  namespace: { type: 'string', minLength: 1 },
  labels: {
    type: 'array',
    items: {
      type: 'object',
      required: ['pairs'],
      additionalProperties: false,
      properties: { pairs: STR_MAP, includeSelectors: { const: false } },
    },
  },
  images: {
    type: 'array',
    items: {
      type: 'object',
      required: ['name'],
      additionalProperties: false,
      properties: { name: { type: 'string' }, newName: { type: 'string' }, newTag: { type: 'string' }, digest: { type: 'string' } },
    },
  },
  configMapGenerator: {
    type: 'array',
    items: {
      type: 'object',
      required: ['name', 'files'],
      additionalProperties: false,
      properties: {
        name: { type: 'string', minLength: 1 },
        files: STR_LIST,
        behavior: { enum: ['create', 'replace', 'merge'] },
        options: {
          type: 'object',
          additionalProperties: false,
          properties: { labels: STR_MAP, annotations: STR_MAP, disableNameSuffixHash: { type: 'boolean' } },
        },
      },
    },
  },
  patches: {
    type: 'array',
    items: {
      type: 'object',
      required: ['target'],
      oneOf: [{ required: ['path'] }, { required: ['patch'] }],
      additionalProperties: false,
      properties: {
        path: { type: 'string' },
        patch: { type: 'string' },
        target: {
          type: 'object',
          required: ['kind', 'name'],
          additionalProperties: false,
          properties: { group: { type: 'string' }, version: { type: 'string' }, kind: { type: 'string' }, name: { type: 'string' } },
        },
      },
    },
  },
};
const validateKustomization: ValidateFunction = ajv.compile({
  type: 'object',
  required: ['apiVersion', 'kind'],
  additionalProperties: false,
  properties: { apiVersion: { const: 'kustomize.config.k8s.io/v1beta1' }, kind: { const: 'Kustomization' }, ...KUSTOMIZE_COMMON },
});
const validateComponent: ValidateFunction = ajv.compile({
  type: 'object',
  required: ['apiVersion', 'kind'],
  additionalProperties: false,
  properties: { apiVersion: { const: 'kustomize.config.k8s.io/v1alpha1' }, kind: { const: 'Component' }, ...KUSTOMIZE_COMMON },
});
// RFC 6902, the operations the renderer applies.
const validateJsonPatch: ValidateFunction = ajv.compile({
  type: 'array',
  minItems: 1,
  items: {
    type: 'object',
    required: ['op', 'path'],
    additionalProperties: false,
    properties: { op: { enum: ['add', 'replace', 'remove'] }, path: { type: 'string', pattern: '^(/[^/]*)+$' }, value: {} },
    if: { properties: { op: { enum: ['add', 'replace'] } } },
    then: { required: ['value'] },
  },
});

/** Run a validator without letting its type guard narrow the argument. */
const check = (v: ValidateFunction, data: unknown): boolean => v(data);

const fmt = (errors: ErrorObject[] | null | undefined) =>
  (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? `: "${e.params.additionalProperty}"` : ''}${e.params && 'allowedValues' in e.params ? ` ${JSON.stringify(e.params.allowedValues)}` : ''}`).join('; ');

/** Problems with one Kubernetes object ([] = valid). */
function validateObject(obj: unknown, where: string): string[] {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return [`${where}: not a mapping`];
  const o = obj as Obj;
  const key = `${o.apiVersion}/${o.kind}`;
  const v = K8S_SCHEMAS.get(key);
  if (!v) return [`${where}: unknown apiVersion/kind ${key} (known: ${[...K8S_SCHEMAS.keys()].join(', ')})`];
  const problems: string[] = [];
  if (!check(v, o)) problems.push(`${where} (${key} ${o.metadata?.name ?? '?'}): ${fmt(v.errors)}`);
  const name = o.metadata?.name;
  if (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) problems.push(`${where}: metadata.name ${JSON.stringify(name)} is not a DNS subdomain`);
  return problems;
}

// ---------------------------------------------------------------------------
// A small kustomize: the fields above, with kustomize's rules on paths.

interface Built {
  objects: Obj[];
  /** Every file a kustomization referenced. */
  files: Set<string>;
}

function readKustomization(dir: string, expectKind: 'Kustomization' | 'Component'): Obj {
  const path = join(dir, 'kustomization.yaml');
  if (!existsSync(path)) throw new Error(`${rel(dir)}: no kustomization.yaml`);
  const docs = readYamlDocs(path);
  if (docs.length !== 1) throw new Error(`${rel(path)}: expected one document`);
  const k = docs[0] as Obj;
  if (k?.kind !== expectKind) throw new Error(`${rel(path)}: expected kind ${expectKind}, got ${k?.kind}`);
  return k;
}

/** A file a kustomization names: it must exist, in or below the kustomization's directory (kustomize's load restrictor). */
function localFile(dir: string, entry: string, what: string): string {
  const p = resolve(dir, entry);
  if (!(p + sep).startsWith(resolve(dir) + sep) && p !== resolve(dir)) throw new Error(`${rel(dir)}: ${what} ${entry} is outside the kustomization root`);
  if (!existsSync(p)) throw new Error(`${rel(dir)}: ${what} ${entry} does not exist`);
  return p;
}

const groupOf = (apiVersion: string) => (apiVersion.includes('/') ? apiVersion.split('/')[0] : '');
const versionOf = (apiVersion: string) => apiVersion.split('/').pop()!;

function pointer(path: string): string[] {
  return path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function applyJsonPatch(target: Obj, ops: Obj[], where: string): void {
  for (const op of ops) {
    const parts = pointer(op.path);
    const last = parts.pop()!;
    let parent: any = target;
    for (const p of parts) {
      parent = Array.isArray(parent) ? parent[Number(p)] : parent?.[p];
      if (parent === undefined) throw new Error(`${where}: ${op.op} ${op.path}: parent does not exist`);
    }
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!Number.isInteger(i) || i < 0 || i > parent.length) throw new Error(`${where}: ${op.op} ${op.path}: bad index`);
      if (op.op === 'add') parent.splice(i, 0, structuredClone(op.value));
      else if (i === parent.length) throw new Error(`${where}: ${op.op} ${op.path}: no such element`);
      else if (op.op === 'replace') parent[i] = structuredClone(op.value);
      else parent.splice(i, 1);
    } else {
      if (op.op !== 'add' && !(last in parent)) throw new Error(`${where}: ${op.op} ${op.path}: no such field`);
      if (op.op === 'remove') delete parent[last];
      else parent[last] = structuredClone(op.value);
    }
  }
}

function buildDir(dir: string, kind: 'Kustomization' | 'Component', into?: Built): Built {
  return buildFrom(readKustomization(dir, kind), dir, into);
}

/** Render a kustomization (given as an object, rooted at dir); a Component is applied onto `into`. */
function buildFrom(k: Obj, dir: string, into?: Built): Built {
  const v = into ? validateComponent : validateKustomization;
  if (!check(v, k)) throw new Error(`${rel(join(dir, 'kustomization.yaml'))}: not a valid ${into ? 'Component' : 'Kustomization'}: ${fmt(v.errors)}`);
  const out: Built = into ?? { objects: [], files: new Set() };
  const add = (objs: Obj[]) => out.objects.push(...objs);
  out.files.add(join(dir, 'kustomization.yaml'));

  for (const r of (k.resources ?? []) as string[]) {
    const p = resolve(dir, r);
    if (!existsSync(p)) throw new Error(`${rel(dir)}: resource ${r} does not exist`);
    if (statSync(p).isDirectory()) {
      const sub = buildDir(p, 'Kustomization');
      add(sub.objects);
      sub.files.forEach((f) => out.files.add(f));
    } else {
      const f = localFile(dir, r, 'resource');
      out.files.add(f);
      const docs = readYamlDocs(f) as Obj[];
      if (docs.length === 0) throw new Error(`${rel(f)}: no objects`);
      add(structuredClone(docs));
    }
  }
  for (const c of (k.components ?? []) as string[]) {
    const p = resolve(dir, c);
    if (!existsSync(p) || !statSync(p).isDirectory()) throw new Error(`${rel(dir)}: component ${c} is not a directory`);
    buildDir(p, 'Component', out);
  }
  for (const g of (k.configMapGenerator ?? []) as Obj[]) {
    const data: Record<string, string> = {};
    for (const file of g.files as string[]) {
      const f = localFile(dir, file, 'configMapGenerator file');
      out.files.add(f);
      data[basename(f)] = readFileSync(f, 'utf8');
    }
    const cm: Obj = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name }, data };
    if (g.options?.labels) cm.metadata.labels = { ...g.options.labels };
    if (g.options?.annotations) cm.metadata.annotations = { ...g.options.annotations };
    // (kustomize also appends a content hash to the name unless
    // disableNameSuffixHash, and rewrites references to it; names are kept
    // here and the real rename is checked against kustomize when present.)
    if (g.behavior === 'replace' || g.behavior === 'merge') {
      const existing = out.objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === g.name);
      if (!existing) throw new Error(`${rel(dir)}: configMapGenerator ${g.name} ${g.behavior}s a ConfigMap that does not exist`);
      existing.data = g.behavior === 'replace' ? data : { ...existing.data, ...data };
    } else {
      add([cm]);
    }
  }
  for (const p of (k.patches ?? []) as Obj[]) {
    let ops: unknown;
    if (p.path !== undefined) {
      const f = localFile(dir, p.path, 'patch');
      out.files.add(f);
      const docs = readYamlDocs(f);
      if (docs.length !== 1) throw new Error(`${rel(f)}: a patch file holds one document`);
      ops = docs[0];
    } else {
      ops = parseAllDocuments(p.patch as string).map((d) => d.toJS())[0];
    }
    if (!check(validateJsonPatch, ops)) throw new Error(`${rel(dir)}: patch ${p.path ?? '(inline)'} is not a JSON 6902 patch this renderer applies: ${fmt(validateJsonPatch.errors)}`);
    const t = p.target as Obj;
    const targets = out.objects.filter(
      (o) =>
        o.kind === t.kind &&
        o.metadata?.name === t.name &&
        (t.group === undefined || groupOf(o.apiVersion) === t.group) &&
        (t.version === undefined || versionOf(o.apiVersion) === t.version),
    );
    if (targets.length === 0) throw new Error(`${rel(dir)}: patch ${p.path ?? '(inline)'} matches no object (${JSON.stringify(t)})`);
    for (const o of targets) applyJsonPatch(o, ops as Obj[], `${rel(dir)}: patch ${p.path ?? '(inline)'}`);
  }
  for (const l of (k.labels ?? []) as Obj[]) {
    for (const o of out.objects) o.metadata.labels = { ...(o.metadata.labels ?? {}), ...l.pairs };
  }
  for (const img of (k.images ?? []) as Obj[]) {
    for (const o of out.objects) {
      for (const c of [...(o.spec?.template?.spec?.containers ?? []), ...(o.spec?.template?.spec?.initContainers ?? [])]) {
        const [name, tag] = splitImage(c.image);
        if (name !== img.name) continue;
        c.image = `${img.newName ?? name}${img.digest ? `@${img.digest}` : `:${img.newTag ?? tag}`}`;
      }
    }
  }
  if (k.namespace) for (const o of out.objects) o.metadata.namespace = k.namespace;
  return out;
}

function splitImage(image: string): [string, string] {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/') ? [image.slice(0, at), image.slice(at + 1)] : [image, 'latest'];
}

const idOf = (o: Obj) => `${groupOf(o.apiVersion)}/${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;

function duplicates(objects: Obj[]): string[] {
  const seen = new Set<string>();
  return objects.map(idOf).filter((id) => (seen.has(id) ? true : (seen.add(id), false)));
}

/** base + the leader-election component, as an overlay would write it. */
const haOverlay: Obj = {
  apiVersion: 'kustomize.config.k8s.io/v1beta1',
  kind: 'Kustomization',
  resources: ['base'],
  components: ['components/leader-election'],
};
const renderBase = () => buildDir(join(DEPLOY, 'base'), 'Kustomization');
const renderExample = () => buildDir(join(DEPLOY, 'overlays', 'example'), 'Kustomization');
const renderHa = () => buildFrom(haOverlay, DEPLOY);

const find = (objs: Obj[], kind: string, name?: string): Obj => {
  const hits = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(hits.map((o) => o.metadata.name), `exactly one ${kind}${name ? ` ${name}` : ''}`).toHaveLength(1);
  return hits[0];
};

// ---------------------------------------------------------------------------
// Files

const ALL_FILES = walk(DEPLOY);
const KUSTOMIZATION_DIRS = ALL_FILES.filter((f) => basename(f) === 'kustomization.yaml').map(dirname);

/** Files kustomizations use as patches and generator inputs (not Kubernetes objects). */
function referencedSpecialFiles(): { patches: Set<string>; generated: Set<string> } {
  const patches = new Set<string>();
  const generated = new Set<string>();
  for (const dir of KUSTOMIZATION_DIRS) {
    const k = readYamlDocs(join(dir, 'kustomization.yaml'))[0] as Obj;
    for (const p of k.patches ?? []) if (p.path) patches.add(resolve(dir, p.path));
    for (const g of k.configMapGenerator ?? []) for (const f of g.files ?? []) generated.add(resolve(dir, f));
  }
  return { patches, generated };
}

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

  it.each(KUSTOMIZATION_DIRS.map((d) => [relative(DEPLOY, d) || '.', d]))('%s/kustomization.yaml is valid and its files exist', (_name, dir) => {
    const isComponent = (readYamlDocs(join(dir, 'kustomization.yaml'))[0] as Obj).kind === 'Component';
    const built = isComponent
      ? buildFrom({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: [relative(dir, join(DEPLOY, 'base'))], components: ['.'] }, dir)
      : buildDir(dir, 'Kustomization');
    expect(built.objects.length).toBeGreaterThan(0);
    for (const f of built.files) expect(existsSync(f), rel(f)).toBe(true);
  });

  it('patch files are JSON 6902 patches and generator inputs parse', () => {
    for (const p of patches) expect(check(validateJsonPatch, readYamlDocs(p)[0]), `${rel(p)}: ${fmt(validateJsonPatch.errors)}`).toBe(true);
    for (const g of generated) {
      if (g.endsWith('.json')) JSON.parse(readFileSync(g, 'utf8'));
      else expect(readYamlDocs(g).length, rel(g)).toBeGreaterThan(0);
    }
  });

  it('every file is used by some kustomization, except the documented alternatives', () => {
    const used = new Set<string>();
    for (const dir of KUSTOMIZATION_DIRS) {
      const isComponent = (readYamlDocs(join(dir, 'kustomization.yaml'))[0] as Obj).kind === 'Component';
      const b = isComponent
        ? buildFrom({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: [relative(dir, join(DEPLOY, 'base'))], components: ['.'] }, dir)
        : buildDir(dir, 'Kustomization');
      b.files.forEach((f) => used.add(f));
    }
    const unused = ALL_FILES.filter((f) => !f.endsWith('.md') && !used.has(f)).map((f) => relative(DEPLOY, f).split(sep).join('/'));
    // Alternatives to what examples/kustomization.yaml picks, applied by hand.
    expect(unused.sort()).toEqual(['examples/gateway-envoy.yaml', 'examples/gateway-kgateway.yaml', 'examples/inference-model-rewrite.yaml', 'examples/inference-objective.yaml', 'examples/vllm-deployment.yaml']);
  });
});

describe('rendered kustomizations', () => {
  const renders: [string, () => Built][] = [
    ['base', renderBase],
    ['overlays/example', renderExample],
    ['base + components/leader-election', renderHa],
  ];

  it.each(renders)('%s renders to valid objects with unique names', (_name, render) => {
    const { objects } = render();
    const problems = objects.flatMap((o, i) => validateObject(o, `${_name}[${i}]`));
    expect(problems).toEqual([]);
    expect(duplicates(objects)).toEqual([]);
  });

  it('base holds the EPP, its RBAC, config, pool and route', () => {
    const kinds = renderBase().objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
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

  it('the example overlay adds model servers, a Gateway and monitoring', () => {
    const { objects } = renderExample();
    for (const kind of ['Gateway', 'ServiceMonitor', 'InferencePool', 'HTTPRoute']) find(objects, kind);
    expect(objects.filter((o) => o.kind === 'Deployment').map((o) => o.metadata.name).sort()).toEqual(['llm-epp', 'vllm-llama3-8b-instruct']);
    const dash = find(objects, 'ConfigMap', 'llm-epp-grafana-dashboard');
    expect(dash.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(() => JSON.parse(dash.data['grafana-dashboard.json'])).not.toThrow();
  });
});

// ---------------------------------------------------------------------------
// The real kustomize, where installed (not needed for the checks above).

function findKustomize(): string[] | undefined {
  for (const cmd of [['kustomize', 'build'], ['kubectl', 'kustomize']]) {
    const r = spawnSync(cmd[0], cmd[0] === 'kustomize' ? ['version'] : ['version', '--client'], { encoding: 'utf8', timeout: 20_000 });
    if (r.status === 0) return cmd;
  }
  return undefined;
}
const KUSTOMIZE = findKustomize();

describe.skipIf(!KUSTOMIZE)(`kustomize (${KUSTOMIZE?.join(' ') ?? 'not installed'})`, () => {
  const run = (dir: string): Obj[] => {
    const r = spawnSync(KUSTOMIZE![0], [KUSTOMIZE![1], dir], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj).filter(Boolean);
  };
  const hashless = (objs: Obj[]) =>
    objs.map((o) => `${o.kind}/${o.kind === 'ConfigMap' ? o.metadata.name.replace(/-[a-z0-9]{10}$/, '') : o.metadata.name}`).sort();

  it.each([
    ['base', join(DEPLOY, 'base'), renderBase],
    ['overlays/example', join(DEPLOY, 'overlays', 'example'), renderExample],
  ] as const)('%s renders, its objects are valid, and match the built-in renderer', (_name, dir, render) => {
    const objs = run(dir);
    expect(objs.flatMap((o, i) => validateObject(o, `${_name}[${i}]`))).toEqual([]);
    expect(hashless(objs)).toEqual(hashless(render().objects));
    // kustomize renames the generated config and points the Deployment at it.
    const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('llm-epp-config-'));
    expect(cm, 'hashed llm-epp-config').toBeDefined();
    const dep = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'llm-epp')!;
    expect(dep.spec.template.spec.volumes.find((v: Obj) => v.name === 'config').configMap.name).toBe(cm!.metadata.name);
  });

  it('base + components/leader-election renders as the built-in renderer does', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'llm-epp-kustomize-'));
    try {
      const k = { ...haOverlay, resources: [relative(tmp, join(DEPLOY, 'base'))], components: [relative(tmp, join(DEPLOY, 'components', 'leader-election'))] };
      writeFileSync(join(tmp, 'kustomization.yaml'), JSON.stringify(k));
      const objs = run(tmp);
      expect(objs.flatMap((o, i) => validateObject(o, `ha[${i}]`))).toEqual([]);
      expect(hashless(objs)).toEqual(hashless(renderHa().objects));
      const dep = objs.find((o) => o.kind === 'Deployment')!;
      const mine = renderHa().objects.find((o) => o.kind === 'Deployment')!;
      expect(dep.spec.replicas).toBe(mine.spec.replicas);
      expect(dep.spec.strategy).toEqual(mine.spec.strategy);
      expect(dep.spec.template.spec.containers[0].args).toEqual(mine.spec.template.spec.containers[0].args);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------
// How the pieces fit

/** The container's args as the kubelet passes them ($(VAR) from env expanded). */
function containerArgs(c: Obj, env: Record<string, string>): string[] {
  return (c.args as string[]).map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m));
}

describe('llm-epp Deployment', () => {
  const { objects } = renderBase();
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
    const vol = pod.volumes.find((v: Obj) => v.name === mount.name);
    const cm = find(objects, 'ConfigMap', vol.configMap.name);
    expect(Object.keys(cm.data)).toContain(opts.configFile.slice(mount.mountPath.length + 1));
  });

  it('its EndpointPickerConfig loads with llm-epp\'s config loader and is deploy/config/gaie-default.yaml', () => {
    const text = find(objects, 'ConfigMap', 'llm-epp-config').data['epp-config.yaml'] as string;
    const ctx = { pool: new Datastore(), log: createLogger('silent'), metrics: undefined, random: Math.random };
    const cfg = loadConfig(parseConfigText(text, 'epp-config.yaml'), createRegistry(), ctx, 'epp-config.yaml');
    expect([...cfg.profiles.keys()]).toEqual(['default']);
    const original = readYamlDocs(join(ROOT, 'deploy', 'config', 'gaie-default.yaml'));
    expect(readYamlDocs(join(DEPLOY, 'base', 'epp-config.yaml'))).toEqual(original);
  });

  it('has gRPC probes on the health port, the GAIE grace period, and a placeholder image', () => {
    expect(c.livenessProbe.grpc).toEqual({ port: 9003, service: 'liveness' });
    expect(c.readinessProbe.grpc).toEqual({ port: 9003, service: 'readiness' });
    expect(c.readinessProbe.periodSeconds).toBe(2);
    // The names llm-epp's health server answers (src/health.ts).
    expect(READINESS_SERVICES).toContain(c.readinessProbe.grpc.service);
    expect(pod.terminationGracePeriodSeconds).toBe(130);
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
    const ha = renderHa().objects;
    const d = find(ha, 'Deployment', 'llm-epp');
    expect(d.spec.replicas).toBe(2);
    expect(d.spec.strategy).toEqual({ type: 'Recreate' });
    const opts = parseFlags(containerArgs(d.spec.template.spec.containers[0], { NAMESPACE: 'ns' }));
    expect(opts.haEnableLeaderElection).toBe(true);
    expect(opts.poolName).toBe('vllm-llama3-8b-instruct');
    const role = find(ha, 'Role', 'llm-epp-leader-election');
    const rb = find(ha, 'RoleBinding', 'llm-epp-leader-election');
    expect(rb.roleRef.name).toBe(role.metadata.name);
    expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: 'llm-epp' }]);
    // The base is unchanged by it.
    expect(find(renderBase().objects, 'Deployment').spec.replicas).toBe(1);
  });
});

describe('RBAC', () => {
  const everything = [...renderExample().objects, ...renderHa().objects];
  const roles = new Map(everything.filter((o) => o.kind === 'Role').map((o) => [o.metadata.name as string, o]));

  /** Problems with a Role's rules: read-only, except the lease verbs in the leader-election Role. */
  function rbacProblems(role: Obj): string[] {
    const leases = role.metadata.name === 'llm-epp-leader-election';
    const allowed = leases ? ['get', 'create', 'update'] : ['get', 'list', 'watch'];
    const problems: string[] = [];
    for (const r of role.rules ?? []) {
      for (const field of ['apiGroups', 'resources', 'verbs']) {
        if ((r[field] ?? []).includes('*')) problems.push(`${role.metadata.name}: wildcard in ${field}`);
      }
      if (r.nonResourceURLs || r.resourceNames) problems.push(`${role.metadata.name}: unexpected ${r.nonResourceURLs ? 'nonResourceURLs' : 'resourceNames'}`);
      for (const v of r.verbs ?? []) if (!allowed.includes(v)) problems.push(`${role.metadata.name}: verb ${v} on ${r.resources}`);
      if (leases && (r.apiGroups.join() !== 'coordination.k8s.io' || r.resources.join() !== 'leases')) problems.push(`${role.metadata.name}: grants more than leases`);
    }
    return problems;
  }

  it('no cluster-wide grants at all', () => {
    expect(everything.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding').map(idOf)).toEqual([]);
  });

  it('the base Role grants get/list/watch on exactly pods, inferencepools, inferenceobjectives, inferencemodelrewrites', () => {
    const role = roles.get('llm-epp')!;
    expect(rbacProblems(role)).toEqual([]);
    const grants = role.rules.flatMap((r: Obj) => r.apiGroups.flatMap((g: string) => r.resources.map((res: string) => `${g}/${res}:${[...r.verbs].sort().join(',')}`))).sort();
    expect(grants).toEqual([
      '/pods:get,list,watch',
      'inference.networking.k8s.io/inferencepools:get,list,watch',
      'inference.networking.x-k8s.io/inferencemodelrewrites:get,list,watch',
      'inference.networking.x-k8s.io/inferenceobjectives:get,list,watch',
      'llm-d.ai/inferencemodelrewrites:get,list,watch',
      'llm-d.ai/inferenceobjectives:get,list,watch',
    ]);
  });

  it('the leader-election Role grants only get/create/update on leases, and only in the component', () => {
    expect(rbacProblems(roles.get('llm-epp-leader-election')!)).toEqual([]);
    expect(roles.get('llm-epp-leader-election')!.rules).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }]);
    expect(renderBase().objects.filter((o) => JSON.stringify(o).includes('leases'))).toEqual([]);
  });

  it('every Role in any file is read-only (or the lease Role)', () => {
    const all = ALL_FILES.filter((f) => /\.ya?ml$/.test(f)).flatMap((f) => readYamlDocs(f) as Obj[]).filter((o) => o?.kind === 'Role');
    expect(all.length).toBeGreaterThanOrEqual(2);
    expect(all.flatMap(rbacProblems)).toEqual([]);
  });

  it('the checker itself catches a write verb and a wildcard', () => {
    expect(rbacProblems({ metadata: { name: 'x' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'delete'] }] })).toHaveLength(1);
    expect(rbacProblems({ metadata: { name: 'x' }, rules: [{ apiGroups: ['*'], resources: ['pods'], verbs: ['get'] }] })).toHaveLength(1);
  });
});

describe('examples and monitoring', () => {
  const exampleDocs = (file: string) => readYamlDocs(join(DEPLOY, 'examples', file)) as Obj[];
  const pool = find(renderBase().objects, 'InferencePool');

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
    const route = find(renderBase().objects, 'HTTPRoute');
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
    const { objects } = renderExample();
    const sm = find(objects, 'ServiceMonitor');
    const svc = find(objects, 'Service', 'llm-epp');
    expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    expect(sm.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '15s' }]);
    expect(svc.spec.ports.map((p: Obj) => p.name)).toContain('metrics');
  });
});

describe('schema validation catches mistakes', () => {
  const base = renderBase().objects;
  const mutate = (kind: string, f: (o: Obj) => void): string[] => {
    const o = structuredClone(find(base, kind));
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

  it('rejects an unknown kustomization field and a missing resource file', () => {
    expect(() => buildFrom({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resource: ['x.yaml'] }, join(DEPLOY, 'base'))).toThrow(/resource/);
    expect(() => buildFrom({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: ['nope.yaml'] }, join(DEPLOY, 'base'))).toThrow(/does not exist/);
    expect(() => buildFrom({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: ['../examples/vllm-deployment.yaml'] }, join(DEPLOY, 'base'))).toThrow(/outside the kustomization root/);
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

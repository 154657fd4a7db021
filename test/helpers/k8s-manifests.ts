// Checks shared by the tests of deploy/ (Kustomize manifests and the Helm
// chart): strict YAML reading, and schema validation of each Kubernetes
// object with ajv against the JSON schema of its apiVersion/kind, vendored in
// test/fixtures/k8s-schemas (generated from the Kubernetes 1.36 OpenAPI and the
// upstream CRDs by generate.ts there, kubeconform-"strict" style:
// additionalProperties false, so a misspelt field fails). A kind without a
// schema fails.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { expect } from 'vitest';
import { parseAllDocuments } from 'yaml';

export type Obj = Record<string, any>; // parsed YAML/JSON

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCHEMAS = join(ROOT, 'test', 'fixtures', 'k8s-schemas');
export const rel = (p: string) => relative(ROOT, p);

/** Parse every document of a YAML text; YAML errors, warnings and 1.1/1.2 ambiguities throw. */
export function parseYamlDocs(text: string, where: string): unknown[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  if (!Array.isArray(docs)) throw new Error(`${where}: not YAML`);
  const out: unknown[] = [];
  const legacy = parseAllDocuments(text, { version: '1.1' });
  docs.forEach((d, i) => {
    if (d.errors.length) throw new Error(`${where}: ${d.errors.map((e) => e.message).join('; ')}`);
    if (d.warnings.length) throw new Error(`${where}: ${d.warnings.map((e) => e.message).join('; ')}`);
    const v = d.toJS({ maxAliasCount: 0 });
    // kubectl reads YAML 1.1 (yes/no/on/off are booleans, 0644 is octal): a
    // value that reads differently there is a bug waiting to happen.
    const v11 = Array.isArray(legacy) ? legacy[i]?.toJS() : undefined;
    expect(v11, `${where} document ${i} reads differently as YAML 1.1 (quote the value)`).toEqual(v);
    if (v !== null && v !== undefined) out.push(v);
  });
  return out;
}

/** Parse every document of a YAML file (see parseYamlDocs). */
export function readYamlDocs(path: string): unknown[] {
  return parseYamlDocs(readFileSync(path, 'utf8'), rel(path));
}

const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, strictTuples: false, strictRequired: false, unicodeRegExp: false });

/** apiVersion/kind → validator, from the vendored schemas. */
export const K8S_SCHEMAS = new Map<string, ValidateFunction>();
for (const f of readdirSync(SCHEMAS).filter((n) => n.endsWith('.json')).sort()) {
  const schema = JSON.parse(readFileSync(join(SCHEMAS, f), 'utf8')) as Obj;
  const key = `${schema.properties.apiVersion.const}/${schema.properties.kind.const}`;
  K8S_SCHEMAS.set(key, ajv.compile(schema));
}

/** Compile a schema of a test's own with the same ajv settings. */
export const compileSchema = (schema: object): ValidateFunction => ajv.compile(schema);

/** Run a validator without letting its type guard narrow the argument. */
export const check = (v: ValidateFunction, data: unknown): boolean => v(data);

export const fmt = (errors: ErrorObject[] | null | undefined) =>
  (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? `: "${e.params.additionalProperty}"` : ''}${e.params && 'allowedValues' in e.params ? ` ${JSON.stringify(e.params.allowedValues)}` : ''}`).join('; ');

/** Problems with one Kubernetes object ([] = valid). */
export function validateObject(obj: unknown, where: string): string[] {
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

const groupOf = (apiVersion: string) => (apiVersion.includes('/') ? apiVersion.split('/')[0] : '');

/** group/kind/namespace/name: what must be unique among applied objects. */
export const idOf = (o: Obj) => `${groupOf(o.apiVersion)}/${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;

export function duplicates(objects: Obj[]): string[] {
  const seen = new Set<string>();
  return objects.map(idOf).filter((id) => (seen.has(id) ? true : (seen.add(id), false)));
}

/** The one object of a kind (and name); fails the test unless there is exactly one. */
export function find(objs: Obj[], kind: string, name?: string): Obj {
  const hits = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(hits.map((o) => o.metadata.name), `exactly one ${kind}${name ? ` ${name}` : ''}`).toHaveLength(1);
  return hits[0];
}

/** The container's args as the kubelet passes them ($(VAR) from env expanded). */
export function containerArgs(c: Obj, env: Record<string, string>): string[] {
  return (c.args as string[]).map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m));
}

/**
 * RBAC problems with a Role: wildcards, resourceNames / nonResourceURLs, and
 * verbs beyond read-only (get/list/watch) — or, for a lease Role, anything but
 * get/create/update on coordination.k8s.io leases.
 */
export function rbacProblems(role: Obj, isLeaseRole: boolean): string[] {
  const allowed = isLeaseRole ? ['get', 'create', 'update'] : ['get', 'list', 'watch'];
  const name = role.metadata?.name;
  const problems: string[] = [];
  for (const r of role.rules ?? []) {
    for (const field of ['apiGroups', 'resources', 'verbs']) {
      if ((r[field] ?? []).includes('*')) problems.push(`${name}: wildcard in ${field}`);
    }
    if (r.nonResourceURLs || r.resourceNames) problems.push(`${name}: unexpected ${r.nonResourceURLs ? 'nonResourceURLs' : 'resourceNames'}`);
    for (const v of r.verbs ?? []) if (!allowed.includes(v)) problems.push(`${name}: verb ${v} on ${r.resources}`);
    if (isLeaseRole && (r.apiGroups.join() !== 'coordination.k8s.io' || r.resources.join() !== 'leases')) problems.push(`${name}: grants more than leases`);
  }
  return problems;
}

/** A Role's grants as sorted "group/resource:verbs" strings. */
export function grants(role: Obj): string[] {
  return (role.rules as Obj[]).flatMap((r) => (r.apiGroups as string[]).flatMap((g) => (r.resources as string[]).map((res) => `${g}/${res}:${[...r.verbs].sort().join(',')}`))).sort();
}

/** The grants of llm-epp's read-only Role, the same in the Kustomize base and the Helm chart. */
export const EPP_GRANTS = [
  '/pods:get,list,watch',
  'inference.networking.k8s.io/inferencepools:get,list,watch',
  'inference.networking.x-k8s.io/inferencemodelrewrites:get,list,watch',
  'inference.networking.x-k8s.io/inferenceobjectives:get,list,watch',
  'llm-d.ai/inferencemodelrewrites:get,list,watch',
  'llm-d.ai/inferenceobjectives:get,list,watch',
];

/** The rules of the leader-election Role. */
export const LEASE_RULES = [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }];

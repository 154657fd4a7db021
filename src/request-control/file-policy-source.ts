// --objectives-file FILE: InferenceObjective (and InferenceModelRewrite)
// manifests from a YAML file instead of the Kubernetes API, for llm-epp
// outside Kubernetes (--endpoints, --endpoints-file, file-discovery), where
// priorities (and flow control's bands) would otherwise all be 0. The file
// holds one or more YAML documents, each a manifest or a `kind: List` of
// them, as `kubectl get -o yaml` writes. Reloaded when it changes; a bad edit
// is logged and the last good objectives keep serving.
import { parseAllDocuments } from 'yaml';
import type { Logger } from '../log.ts';
import { WatchedFile } from '../watched-file.ts';
import { LEGACY_POLICY_GROUP, objectivesFor, POLICY_GROUP, rewritesFor, type Objective, type Rewrite } from './policy-manifests.ts';
import type { ModelRewrite, ObjectiveSpec, RequestPolicy } from './policy.ts';
import { isMap } from '../scheduling/params.ts';

const KINDS = ['InferenceObjective', 'InferenceModelRewrite'];
/** Objects read from one file (a bound: the file is also capped in bytes by --max-config-bytes). */
const MAX_OBJECTS = 10_000;

/**
 * The objectives and rewrites of `pool` in a manifests file's text (every
 * one when `pool` is undefined). Throws an Error naming the file, the
 * document and the problem.
 */
export function parsePolicyManifests(text: string, file: string, pool: string | undefined): { objectives: ObjectiveSpec[]; rewrites: ModelRewrite[] } {
  const objectives: Objective[] = [];
  const rewrites: Rewrite[] = [];
  const add = (obj: unknown, where: string) => {
    if (!isMap(obj)) throw new Error(`${where}: must be a mapping (a Kubernetes manifest)`);
    if (objectives.length + rewrites.length >= MAX_OBJECTS) throw new Error(`${file}: more than ${MAX_OBJECTS} objects`);
    const kind = obj.kind;
    if (typeof kind !== 'string' || !KINDS.includes(kind)) throw new Error(`${where}: kind must be one of ${KINDS.join(', ')} (or List), got ${JSON.stringify(kind)}`);
    const group = typeof obj.apiVersion === 'string' ? obj.apiVersion.split('/')[0] : undefined;
    if (group !== POLICY_GROUP && group !== LEGACY_POLICY_GROUP) {
      throw new Error(`${where}: apiVersion must be in group ${POLICY_GROUP} (or the legacy ${LEGACY_POLICY_GROUP}), got ${JSON.stringify(obj.apiVersion)}`);
    }
    const meta = obj.metadata;
    if (!isMap(meta) || typeof meta.name !== 'string' || meta.name === '') throw new Error(`${where}: metadata.name is required`);
    if (obj.spec !== undefined && obj.spec !== null && !isMap(obj.spec)) throw new Error(`${where}: spec must be a mapping`);
    const spec = (obj.spec ?? {}) as Record<string, unknown>;
    if (kind === 'InferenceObjective') {
      if (spec.priority !== undefined && spec.priority !== null && !Number.isSafeInteger(spec.priority)) {
        throw new Error(`${where} (${meta.name}): spec.priority must be an integer, got ${JSON.stringify(spec.priority)}`);
      }
      objectives.push(obj as Objective);
    } else {
      if (spec.rules !== undefined && !Array.isArray(spec.rules)) throw new Error(`${where} (${meta.name}): spec.rules must be a list`);
      rewrites.push(obj as Rewrite);
    }
  };
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  if (!Array.isArray(docs)) throw new Error(`${file}: not a YAML stream`);
  docs.forEach((doc, i) => {
    const where = `${file}: document ${i + 1}`;
    if (doc.errors.length > 0) throw new Error(`${where}: invalid YAML: ${doc.errors[0].message}`);
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    if (isMap(value) && value.kind === 'List') {
      if (!Array.isArray(value.items)) throw new Error(`${where}: a List needs "items"`);
      value.items.forEach((item, j) => add(item, `${where}: items[${j}]`));
      return;
    }
    add(value, where);
  });
  const seen = new Set<string>();
  for (const o of objectives) {
    const name = o.metadata!.name!;
    if (seen.has(name)) throw new Error(`${file}: InferenceObjective "${name}" is defined twice`);
    seen.add(name);
  }
  return { objectives: objectivesFor(pool, objectives), rewrites: rewritesFor(pool, rewrites) };
}

export class FilePolicySource {
  readonly #file: WatchedFile;

  constructor(file: string, pool: string | undefined, policy: RequestPolicy, log: Logger, maxBytes: number) {
    this.#file = new WatchedFile(file, { maxBytes, what: 'objectives file' }, log, (text) => {
      const { objectives, rewrites } = parsePolicyManifests(text, file, pool);
      policy.setObjectives(objectives);
      policy.setRewrites(rewrites);
      log.info({ file, objectives: objectives.length, rewrites: rewrites.length }, 'objectives file loaded');
    });
  }

  /** First load: errors stop start-up. */
  start(): Promise<void> {
    return this.#file.start();
  }

  reload(): Promise<void> {
    return this.#file.reload();
  }

  stop(): Promise<void> {
    this.#file.stop();
    return Promise.resolve();
  }
}

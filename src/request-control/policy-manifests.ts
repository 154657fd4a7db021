// InferenceObjective and InferenceModelRewrite manifests → RequestPolicy's
// objectives and rewrites: the resources whose spec.poolRef names the pool
// (any pool when llm-epp has no --pool-name: an --objectives-file outside
// Kubernetes). Shared by the Kubernetes watch (k8s-policy-source.ts) and the
// file (file-policy-source.ts); no Kubernetes client here.
import type { ModelRewrite, ObjectiveSpec } from './policy.ts';

/** llm-d Router's group, preferred. */
export const POLICY_GROUP = 'llm-d.ai';
/** GAIE's group, read when only its CRDs are installed. */
export const LEGACY_POLICY_GROUP = 'inference.networking.x-k8s.io';

interface Metadata {
  name?: string;
  creationTimestamp?: string | Date;
}

export interface Objective {
  metadata?: Metadata;
  spec?: { priority?: number; poolRef?: { name?: string } };
}

export interface Rewrite {
  metadata?: Metadata;
  spec?: {
    poolRef?: { name?: string };
    rules?: { matches?: { model?: { type?: string; value?: string } }[]; targets?: { modelRewrite?: string; weight?: number }[] }[];
  };
}

/** The resource belongs to `pool` (every resource when `pool` is undefined). */
function ofPool(r: Objective | Rewrite, pool: string | undefined): boolean {
  return r.metadata?.name !== undefined && r.metadata.name !== '' && (pool === undefined || r.spec?.poolRef?.name === pool);
}

export function objectivesFor(pool: string | undefined, items: readonly Objective[]): ObjectiveSpec[] {
  return items
    .filter((o) => ofPool(o, pool))
    .map((o) => ({ name: o.metadata!.name!, priority: Number.isInteger(o.spec?.priority) ? o.spec!.priority! : 0 }));
}

export function rewritesFor(pool: string | undefined, items: readonly Rewrite[]): ModelRewrite[] {
  return items
    .filter((r) => ofPool(r, pool))
    .map((r) => ({
      name: r.metadata!.name!,
      createdAt: r.metadata?.creationTimestamp ? new Date(r.metadata.creationTimestamp).getTime() : 0,
      rules: (r.spec?.rules ?? []).map((rule) => ({
        matches: (rule.matches ?? []).map((m) => m.model?.value).filter((v): v is string => typeof v === 'string' && v !== ''),
        targets: (rule.targets ?? [])
          .filter((t) => typeof t.modelRewrite === 'string' && t.modelRewrite !== '')
          .map((t) => ({ modelRewrite: t.modelRewrite!, weight: typeof t.weight === 'number' ? t.weight : 1 })),
      })),
    }));
}

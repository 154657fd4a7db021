// Feeds RequestPolicy from the cluster: the InferenceObjectives and
// InferenceModelRewrites whose spec.poolRef names this pool, list+watched in
// the pool's namespace.
import { CustomObjectsApi, KubeConfig, ListWatch, Watch, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../log.ts';
import { supervise, type Supervision } from '../pool/k8s-informer.ts';
import type { ModelRewrite, ObjectiveSpec, RequestPolicy } from './policy.ts';

export const POLICY_GROUP = 'inference.networking.x-k8s.io';
export const POLICY_VERSION = 'v1alpha2';

interface Objective extends KubernetesObject {
  spec?: { priority?: number; poolRef?: { name?: string } };
}
interface Rewrite extends KubernetesObject {
  spec?: {
    poolRef?: { name?: string };
    rules?: { matches?: { model?: { type?: string; value?: string } }[]; targets?: { modelRewrite?: string; weight?: number }[] }[];
  };
}

export function objectivesFor(pool: string, items: readonly Objective[]): ObjectiveSpec[] {
  return items
    .filter((o) => o.spec?.poolRef?.name === pool && o.metadata?.name)
    .map((o) => ({ name: o.metadata!.name!, priority: Number.isInteger(o.spec?.priority) ? o.spec!.priority! : 0 }));
}

export function rewritesFor(pool: string, items: readonly Rewrite[]): ModelRewrite[] {
  return items
    .filter((r) => r.spec?.poolRef?.name === pool && r.metadata?.name)
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

export class KubePolicySource {
  readonly #informers: ListWatch<KubernetesObject>[] = [];
  readonly #sups: Supervision[] = [];

  constructor(kc: KubeConfig, pool: string, namespace: string, policy: RequestPolicy, log: Logger) {
    const api = kc.makeApiClient(CustomObjectsApi);
    const watch = new Watch(kc);
    const make = <T extends KubernetesObject>(plural: string, apply: (items: readonly T[]) => void) => {
      const path = `/apis/${POLICY_GROUP}/${POLICY_VERSION}/namespaces/${namespace}/${plural}`;
      const list = () => api.listNamespacedCustomObject({ group: POLICY_GROUP, version: POLICY_VERSION, namespace, plural });
      const informer = new ListWatch<T>(path, watch, list as never, false);
      const changed = () => apply(informer.list()); // the watch is namespaced already
      for (const ev of ['add', 'update', 'delete'] as const) informer.on(ev, changed);
      this.#informers.push(informer as unknown as ListWatch<KubernetesObject>);
      this.#sups.push(supervise(informer as unknown as ListWatch<KubernetesObject>, plural, log));
    };
    make<Objective>('inferenceobjectives', (items) => policy.setObjectives(objectivesFor(pool, items)));
    make<Rewrite>('inferencemodelrewrites', (items) => policy.setRewrites(rewritesFor(pool, items)));
  }

  /** First list of both; failures are retried in the background (the CRDs may not be installed). */
  async start(): Promise<void> {
    await Promise.all(this.#sups.map((s) => s.start()));
  }

  async stop(): Promise<void> {
    for (const s of this.#sups) s.stop();
    await Promise.allSettled(this.#informers.map((i) => i.stop()));
  }
}

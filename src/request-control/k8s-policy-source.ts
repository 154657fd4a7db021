// Feeds RequestPolicy from the cluster: the InferenceObjectives and
// InferenceModelRewrites whose spec.poolRef names this pool, list+watched in
// the pool's namespace. Each kind is read from llm-d Router's API group
// (llm-d.ai) when its CRD is installed, else from GAIE's legacy group
// (inference.networking.x-k8s.io); with both installed the legacy resources
// are ignored, as llm-d Router v0.10 does (its PR #1449).
import { CustomObjectsApi, KubeConfig, ListWatch, Watch, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../log.ts';
import { supervise, type Supervision } from '../pool/k8s-informer.ts';
import type { RequestPolicy } from './policy.ts';
import { LEGACY_POLICY_GROUP, objectivesFor, POLICY_GROUP, rewritesFor, type Objective, type Rewrite } from './policy-manifests.ts';

export const POLICY_VERSION = 'v1alpha2';

/** Whether `kind` is served in group/version (API discovery); false when the group is not installed. */
async function served(api: CustomObjectsApi, group: string, kind: string): Promise<boolean> {
  try {
    const list = await api.getAPIResources({ group, version: POLICY_VERSION });
    return (list.resources ?? []).some((r) => r.kind === kind);
  } catch {
    return false;
  }
}

/**
 * The group to read `kind` from: llm-d.ai when installed (legacy ignored, with
 * a warning when it is installed too), else the legacy group when installed,
 * else llm-d.ai, watched until its CRD appears.
 */
export async function chooseGroup(api: CustomObjectsApi, kind: string, log: Logger): Promise<string> {
  const [llmd, legacy] = await Promise.all([served(api, POLICY_GROUP, kind), served(api, LEGACY_POLICY_GROUP, kind)]);
  if (llmd && legacy) log.warn({ kind }, `both ${LEGACY_POLICY_GROUP} and ${POLICY_GROUP} ${kind} CRDs are installed; reading ${POLICY_GROUP} and ignoring the legacy resources`);
  if (llmd || !legacy) {
    if (!llmd) log.info({ kind, group: POLICY_GROUP }, `no ${kind} CRD is installed yet; watching ${POLICY_GROUP} until it is (a legacy ${LEGACY_POLICY_GROUP} install needs a restart)`);
    return POLICY_GROUP;
  }
  log.info({ kind, group: LEGACY_POLICY_GROUP }, `reading ${kind} from the legacy group ${LEGACY_POLICY_GROUP} (only it is installed)`);
  return LEGACY_POLICY_GROUP;
}

export class KubePolicySource {
  readonly #informers: ListWatch<KubernetesObject>[] = [];
  readonly #sups: Supervision[] = [];
  readonly #kc: KubeConfig;
  readonly #pool: string;
  readonly #namespace: string;
  readonly #policy: RequestPolicy;
  readonly #log: Logger;
  #stopped = false;
  /** The group each kind is read from, once discovered. */
  readonly groups = new Map<string, string>();

  constructor(kc: KubeConfig, pool: string, namespace: string, policy: RequestPolicy, log: Logger) {
    this.#kc = kc;
    this.#pool = pool;
    this.#namespace = namespace;
    this.#policy = policy;
    this.#log = log;
  }

  /** Discover each kind's group, then the first list of both; failures are retried in the background (the CRDs may not be installed). */
  async start(): Promise<void> {
    const api = this.#kc.makeApiClient(CustomObjectsApi);
    const watch = new Watch(this.#kc);
    const namespace = this.#namespace;
    const make = async <T extends KubernetesObject>(kind: string, plural: string, apply: (items: readonly T[]) => void) => {
      const group = await chooseGroup(api, kind, this.#log);
      this.groups.set(kind, group);
      const path = `/apis/${group}/${POLICY_VERSION}/namespaces/${namespace}/${plural}`;
      const list = () => api.listNamespacedCustomObject({ group, version: POLICY_VERSION, namespace, plural });
      const informer = new ListWatch<T>(path, watch, list as never, false);
      const changed = () => apply(informer.list()); // the watch is namespaced already
      for (const ev of ['add', 'update', 'delete'] as const) informer.on(ev, changed);
      this.#informers.push(informer as unknown as ListWatch<KubernetesObject>);
      const sup = supervise(informer as unknown as ListWatch<KubernetesObject>, plural, this.#log);
      this.#sups.push(sup);
      if (!this.#stopped) await sup.start();
    };
    await Promise.all([
      make<Objective & KubernetesObject>('InferenceObjective', 'inferenceobjectives', (items) => this.#policy.setObjectives(objectivesFor(this.#pool, items))),
      make<Rewrite & KubernetesObject>('InferenceModelRewrite', 'inferencemodelrewrites', (items) => this.#policy.setRewrites(rewritesFor(this.#pool, items))),
    ]);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const s of this.#sups) s.stop();
    await Promise.allSettled(this.#informers.map((i) => i.stop()));
  }
}

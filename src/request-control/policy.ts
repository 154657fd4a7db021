// Per-request policy from the InferenceObjective and InferenceModelRewrite
// resources: the priority named by x-gateway-inference-objective, the
// fairness id, and the model the request is really sent to.

export interface ObjectiveSpec {
  name: string;
  /** Unset means 0; negative marks a sheddable request. */
  priority: number;
}

export interface RewriteTarget {
  modelRewrite: string;
  weight: number;
}

export interface RewriteRule {
  /** Exact model names; empty means every model. */
  matches: string[];
  targets: RewriteTarget[];
}

export interface ModelRewrite {
  name: string;
  /** Older objects win ties (creationTimestamp, ms). */
  createdAt: number;
  rules: RewriteRule[];
}

export interface RequestPolicyResult {
  objective: string | undefined;
  priority: number;
  fairnessId: string;
  targetModel: string;
  /** The InferenceModelRewrite that chose targetModel, if one did. */
  rewriteName: string | undefined;
}

// llm-d Router v0.10 reads its own header first and GAIE's name as the deprecated fallback
// (pkg/epp/metadata/consts.go, headerAliases).
export const OBJECTIVE_HEADERS = ['x-llm-d-inference-objective', 'x-gateway-inference-objective'] as const;
export const FAIRNESS_HEADERS = ['x-llm-d-inference-fairness-id', 'x-gateway-inference-fairness-id'] as const;
export const REWRITE_HEADERS = ['x-llm-d-model-name-rewrite', 'x-gateway-model-name-rewrite'] as const;
export const DEFAULT_FAIRNESS_ID = 'default-flow';

function firstHeader(headers: ReadonlyMap<string, string>, names: readonly string[]): string | undefined {
  for (const n of names) {
    const v = headers.get(n);
    if (v) return v;
  }
  return undefined;
}

export interface RequestPolicyOptions {
  /**
   * Honour the rewrite headers (REWRITE_HEADERS). Off by default: they come
   * from clients unless the gateway strips them, and would let a client pick
   * the model or adapter that InferenceModelRewrites are meant to decide.
   */
  allowClientModelRewrite?: boolean;
}

export class RequestPolicy {
  #objectives = new Map<string, number>();
  #rewrites: ModelRewrite[] = [];
  readonly #random: () => number;
  readonly #allowHeaderRewrite: boolean;

  constructor(random: () => number = Math.random, opts: RequestPolicyOptions = {}) {
    this.#random = random;
    this.#allowHeaderRewrite = opts.allowClientModelRewrite === true;
  }

  #objectiveList: readonly ObjectiveSpec[] = [];

  setObjectives(list: readonly ObjectiveSpec[]): void {
    this.#objectives = new Map(list.map((o) => [o.name, o.priority]));
    this.#objectiveList = [...list];
    this.onChange?.();
  }

  /** What was last set (the control thread hands it to --workers). */
  snapshot(): { objectives: ObjectiveSpec[]; rewrites: ModelRewrite[] } {
    return { objectives: [...this.#objectiveList], rewrites: [...this.#rewrites] };
  }

  /** Called after either list changed. */
  onChange: (() => void) | undefined;

  setRewrites(list: readonly ModelRewrite[]): void {
    // Oldest first, so the first match in order is the tie-winner.
    this.#rewrites = [...list].sort((a, b) => a.createdAt - b.createdAt || a.name.localeCompare(b.name));
    this.onRewrites?.(this.configuredModels());
    this.onChange?.();
  }

  /** Called with configuredModels() whenever the rewrites change (metrics keep those model labels). */
  onRewrites: ((models: ReadonlySet<string>) => void) | undefined;

  /** Every model name the rewrites name: matched and target models. */
  configuredModels(): ReadonlySet<string> {
    const out = new Set<string>();
    for (const rw of this.#rewrites) {
      for (const rule of rw.rules) {
        for (const m of rule.matches) out.add(m);
        for (const t of rule.targets) out.add(t.modelRewrite);
      }
    }
    return out;
  }

  resolve(headers: ReadonlyMap<string, string>, model: string): RequestPolicyResult {
    const objective = firstHeader(headers, OBJECTIVE_HEADERS);
    const priority = objective !== undefined ? (this.#objectives.get(objective) ?? 0) : 0;
    const fairnessId = firstHeader(headers, FAIRNESS_HEADERS) ?? DEFAULT_FAIRNESS_ID;
    const forced = this.#allowHeaderRewrite ? firstHeader(headers, REWRITE_HEADERS) : undefined;
    if (forced) return { objective, priority, fairnessId, targetModel: forced, rewriteName: undefined };
    const chosen = model ? this.#rewrite(model) : undefined;
    return { objective, priority, fairnessId, targetModel: chosen?.target ?? model, rewriteName: chosen?.name };
  }

  /** Exact match beats match-all; then the oldest object; then the first rule in it. */
  #rewrite(model: string): { name: string; target: string } | undefined {
    let best: { name: string; rule: RewriteRule } | undefined;
    let bestExact = false;
    for (const rw of this.#rewrites) {
      for (const rule of rw.rules) {
        const exact = rule.matches.includes(model);
        const all = rule.matches.length === 0;
        if (!exact && !all) continue;
        if (!best || (exact && !bestExact)) {
          best = { name: rw.name, rule };
          bestExact = exact;
        }
      }
      if (bestExact) break; // an older object's exact match cannot be beaten
    }
    if (!best || best.rule.targets.length === 0) return undefined;
    return { name: best.name, target: pickWeighted(best.rule.targets, this.#random) };
  }
}

/** Weighted random choice; all weights 0 ⇒ uniform. */
export function pickWeighted(targets: readonly RewriteTarget[], random: () => number): string {
  const total = targets.reduce((s, t) => s + Math.max(0, t.weight), 0);
  if (total <= 0) return targets[Math.floor(random() * targets.length)].modelRewrite;
  let r = random() * total;
  for (const t of targets) {
    r -= Math.max(0, t.weight);
    if (r < 0) return t.modelRewrite;
  }
  return targets[targets.length - 1].modelRewrite;
}

/**
 * Put the client's model name back in a response (`"model":"<target>"`, with
 * or without a space after the colon), as the GAIE EPP does after a rewrite.
 */
export function restoreModel(body: Buffer, target: string, original: string): Buffer {
  const a = Buffer.from(`"model":${JSON.stringify(target)}`);
  const b = Buffer.from(`"model": ${JSON.stringify(target)}`);
  if (body.indexOf(a) < 0 && body.indexOf(b) < 0) return body;
  const text = body.toString('utf8');
  return Buffer.from(
    text
      .split(a.toString())
      .join(`"model":${JSON.stringify(original)}`)
      .split(b.toString())
      .join(`"model": ${JSON.stringify(original)}`),
  );
}

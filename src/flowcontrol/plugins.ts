// Flow control's plugin types, for the plugin registry (src/builtin-plugins.ts
// registers them): the policies a flowControl section references by name, and
// the probabilistic-admitter.
import type { PluginDefinition } from '../scheduling/registry.ts';
import { edfOrderingPolicy } from './policies/edf.ts';
import { fcfsOrderingPolicy } from './policies/fcfs.ts';
import { globalStrictFairnessPolicy } from './policies/global-strict.ts';
import { priorityHoldbackPolicy } from './policies/priority-holdback.ts';
import { probabilisticAdmitter } from './policies/probabilistic-admitter.ts';
import { programAwareFairness } from './policies/program-aware.ts';
import { roundRobinFairnessPolicy } from './policies/round-robin.ts';
import { sloDeadlineOrderingPolicy } from './policies/slo-deadline.ts';
import { softReflectiveCeilingPolicy } from './policies/soft-reflective-ceiling.ts';
import { staticUsageLimitPolicy } from './policies/static-usage-limit.ts';

export const FLOW_CONTROL_PLUGINS: readonly PluginDefinition[] = [
  fcfsOrderingPolicy,
  edfOrderingPolicy,
  sloDeadlineOrderingPolicy,
  globalStrictFairnessPolicy,
  roundRobinFairnessPolicy,
  programAwareFairness,
  staticUsageLimitPolicy,
  priorityHoldbackPolicy,
  softReflectiveCeilingPolicy,
  probabilisticAdmitter,
] as unknown as readonly PluginDefinition[];

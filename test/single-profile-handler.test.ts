// single-profile-handler: runs the one scheduling profile exactly once and
// makes its result the primary one; the loader adds it when there is one
// profile and no handler, and rejects it with more than one profile.
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.ts';
import type { Endpoint } from '../src/pool/endpoint.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import type { Picker, ProfileHandler, ProfileResult, SchedulerProfile, ScoredEndpoint, CycleState } from '../src/scheduling/framework.ts';
import { ConfigError } from '../src/scheduling/params.ts';
import { PipelineScheduler } from '../src/scheduling/pipeline.ts';
import { context, create, makePool, request, state, runCycle } from './helpers/scheduling.ts';

const head = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';

function profile(name: string, picker: Picker): SchedulerProfile {
  return { name, filters: [], scorers: [], picker };
}

const result = (eps: Endpoint[]): ProfileResult => ({ endpoints: eps, candidates: eps, totals: new Float64Array(eps.length) });

describe('single-profile-handler', () => {
  const { pool, endpoints } = makePool([{}, {}]);
  const picker = create<Picker>('max-score-picker', {}, pool);
  const handler = create<ProfileHandler>('single-profile-handler', {}, pool);

  it('asks for the (first) profile when nothing has run yet, and for nothing once a result exists', () => {
    const only = profile('only', picker);
    const profiles = new Map([['only', only]]);
    expect(handler.pickProfiles(state(undefined), profiles, new Map())).toEqual([only]);
    expect(handler.pickProfiles(state(undefined), profiles, new Map([['only', result([endpoints[0]])]]))).toEqual([]);
    // Any result (even an empty one) ends the loop.
    expect(handler.pickProfiles(state(undefined), profiles, new Map([['only', result([])]]))).toEqual([]);
  });

  it('given several profiles it picks the first only (the loader never allows that)', () => {
    const a = profile('a', picker);
    const b = profile('b', picker);
    expect(handler.pickProfiles(state(undefined), new Map([['a', a], ['b', b]]), new Map())).toEqual([a]);
  });

  it('asks for nothing when there are no profiles', () => {
    expect(handler.pickProfiles(state(undefined), new Map(), new Map())).toEqual([]);
  });

  it('the primary profile is the one that ran; "" when none did', () => {
    expect(handler.primaryProfile(state(undefined), new Map([['mine', result([endpoints[1]])]]))).toBe('mine');
    expect(handler.primaryProfile(state(undefined), new Map())).toBe('');
  });

  it('takes no parameters', () => {
    expect(() => create('single-profile-handler', { profile: 'x' }, pool)).toThrow(/plugin "single-profile-handler" \(single-profile-handler\): unknown parameter "profile" \(it takes no parameters\)/);
  });

  it('in the pipeline the profile runs exactly once per request and its pick routes the request', () => {
    let picks = 0;
    const counting: Picker = {
      type: 'counting-picker',
      name: 'counting-picker',
      maxEndpoints: undefined,
      pick(_st: CycleState, scored: readonly ScoredEndpoint[], max: number) {
        picks++;
        return scored.slice(scored.length - max).map((s) => s.endpoint).reverse();
      },
    };
    const p = profile('p', counting);
    const s = new PipelineScheduler({ plugins: new Map([['h', handler]]), profiles: new Map([['p', p]]), profileHandler: handler }, createLogger('silent'));
    const r = runCycle(s, request({ model: 'm', prompt: 'x' }), endpoints, 1);
    expect(picks).toBe(1);
    expect(r.endpoints).toEqual([endpoints[1]]);
    expect(r.explain!()).toMatchObject({ profile: 'p', chosen: { endpoint: endpoints[1].key } });
    runCycle(s, request({ model: 'm', prompt: 'y' }), endpoints, 1);
    expect(picks).toBe(2);
  });
});

describe('single-profile-handler in the config', () => {
  const load = (yaml: string) => loadConfig(parseConfigText(yaml, 'test.yaml'), createRegistry(), context(makePool([]).pool), 'test.yaml');

  it('is added when there is one profile and no handler', () => {
    const c = load(head + 'plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: only\n  plugins: [{pluginRef: queue-scorer}]\n');
    expect(c.profileHandler.type).toBe('single-profile-handler');
    expect(c.plugins.get('single-profile-handler')).toBe(c.profileHandler);
  });

  it('a declared handler is used as is (under its own name), not duplicated', () => {
    const c = load(head + 'plugins:\n- type: queue-scorer\n- name: the-handler\n  type: single-profile-handler\n');
    expect(c.profileHandler.name).toBe('the-handler');
    expect([...c.plugins.values()].filter((p) => p.type === 'single-profile-handler')).toHaveLength(1);
  });

  it('rejects an explicitly declared single-profile-handler with two profiles', () => {
    const yaml = head + 'plugins:\n- type: queue-scorer\n- type: single-profile-handler\nschedulingProfiles:\n- name: a\n  plugins: [{pluginRef: queue-scorer}]\n- name: b\n  plugins: [{pluginRef: queue-scorer}]\n';
    expect(() => load(yaml)).toThrow(ConfigError);
    expect(() => load(yaml)).toThrow('test.yaml: single-profile-handler needs exactly one scheduling profile, found 2');
  });

  it('routes with the one configured profile end to end', () => {
    const { pool, endpoints } = makePool([{ waitingQueueSize: 4 }, { waitingQueueSize: 0 }, { waitingQueueSize: 9 }]);
    const c = loadConfig(parseConfigText(head + 'plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: only\n  plugins: [{pluginRef: queue-scorer}]\n', 't'), createRegistry(), context(pool), 't');
    const r = runCycle(new PipelineScheduler(c, createLogger('silent')), request({ model: 'm', prompt: 'x' }), endpoints, 3);
    expect(r.endpoints.map((e) => e.name)).toEqual(['pod-2', 'pod-1', 'pod-3']);
    expect(r.explain!()).toMatchObject({ profile: 'only' });
  });
});

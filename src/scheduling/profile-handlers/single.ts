// single-profile-handler: run the one profile once; its result routes.
import type { CycleState, ProfileHandler, ProfileResult, SchedulerProfile } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';

export class SingleProfileHandler implements ProfileHandler {
  readonly type: string = 'single-profile-handler';
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  checkProfiles(profiles: ReadonlyMap<string, SchedulerProfile>): void {
    if (profiles.size !== 1) throw new ConfigError(`${this.name === this.type ? this.type : `${this.type} "${this.name}"`} needs exactly one scheduling profile, found ${profiles.size}`);
  }

  pickProfiles(_state: CycleState, profiles: ReadonlyMap<string, SchedulerProfile>, results: ReadonlyMap<string, ProfileResult>): SchedulerProfile[] {
    if (results.size > 0) return [];
    const first = profiles.values().next();
    return first.done ? [] : [first.value];
  }

  primaryProfile(_state: CycleState, results: ReadonlyMap<string, ProfileResult>): string {
    return results.keys().next().value ?? '';
  }
}

export const singleProfileHandler = definePlugin({
  type: 'single-profile-handler',
  description: 'Runs the single scheduling profile; added automatically when there is one profile and no handler.',
  params: {},
  create: (name) => new SingleProfileHandler(name),
});

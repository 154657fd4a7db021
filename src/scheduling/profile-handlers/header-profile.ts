// header-profile-handler (llm-d Router, alpha): runs exactly one profile per
// request, the one a request header names. One profile configured: it always
// runs. Several: the header's value picks one; a missing or blank header runs
// defaultProfile; a value naming no profile runs nothing (the request gets no
// endpoint), and the reason is logged.
import type { Logger } from '../../log.ts';
import type { CycleState, ProfileHandler, ProfileResult, SchedulerProfile } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';
import { bounded } from '../../observability/bounded.ts';

export class HeaderProfileHandler implements ProfileHandler {
  readonly type = 'header-profile-handler';
  readonly name: string;
  readonly #header: string;
  readonly #defaultProfile: string;
  readonly #log: Logger;

  constructor(name: string, header: string, defaultProfile: string, log: Logger) {
    this.name = name;
    this.#header = header.toLowerCase();
    this.#defaultProfile = defaultProfile;
    this.#log = log;
  }

  checkProfiles(profiles: ReadonlyMap<string, SchedulerProfile>): void {
    if (profiles.size > 1 && !profiles.has(this.#defaultProfile)) {
      throw new ConfigError(`plugin "${this.name}" (header-profile-handler): defaultProfile "${this.#defaultProfile}" names no scheduling profile (profiles: ${[...profiles.keys()].join(', ')})`);
    }
  }

  #choose(state: CycleState, profiles: ReadonlyMap<string, SchedulerProfile>): SchedulerProfile | undefined {
    if (profiles.size === 1) return profiles.values().next().value;
    const value = state.request.headers.get(this.#header)?.trim();
    if (!value) return profiles.get(this.#defaultProfile);
    const chosen = profiles.get(value);
    if (!chosen) this.#log.warn({ plugin: this.name, header: this.#header, value: bounded(value, 64) }, 'the profile header names no configured scheduling profile; no endpoint is picked');
    return chosen;
  }

  pickProfiles(state: CycleState, profiles: ReadonlyMap<string, SchedulerProfile>, results: ReadonlyMap<string, ProfileResult>): SchedulerProfile[] {
    if (results.size > 0) return [];
    const p = this.#choose(state, profiles);
    return p ? [p] : [];
  }

  primaryProfile(_state: CycleState, results: ReadonlyMap<string, ProfileResult>): string {
    return results.keys().next().value ?? '';
  }
}

export const headerProfileHandler = definePlugin({
  type: 'header-profile-handler',
  stability: 'alpha',
  description: 'Runs the one scheduling profile named by a request header (defaultProfile when the header is absent; any single profile always).',
  params: {
    headerName: { type: 'string', default: 'EPP-Profile', doc: 'Request header naming the profile (matched case-insensitively).' },
    defaultProfile: { type: 'string', default: 'decode', doc: 'Profile run when the header is missing or blank and several profiles are configured.' },
  },
  create: (name, p, ctx) => {
    if (p.headerName.trim() === '') throw new ConfigError(`plugin "${name}" (header-profile-handler): parameter "headerName" must not be empty`);
    return new HeaderProfileHandler(name, p.headerName, p.defaultProfile, ctx.log);
  },
});

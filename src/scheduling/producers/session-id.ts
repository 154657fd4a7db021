// session-id-producer (llm-d Router): reads a session id from a request
// header or a cookie and publishes it as the request's SessionID for the
// session_id strategy of session-affinity-scorer / -filter. No id: nothing
// is written (no session preference).
import { stateKey, type CycleState, type DataProducer, type StateKey } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';

/** Longest session id kept: ids are client-supplied and become map keys. */
export const MAX_SESSION_ID = 256;

export const SESSION_ID: StateKey<string> = stateKey('SessionID', 'session-id-producer', 'session-id-producer');

/** The value of `name` in a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export class SessionIdProducer implements DataProducer {
  readonly type = 'session-id-producer';
  readonly name: string;
  readonly produces = [SESSION_ID];
  readonly #header: string | undefined;
  readonly #cookie: string | undefined;

  constructor(name: string, header: string | undefined, cookie: string | undefined) {
    this.name = name;
    this.#header = header?.toLowerCase();
    this.#cookie = cookie;
  }

  produce(state: CycleState): void {
    const h = state.request.headers;
    const id = this.#header !== undefined ? h.get(this.#header) : cookieValue(h.get('cookie'), this.#cookie!);
    if (id && id.length <= MAX_SESSION_ID) state.set(SESSION_ID, id);
  }
}

export const sessionIdProducer = definePlugin({
  type: 'session-id-producer',
  description: 'Publishes the request\'s session id (from a header or a cookie) for session-affinity-scorer/-filter with strategy session_id.',
  params: {
    headerName: { type: 'string', doc: 'Request header carrying the session id (case-insensitive). Exactly one of headerName, cookieName.' },
    cookieName: { type: 'string', doc: 'Cookie (in the Cookie header) carrying the session id.' },
  },
  create: (name, p) => {
    if ((p.headerName === undefined) === (p.cookieName === undefined) || p.headerName === '' || p.cookieName === '') {
      throw new ConfigError(`plugin "${name}" (session-id-producer): set exactly one of "headerName" and "cookieName"`);
    }
    return new SessionIdProducer(name, p.headerName, p.cookieName);
  },
});

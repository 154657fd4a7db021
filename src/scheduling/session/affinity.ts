// What session-affinity-scorer and session-affinity-filter share (llm-d
// Router v0.10): which endpoint a request's session is pinned to, by one of
// two strategies.
// - encoded_endpoint_header (default): the request header (x-session-token)
//   carries base64("namespace/name") of an endpoint; every response carries
//   the token of the endpoint that served it.
// - session_id: a client session id (from headers or the SessionID attribute
//   of session-id-producer) is bound to the endpoint it was last routed to;
//   bindings expire after evictionTtlSeconds unused. The table is bounded.
import { LRUCache } from 'lru-cache';
import type { SharedState } from '../../sync/shared-state.ts';
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, StateKey } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { MAX_SESSION_ID, SESSION_ID } from '../producers/session-id.ts';

export const SESSION_HEADER = 'x-session-token';
/** Session bindings kept at most (session ids are client-supplied). */
export const MAX_SESSIONS = 100_000;

export function sessionToken(e: Endpoint): string {
  return Buffer.from(`${e.namespace}/${e.name}`).toString('base64');
}

export const AFFINITY_PARAMS = {
  strategy: { type: 'string', enum: ['encoded_endpoint_header', 'session_id'], default: 'encoded_endpoint_header', doc: 'encoded_endpoint_header (the x-session-token header names the endpoint) or session_id (a client session id is pinned to its endpoint).' },
  profileName: { type: 'string', doc: 'Accepted for llm-d configs: the profile whose pick a session is pinned to; llm-epp pins the primary pick (P/D is not supported).' },
  headerName: { type: 'string', doc: 'Deprecated (use encodedEndpointHeaderConfig.header): the header carrying the endpoint token.', deprecated: 'use encodedEndpointHeaderConfig.header' },
  encodedEndpointHeaderConfig: { type: 'object', doc: '{header}: request/response header of the endpoint token (default x-session-token).' },
  sessionIdConfig: { type: 'object', doc: '{sources: [{header} | {attribute}], evictionTtlSeconds (300), evictionSweepSeconds (10)}.' },
} as const;

type Source = { header: string } | { attribute: string };

export interface SessionAffinity {
  /** The endpoint this request's session is pinned to, if any (among `endpoints`). */
  target(state: CycleState, endpoints: readonly Endpoint[]): Endpoint | undefined;
  /** After the pick: remember the binding (session_id). */
  bind(state: CycleState, primary: Endpoint): void;
  /** Headers for the client on the response (encoded_endpoint_header). */
  responseHeaders(served: Endpoint): [string, string][];
  /** State keys read (SessionID when a source is an attribute). */
  readonly consumes: readonly StateKey<unknown>[];
}

function objectKeys(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new ConfigError(`${where}: unknown field "${k}" (known: ${allowed.join(', ')})`);
}

/** Bindings shared with the other workers / replicas, under this plugin's name. */
export interface SessionShare {
  readonly sync: SharedState;
  readonly plugin: string;
}

export function createSessionAffinity(
  where: string,
  p: { strategy: string; headerName?: string; encodedEndpointHeaderConfig?: Record<string, unknown>; sessionIdConfig?: Record<string, unknown> },
  share?: SessionShare,
): SessionAffinity {
  if (p.strategy === 'encoded_endpoint_header') {
    const cfg = p.encodedEndpointHeaderConfig ?? {};
    objectKeys(cfg, ['header'], `${where}: encodedEndpointHeaderConfig`);
    const header = (typeof cfg.header === 'string' && cfg.header) || p.headerName || SESSION_HEADER;
    return encodedHeader(header.toLowerCase());
  }
  const cfg = p.sessionIdConfig ?? {};
  objectKeys(cfg, ['sources', 'evictionTtlSeconds', 'evictionSweepSeconds'], `${where}: sessionIdConfig`);
  const rawSources = cfg.sources ?? [{ header: 'x-session-id' }];
  if (!Array.isArray(rawSources) || rawSources.length === 0) throw new ConfigError(`${where}: sessionIdConfig.sources must be a non-empty list`);
  const sources: Source[] = rawSources.map((s, i) => {
    const w = `${where}: sessionIdConfig.sources[${i}]`;
    if (s === null || typeof s !== 'object') throw new ConfigError(`${w} must be a mapping with "header" or "attribute"`);
    objectKeys(s as Record<string, unknown>, ['header', 'attribute'], w);
    const { header, attribute } = s as { header?: unknown; attribute?: unknown };
    if ((header === undefined) === (attribute === undefined)) throw new ConfigError(`${w}: set exactly one of "header" and "attribute"`);
    if (header !== undefined) {
      if (typeof header !== 'string' || header === '') throw new ConfigError(`${w}.header must be a non-empty string`);
      return { header: header.toLowerCase() };
    }
    if (attribute !== 'SessionID') throw new ConfigError(`${w}.attribute: llm-epp publishes one request attribute, "SessionID" (session-id-producer); got ${JSON.stringify(attribute)}`);
    return { attribute };
  });
  const ttl = num(cfg.evictionTtlSeconds, 300, `${where}: sessionIdConfig.evictionTtlSeconds`);
  num(cfg.evictionSweepSeconds, 10, `${where}: sessionIdConfig.evictionSweepSeconds`);
  return sessionId(sources, ttl * 1000, share);
}

function num(v: unknown, def: number, where: string): number {
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !(v > 0)) throw new ConfigError(`${where} must be a number > 0, got ${JSON.stringify(v)}`);
  return v;
}

function encodedHeader(header: string): SessionAffinity {
  return {
    consumes: [],
    target(state, endpoints) {
      const token = state.request.headers.get(header);
      if (!token || token.length > 1024) return undefined;
      const target = Buffer.from(token, 'base64').toString('utf8');
      return endpoints.find((e) => `${e.namespace}/${e.name}` === target);
    },
    bind() {},
    responseHeaders: (served) => [[header, sessionToken(served)]],
  };
}

function sessionId(sources: readonly Source[], ttlMs: number, share: SessionShare | undefined): SessionAffinity {
  // Session id → endpoint key; LRU-bounded, entries expire when unused for the TTL.
  const bindings = new LRUCache<string, string>({ max: MAX_SESSIONS, ttl: ttlMs, updateAgeOnGet: true });
  // The other workers' / replicas' bindings (a session's next request may reach any of them).
  share?.sync.onSession(share.plugin, (id, ep) => {
    if (id.length <= MAX_SESSION_ID) bindings.set(id, ep.key);
  });
  const idOf = (state: CycleState): string | undefined => {
    for (const s of sources) {
      const v = 'header' in s ? state.request.headers.get(s.header) : state.get(SESSION_ID);
      if (v && v.length <= MAX_SESSION_ID) return v;
    }
    return undefined;
  };
  return {
    consumes: sources.some((s) => 'attribute' in s) ? [SESSION_ID] : [],
    target(state, endpoints) {
      const id = idOf(state);
      const key = id === undefined ? undefined : bindings.get(id);
      return key === undefined ? undefined : endpoints.find((e) => e.key === key);
    },
    bind(state, primary) {
      const id = idOf(state);
      if (id === undefined) return;
      // Shared only when it changes: a session's every request would otherwise be a message.
      if (bindings.peek(id) !== primary.key) share?.sync.sessionBound(share.plugin, id, primary.key);
      bindings.set(id, primary.key);
    },
    responseHeaders: () => [],
  };
}

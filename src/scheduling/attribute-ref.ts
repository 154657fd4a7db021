// Which endpoint attribute an endpoint-attribute-filter or -scorer reads:
// the attribute's name and its producer, as llm-d Router's DataKey. The
// producer defaults to the core metrics extractor (its customMetrics);
// "dcgm-extractor" reads GPUUtilization; "" reads any producer's.
import { CORE_PRODUCER, attributeOf } from '../pool/attributes.ts';
import type { Endpoint } from '../pool/endpoint.ts';
import type { Plugin } from './framework.ts';
import { ConfigError } from './params.ts';

export interface AttributeRef {
  readonly key: string;
  readonly producer: string;
  read(ep: Endpoint): number | undefined;
  /** The producer must be in the config (and, for the core extractor, the key among its customMetrics). */
  check(plugins: ReadonlyMap<string, Plugin>, where: string): void;
}

export function attributeRef(key: string | undefined, producer: string | undefined, where: string, keyParam: string): AttributeRef {
  if (key === undefined || key === '') throw new ConfigError(`${where}: parameter "${keyParam}" is required`);
  if (key.includes('/') && producer === undefined) {
    throw new ConfigError(`${where}: ${keyParam} "${key}" contains "/"; set "producer" explicitly (the plugin publishing it, or "" for any)`);
  }
  const p = producer ?? CORE_PRODUCER;
  return {
    key,
    producer: p,
    read: (ep) => attributeOf(ep, p, key),
    check(plugins, w) {
      if (p === '') return;
      const found = [...plugins.values()].some((x) => x.type === p);
      if (!found && p !== CORE_PRODUCER) throw new ConfigError(`${w}: producer "${p}" is not in the config; declare a ${p} plugin (and list it under its data source in dataLayer.sources)`);
    },
  };
}

/** A mapping parameter, or a clear error. */
export function mapping(v: unknown, where: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${where} must be a mapping`);
  return v as Record<string, unknown>;
}

export function strictFields(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new ConfigError(`${where}: unknown field "${k}" (known: ${allowed.join(', ')})`);
}

/** A number, also as a numeric string (YAML authors quote values). */
export function numberField(v: unknown, where: string): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new ConfigError(`${where} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

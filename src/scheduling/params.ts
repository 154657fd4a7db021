// Plugin parameter schemas: each plugin declares its parameters with types and
// defaults; the config loader validates user input against them and reports
// the plugin and the field on any mismatch. Unknown fields are errors, as the
// GAIE loader decodes strictly.

import { parseBytes, parseDuration } from '../units.ts';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** `deprecated`: accepted with a warning naming what to use instead (llm-d Router keeps deprecated fields working the same way). */
export type ParamSpec = ParamKind & { readonly deprecated?: string };

type ParamKind =
  | { type: 'number'; default?: number; min?: number; max?: number; exclusiveMin?: number; integer?: boolean; doc: string }
  | { type: 'boolean'; default?: boolean; doc: string }
  | { type: 'string'; default?: string; enum?: readonly string[]; doc: string }
  | { type: 'string[]'; default?: readonly string[]; doc: string }
  | { type: 'object'; default?: Record<string, unknown>; doc: string }
  | { type: 'list'; default?: unknown[]; doc: string };

export type ParamSchema = Readonly<Record<string, ParamSpec>>;

type Out<S extends ParamSpec> = S extends { type: 'number' }
  ? number
  : S extends { type: 'boolean' }
    ? boolean
    : S extends { type: 'string' }
      ? string
      : S extends { type: 'string[]' }
        ? string[]
        : S extends { type: 'list' }
          ? unknown[]
          : Record<string, unknown>;

export type Params<S extends ParamSchema> = { [K in keyof S]: S[K] extends { default: unknown } ? Out<S[K]> : Out<S[K]> | undefined };

/** Validate `raw` against `schema`; `where` names the plugin in errors ("plugin "x" (queue-scorer)"). */
export function readParams<S extends ParamSchema>(schema: S, raw: unknown, where: string, log?: { warn(obj: object, msg: string): void }): Params<S> {
  if (raw === undefined || raw === null) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${where}: "parameters" must be a mapping`);
  const input = raw as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!(key in schema)) {
      const known = Object.keys(schema);
      throw new ConfigError(`${where}: unknown parameter "${key}"${known.length ? ` (known: ${known.join(', ')})` : ' (it takes no parameters)'}`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(schema)) {
    const v = input[key];
    const field = `${where}: parameter "${key}"`;
    if (v === undefined || v === null) {
      out[key] = spec.default;
      continue;
    }
    if (spec.deprecated !== undefined) log?.warn({ where, parameter: key }, `DEPRECATION: ${where}: parameter "${key}" is deprecated: ${spec.deprecated}`);
    switch (spec.type) {
      case 'number': {
        // YAML users often quote numbers; accept numeric strings.
        const n = typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
        if (typeof n !== 'number' || !Number.isFinite(n)) throw new ConfigError(`${field} must be a number, got ${JSON.stringify(v)}`);
        if (spec.integer && !Number.isInteger(n)) throw new ConfigError(`${field} must be an integer, got ${n}`);
        if (spec.min !== undefined && n < spec.min) throw new ConfigError(`${field} must be ≥ ${spec.min}, got ${n}`);
        if (spec.exclusiveMin !== undefined && n <= spec.exclusiveMin) throw new ConfigError(`${field} must be > ${spec.exclusiveMin}, got ${n}`);
        if (spec.max !== undefined && n > spec.max) throw new ConfigError(`${field} must be ≤ ${spec.max}, got ${n}`);
        out[key] = n;
        break;
      }
      case 'boolean':
        if (typeof v !== 'boolean') throw new ConfigError(`${field} must be true or false, got ${JSON.stringify(v)}`);
        out[key] = v;
        break;
      case 'string':
        if (typeof v !== 'string') throw new ConfigError(`${field} must be a string, got ${JSON.stringify(v)}`);
        if (spec.enum && !spec.enum.includes(v)) throw new ConfigError(`${field} must be one of ${spec.enum.join(', ')}, got "${v}"`);
        out[key] = v;
        break;
      case 'string[]':
        if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new ConfigError(`${field} must be a list of strings`);
        out[key] = [...v];
        break;
      case 'object':
        if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${field} must be a mapping`);
        out[key] = v;
        break;
      case 'list':
        if (!Array.isArray(v)) throw new ConfigError(`${field} must be a list`);
        out[key] = v;
        break;
    }
  }
  return out as Params<S>;
}

/** A positive duration ("5s", "500ms") in milliseconds, or a ConfigError naming `field`. */
export function configDuration(field: string, text: string): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (e) {
    throw new ConfigError(`${field}: ${(e as Error).message}`);
  }
  if (!(ms > 0)) throw new ConfigError(`${field} must be positive`);
  return ms;
}

/** A size ("64Mi", "2GiB", bytes), or a ConfigError naming `field`. */
export function configBytes(field: string, text: string): number {
  try {
    return parseBytes(text);
  } catch (e) {
    throw new ConfigError(`${field}: ${(e as Error).message}`);
  }
}

/** A YAML mapping (not null, not a list). */
export function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Refuse a field `allowed` does not list, naming it and the allowed ones. */
export function strictKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw new ConfigError(`${where}: unknown field "${k}" (allowed: ${allowed.join(', ')})`);
  }
}

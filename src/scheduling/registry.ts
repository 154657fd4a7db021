// Plugins by type name. A plugin definition names its type, its parameter
// schema and how to build it; registering it is the only step needed for a
// config to use it.
import type { Plugin, PluginContext } from './framework.ts';
import { ConfigError, readParams, type ParamSchema, type Params } from './params.ts';
import { UNSUPPORTED_PLUGINS, unsupportedMessage } from './unsupported-plugins.ts';

/**
 * llm-d Router's plugin stability levels (PR #2073): alpha plugins run only
 * with --allow-experimental-plugins. llm-epp gives each plugin the level
 * llm-d gives it, so a config that needs the flag there needs it here.
 */
export type Stability = 'alpha' | 'beta' | 'stable';

export interface PluginDefinition<S extends ParamSchema = ParamSchema> {
  readonly type: string;
  /** Older names accepted in configs (e.g. by-label-selector). */
  readonly aliases?: readonly string[];
  readonly description: string;
  /** Default beta, as most of llm-d Router's plugins. */
  readonly stability?: Stability;
  /** Set when llm-d Router deprecates the type (or an alias): what to use instead. Loading it logs a warning. */
  readonly deprecated?: string;
  /** Aliases that are deprecated names, with what to use instead. */
  readonly deprecatedAliases?: readonly string[];
  readonly params: S;
  /** `raw`: the parameters as written, for plugins whose meaning depends on which were given. */
  create(name: string, params: Params<S>, ctx: PluginContext, raw?: unknown): Plugin;
}

export class PluginRegistry {
  readonly #defs = new Map<string, PluginDefinition>();

  register<S extends ParamSchema>(def: PluginDefinition<S>): this {
    for (const type of [def.type, ...(def.aliases ?? []), ...(def.deprecatedAliases ?? [])]) {
      if (this.#defs.has(type)) throw new Error(`plugin type "${type}" registered twice`);
      this.#defs.set(type, def as unknown as PluginDefinition);
    }
    return this;
  }

  get(type: string): PluginDefinition | undefined {
    return this.#defs.get(type);
  }

  /** Canonical type names, for error messages and docs. */
  types(): string[] {
    return [...new Set([...this.#defs.values()].map((d) => d.type))].sort();
  }

  definitions(): PluginDefinition[] {
    return [...new Set(this.#defs.values())];
  }

  create(type: string, name: string, rawParams: unknown, ctx: PluginContext): Plugin {
    const def = this.#defs.get(type);
    if (!def) {
      const unsupported = UNSUPPORTED_PLUGINS.get(type);
      if (unsupported) throw new ConfigError(unsupportedMessage(name, type, unsupported));
      throw new ConfigError(`plugin "${name}": unknown plugin type "${type}" (known: ${this.types().join(', ')})`);
    }
    const where = `plugin "${name}" (${def.type})`;
    if ((def.stability ?? 'beta') === 'alpha' && !ctx.allowExperimental) {
      throw new ConfigError(`${where}: an alpha (experimental) plugin; start llm-epp with --allow-experimental-plugins to use it, as llm-d Router requires`);
    }
    if (def.deprecated !== undefined && type === def.type) ctx.log.warn({ plugin: name, type }, `DEPRECATION: plugin type "${type}" is deprecated: ${def.deprecated}`);
    if (def.deprecatedAliases?.includes(type)) ctx.log.warn({ plugin: name, type }, `DEPRECATION: plugin type "${type}" is deprecated; use "${def.type}"`);
    const params = readParams(def.params, rawParams, where, ctx.log);
    return def.create(name, params, ctx, rawParams);
  }
}

/** A typed helper so definitions get their params inferred. */
export function definePlugin<S extends ParamSchema>(def: PluginDefinition<S>): PluginDefinition<S> {
  return def;
}

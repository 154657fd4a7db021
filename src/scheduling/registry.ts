// Plugins by type name. A plugin definition names its type, its parameter
// schema and how to build it; registering it is the only step needed for a
// config to use it.
import type { Plugin, PluginContext } from './framework.ts';
import { ConfigError, readParams, type ParamSchema, type Params } from './params.ts';

export interface PluginDefinition<S extends ParamSchema = ParamSchema> {
  readonly type: string;
  /** Older names accepted in configs (e.g. by-label-selector). */
  readonly aliases?: readonly string[];
  readonly description: string;
  readonly params: S;
  create(name: string, params: Params<S>, ctx: PluginContext): Plugin;
}

export class PluginRegistry {
  readonly #defs = new Map<string, PluginDefinition>();

  register<S extends ParamSchema>(def: PluginDefinition<S>): this {
    for (const type of [def.type, ...(def.aliases ?? [])]) {
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
    if (!def) throw new ConfigError(`plugin "${name}": unknown plugin type "${type}" (known: ${this.types().join(', ')})`);
    const where = `plugin "${name}" (${def.type})`;
    const params = readParams(def.params, rawParams, where);
    return def.create(name, params, ctx);
  }
}

/** A typed helper so definitions get their params inferred. */
export function definePlugin<S extends ParamSchema>(def: PluginDefinition<S>): PluginDefinition<S> {
  return def;
}

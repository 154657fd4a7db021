// endpoint-notification-source (llm-d data layer): delivers endpoint
// lifecycle events (added, removed) to its extractors as the pool changes.
// An extractor is any plugin with endpointChanged(); llm-epp's prefix
// producers are ones (they purge a removed endpoint's blocks).
import type { Plugin, PluginContext } from '../framework.ts';
import type { PoolChange } from '../../pool/datastore.ts';
import { definePlugin } from '../registry.ts';

export interface EndpointExtractor extends Plugin {
  endpointChanged(change: PoolChange): void;
}

export function isEndpointExtractor(p: Plugin): p is EndpointExtractor {
  return typeof (p as EndpointExtractor).endpointChanged === 'function';
}

export class EndpointNotificationSource implements Plugin {
  readonly type = 'endpoint-notification-source';
  readonly name: string;
  readonly #ctx: PluginContext;
  readonly #extractors: EndpointExtractor[] = [];
  #listening = false;

  constructor(name: string, ctx: PluginContext) {
    this.name = name;
    this.#ctx = ctx;
  }

  /** Called by the config loader for each extractor of this source in dataLayer.sources. */
  attach(extractor: EndpointExtractor): void {
    if (!this.#extractors.includes(extractor)) this.#extractors.push(extractor);
    if (this.#listening) return;
    this.#listening = true;
    this.#ctx.pool.on('change', (change) => {
      for (const x of this.#extractors) {
        try {
          x.endpointChanged(change);
        } catch (err) {
          this.#ctx.log.warn({ err, plugin: x.name }, 'endpoint extractor failed; the event is dropped for it');
        }
      }
    });
  }
}

export function isEndpointNotificationSource(p: Plugin): p is EndpointNotificationSource {
  return p instanceof EndpointNotificationSource;
}

export const endpointNotificationSource = definePlugin({
  type: 'endpoint-notification-source',
  description: 'Delivers endpoint added/removed events to its extractors (dataLayer.sources[].extractors), e.g. approx-prefix-cache-producer, which then drops a removed endpoint\'s blocks.',
  params: {},
  create: (name, _p, ctx) => new EndpointNotificationSource(name, ctx),
});

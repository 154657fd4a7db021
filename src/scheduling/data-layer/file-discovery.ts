// file-discovery (llm-d Router, dataLayer.discovery.pluginRef): the pool from
// a YAML or JSON endpoints file instead of Kubernetes — the same file
// --endpoints-file reads (`endpoints: [{name, namespace, address, port,
// labels}]`), with the same guards (size cap, held-back shrinking reloads).
import { isAbsolute } from 'node:path';
import type { Plugin } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';

export class FileDiscovery implements Plugin {
  readonly type = 'file-discovery';
  readonly name: string;
  readonly path: string;
  readonly watchFile: boolean;

  constructor(name: string, path: string, watchFile: boolean) {
    this.name = name;
    this.path = path;
    this.watchFile = watchFile;
  }
}

export function isFileDiscovery(p: Plugin): p is FileDiscovery {
  return p instanceof FileDiscovery;
}

export const fileDiscovery = definePlugin({
  type: 'file-discovery',
  description: 'Endpoints from a YAML/JSON file (endpoints: [{name, namespace, address, port, labels}]) instead of Kubernetes; used when dataLayer.discovery names it.',
  params: {
    path: { type: 'string', doc: 'Absolute path of the endpoints file (required).' },
    watchFile: { type: 'boolean', default: false, doc: 'Reload the file when it changes.' },
  },
  create: (name, p) => {
    if (p.path === undefined || p.path === '') throw new ConfigError(`plugin "${name}" (file-discovery): parameter "path" is required`);
    if (!isAbsolute(p.path)) throw new ConfigError(`plugin "${name}" (file-discovery): parameter "path" must be an absolute path, got "${p.path}"`);
    return new FileDiscovery(name, p.path, p.watchFile);
  },
});

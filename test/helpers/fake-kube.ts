// A fake Kubernetes API server for tests: list and watch over HTTP for any
// namespaced collection (pods, inferencepools, …), with equality label and
// field selectors, resource versions, and knobs to break watches and fail
// lists the way a real API server or network does.
import { KubeConfig } from '@kubernetes/client-node';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Obj {
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

interface Watcher {
  path: string;
  res: ServerResponse;
  labels: [string, string][];
  field: [string, string] | undefined;
  seen: Set<string>;
}

function parseSelector(s: string | null): [string, string][] {
  if (!s) return [];
  return s.split(',').map((p) => p.split('=') as [string, string]);
}

export class FakeKube {
  readonly #server: Server;
  readonly #store = new Map<string, Map<string, Obj>>();
  readonly #watchers = new Set<Watcher>();
  #rv = 100;
  /** Changes per collection, for replaying a resumed watch (a real server's watch cache). */
  readonly #history = new Map<string, { rv: number; obj: Obj; deleted: boolean }[]>();
  /** Watches from a resource version older than this get 410 Gone (history compacted). */
  #compactedRv = 0;
  /** API discovery: /apis/<group>/<version> → the resources installed there. */
  readonly #discovery = new Map<string, { kind: string; plural: string }[]>();
  #failLists = 0;
  #refuseWatches = false;
  lists = 0;
  watches = 0;
  port = 0;

  constructor() {
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.dropWatches();
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: 'tester' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'tester' }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** Create or replace an object in a collection, e.g. '/api/v1/namespaces/ns/pods'. */
  upsert(collection: string, obj: Obj): void {
    const items = this.#collection(collection);
    const copy = structuredClone(obj);
    copy.metadata.resourceVersion = String(++this.#rv);
    items.set(copy.metadata.name, copy);
    this.#record(collection, copy, false);
    this.#notify(collection, copy, false);
  }

  remove(collection: string, name: string): void {
    const items = this.#collection(collection);
    const obj = items.get(name);
    if (!obj) return;
    items.delete(name);
    obj.metadata.resourceVersion = String(++this.#rv);
    this.#record(collection, obj, true);
    this.#notify(collection, obj, true);
  }

  /** Forget the change history: watches resuming from an older resource version get 410 Gone. */
  compact(): void {
    this.#compactedRv = this.#rv;
    this.#history.clear();
  }

  #record(collection: string, obj: Obj, deleted: boolean): void {
    let h = this.#history.get(collection);
    if (!h) this.#history.set(collection, (h = []));
    h.push({ rv: this.#rv, obj: structuredClone(obj), deleted });
  }

  /** End every open watch as the API server does on its timeout; clients re-watch. */
  dropWatches(): void {
    for (const w of this.#watchers) w.res.end();
    this.#watchers.clear();
  }

  /** Answer the next `n` list calls with 500 and refuse watches until `heal()`. */
  breakApi(n: number): void {
    this.#failLists = n;
    this.#refuseWatches = true;
    this.dropWatches();
  }

  /** Serve API discovery for group/version: the kinds its CRDs define (as installing them would). */
  installCrds(group: string, version: string, kinds: { kind: string; plural: string }[]): void {
    this.#discovery.set(`/apis/${group}/${version}`, kinds);
  }

  heal(): void {
    this.#failLists = 0;
    this.#refuseWatches = false;
  }

  #collection(path: string): Map<string, Obj> {
    let m = this.#store.get(path);
    if (!m) this.#store.set(path, (m = new Map()));
    return m;
  }

  #matches(obj: Obj, labels: [string, string][], field: [string, string] | undefined): boolean {
    for (const [k, v] of labels) if (obj.metadata.labels?.[k] !== v) return false;
    if (field && field[0] === 'metadata.name' && obj.metadata.name !== field[1]) return false;
    return true;
  }

  #notify(collection: string, obj: Obj, deleted: boolean): void {
    for (const w of this.#watchers) {
      if (w.path !== collection) continue;
      const match = !deleted && this.#matches(obj, w.labels, w.field);
      let type: string | undefined;
      if (match) type = w.seen.has(obj.metadata.name) ? 'MODIFIED' : 'ADDED';
      else if (w.seen.has(obj.metadata.name)) type = 'DELETED'; // deleted, or no longer selected
      if (!type) continue;
      if (type === 'DELETED') w.seen.delete(obj.metadata.name);
      else w.seen.add(obj.metadata.name);
      w.res.write(JSON.stringify({ type, object: obj }) + '\n');
    }
  }

  /** The stored object, for tests (e.g. the Lease). */
  get(collection: string, name: string): Obj | undefined {
    return this.#store.get(collection)?.get(name);
  }

  // Single objects (leases): GET/PUT on collection/name, POST on the collection.
  #object(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const slash = path.lastIndexOf('/');
    const parent = path.slice(0, slash);
    const isObjectPath = parent.endsWith('/leases');
    const send = (code: number, body: unknown) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const status = (code: number, reason: string) => send(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message: reason });
    if (req.method === 'GET' && isObjectPath) {
      const obj = this.get(parent, path.slice(slash + 1));
      if (obj) send(200, obj);
      else status(404, 'NotFound');
      return true;
    }
    if (req.method !== 'POST' && req.method !== 'PUT') return false;
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c));
    req.on('end', () => {
      const obj = JSON.parse(raw) as Obj;
      // Like the API server, reject Lease times that are not six-digit MicroTime.
      const spec = (obj.spec ?? {}) as Record<string, unknown>;
      for (const k of ['acquireTime', 'renewTime']) {
        if (spec[k] !== undefined && !/\.\d{6}Z$/.test(String(spec[k]))) return status(400, `cannot parse ${k} ${String(spec[k])} as MicroTime`);
      }
      const collection = req.method === 'POST' ? path : parent;
      const existing = this.get(collection, obj.metadata.name);
      if (req.method === 'POST' && existing) return status(409, 'AlreadyExists');
      if (req.method === 'PUT') {
        if (!existing) return status(404, 'NotFound');
        if (obj.metadata.resourceVersion !== existing.metadata.resourceVersion) return status(409, 'Conflict');
      }
      this.upsert(collection, obj);
      send(req.method === 'POST' ? 201 : 200, this.get(collection, obj.metadata.name));
    });
    return true;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    // API discovery of a group version: its resources, or 404 when no CRD of it is installed.
    if (/^\/apis\/[^/]+\/[^/]+$/.test(path) && req.method === 'GET') {
      const kinds = this.#discovery.get(path);
      res.writeHead(kinds ? 200 : 404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          kinds
            ? { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: path.slice(6), resources: kinds.map((k) => ({ name: k.plural, singularName: '', namespaced: true, kind: k.kind, verbs: ['get', 'list', 'watch'] })) }
            : { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 },
        ),
      );
      return;
    }
    if (this.#object(req, res, path)) return;
    const labels = parseSelector(url.searchParams.get('labelSelector'));
    const fieldRaw = url.searchParams.get('fieldSelector');
    const field = fieldRaw ? (fieldRaw.split('=') as [string, string]) : undefined;
    const items = [...this.#collection(path).values()].filter((o) => this.#matches(o, labels, field));
    if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') {
      this.watches++;
      if (this.#refuseWatches) {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 500, message: 'unavailable' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders(); // the client waits for the headers before it counts the watch as started
      const rv = Number(url.searchParams.get('resourceVersion') ?? 0);
      if (rv > 0 && rv < this.#compactedRv) {
        // As the API server: the history is gone, the client must re-list.
        res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: `too old resource version: ${rv} (${this.#compactedRv})` } }) + '\n');
        return;
      }
      const w: Watcher = { path, res, labels, field, seen: new Set(items.map((o) => o.metadata.name)) };
      // Replay every change since the client's resource version, deletions included.
      for (const e of this.#history.get(path) ?? []) {
        if (e.rv <= rv) continue;
        const type = !e.deleted && this.#matches(e.obj, labels, field) ? 'MODIFIED' : 'DELETED';
        res.write(JSON.stringify({ type, object: e.obj }) + '\n');
      }
      this.#watchers.add(w);
      req.on('close', () => this.#watchers.delete(w));
      return;
    }
    this.lists++;
    if (this.#failLists > 0) {
      this.#failLists--;
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 500, message: 'unavailable' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: String(this.#rv) }, items }),
    );
  }
}

export function pod(name: string, ip: string | undefined, labels: Record<string, string>, ready = true, namespace = 'ns'): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels },
    spec: { containers: [{ name: 'vllm', image: 'vllm' }] },
    status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

export function inferencePool(name: string, matchLabels: Record<string, string>, ports: number[], namespace = 'ns'): Obj {
  return {
    apiVersion: 'inference.networking.k8s.io/v1',
    kind: 'InferencePool',
    metadata: { name, namespace },
    spec: { selector: { matchLabels }, targetPorts: ports.map((number) => ({ number })), endpointPickerRef: { name: 'llm-epp', port: { number: 9002 } } },
  };
}

// The order data producers run in: a producer that consumes another's state
// key runs after it (token-producer before precise-prefix-cache-producer,
// whatever order the config lists them in), otherwise declaration order, as
// llm-d Router orders its producers by their data dependencies. A cycle is a
// config error naming the plugins in it.
import { isDataProducer, type DataProducer, type Plugin, type StateKey } from './framework.ts';
import { ConfigError } from './params.ts';

export function producerOrder(plugins: Iterable<Plugin>): DataProducer[] {
  const producers = [...plugins].filter(isDataProducer);
  const writers = new Map<StateKey<unknown>, DataProducer[]>();
  for (const p of producers) {
    for (const k of p.produces) {
      let list = writers.get(k);
      if (!list) writers.set(k, (list = []));
      list.push(p);
    }
  }
  const out: DataProducer[] = [];
  const state = new Map<DataProducer, 'visiting' | 'done'>();
  const visit = (p: DataProducer, path: DataProducer[]): void => {
    const s = state.get(p);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(p)), p].map((q) => `"${q.name}"`).join(' → ');
      throw new ConfigError(`data producers depend on each other in a cycle: ${cycle}`);
    }
    state.set(p, 'visiting');
    for (const k of p.consumes ?? []) {
      for (const w of writers.get(k) ?? []) if (w !== p) visit(w, [...path, p]);
    }
    state.set(p, 'done');
    out.push(p);
  };
  for (const p of producers) visit(p, []);
  return out;
}

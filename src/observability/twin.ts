// Dual emission. llm-d Router v0.10 moved its metrics to the llm_d_epp_
// prefix and keeps writing each deprecated series (inference_objective_*,
// inference_pool_*, inference_extension_*) next to its current twin, so old
// and new dashboards both work. A Twin is one recorder over the pair: the
// current series with its full label set, and the deprecated one with the
// labels it had (a function maps one to the other).
import type { Counter, Gauge, Histogram } from 'prom-client';

type Labels = Record<string, string>;
/** The deprecated series' labels from the current series' labels. */
export type OldLabels<L extends Labels> = (l: L) => Labels;

export const sameLabels = <L extends Labels>(l: L): Labels => l;
export const noLabels = (): Labels => ({});

export class TwinCounter<L extends Labels> {
  readonly now: Counter<string>;
  readonly old: Counter<string> | undefined;
  readonly #map: OldLabels<L>;

  constructor(now: Counter<string>, old: Counter<string> | undefined, map: OldLabels<L>) {
    this.now = now;
    this.old = old;
    this.#map = map;
  }

  inc(labels: L, by = 1): void {
    this.now.inc(labels, by);
    this.old?.inc(this.#map(labels), by);
  }
}

export class TwinGauge<L extends Labels> {
  readonly now: Gauge<string>;
  readonly old: Gauge<string> | undefined;
  readonly #map: OldLabels<L>;

  constructor(now: Gauge<string>, old: Gauge<string> | undefined, map: OldLabels<L>) {
    this.now = now;
    this.old = old;
    this.#map = map;
  }

  inc(labels: L): void {
    this.now.inc(labels);
    this.old?.inc(this.#map(labels));
  }

  dec(labels: L): void {
    this.now.dec(labels);
    this.old?.dec(this.#map(labels));
  }

  set(labels: L, v: number): void {
    this.now.set(labels, v);
    this.old?.set(this.#map(labels), v);
  }
}

/** Something a value can be observed on: a histogram child, or a pair of them. */
export interface Observer {
  observe(v: number): void;
}

export class TwinHistogram<L extends Labels> {
  readonly now: Histogram<string>;
  readonly old: Histogram<string> | undefined;
  readonly #map: OldLabels<L>;

  constructor(now: Histogram<string>, old: Histogram<string> | undefined, map: OldLabels<L>) {
    this.now = now;
    this.old = old;
    this.#map = map;
  }

  observe(labels: L, v: number): void {
    this.now.observe(labels, v);
    this.old?.observe(this.#map(labels), v);
  }

  /** Both children for fixed labels, to keep where the label set is known up front (plugin timers). */
  child(labels: L): Observer {
    const a = this.now.labels(labels);
    const b = this.old?.labels(this.#map(labels));
    return b ? { observe: (v) => (a.observe(v), b.observe(v)) } : a;
  }
}

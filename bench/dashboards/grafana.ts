// A Grafana dashboard as the dashboard check reads it: every Prometheus
// target expression of every panel (rows included), its template variables
// resolved the way Grafana resolves them on load, and Grafana's interpolation
// of built-in and dashboard variables into an expression.
import { readFileSync } from 'node:fs';

export interface PanelTarget {
  /** Panel title, with the row it sits in. */
  panel: string;
  refId: string;
  expr: string;
}

interface RawPanel {
  title?: string;
  type?: string;
  panels?: RawPanel[];
  targets?: { expr?: unknown; refId?: unknown }[];
}

export interface GrafanaVariable {
  name: string;
  type: string;
  query?: unknown;
  current?: { value?: unknown };
  includeAll?: boolean;
  allValue?: string | null;
  multi?: boolean;
  regex?: string;
}

export interface Dashboard {
  title: string;
  targets: PanelTarget[];
  variables: GrafanaVariable[];
}

export function loadDashboard(path: string): Dashboard {
  let raw: { title?: unknown; panels?: RawPanel[]; templating?: { list?: GrafanaVariable[] } };
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`dashboard ${path}: ${(err as Error).message}`);
  }
  const targets: PanelTarget[] = [];
  const walk = (panels: RawPanel[], row: string) => {
    for (const p of panels) {
      const title = p.title ?? `(untitled ${p.type ?? 'panel'})`;
      if (p.type === 'row') {
        walk(p.panels ?? [], title);
        continue;
      }
      for (const t of p.targets ?? []) {
        if (typeof t.expr !== 'string' || t.expr.trim() === '') continue;
        targets.push({ panel: row ? `${row} / ${title}` : title, refId: typeof t.refId === 'string' ? t.refId : '?', expr: t.expr });
      }
      walk(p.panels ?? [], row);
    }
  };
  walk(raw.panels ?? [], '');
  if (targets.length === 0) throw new Error(`dashboard ${path}: no panel has a Prometheus expression`);
  return { title: typeof raw.title === 'string' ? raw.title : path, targets, variables: raw.templating?.list ?? [] };
}

/** A resolved variable: its values, and whether "All" is selected. */
export interface VariableValue {
  values: string[];
  all: boolean;
  allValue?: string;
  /** multi or includeAll: the value is formatted as a regex (Grafana's Prometheus data source). */
  regexFormat: boolean;
}

/** label_values(selector, label) or label_values(label). */
export function parseLabelValues(query: string): { selector: string | undefined; label: string } | undefined {
  const m = /^\s*label_values\(\s*(?:([\s\S]*\S)\s*,\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$/.exec(query);
  return m ? { selector: m[1], label: m[2] } : undefined;
}

/** Values of `label` on series matching `selector`, from the Prometheus the dashboard reads. */
export type LabelValuesLookup = (label: string, selector: string | undefined) => Promise<string[]>;

/** Resolve the dashboard's variables in order (a variable's query may use the ones before it). */
export async function resolveVariables(d: Dashboard, lookup: LabelValuesLookup, builtins: Readonly<Record<string, string>>): Promise<Map<string, VariableValue>> {
  const out = new Map<string, VariableValue>();
  for (const v of d.variables) {
    const where = `dashboard "${d.title}", variable $${v.name}`;
    const regexFormat = v.multi === true || v.includeAll === true;
    const current = typeof v.current?.value === 'string' && v.current.value !== '' ? v.current.value : undefined;
    let options: string[];
    switch (v.type) {
      case 'datasource':
        out.set(v.name, { values: [current ?? String(v.query ?? 'prometheus')], all: false, regexFormat: false });
        continue;
      case 'constant':
        out.set(v.name, { values: [String(v.query ?? '')], all: false, regexFormat: false });
        continue;
      case 'custom':
        options = String(v.query ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        break;
      case 'query': {
        const q = typeof v.query === 'string' ? v.query : (v.query as { query?: unknown } | undefined)?.query;
        const lv = typeof q === 'string' ? parseLabelValues(interpolate(q, out, builtins)) : undefined;
        if (!lv) throw new Error(`${where}: only label_values(...) queries are supported, got ${JSON.stringify(q)}`);
        options = [...new Set(await lookup(lv.label, lv.selector))].sort();
        break;
      }
      default:
        throw new Error(`${where}: variable type "${v.type}" is not supported`);
    }
    if (v.regex) {
      const body = /^\/(.*)\/([a-z]*)$/.exec(v.regex);
      const re = new RegExp(body ? body[1] : v.regex, body ? body[2] : '');
      options = options.filter((o) => re.test(o));
    }
    // Grafana on load: the saved value when it is still an option, else "All" (listed first when
    // includeAll), else the first option.
    if (current !== undefined && current !== '$__all' && options.includes(current)) {
      out.set(v.name, { values: [current], all: false, regexFormat });
    } else if (v.includeAll) {
      out.set(v.name, { values: options, all: true, allValue: v.allValue ?? undefined, regexFormat });
    } else if (options.length > 0) {
      out.set(v.name, { values: [options[0]], all: false, regexFormat });
    } else {
      throw new Error(`${where}: no value (its query matched no series)`);
    }
  }
  return out;
}

const REGEX_SPECIAL = /[\\^$*+?.()|{}[\]]/g;
const escapeRegex = (s: string) => s.replace(REGEX_SPECIAL, '\\$&');

function format(name: string, v: VariableValue, fmt: string | undefined): string {
  const values = v.values;
  switch (fmt) {
    case undefined:
      if (!v.regexFormat) return values[0].replace(/\\/g, '\\\\').replace(/'/g, "\\'");
      if (v.all && v.allValue !== undefined) return v.allValue;
      return values.length === 1 ? escapeRegex(values[0]) : `(${values.map(escapeRegex).join('|')})`;
    case 'regex':
      if (v.all && v.allValue !== undefined) return v.allValue;
      return values.length === 1 ? escapeRegex(values[0]) : `(${values.map(escapeRegex).join('|')})`;
    case 'raw':
    case 'csv':
      return v.all && v.allValue !== undefined ? v.allValue : values.join(',');
    case 'pipe':
      return values.join('|');
    default:
      throw new Error(`\${${name}:${fmt}}: format "${fmt}" is not supported`);
  }
}

/**
 * The expression with every $var, ${var}, ${var:format} and [[var]] replaced: built-ins
 * ($__rate_interval, …) first, then dashboard variables. An unknown variable is an error.
 */
export function interpolate(expr: string, vars: ReadonlyMap<string, VariableValue>, builtins: Readonly<Record<string, string>>): string {
  return expr.replace(/\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(\w+)/g, (whole, a?: string, af?: string, b?: string, bf?: string, c?: string) => {
    const name = (a ?? b ?? c)!;
    const fmt = af ?? bf;
    if (Object.hasOwn(builtins, name)) return builtins[name];
    const v = vars.get(name);
    if (!v) throw new Error(`unknown template variable ${whole}`);
    return format(name, v, fmt);
  });
}

/**
 * Grafana's built-in range variables for a query over `rangeSec` at step `intervalSec`, with
 * the data source's scrape interval `scrapeSec` ($__rate_interval = max($__interval + scrape
 * interval, 4 × scrape interval)).
 */
export function builtinVariables(rangeSec: number, intervalSec: number, scrapeSec: number): Record<string, string> {
  const rate = Math.max(intervalSec + scrapeSec, 4 * scrapeSec);
  return {
    __interval: `${intervalSec}s`,
    __interval_ms: String(intervalSec * 1000),
    __rate_interval: `${rate}s`,
    __range: `${rangeSec}s`,
    __range_s: String(rangeSec),
    __range_ms: String(rangeSec * 1000),
  };
}

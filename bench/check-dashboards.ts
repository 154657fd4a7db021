// npm run check:dashboards — both Grafana dashboards against llm-epp's
// /metrics page, through a real Prometheus: llm-epp's own
// (deploy/kubernetes/monitoring/grafana-dashboard.json) and llm-d Router
// v0.10's (test/fixtures/llm-d-router-v0.10/grafana/inference_gateway.json).
//
// A simulated fleet is served by llm-epp in this process, traffic goes
// through the benchmark gateway, Prometheus scrapes llm-epp every second,
// and every panel expression is run as Grafana would run it (template
// variables resolved, a range query over the traffic window):
//   OK     some series has a value
//   EMPTY  valid PromQL, no data; the metrics it names that llm-epp's page lacks are listed
//   ERROR  Prometheus refused the expression
// Exit status 1 when an expression errors, when one of llm-epp's own panels is
// EMPTY, or when one of llm-d's is EMPTY for anything but a feature llm-epp
// lacks (bench/dashboards/unsupported.ts).
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtinVariables, interpolate, loadDashboard, resolveVariables, type Dashboard } from './dashboards/grafana.ts';
import { MISSING_PROMETHEUS, PROMETHEUS_BIN, startPrometheus, type Prometheus, type Series } from './dashboards/prometheus.ts';
import { metricNames, pageSampleNames } from './dashboards/promql-names.ts';
import { startScenario, type Scenario } from './dashboards/scenario.ts';
import { unsupportedFeature } from './dashboards/unsupported.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SCRAPE_SEC = 1;
/** Scrapes of llm-epp while traffic flows: rate() over $__rate_interval (4 s) needs several. */
const TRAFFIC_SCRAPES = 6;
const JOB = 'llm-epp';
/** Target labels as the Prometheus Operator sets them for deploy/kubernetes/monitoring/servicemonitor.yaml. */
const TARGET_LABELS = { namespace: 'llm-epp-check', pod: 'llm-epp-0', service: 'llm-epp', container: 'llm-epp', endpoint: 'metrics' };

export type Role = 'own' | 'llm-d';

export interface DashboardSpec {
  name: string;
  /** Path from the repository root, or absolute. */
  file: string;
  /** own: every panel must have data. llm-d: panels may be empty only for features llm-epp lacks. */
  role: Role;
}

export const DASHBOARDS: readonly DashboardSpec[] = [
  { name: "llm-epp's dashboard", file: 'deploy/kubernetes/monitoring/grafana-dashboard.json', role: 'own' },
  { name: "llm-d Router v0.10's dashboard", file: 'test/fixtures/llm-d-router-v0.10/grafana/inference_gateway.json', role: 'llm-d' },
];

export type Status = 'OK' | 'EMPTY' | 'ERROR';

export interface Row {
  dashboard: string;
  panel: string;
  refId: string;
  /** As in the dashboard. */
  expr: string;
  /** As sent to Prometheus. */
  query: string;
  status: Status;
  series: number;
  /** EMPTY: metrics the expression names that llm-epp's page does not have. */
  absent: string[];
  pass: boolean;
  note: string;
}

export interface CheckReport {
  rows: Row[];
  /** One line per failing row or dashboard. */
  failures: string[];
  /** The tables and the summary, as printed. */
  text: string;
}

/** Whether a row passes, and why (pure; exported for tests). */
export function verdict(role: Role, status: Status, absent: readonly string[], error = ''): { pass: boolean; note: string } {
  if (status === 'ERROR') return { pass: false, note: error };
  if (status === 'OK') return { pass: true, note: '' };
  if (role === 'own') {
    return { pass: false, note: absent.length ? `not on llm-epp's page: ${absent.join(', ')}` : "every metric is on llm-epp's page, but no data" };
  }
  if (absent.length === 0) return { pass: false, note: "every metric is on llm-epp's page, but no data" };
  const unknown = absent.filter((m) => unsupportedFeature(m) === undefined);
  if (unknown.length) return { pass: false, note: `not on llm-epp's page: ${unknown.join(', ')}` };
  return { pass: true, note: `feature llm-epp lacks: ${[...new Set(absent.map((m) => unsupportedFeature(m)!))].join(', ')}` };
}

/** OK when some series has a finite value, as a panel would draw it. */
function statusOf(series: Series[]): Status {
  return series.some((s) => s.values.some(([, v]) => Number.isFinite(Number(v)))) ? 'OK' : 'EMPTY';
}

async function checkDashboard(spec: DashboardSpec, d: Dashboard, prom: Prometheus, page: Set<string>, start: number, end: number): Promise<{ rows: Row[]; failure?: string }> {
  const builtins = builtinVariables(Math.ceil(end - start), SCRAPE_SEC, SCRAPE_SEC);
  let vars;
  try {
    vars = await resolveVariables(d, (label, selector) => prom.labelValues(label, selector), builtins);
  } catch (err) {
    return { rows: [], failure: `${spec.name}: ${(err as Error).message}` };
  }
  const rows: Row[] = [];
  for (const t of d.targets) {
    const base = { dashboard: spec.name, panel: t.panel, refId: t.refId, expr: t.expr };
    let query: string;
    try {
      query = interpolate(t.expr, vars, builtins);
    } catch (err) {
      rows.push({ ...base, query: t.expr, status: 'ERROR', series: 0, absent: [], ...verdict(spec.role, 'ERROR', [], (err as Error).message) });
      continue;
    }
    const r = await prom.queryRange(query, start, end, SCRAPE_SEC);
    if (!r.ok) {
      rows.push({ ...base, query, status: 'ERROR', series: 0, absent: [], ...verdict(spec.role, 'ERROR', [], r.error) });
      continue;
    }
    const status = statusOf(r.series);
    const absent = status === 'EMPTY' ? metricNames(query).filter((m) => !page.has(m)) : [];
    rows.push({ ...base, query, status, series: r.series.length, absent, ...verdict(spec.role, status, absent) });
  }
  return { rows };
}

function table(rows: Row[]): string {
  const cells = rows.map((r) => [r.pass ? r.status : `${r.status}!`, `${r.panel} [${r.refId}]`, String(r.series), r.note]);
  const width = [0, 1, 2].map((i) => Math.max(...cells.map((c) => c[i].length), ['status', 'panel', 'series'][i].length));
  const line = (c: string[]) => `${c[0].padEnd(width[0])}  ${c[1].padEnd(width[1])}  ${c[2].padStart(width[2])}  ${c[3]}`.trimEnd();
  const out = [line(['status', 'panel', 'series', 'note']), ...cells.map(line)];
  for (const r of rows) if (!r.pass) out.push(`  FAILED ${r.panel} [${r.refId}]: ${r.query}`);
  return out.join('\n');
}

function summary(specs: readonly DashboardSpec[], rows: Row[], failures: string[]): string {
  const out = ['Summary'];
  for (const s of specs) {
    const mine = rows.filter((r) => r.dashboard === s.name);
    const n = (st: Status, pass?: boolean) => mine.filter((r) => r.status === st && (pass === undefined || r.pass === pass)).length;
    out.push(`  ${s.name}: ${mine.length} expression${mine.length === 1 ? '' : 's'} — ${n('OK')} OK, ${n('EMPTY', true)} EMPTY (features llm-epp lacks), ${n('EMPTY', false)} EMPTY (failing), ${n('ERROR')} ERROR`);
  }
  out.push(failures.length ? `FAILED: ${failures.length} problem(s)` : 'PASSED');
  return out.join('\n');
}

export interface CheckOptions {
  dashboards?: readonly DashboardSpec[];
  prometheusBin?: string;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
}

export async function checkDashboards(opts: CheckOptions = {}): Promise<CheckReport> {
  const specs = opts.dashboards ?? DASHBOARDS;
  const log = opts.log ?? (() => undefined);
  const bin = opts.prometheusBin ?? PROMETHEUS_BIN;
  if (!existsSync(bin)) throw new Error(bin === PROMETHEUS_BIN ? MISSING_PROMETHEUS : `Prometheus binary ${bin} not found`);
  const dashboards = specs.map((s) => loadDashboard(isAbsolute(s.file) ? s.file : join(ROOT, s.file)));
  let scenario: Scenario | undefined;
  let prom: Prometheus | undefined;
  try {
    log('starting the simulated fleet and llm-epp');
    scenario = await startScenario();
    log(`starting Prometheus (${bin}) to scrape llm-epp at ${scenario.metricsTarget} every ${SCRAPE_SEC} s`);
    prom = await startPrometheus({ bin, target: scenario.metricsTarget, job: JOB, labels: TARGET_LABELS, scrapeIntervalSec: SCRAPE_SEC });
    await prom.waitForScrapes(2);
    const start = Date.now() / 1000 - SCRAPE_SEC;
    const before = await prom.scrapes();
    log(`driving traffic through llm-epp for ${TRAFFIC_SCRAPES} scrapes`);
    let rounds = 0;
    while ((await prom.scrapes()) < before + TRAFFIC_SCRAPES) {
      await scenario.round(rounds++);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Let the last counts be scraped.
    await prom.waitForScrapes((await prom.scrapes()) + 2);
    const end = Date.now() / 1000;
    const page = pageSampleNames(await scenario.page());
    log(`${rounds} rounds of traffic; evaluating ${dashboards.reduce((n, d) => n + d.targets.length, 0)} expressions over ${Math.ceil(end - start)} s`);

    const rows: Row[] = [];
    const failures: string[] = [];
    const parts: string[] = [];
    for (let i = 0; i < specs.length; i++) {
      const { rows: mine, failure } = await checkDashboard(specs[i], dashboards[i], prom, page, start, end);
      rows.push(...mine);
      if (failure) failures.push(failure);
      for (const r of mine) if (!r.pass) failures.push(`${r.dashboard}: ${r.panel} [${r.refId}] ${r.status}: ${r.note}`);
      parts.push(`== ${specs[i].name} (${specs[i].file}, "${dashboards[i].title}") ==\n${failure ? `FAILED: ${failure}` : table(mine)}`);
    }
    parts.push(summary(specs, rows, failures));
    return { rows, failures, text: parts.join('\n\n') };
  } finally {
    await prom?.stop();
    await scenario?.close();
  }
}

if (import.meta.main) {
  // SIGINT/SIGTERM: exiting runs Prometheus' exit hook (kill it, remove its directory).
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
  try {
    const report = await checkDashboards({ log: (l) => process.stderr.write(`${l}\n`) });
    process.stdout.write(`${report.text}\n`);
    process.exit(report.failures.length ? 1 : 0);
  } catch (err) {
    process.stderr.write(`check:dashboards: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

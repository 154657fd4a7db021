// npm run check:dashboards in CI: llm-epp's Grafana dashboard and llm-d Router
// v0.10's, every panel expression run through a real Prometheus scraping
// llm-epp under traffic. Two probe dashboards ride along in the same run to
// show the check fails what it must (bad PromQL, an unknown variable, a metric
// llm-epp lacks, a panel with no data). Without /usr/bin/prometheus the test
// fails: install the Debian package `prometheus`.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DASHBOARDS, checkDashboards, verdict, type CheckReport, type DashboardSpec } from '../bench/check-dashboards.ts';
import { builtinVariables, interpolate, parseLabelValues, type VariableValue } from '../bench/dashboards/grafana.ts';
import { MISSING_PROMETHEUS, PROMETHEUS_BIN } from '../bench/dashboards/prometheus.ts';
import { metricNames, pageSampleNames } from '../bench/dashboards/promql-names.ts';
import { unsupportedFeature } from '../bench/dashboards/unsupported.ts';

describe('Grafana interpolation', () => {
  const builtins = builtinVariables(30, 1, 1);
  const vars = new Map<string, VariableValue>([
    ['namespace', { values: ['prod'], all: false, regexFormat: false }],
    ['pool', { values: ['a', 'b'], all: true, allValue: '.*', regexFormat: true }],
    ['model', { values: ['llama-3.1', 'qwen'], all: false, regexFormat: true }],
  ]);

  it("replaces built-ins as Grafana computes them ($__rate_interval = max(interval + scrape, 4 × scrape))", () => {
    expect(interpolate('rate(x[$__rate_interval]) + y[$__interval] + topk(1, z[$__range]) + $__range_s', vars, builtins)).toBe('rate(x[4s]) + y[1s] + topk(1, z[30s]) + 30');
    expect(builtinVariables(60, 15, 5).__rate_interval).toBe('20s');
  });

  it('formats single, All and multi values for Prometheus, in every variable syntax', () => {
    expect(interpolate('x{namespace="$namespace", name=~"${pool}"}', vars, builtins)).toBe('x{namespace="prod", name=~".*"}');
    expect(interpolate('x{m=~"[[model]]"}', vars, builtins)).toBe('x{m=~"(llama-3\\.1|qwen)"}');
    expect(interpolate('x{m=~"${model:raw}"}', vars, builtins)).toBe('x{m=~"llama-3.1,qwen"}');
  });

  it('refuses an unknown variable or format', () => {
    expect(() => interpolate('x{a="$nope"}', vars, builtins)).toThrow('unknown template variable $nope');
    expect(() => interpolate('x{a="${model:json}"}', vars, builtins)).toThrow('format "json" is not supported');
  });

  it('reads label_values queries', () => {
    expect(parseLabelValues('label_values(inference_pool_ready_pods{namespace="x", a="b"}, name)')).toEqual({ selector: 'inference_pool_ready_pods{namespace="x", a="b"}', label: 'name' });
    expect(parseLabelValues('label_values(namespace)')).toEqual({ selector: undefined, label: 'namespace' });
    expect(parseLabelValues('query_result(up)')).toBeUndefined();
  });
});

describe('metric names of an expression', () => {
  it('finds selected metrics, not functions, keywords, labels, durations or numbers', () => {
    const expr =
      'sum(rate(a_total{outcome="Dispatched", le=~"b_c"}[5m] offset 1m)) - sum by (priority, fairness_id) (b_bucket) and on(priority) topk(10, max_over_time(c[1h:1m])) > 1e-3 unless d:recorded';
    expect(metricNames(expr)).toEqual(['a_total', 'b_bucket', 'c', 'd:recorded']);
  });

  it('lists the sample names of a page', () => {
    expect([...pageSampleNames('# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 2\nh_count 1\nup 1\n')]).toEqual(['h_bucket', 'h_sum', 'h_count', 'up']);
  });
});

describe('verdicts', () => {
  it("fails any EMPTY panel of llm-epp's dashboard, and llm-d's only for features llm-epp has", () => {
    expect(verdict('own', 'OK', []).pass).toBe(true);
    expect(verdict('own', 'EMPTY', ['llm_d_epp_pd_decision_total'])).toEqual({ pass: false, note: "not on llm-epp's page: llm_d_epp_pd_decision_total" });
    expect(verdict('llm-d', 'EMPTY', ['llm_d_epp_pd_decision_total'])).toEqual({ pass: true, note: 'feature llm-epp lacks: P/D disaggregation' });
    expect(verdict('llm-d', 'EMPTY', ['llm_d_epp_inflight_tokens', 'llm_d_epp_request_totl']).pass).toBe(false);
    expect(verdict('llm-d', 'EMPTY', []).note).toBe("every metric is on llm-epp's page, but no data");
    expect(verdict('llm-d', 'ERROR', [], 'bad_data: parse error').pass).toBe(false);
  });

  it('names the feature of each metric llm-epp lacks, and none of the ones it has', () => {
    expect(unsupportedFeature('llm_d_epp_pd_decision_total')).toBe('P/D disaggregation');
    expect(unsupportedFeature('llm_d_epp_request_predicted_ttft_seconds_count')).toBe('predicted latency / SLO');
    expect(unsupportedFeature('llm_d_epp_kv_cache_index_lookup_latency_seconds_sum')).toBe('KV-cache index');
    expect(unsupportedFeature('llm_d_epp_encoder_cache_hit_ratio_bucket')).toBe('encoder cache');
    expect(unsupportedFeature('llm_d_epp_inflight_requests')).toBe('per-endpoint in-flight load');
    for (const m of ['llm_d_epp_request_total', 'llm_d_epp_request_duration_seconds_bucket', 'llm_d_epp_per_endpoint_queue_size', 'llm_d_epp_flow_control_queue_size', 'llm_d_epp_program_aware_jains_fairness_index']) {
      expect(unsupportedFeature(m), m).toBeUndefined();
    }
  });
});

describe('npm run check:dashboards', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llm-epp-dashboards-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const probe = (name: string, targets: Record<string, string>, variables: unknown[] = []): string => {
    const file = join(dir, `${name}.json`);
    const panels = Object.entries(targets).map(([title, expr]) => ({ type: 'timeseries', title, targets: [{ refId: 'A', expr }] }));
    writeFileSync(file, JSON.stringify({ title: name, panels, templating: { list: variables } }));
    return file;
  };
  const ns = { name: 'ns', type: 'query', query: { query: 'label_values(llm_d_epp_info, namespace)' }, current: {} };
  const probes: DashboardSpec[] = [
    {
      name: 'probe (llm-d role)',
      role: 'llm-d',
      file: probe('probe-llmd', {
        'lacked feature': 'sum(llm_d_epp_inflight_requests{namespace="$ns"})',
        'misspelt metric': 'sum(rate(llm_d_epp_request_totl[$__rate_interval]))',
        'no data': 'sum(llm_d_epp_request_total{model_name="no-model-was-asked-for-this"})',
        'bad promql': 'sum(rate(llm_d_epp_request_total[$__rate_interval])',
        'unknown variable': 'llm_d_epp_request_total{namespace="$nope"}',
        'has data': 'sum by (fairness_id) (llm_d_epp_request_total{namespace="$ns"})',
      }, [ns]),
    },
    { name: 'probe (own role)', role: 'own', file: probe('probe-own', { 'lacked feature': 'llm_d_epp_pd_decision_total' }) },
  ];

  let report: CheckReport | undefined;
  const run = async () => {
    if (!existsSync(PROMETHEUS_BIN)) throw new Error(MISSING_PROMETHEUS);
    report ??= await checkDashboards({ dashboards: [...DASHBOARDS, ...probes] });
    return report;
  };
  const rowsOf = (r: CheckReport, name: string) => r.rows.filter((x) => x.dashboard === name);

  it("runs every expression of llm-epp's dashboard and of llm-d's with data", async () => {
    const r = await run();
    const [own, llmd] = DASHBOARDS;
    const ownRows = rowsOf(r, own.name);
    const llmdRows = rowsOf(r, llmd.name);
    expect(ownRows.length).toBe(29);
    expect(llmdRows.length).toBe(35);
    expect(ownRows.filter((x) => x.status !== 'OK').map((x) => `${x.panel}: ${x.note}`), r.text).toEqual([]);
    // Every panel of llm-d's, its flow-control row included (the scenario runs with flow control on).
    expect(llmdRows.filter((x) => x.status !== 'OK').map((x) => `${x.panel}: ${x.note}`), r.text).toEqual([]);
    expect(llmdRows.filter((x) => x.panel.startsWith('Flow Control Layer')).length).toBe(15);
    // Template variables were resolved from Prometheus, as Grafana resolves them.
    expect(ownRows.find((x) => x.panel === 'Ready pods')!.query).toBe('max by (name) (inference_pool_ready_pods{namespace="llm-epp-check", name=~".*"})');
    for (const x of [...ownRows, ...llmdRows]) expect(x.query, x.panel).not.toMatch(/\$/);
    // Series labelled by fairness id came through, one per id sent plus the default.
    expect(rowsOf(r, 'probe (llm-d role)').find((x) => x.panel === 'has data')!.series).toBe(4);
    expect(r.failures.filter((f) => !f.startsWith('probe')), r.text).toEqual([]);
  }, 180_000);

  it('fails bad PromQL, unknown variables, missing metrics and panels without data', async () => {
    const r = await run();
    const byPanel = new Map(rowsOf(r, 'probe (llm-d role)').map((x) => [x.panel, x]));
    expect(byPanel.get('lacked feature')).toMatchObject({ status: 'EMPTY', pass: true, absent: ['llm_d_epp_inflight_requests'] });
    expect(byPanel.get('misspelt metric')).toMatchObject({ status: 'EMPTY', pass: false, note: "not on llm-epp's page: llm_d_epp_request_totl" });
    expect(byPanel.get('no data')).toMatchObject({ status: 'EMPTY', pass: false, absent: [] });
    expect(byPanel.get('bad promql')).toMatchObject({ status: 'ERROR', pass: false });
    expect(byPanel.get('bad promql')!.note).toMatch(/^bad_data: /);
    expect(byPanel.get('unknown variable')).toMatchObject({ status: 'ERROR', pass: false, note: 'unknown template variable $nope' });
    expect(byPanel.get('has data')).toMatchObject({ status: 'OK', pass: true });
    expect(rowsOf(r, 'probe (own role)')).toMatchObject([{ status: 'EMPTY', pass: false }]);
    expect(r.failures.length).toBe(5);
    expect(r.text).toMatch(/FAILED: 5 problem\(s\)$/);
  }, 180_000);

  it('refuses to start without the Prometheus binary', async () => {
    await expect(checkDashboards({ prometheusBin: join(dir, 'no-prometheus') })).rejects.toThrow(`Prometheus binary ${join(dir, 'no-prometheus')} not found`);
  });
});

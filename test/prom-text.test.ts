import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { parsePrometheusText, type ParseStats, type Sample } from '../src/metrics/prom-text.ts';

function fixture(name: string): string {
  return readFileSync(new URL(`./fixtures/metrics/${name}`, import.meta.url), 'utf8');
}

function newStats(): ParseStats {
  return { samples: 0, skipped: 0, malformed: 0 };
}

function total(m: Map<string, Sample[]>): number {
  let n = 0;
  for (const list of m.values()) n += list.length;
  return n;
}

/** The single sample of `name`; fails when there is not exactly one. */
function one(m: Map<string, Sample[]>, name: string): Sample {
  const list = m.get(name);
  expect(list, name).toBeDefined();
  expect(list!.length, name).toBe(1);
  return list![0];
}

function parseOk(text: string, wanted?: ReadonlySet<string>): Map<string, Sample[]> {
  const stats = newStats();
  const m = parsePrometheusText(text, wanted, stats);
  expect(stats.malformed).toBe(0);
  return m;
}

describe('fixtures', () => {
  it('keeps the # source: provenance line on every copied fixture', () => {
    for (const f of [
      'vllm-composite-datadog-vllm_metrics.prom',
      'vllm-v1-docs-design-metrics-example.prom',
      'vllm-v1-docs-design-metrics-http.prom',
      'sglang-0.4-docs-production_metrics.prom',
      'sglang-0.5.10-datadog-sglang_metrics.prom',
      'tgi-datadog-payload-excerpt.prom',
    ]) {
      expect(fixture(f).startsWith('# source: '), f).toBe(true);
    }
  });

  it('vLLM composite (Datadog): 185 samples in 84 names, exact values', () => {
    const stats = newStats();
    const m = parsePrometheusText(fixture('vllm-composite-datadog-vllm_metrics.prom'), undefined, stats);
    expect(stats).toEqual({ samples: 185, skipped: 0, malformed: 0 });
    expect(total(m)).toBe(185);
    expect(m.size).toBe(84);

    expect(m.get('python_gc_objects_collected_total')).toEqual([
      { name: 'python_gc_objects_collected_total', labels: { generation: '0' }, value: 7431 },
      { name: 'python_gc_objects_collected_total', labels: { generation: '1' }, value: 4936 },
      { name: 'python_gc_objects_collected_total', labels: { generation: '2' }, value: 1661 },
    ]);
    expect(one(m, 'process_virtual_memory_bytes')).toEqual({
      name: 'process_virtual_memory_bytes',
      labels: {},
      value: 6634254336,
    });
    expect(one(m, 'process_start_time_seconds').value).toBe(1718140558.3);
    expect(one(m, 'process_cpu_seconds_total').value).toBe(10.950000000000001);
    expect(one(m, 'process_max_fds').value).toBe(1048576);

    expect(one(m, 'vllm:cache_config_info')).toEqual({
      name: 'vllm:cache_config_info',
      labels: {
        block_size: '16',
        cache_dtype: 'auto',
        cpu_kvcache_space_bytes: '4294967296',
        enable_prefix_caching: 'False',
        gpu_memory_utilization: '0.9',
        num_cpu_blocks: '0',
        num_gpu_blocks: '7281',
        num_gpu_blocks_override: 'None',
        sliding_window: 'None',
        swap_space_bytes: '4294967296',
      },
      value: 1,
    });
    expect(one(m, 'vllm:num_requests_running')).toEqual({
      name: 'vllm:num_requests_running',
      labels: { model_name: 'facebook/opt-125m' },
      value: 0,
    });
    expect(one(m, 'vllm:kv_cache_usage_perc').value).toBe(0);
    expect(one(m, 'vllm:gpu_cache_usage_perc').value).toBe(0);

    const ttft = m.get('vllm:time_to_first_token_seconds_bucket')!;
    expect(ttft.length).toBe(17);
    expect(ttft.map((s) => s.labels.le)).toEqual([
      '0.001', '0.005', '0.01', '0.02', '0.04', '0.06', '0.08', '0.1', '0.25', '0.5', '0.75',
      '1.0', '2.5', '5.0', '7.5', '10.0', '+Inf',
    ]);
    expect(ttft.map((s) => s.value)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(one(m, 'vllm:time_to_first_token_seconds_sum').value).toBe(0.31326723098754883);
    expect(one(m, 'vllm:request_queue_time_seconds_sum').value).toBe(7.358146831393242e-5);
    expect(m.get('vllm:request_queue_time_seconds_bucket')!.map((s) => s.labels.le)).toEqual(['0.3', '+Inf']);
    expect(m.get('vllm:iteration_tokens_total_bucket')!.length).toBe(6);
    expect(one(m, 'vllm:iteration_tokens_total_sum').value).toBe(267);
    expect(m.get('vllm:engine_sleep_state')!.map((s) => [s.labels.sleep_state, s.value])).toEqual([
      ['awake', 1],
      ['weights_offloaded', 0],
      ['discard_all', 0],
    ]);
    expect(m.get('vllm:prompt_tokens_by_source_total')!.map((s) => s.value)).toEqual([53, 64, 0]);
    expect(one(m, 'vllm:prefix_cache_queries_total').value).toBe(117);
    // HELP/TYPE/comment lines produce nothing.
    expect(m.has('HELP')).toBe(false);
    expect(m.has('vllm:time_to_first_token_seconds')).toBe(false);
  });

  it('vLLM V1 design-doc example: 14 samples, no +Inf bucket', () => {
    const m = parseOk(fixture('vllm-v1-docs-design-metrics-example.prom'));
    expect(total(m)).toBe(14);
    expect(m.size).toBe(5);
    expect(one(m, 'vllm:num_requests_running').value).toBe(8);
    expect(one(m, 'vllm:generation_tokens_total').value).toBe(27453);
    expect(m.get('vllm:request_success_total')!.map((s) => [s.labels.finished_reason, s.value])).toEqual([
      ['stop', 1],
      ['length', 131],
      ['abort', 0],
    ]);
    const b = m.get('vllm:time_to_first_token_seconds_bucket')!;
    expect(b.length).toBe(8);
    expect(b.map((s) => s.value)).toEqual([0, 0, 0, 13, 97, 123, 138, 140]);
    expect(b.some((s) => s.labels.le === '+Inf')).toBe(false);
    expect(b[3].labels).toEqual({ le: '0.02', model_name: 'meta-llama/Llama-3.1-8B-Instruct' });
    expect(one(m, 'vllm:time_to_first_token_seconds_count').value).toBe(140);
  });

  it('vLLM http_* series without HELP/TYPE', () => {
    const m = parseOk(fixture('vllm-v1-docs-design-metrics-http.prom'));
    expect(total(m)).toBe(5);
    expect(one(m, 'http_requests_total')).toEqual({
      name: 'http_requests_total',
      labels: { handler: '/v1/completions', method: 'POST', status: '2xx' },
      value: 201,
    });
    expect(one(m, 'http_request_duration_highr_seconds_count')).toEqual({
      name: 'http_request_duration_highr_seconds_count',
      labels: {},
      value: 201,
    });
  });

  it('SGLang 0.4 docs: 91 samples, token_usage 0.28, queue 2826', () => {
    const m = parseOk(fixture('sglang-0.4-docs-production_metrics.prom'));
    expect(total(m)).toBe(91);
    expect(m.size).toBe(20);
    expect(one(m, 'sglang:token_usage').value).toBe(0.28);
    expect(one(m, 'sglang:num_queue_reqs').value).toBe(2826);
    expect(one(m, 'sglang:num_running_reqs').value).toBe(162);
    expect(one(m, 'sglang:prompt_tokens_total').value).toBe(8128902);
    expect(one(m, 'sglang:cache_hit_rate').value).toBe(0.007507552643049313);
    expect(one(m, 'sglang:time_to_first_token_seconds_sum').value).toBe(2351897.9474117756);
    expect(m.get('sglang:time_to_first_token_seconds_bucket')!.length).toBe(21);
    const fl = m.get('sglang:func_latency_seconds_bucket')!;
    expect(fl.length).toBe(19);
    expect(fl[1].labels).toEqual({ le: '0.07500000000000001', name: 'generate_request' });
    expect(one(m, 'sglang:time_per_output_token_seconds_count').value).toBe(7400757);
  });

  it('SGLang 0.5.10 (Datadog): 43 samples with tp_rank, integers without decimals', () => {
    const m = parseOk(fixture('sglang-0.5.10-datadog-sglang_metrics.prom'));
    expect(total(m)).toBe(43);
    expect(m.size).toBe(37);
    expect(one(m, 'sglang:num_queue_reqs')).toEqual({
      name: 'sglang:num_queue_reqs',
      labels: { model_name: 'facebook/opt-125m', tp_rank: '0' },
      value: 0,
    });
    expect(one(m, 'sglang:token_usage').value).toBe(0.25);
    expect(one(m, 'sglang:max_total_num_tokens').value).toBe(430839);
    expect(one(m, 'sglang:gen_throughput').value).toBe(425.5);
    expect(one(m, 'sglang:http_requests_active').labels).toEqual({ endpoint: '/generate', method: 'POST' });
    expect(m.get('sglang:queue_time_seconds_bucket')!.map((s) => s.labels.le)).toEqual(['0.001', '+Inf']);
  });

  it('TGI excerpt: 264 samples, blank lines, summary quantiles', () => {
    const m = parseOk(fixture('tgi-datadog-payload-excerpt.prom'));
    expect(total(m)).toBe(264);
    expect(m.size).toBe(21);
    expect(one(m, 'tgi_request_success').value).toBe(109);
    expect(one(m, 'tgi_request_failure').labels).toEqual({ err: 'validation' });
    expect(one(m, 'tgi_queue_size').value).toBe(0);
    expect(one(m, 'tgi_batch_current_size').value).toBe(0);
    expect(m.get('tgi_batch_inference_count')!.map((s) => [s.labels.method, s.value])).toEqual([
      ['decode', 1509],
      ['prefill', 16],
    ]);
    const inLen = m.get('tgi_request_input_length_bucket')!;
    expect(inLen.length).toBe(101);
    expect(inLen[2].labels.le).toBe('15.330000000000002');
    expect(inLen[100]).toEqual({ name: 'tgi_request_input_length_bucket', labels: { le: '+Inf' }, value: 109 });
    expect(m.get('tgi_request_max_new_tokens_bucket')!.length).toBe(101);
    expect(m.get('tgi_request_inference_duration_bucket')!.length).toBe(36);
    expect(one(m, 'tgi_request_inference_duration_sum').value).toBe(245.91743839099996);
    const q = m.get('tgi_request_skipped_tokens')!;
    expect(q.map((s) => s.labels.quantile)).toEqual(['0', '0.5', '0.9', '0.95', '0.99', '0.999', '1']);
    expect(one(m, 'tgi_request_skipped_tokens_count').value).toBe(3423);
  });
});

describe('format', () => {
  it('accepts ":" in names, arbitrary comments, blank and indented lines', () => {
    const m = parseOk(
      [
        '# source: somewhere',
        '#no space after hash',
        '# EOF',
        '',
        '   ',
        '  # indented comment',
        'vllm:a:b 1',
        ':leading_colon 2',
        '_x 3',
        '  indented_sample 4',
        'tabbed\t5',
      ].join('\n'),
    );
    expect([...m.keys()]).toEqual(['vllm:a:b', ':leading_colon', '_x', 'indented_sample', 'tabbed']);
    expect(one(m, 'tabbed').value).toBe(5);
  });

  it('reads labels in any order, with blanks and a trailing comma', () => {
    const m = parseOk('m{b="2",a="1"} 1\nm{ a = "1" , b = "2" , } 2\nm{} 3\nm{a="x"}4\n');
    const list = m.get('m')!;
    expect(list.map((s) => s.labels)).toEqual([{ b: '2', a: '1' }, { a: '1', b: '2' }, {}, { a: 'x' }]);
    expect(list.map((s) => s.value)).toEqual([1, 2, 3, 4]);
  });

  it('decodes escaped label values', () => {
    const m = parseOk(
      String.raw`m{a="back\\slash",b="say \"hi\"",c="two\nlines",d="\\n is not a newline",e="",f="#{}=,"} 1`,
    );
    expect(one(m, 'm').labels).toEqual({
      a: 'back\\slash',
      b: 'say "hi"',
      c: 'two\nlines',
      d: '\\n is not a newline',
      e: '',
      f: '#{}=,',
    });
  });

  it('keeps label strings of consecutive lines apart (reuse cache)', () => {
    const m = parseOk(
      [
        'm{le="0.5",x="abc"} 1',
        'm{le="0.5",x="ab"} 2',
        'm{len="0.5",x="abcd"} 3',
        'm{l="0.5",x="ab\\"c"} 4',
        'm{l="0.5",x="ab"} 5',
      ].join('\n'),
    );
    expect(m.get('m')!.map((s) => s.labels)).toEqual([
      { le: '0.5', x: 'abc' },
      { le: '0.5', x: 'ab' },
      { len: '0.5', x: 'abcd' },
      { l: '0.5', x: 'ab"c' },
      { l: '0.5', x: 'ab' },
    ]);
    // Each sample owns its labels object.
    const list = m.get('m')!;
    expect(list[0].labels).not.toBe(list[1].labels);
  });

  it('does not confuse a name with the previous sample name (reuse cache)', () => {
    const m = parseOk('m 1\nm_x 2\nm 3\nmm 4\nm\t5\nm{a="b"} 6\nm:x 7\n');
    expect([...m.keys()]).toEqual(['m', 'm_x', 'mm', 'm:x']);
    expect(m.get('m')!.map((s) => s.value)).toEqual([1, 3, 5, 6]);
    const l = parseOk('m{x="ab"} 1\nm{x="ab\\"c"} 2\nm{x="ab"} 3\nm{x="a"} 4\nm{x=""} 5').get('m')!;
    expect(l.map((s) => s.labels.x)).toEqual(['ab', 'ab"c', 'ab', 'a', '']);
  });

  it('accepts label names that shadow Object.prototype members', () => {
    const m = parseOk('m{constructor="c",toString="t",hasOwnProperty="h"} 1');
    expect(one(m, 'm').labels).toEqual({ constructor: 'c', toString: 't', hasOwnProperty: 'h' });
  });

  it('parses NaN, ±Inf and float spellings exactly as Number() would', () => {
    const text = [
      'a NaN',
      'b +Inf',
      'c -Inf',
      'd Inf',
      'e 1.7537953269352946e+09',
      'f 9.75010481363281e-06',
      'g -0.5',
      'h 1e3',
      'i .5',
      'j 5.',
      'k 0.1',
      'l 123456789012345',
      'm 1234567890123456789',
      'n -0',
      'o nan',
      'p 1E-7',
      'q +3',
    ].join('\n');
    const m = parseOk(text);
    const v = (n: string) => one(m, n).value;
    expect(v('a')).toBeNaN();
    expect(v('b')).toBe(Infinity);
    expect(v('c')).toBe(-Infinity);
    expect(v('d')).toBe(Infinity);
    expect(v('e')).toBe(1753795326.9352946);
    expect(v('f')).toBe(9.75010481363281e-6);
    expect(v('g')).toBe(-0.5);
    expect(v('h')).toBe(1000);
    expect(v('i')).toBe(0.5);
    expect(v('j')).toBe(5);
    expect(v('k')).toBe(0.1);
    expect(v('l')).toBe(123456789012345);
    expect(v('m')).toBe(1234567890123456789);
    expect(Object.is(v('n'), -0)).toBe(true);
    expect(v('o')).toBeNaN();
    expect(v('p')).toBe(1e-7);
    expect(v('q')).toBe(3);
  });

  it('hand-parsed decimals equal Number() on many random strings', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const lines: string[] = [];
    const expected: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const digits = 1 + rnd(17);
      let s = '';
      for (let d = 0; d < digits; d++) s += String(rnd(10));
      const dot = rnd(digits + 2);
      if (dot <= digits) s = s.slice(0, dot) + '.' + s.slice(dot);
      if (s === '.') s = '0.';
      if (rnd(3) === 0) s = '-' + s;
      lines.push(`x ${s}`);
      expected.push(Number(s));
    }
    const got = parseOk(lines.join('\n')).get('x')!.map((s) => s.value);
    expect(got).toEqual(expected);
  });

  it('reads optional integer timestamps', () => {
    const m = parseOk('a 1 1700000000123\nb{x="y"} 2.5 -5\nc 3 \nd 4 1700000000123  \n');
    expect(one(m, 'a')).toEqual({ name: 'a', labels: {}, value: 1, timestampMs: 1700000000123 });
    expect(one(m, 'b')).toEqual({ name: 'b', labels: { x: 'y' }, value: 2.5, timestampMs: -5 });
    expect('timestampMs' in one(m, 'c')).toBe(false);
    expect(one(m, 'd').timestampMs).toBe(1700000000123);
  });

  it('handles CRLF line endings and a missing final newline', () => {
    const m = parseOk('# HELP a x\r\n# TYPE a gauge\r\na{l="v"} 1\r\n\r\nb 2 1000\r\nc 3');
    expect(one(m, 'a')).toEqual({ name: 'a', labels: { l: 'v' }, value: 1 });
    expect(one(m, 'b')).toEqual({ name: 'b', labels: {}, value: 2, timestampMs: 1000 });
    expect(one(m, 'c').value).toBe(3);
  });

  it('CRLF version of a real fixture parses identically', () => {
    const lf = fixture('vllm-composite-datadog-vllm_metrics.prom');
    expect(parseOk(lf.replace(/\n/g, '\r\n'))).toEqual(parseOk(lf));
  });

  it('skips a leading BOM', () => {
    expect(one(parseOk('\ufeffa 1'), 'a').value).toBe(1);
  });

  it('skips malformed lines, counts them, keeps the good ones', () => {
    const bad = [
      'no_value',
      'no_value{a="b"}',
      'bad value',
      'hex 0x10',
      'bin 0b1',
      'two 1 2 3',
      'float_ts 1 1.5',
      '{a="b"} 1',
      '9starts_with_digit 1',
      'name-with-dash 1',
      'm{a="unterminated} 1',
      'm{a=unquoted} 1',
      'm{a="b" c="d"} 1',
      'm{a="b"',
      'm{a="b",a="c"} 1',
      'm{9a="b"} 1',
      'm{a="bad \\t escape"} 1',
      'm{a="trailing backslash\\',
      'm{__proto__="x"} 1',
      'm{a="b"} ',
      'm{a="b"} -',
      'm{a="b"} 1 x',
      'ünïcode 1',
      'm{ä="b"} 1',
    ];
    const good = ['ok1 1', 'ok2{a="b"} 2'];
    const lines = [good[0], ...bad, good[1]];
    const stats = newStats();
    const m = parsePrometheusText(lines.join('\n'), undefined, stats);
    expect(stats.malformed).toBe(bad.length);
    expect(stats.samples).toBe(2);
    expect(stats.firstMalformedLine).toBe(2);
    expect([...m.keys()]).toEqual(['ok1', 'ok2']);
    expect(one(m, 'ok2')).toEqual({ name: 'ok2', labels: { a: 'b' }, value: 2 });
  });

  it('accumulates stats across calls', () => {
    const stats = newStats();
    parsePrometheusText('a 1\nb x', undefined, stats);
    parsePrometheusText('a 1\nb 2', new Set(['a']), stats);
    expect(stats).toMatchObject({ samples: 2, skipped: 1, malformed: 1 });
  });

  it('never throws on garbage or on truncated pages', () => {
    const page = fixture('vllm-composite-datadog-vllm_metrics.prom');
    for (let cut = 0; cut < page.length; cut += 97) {
      expect(() => parsePrometheusText(page.slice(0, cut))).not.toThrow();
      expect(() => parsePrometheusText(page.slice(cut), new Set(['vllm:num_requests_waiting']))).not.toThrow();
    }
    let seed = 7;
    const alphabet = 'ab:_{}="\\, \t\n\r#0123456789.eE+-InfNa';
    for (let i = 0; i < 300; i++) {
      let s = '';
      for (let j = 0; j < 200; j++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        s += alphabet[seed % alphabet.length];
      }
      expect(() => parsePrometheusText(s)).not.toThrow();
    }
    expect(parsePrometheusText('').size).toBe(0);
  });
});

describe('wanted filter', () => {
  const page = fixture('vllm-composite-datadog-vllm_metrics.prom');

  it('returns only wanted names, identical to the unfiltered parse', () => {
    const wanted = new Set(['vllm:num_requests_waiting', 'vllm:cache_config_info', 'vllm:kv_cache_usage_perc', 'absent']);
    const stats = newStats();
    const m = parsePrometheusText(page, wanted, stats);
    expect([...m.keys()].sort()).toEqual(['vllm:cache_config_info', 'vllm:kv_cache_usage_perc', 'vllm:num_requests_waiting']);
    expect(stats).toEqual({ samples: 3, skipped: 182, malformed: 0 });
    const all = parsePrometheusText(page);
    for (const k of m.keys()) expect(m.get(k)).toEqual(all.get(k));
  });

  it('matches whole names only, not prefixes or same-length names', () => {
    const text = [
      'vllm:num_requests_running_x 1',
      'vllm:num_requests_runnin 2',
      'vllm:num_requests_runnimg 3',
      'vllm:num_requests_running{engine="0"} 4',
      'vllm:num_requests_running 5',
      'vllm:num_requests_running_x 1',
      'vllm:num_requests_running:x{engine="0"} 1',
      'vllm:num_requests_waiting 6',
      '  vllm:num_requests_waiting\t7',
    ].join('\n');
    const stats = newStats();
    const m = parsePrometheusText(text, new Set(['vllm:num_requests_running', 'vllm:num_requests_waiting']), stats);
    expect(m.get('vllm:num_requests_running')!.map((s) => s.value)).toEqual([4, 5]);
    expect(m.get('vllm:num_requests_waiting')!.map((s) => s.value)).toEqual([6, 7]);
    expect(stats.skipped).toBe(5);
  });

  it('returns histogram sample names when asked for them', () => {
    const m = parseOk(page, new Set(['vllm:time_to_first_token_seconds_bucket']));
    expect(m.size).toBe(1);
    expect(m.get('vllm:time_to_first_token_seconds_bucket')!.length).toBe(17);
  });

  it('filtering on any one name gives exactly that name\'s samples, on every fixture', () => {
    for (const f of [
      'vllm-composite-datadog-vllm_metrics.prom',
      'vllm-v1-docs-design-metrics-example.prom',
      'vllm-v1-docs-design-metrics-http.prom',
      'sglang-0.4-docs-production_metrics.prom',
      'sglang-0.5.10-datadog-sglang_metrics.prom',
      'tgi-datadog-payload-excerpt.prom',
    ]) {
      const text = fixture(f);
      const all = parseOk(text);
      const names = [...all.keys()];
      for (const name of names) {
        const m = parseOk(text, new Set([name]));
        expect([...m.keys()], `${f} ${name}`).toEqual([name]);
        expect(m.get(name)).toEqual(all.get(name));
      }
      // Pairs of names of equal length exercise the per-length candidate lists.
      const pair = names.filter((n) => names.some((o) => o !== n && o.length === n.length)).slice(0, 2);
      const m2 = parseOk(text, new Set(pair));
      expect(total(m2)).toBe(pair.reduce((a, n) => a + all.get(n)!.length, 0));
    }
  });

  it('an empty wanted set returns nothing', () => {
    expect(parsePrometheusText(page, new Set()).size).toBe(0);
  });
});

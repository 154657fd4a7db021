// Seeded ext_proc fuzzing: starts llm-epp in-process against a fake pod,
// drives many raw gRPC streams (message order under our control) from
// test/fuzz/generators.ts, and reports, without throwing, what went wrong:
// streams that never end, gRPC errors, valid requests not routed, leaked
// in-flight counts or buffered bytes, RSS growth, and a server that no longer routes.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { credentials, status as Status, type ClientDuplexStream, type StatusObject } from '@grpc/grpc-js';
import type { Director } from '../../src/request-control/director.ts';
import type { ProcessingRequest, ProcessingResponse } from '../../src/extproc/messages.ts';
import { ExternalProcessorClient } from '../../bench/lib/ext-proc-client.ts';
import { startTestApp, waitFor } from '../helpers/app-harness.ts';
import { FakePod } from '../helpers/fake-pod.ts';
import { makeCase, type FuzzCase } from './generators.ts';

export interface FuzzReport {
  cases: number;
  seed: number;
  failures: { case: number; kind: string; detail: string }[];
  rssStartMB: number;
  rssEndMB: number;
  inFlightLeft: number;
  bufferedLeft: number;
  durationMs: number;
  byOutcome: Record<string, number>;
}

const CONCURRENCY = 32;
/** A stream that went this long without a reply is treated as answered: the client half-closes. */
const QUIET_MS = 20;
/** After the client half-closes or cancels, the server must end the stream within this. */
const END_TIMEOUT_MS = 5000;
const RSS_LIMIT_MB = 100;

type Stream = ClientDuplexStream<ProcessingRequest, ProcessingResponse>;
type Raw = InstanceType<typeof ExternalProcessorClient>;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
// A full GC before reading RSS, even without --expose-gc (under vitest).
setFlagsFromString('--expose-gc');
const gc = (globalThis as { gc?: () => void }).gc ?? (runInNewContext('gc') as () => void);
function rssMB(): number {
  gc();
  return Math.round(process.memoryUsage().rss / 2 ** 20);
}

export interface FuzzOptions {
  cases: number;
  seed: number;
  onProgress?: (done: number) => void;
  /** Replay just these case indices (of the same seed) instead of 0..cases-1. */
  only?: number[];
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const indices = opts.only ?? Array.from({ length: opts.cases }, (_, i) => i);
  const t0 = performance.now();
  const pod = await new FakePod().start();
  // A long staleness threshold: a busy event loop must not turn valid requests into 503s.
  const { app, client } = await startTestApp([`--endpoints=${pod.key}`, '--metrics-staleness-threshold=1h'], { waitReady: 1 });
  const raw = new ExternalProcessorClient(`127.0.0.1:${app.ports.grpc}`, credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20 });
  const picks = trackPicks(app.director);
  const failures: FuzzReport['failures'] = [];
  const byOutcome: Record<string, number> = {};
  const seen = new Map<number, { gen: string; note?: string }>();
  let rssStartMB = 0;
  try {
    let next = 0;
    let done = 0;
    const runUntil = async (end: number) => {
      const worker = async () => {
        while (next < end) {
          const i = indices[next++];
          const c = makeCase(opts.seed, i, pod.key);
          seen.set(i, { gen: c.gen, note: c.note });
          const { outcome, problem } = await drive(raw, c, i);
          byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
          if (problem) failures.push({ case: i, kind: c.gen, detail: c.note ? `${problem} [${c.note}]` : problem });
          opts.onProgress?.(++done);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    };
    // RSS baseline after a warm-up: RSS keeps the pages of the highest peak so
    // far (V8 and malloc free lazily), so growth after it is a new peak or a
    // leak; the first quarter of the run sees most of the peaks.
    await runUntil(Math.min(indices.length, Math.max(500, Math.floor(indices.length / 4))));
    rssStartMB = rssMB();
    await runUntil(indices.length);

    // Every stream has ended: what they held must come back.
    const inFlight = () => app.datastore.list().reduce((s, e) => s + e.inFlight, 0);
    await waitFor(() => inFlight() === 0 && app.bufferBudget.used === 0, 2000).catch(() => {});
    const inFlightLeft = inFlight();
    const bufferedLeft = app.bufferBudget.used;
    if (inFlightLeft > 0) {
      failures.push({ case: -1, kind: 'leak', detail: `${inFlightLeft} in-flight request(s) never released` });
      // Attribute: requests picked more often than released (x-request-id is fuzz-<case>).
      for (const [id, n] of picks) {
        if (n <= 0) continue;
        const i = /^fuzz-(\d+)$/.test(id) ? Number(id.slice(5)) : -1;
        const note = seen.get(i)?.note;
        failures.push({ case: i, kind: seen.get(i)?.gen ?? 'unknown', detail: `in-flight leak: ${n} pick(s) never released${note ? ` [${note}]` : ''}` });
      }
    }
    if (bufferedLeft > 0) failures.push({ case: -1, kind: 'leak', detail: `${bufferedLeft} buffered request byte(s) never released` });

    // Still serving: a plain valid request routes.
    const ok = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'still alive?' }) }).catch((e: Error) => e);
    const dest = ok instanceof Error ? undefined : ok.setHeaders.get('x-gateway-destination-endpoint');
    if (!dest?.startsWith(pod.key)) {
      const why = ok instanceof Error ? ok.message : ok.immediate ? `immediate ${ok.immediate.status} ${ok.immediate.body}` : ok.violations.join('; ');
      failures.push({ case: -1, kind: 'serving', detail: `a valid request no longer routes: ${why}` });
    }
    const page = await fetch(`http://127.0.0.1:${app.ports.metrics}/metrics`).then((r) => r.status, (e: Error) => e.message);
    if (page !== 200) failures.push({ case: -1, kind: 'serving', detail: `GET /metrics answered ${page}` });
    const rssEndMB = rssMB();
    if (rssEndMB - rssStartMB > RSS_LIMIT_MB) failures.push({ case: -1, kind: 'rss', detail: `RSS grew ${rssEndMB - rssStartMB} MB (> ${RSS_LIMIT_MB})` });
    return { cases: indices.length, seed: opts.seed, failures, rssStartMB, rssEndMB, inFlightLeft, bufferedLeft, durationMs: Math.round(performance.now() - t0), byOutcome };
  } finally {
    raw.close();
    client.close();
    await app.stop(100);
    await pod.stop();
  }
}

/** One line per kind of failure: how many cases, and the first one in full. */
export function summarize(failures: FuzzReport['failures']): string[] {
  const groups = new Map<string, { n: number; first: FuzzReport['failures'][number] }>();
  for (const f of failures) {
    const key = `${f.kind}: ${f.detail.replace(/ \[.*\]$/, '').replace(/\d+/g, 'N').slice(0, 80)}`;
    const g = groups.get(key) ?? groups.set(key, { n: 0, first: f }).get(key)!;
    g.n++;
  }
  return [...groups.values()].map(({ n, first }) => `${first.kind} ×${n}, e.g. case ${first.case}: ${first.detail}`);
}

/** Count picks minus releases per x-request-id, to name the cases that leak. */
function trackPicks(d: Director): Map<string, number> {
  const open = new Map<string, number>();
  const bump = (id: string, by: number) => {
    const n = (open.get(id) ?? 0) + by;
    if (n === 0) open.delete(id);
    else open.set(id, n);
  };
  const pick = d.pick.bind(d);
  const complete = d.responseComplete.bind(d);
  d.pick = (req, subset) => {
    const routing = pick(req, subset);
    bump(req.requestId, 1);
    return routing;
  };
  d.responseComplete = (routing) => {
    // Only the first completion releases anything.
    if (!routing.released) bump(routing.request.requestId, -1);
    complete(routing);
  };
  return open;
}

const routed = (r: ProcessingResponse) =>
  (r.request_headers ?? r.request_body)?.response?.header_mutation?.set_headers?.some((o) => o.header.key === 'x-gateway-destination-endpoint') === true;

/** Run one case; `problem` is set when the server misbehaved. */
async function drive(raw: Raw, c: FuzzCase, index: number): Promise<{ outcome: string; problem?: string }> {
  const call = (raw as unknown as { Process(): Stream }).Process();
  const replies: ProcessingResponse[] = [];
  let last = Date.now();
  let status: StatusObject | undefined;
  const ended = new Promise<void>((resolve) => call.on('status', (s: StatusObject) => ((status = s), resolve())));
  call.on('data', (m: ProcessingResponse) => {
    replies.push(m);
    last = Date.now();
  });
  call.on('error', () => {}); // reported by 'status'
  for (const m of c.msgs) call.write(m);

  let cancelled = false;
  let halfClosed = false;
  if (c.finish === 'cancel') {
    await sleep(index % 16); // a short wait, then the client goes away
    if (!status) call.cancel();
    cancelled = true;
  } else {
    if (c.finish === 'reply') {
      // Like Envoy: wait for the server to answer (it may end the stream itself).
      last = Date.now();
      const deadline = last + END_TIMEOUT_MS;
      while (!status && Date.now() - last < QUIET_MS && Date.now() < deadline) await Promise.race([ended, sleep(QUIET_MS)]);
    }
    if (!status) {
      call.end();
      halfClosed = true;
    }
  }
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([ended.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), END_TIMEOUT_MS)))]);
  clearTimeout(timer);
  if (!inTime || !status) {
    call.cancel();
    return { outcome: 'timeout', problem: `stream not ended by the server ${END_TIMEOUT_MS} ms after the client ${cancelled ? 'cancelled' : 'half-closed'}` };
  }

  const imm = replies.find((r) => r.immediate_response)?.immediate_response;
  const wasRouted = replies.some(routed);
  const outcome = imm ? `immediate:${imm.status.code}` : wasRouted ? 'routed' : cancelled ? 'cancelled' : halfClosed ? 'unanswered' : 'server-ended';
  let problem: string | undefined;
  if (status.code !== Status.OK && !(cancelled && status.code === Status.CANCELLED)) {
    problem = `gRPC status ${status.code} (${Status[status.code]}): ${status.details}`;
  } else if (c.mustRoute && !wasRouted) {
    problem = `valid request not routed: ${imm ? `immediate ${imm.status.code} ${Buffer.from(imm.body ?? []).toString()}` : outcome}`;
  }
  return { outcome, problem };
}

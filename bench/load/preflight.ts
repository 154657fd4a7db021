// One small request to each target before a run, so a wrong URL, a stopped
// server or a wrong model fails at once with a message that says what to do,
// instead of a run whose every request failed. It also tells whether the
// target serves simulated pods (the simulator's x-sim-pod response header).
import { request } from 'undici';

export const PREFLIGHT_TIMEOUT_MS = 30_000;

export interface PreflightOptions {
  model: string;
  /** Request path. Default /v1/chat/completions. */
  path?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export interface PreflightResult {
  url: string;
  /** The response came from a simulated pod (bench/sim), directly or through a gateway. */
  simulated: boolean;
  pod?: string;
}

/** A preflight failure: `message` is for the user as it stands. */
export class PreflightError extends Error {
  override name = 'PreflightError';
}

const HINT_START = 'start it with npm run sim (simulated pods) or npm run gateway (a gateway in front of them)';

function bodyText(s: string): string {
  let t = s;
  try {
    const j = JSON.parse(s) as { error?: { message?: unknown } | string; message?: unknown };
    const m = typeof j.error === 'string' ? j.error : (j.error?.message ?? j.message);
    if (typeof m === 'string') t = m;
  } catch {
    // Not JSON: the text itself.
  }
  return t.replace(/\s+/g, ' ').trim().slice(0, 200);
}

/** Send one 1-token streamed chat request to `baseUrl`; throws PreflightError with advice. */
export async function preflight(baseUrl: string, o: PreflightOptions): Promise<PreflightResult> {
  const url = baseUrl.replace(/\/+$/, '') + (o.path ?? '/v1/chat/completions');
  const timeout = Math.min(o.timeoutMs ?? PREFLIGHT_TIMEOUT_MS, PREFLIGHT_TIMEOUT_MS);
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...o.headers },
      body: JSON.stringify({ model: o.model, messages: [{ role: 'user', content: 'preflight' }], max_tokens: 1, stream: true, stream_options: { include_usage: true } }),
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const msg = (e as Error).message ?? String(e);
    if (code === 'ECONNREFUSED') throw new PreflightError(`nothing listens on ${baseUrl}; ${HINT_START}`);
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') throw new PreflightError(`cannot resolve the host of ${baseUrl}`);
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') throw new PreflightError(`${baseUrl} did not answer a 1-token request within ${timeout / 1000} s`);
    if (code === 'ERR_INVALID_URL' || e instanceof TypeError) throw new PreflightError(`bad URL "${baseUrl}" (e.g. http://127.0.0.1:8081)`);
    throw new PreflightError(`${baseUrl}: ${typeof code === 'string' ? code + ' ' : ''}${msg}`);
  }
  let text: string;
  try {
    text = await res.body.text();
  } catch (e) {
    throw new PreflightError(`${baseUrl} broke off its answer to a 1-token request: ${(e as { code?: string }).code ?? (e as Error).message}`);
  }
  const pod = res.headers['x-sim-pod'] ?? res.headers['x-llm-epp-endpoint'];
  if (res.statusCode !== 200) {
    const detail = bodyText(text);
    let hint = '';
    if (res.statusCode === 404 && /model/i.test(detail)) hint = ` — is --model right? (npm run sim serves "sim-model")`;
    else if (res.statusCode === 404) hint = ` — is ${baseUrl} an OpenAI-compatible server (it should answer POST ${o.path ?? '/v1/chat/completions'})?`;
    else if (res.statusCode === 502 || res.statusCode === 503) hint = ' — the gateway has no healthy endpoint behind it: are the pods (npm run sim) and llm-epp running?';
    throw new PreflightError(`${url} answered HTTP ${res.statusCode}${detail ? ': ' + detail : ''}${hint}`);
  }
  const r: PreflightResult = { url: baseUrl, simulated: res.headers['x-sim-pod'] !== undefined };
  if (pod !== undefined) r.pod = Array.isArray(pod) ? pod[0] : pod;
  return r;
}

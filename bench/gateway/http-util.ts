// Header handling shared by the gateway's two paths (through the EPP, and the baselines).
import type { ServerResponse } from 'node:http';

// Connection-level headers are the proxy's own on each leg; content-length is
// recomputed for the body actually sent.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host', 'content-length']);

/** `key` must be lower case. */
export function isHopByHop(key: string): boolean {
  return HOP_BY_HOP.has(key);
}

/** A request's raw headers (name, value, …) as a flat list with lower-case names, hop-by-hop ones removed. */
export function clientHeaders(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i].toLowerCase();
    if (!HOP_BY_HOP.has(key)) out.push(key, raw[i + 1]);
  }
  return out;
}

/** Response headers from undici (lower-case names) as a flat list without hop-by-hop ones, plus extra pairs. */
export function responseHeaders(h: Record<string, string | string[] | undefined>, ...extra: string[]): string[] {
  const out: string[] = [];
  for (const k in h) {
    if (HOP_BY_HOP.has(k)) continue;
    const v = h[k];
    if (typeof v === 'string') out.push(k, v);
    else if (v) for (const one of v) out.push(k, one);
  }
  out.push(...extra);
  return out;
}

/** An OpenAI-style error reply from the gateway itself. */
export function replyError(res: ServerResponse, status: number, message: string): void {
  const body = JSON.stringify({ error: { message, type: 'gateway_error', code: status } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}

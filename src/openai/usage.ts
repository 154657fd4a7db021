// Token usage from model-server responses: a JSON body, or the SSE event that
// carries `usage` (vLLM sends it last when stream_options.include_usage is on).
// SSE events may be split across ext_proc chunks, so the partial line is kept.

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  cachedTokens: number | undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Usage object of chat/completions (prompt_/completion_) or Responses (input_/output_). */
export function usageFrom(u: unknown): Usage | undefined {
  if (u === null || typeof u !== 'object') return undefined;
  const o = u as Record<string, unknown>;
  const prompt = num(o.prompt_tokens) ?? num(o.input_tokens);
  const completion = num(o.completion_tokens) ?? num(o.output_tokens) ?? 0;
  if (prompt === undefined) return undefined;
  const details = (o.prompt_tokens_details ?? o.input_tokens_details) as Record<string, unknown> | null | undefined;
  return {
    promptTokens: prompt,
    completionTokens: completion,
    totalTokens: num(o.total_tokens) ?? prompt + completion,
    cachedTokens: details && typeof details === 'object' ? num(details.cached_tokens) : undefined,
  };
}

/** Usage of a complete JSON response body; undefined when absent or unparseable. */
export function usageFromJson(body: Buffer): Usage | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    if (parsed && typeof parsed === 'object') {
      if (parsed.usage !== undefined) return usageFrom(parsed.usage);
      // Responses API object.
      const resp = parsed.response as Record<string, unknown> | undefined;
      if (resp && typeof resp === 'object') return usageFrom(resp.usage);
    }
  } catch {
    // Not JSON (error page, binary): no usage.
  }
  return undefined;
}

const USAGE_MARK = Buffer.from('"usage"');

/**
 * Incremental SSE reader. Only `data:` lines that mention "usage" are JSON-
 * decoded, so a 200-chunk stream costs one scan per chunk, not 200 parses.
 */
export class SseUsageReader {
  /** Pieces of a line that spans chunks; joined only once its newline arrives. */
  #partial: Buffer[] | undefined;
  #partialBytes = 0;
  /** The current line passed 1 MiB: not an SSE event we read; skip to its end. */
  #overflow = false;
  usage: Usage | undefined;
  /** Number of SSE data events seen (excluding [DONE]). */
  events = 0;

  push(chunk: Buffer): void {
    let start = 0;
    if (this.#partial || this.#overflow) {
      const first = chunk.indexOf(10);
      if (first < 0) {
        this.#keep(chunk, 0);
        return;
      }
      if (this.#partial) {
        this.#partial.push(chunk.subarray(0, first));
        const line = Buffer.concat(this.#partial);
        this.#partial = undefined;
        this.#line(line, 0, line.length);
      }
      this.#partialBytes = 0;
      this.#overflow = false;
      start = first + 1;
    }
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      this.#line(chunk, start, nl);
      start = nl + 1;
    }
    if (start < chunk.length) this.#keep(chunk, start);
  }

  /** Flush a final line that had no trailing newline. */
  end(): void {
    if (this.#partial) {
      const line = Buffer.concat(this.#partial);
      this.#partial = undefined;
      this.#line(line, 0, line.length);
    }
    this.#partialBytes = 0;
    this.#overflow = false;
  }

  #keep(chunk: Buffer, from: number): void {
    if (this.#overflow) return;
    this.#partialBytes += chunk.length - from;
    if (this.#partialBytes > 1 << 20) {
      this.#partial = undefined;
      this.#overflow = true;
      return;
    }
    // Copy: the chunk's memory belongs to the gRPC message.
    (this.#partial ??= []).push(Buffer.from(chunk.subarray(from)));
  }

  #line(buf: Buffer, start: number, end: number): void {
    if (end > start && buf[end - 1] === 13) end--;
    // "data:" prefix (optional single space after the colon).
    if (end - start < 5 || buf[start] !== 100 || buf.toString('latin1', start, start + 5) !== 'data:') return;
    let s = start + 5;
    if (buf[s] === 32) s++;
    if (end - s === 6 && buf.toString('latin1', s, end) === '[DONE]') return;
    this.events++;
    // Search this line only (not the rest of the chunk).
    if (buf.subarray(s, end).indexOf(USAGE_MARK) < 0) return;
    try {
      const ev = JSON.parse(buf.toString('utf8', s, end)) as Record<string, unknown>;
      let u: Usage | undefined;
      if (ev.type === 'response.completed' && ev.response && typeof ev.response === 'object') {
        u = usageFrom((ev.response as Record<string, unknown>).usage);
      } else {
        u = usageFrom(ev.usage);
      }
      // With continuous usage stats every chunk carries usage; the last is final.
      if (u) this.usage = u;
    } catch {
      // A malformed event is skipped; the stream is still passed through.
    }
  }
}

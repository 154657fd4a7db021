import { describe, expect, it } from 'vitest';
import { SseUsageReader, usageFromJson } from '../src/openai/usage.ts';

describe('usage extraction', () => {
  it('reads usage from a JSON body (chat/completions and Responses shapes)', () => {
    expect(usageFromJson(Buffer.from('{"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,"prompt_tokens_details":{"cached_tokens":4}}}'))).toEqual({
      promptTokens: 5,
      completionTokens: 3,
      totalTokens: 8,
      cachedTokens: 4,
    });
    expect(usageFromJson(Buffer.from('{"object":"response","usage":{"input_tokens":9,"output_tokens":2}}'))).toMatchObject({ promptTokens: 9, completionTokens: 2, totalTokens: 11 });
    expect(usageFromJson(Buffer.from('not json'))).toBeUndefined();
    expect(usageFromJson(Buffer.from('{"choices":[]}'))).toBeUndefined();
  });

  it('finds the usage event in an SSE stream split at any byte, CRLF or LF', () => {
    const stream = Buffer.from(
      'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\n' +
        'data: {"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120}}\n\n' +
        'data: [DONE]\n\n',
    );
    for (let cut = 1; cut < stream.length; cut += 3) {
      const r = new SseUsageReader();
      r.push(stream.subarray(0, cut));
      r.push(stream.subarray(cut));
      r.end();
      expect(r.usage).toEqual({ promptTokens: 100, completionTokens: 20, totalTokens: 120, cachedTokens: undefined });
      expect(r.events).toBe(2);
    }
  });

  it('keeps the last usage with continuous usage stats, and reads response.completed', () => {
    const r = new SseUsageReader();
    r.push(Buffer.from('data: {"usage":{"prompt_tokens":1,"completion_tokens":1}}\ndata: {"usage":{"prompt_tokens":1,"completion_tokens":2}}\n'));
    expect(r.usage?.completionTokens).toBe(2);
    const resp = new SseUsageReader();
    resp.push(Buffer.from('event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":4,"output_tokens":6}}}\n\n'));
    expect(resp.usage).toMatchObject({ promptTokens: 4, completionTokens: 6 });
  });

  it('ignores malformed events and a final line without newline is flushed by end()', () => {
    const r = new SseUsageReader();
    r.push(Buffer.from('data: {"usage": broken}\n'));
    expect(r.usage).toBeUndefined();
    r.push(Buffer.from('data: {"usage":{"prompt_tokens":7,"completion_tokens":1}}'));
    expect(r.usage).toBeUndefined();
    r.end();
    expect(r.usage?.promptTokens).toBe(7);
  });
});

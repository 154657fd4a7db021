import { describe, expect, it } from 'vitest';
import { thrown } from './helpers/thrown.ts';
import { EppError } from '../src/errors.ts';
import { apiForPath, parseRequestBody } from '../src/openai/request.ts';

const parse = (body: unknown, path = '/v1/completions') => parseRequestBody(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), path);

function expect400(fn: () => unknown, message: RegExp): void {
  const e = thrown(fn, EppError);
  expect(e.status).toBe(400);
  expect(e.message).toMatch(message);
}

describe('OpenAI request parsing', () => {
  it('selects the API from the path suffix, ignoring query strings and trailing slashes', () => {
    expect(apiForPath('/v1/chat/completions')).toBe('chat');
    expect(apiForPath('/v1/chat/completions?x=1')).toBe('chat');
    expect(apiForPath('/openai/v1/responses/')).toBe('responses');
    expect(apiForPath('/v1/embeddings')).toBe('embeddings');
    expect(apiForPath('/v1/completions')).toBe('completions');
    expect(apiForPath('/anything')).toBe('completions');
  });

  it('reads completions prompts of every shape', () => {
    expect(parse({ model: 'm', prompt: 'abc' }).routingText).toBe('abc');
    expect(parse({ model: 'm', prompt: ['a', 'b'] }).routingText).toBe('a\nb');
    expect(parse({ model: 'm', prompt: [1, 2, 3] }).routingText).toBe('1 2 3 ');
    expect(parse({ model: 'm', prompt: [[1, 2], [3]] }).routingText).toBe('1 2 \n3 ');
    // A shared token prefix is a shared text prefix.
    expect(parse({ model: 'm', prompt: [11, 22, 33, 44] }).routingText.startsWith(parse({ model: 'm', prompt: [11, 22] }).routingText)).toBe(true);
  });

  it('reads chat messages with string and content-part content, tools first', () => {
    const r = parse(
      {
        model: 'm',
        tools: [{ type: 'function', function: { name: 'f' } }],
        messages: [
          { role: 'system', content: 'sys' },
          { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'http://img' } }] },
          { role: 'assistant', content: null, tool_calls: [{ id: '1' }] },
        ],
      },
      '/v1/chat/completions',
    );
    expect(r.api).toBe('chat');
    expect(r.routingText.startsWith('[{"type":"function"')).toBe(true);
    expect(r.routingText).toContain('system\nsys\n');
    expect(r.routingText).toContain('look\nhttp://img\n');
    // Same conversation prefix ⇒ same routing-text prefix.
    const a = parse({ model: 'm', messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'q1' }] }, '/v1/chat/completions');
    const b = parse({ model: 'm', messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'q2' }] }, '/v1/chat/completions');
    expect(a.routingText.slice(0, 10)).toBe(b.routingText.slice(0, 10));
  });

  it('reads the Responses API and embeddings', () => {
    const r = parse({ model: 'm', instructions: 'be brief', input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi' }] }] }, '/v1/responses');
    expect(r.routingText).toBe('instructions\nbe brief\nuser\nhi\n\n');
    expect(parse({ model: 'm', input: 'plain' }, '/v1/responses').routingText).toBe('plain');
    expect(parse({ model: 'e', input: ['x', 'y'] }, '/v1/embeddings').routingText).toBe('x\ny');
  });

  it('reads stream, stream_options and cache_salt', () => {
    const r = parse({ model: 'm', prompt: 'p', stream: true, stream_options: { include_usage: true }, cache_salt: 'tenant-a' });
    expect(r).toMatchObject({ stream: true, includeUsage: true, cacheSalt: 'tenant-a', model: 'm' });
    expect(parse({ model: 'm', prompt: 'p' })).toMatchObject({ stream: false, includeUsage: false, cacheSalt: undefined });
  });

  it('rejects malformed bodies with 400 and a message naming the field', () => {
    expect400(() => parse('{'), /not valid JSON/);
    expect400(() => parse('"str"'), /JSON object/);
    expect400(() => parse({ prompt: 'x' }), /"model"/);
    expect400(() => parse({ model: '', prompt: 'x' }), /"model"/);
    expect400(() => parse({ model: 'm' }), /"prompt" is required/);
    expect400(() => parse({ model: 'm', prompt: [1.5] }), /"prompt" must be/);
    expect400(() => parse({ model: 'm', prompt: {} }), /"prompt" must be/);
    expect400(() => parse({ model: 'm', messages: [] }, '/v1/chat/completions'), /"messages"/);
    expect400(() => parse({ model: 'm', messages: [{ content: 'x' }] }, '/v1/chat/completions'), /role/);
    expect400(() => parse({ model: 'm', messages: [{ role: 'user', content: 5 }] }, '/v1/chat/completions'), /content/);
    expect400(() => parse({ model: 'm', messages: [{ role: 'user' }] }, '/v1/chat/completions'), /content is required/);
    expect400(() => parse({ model: 'm' }, '/v1/responses'), /"input"/);
    expect400(() => parse({ model: 'm', prompt: 'x', cache_salt: 1 }), /cache_salt/);
    expect400(() => parseRequestBody(Buffer.from([0x7b, 0xff, 0x7d]), '/v1/completions'), /UTF-8/);
  });
});

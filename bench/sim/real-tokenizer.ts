// The simulator's --tokenizer: a real model tokenizer, synchronous, as the
// simulated engine needs it on its step loop. The chat template is rendered
// by llm-epp's own renderer (src/tokenize/local-tokenizer.ts); the text is
// encoded by the pure-JS @huggingface/tokenizers, whose ids equal the native
// binding's on the Qwen2.5 corpus of bench/tokenizer.bench.ts (3000/3000),
// because the native binding only encodes asynchronously.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { loadLocalTokenizer } from '../../src/tokenize/local-tokenizer.ts';
import type { PromptTokenizer } from './prompts.ts';

export async function loadSimTokenizer(path: string): Promise<PromptTokenizer> {
  const dir = statSync(path).isDirectory() ? path : join(path, '..');
  const local = await loadLocalTokenizer(path);
  const cfgPath = join(dir, 'tokenizer_config.json');
  const cfg = existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, 'utf8')) : {};
  const text = new Tokenizer(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')), cfg);
  const encode = (s: string, special: boolean) => Uint32Array.from(text.encode(s, { add_special_tokens: special }).ids);
  return {
    tokenizeChat: (body) => encode(local.renderChat(body as Parameters<typeof local.renderChat>[0]), false),
    tokenizeCompletion: (prompt, special) => (typeof prompt === 'string' ? encode(prompt, special) : Uint32Array.from(prompt, (x) => x >>> 0)),
  };
}

// A tiny Llama-style tokenizer for the tokenize tests, written to a temporary directory:
// a WordLevel model behind a Metaspace pre-tokenizer that prefixes "▁" only to the
// piece at offset 0 (prepend_scheme "first", the one position-dependent step a prefix
// cut must survive), a post-processor that adds <s> before and </s> after every
// sequence, [INST]/[/INST] as added tokens outside the model's vocabulary, and a chat
// template that writes the BOS itself.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const WORDS = ['hello', 'world', 'again', 'and', 'more'];

export function writeTinyTokenizer(): { dir: string; remove: () => void } {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (const w of WORDS) {
    vocab[`▁${w}`] = Object.keys(vocab).length;
    vocab[w] = Object.keys(vocab).length;
  }
  const modelSize = Object.keys(vocab).length;
  const added = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>'), added(modelSize, '[INST]'), added(modelSize + 1, '[/INST]')],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: {
        '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] },
        '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] },
      },
    },
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
  };
  const config = {
    bos_token: '<s>',
    eos_token: { __type: 'AddedToken', content: '</s>' },
    chat_template: "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST]{{ m.content }}[/INST]{% else %}{{ m.content }}{% endif %}{% endfor %}",
  };
  const dir = mkdtempSync(join(tmpdir(), 'tiny-tokenizer-'));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A sentence of the tiny vocabulary's words (unknown words become <unk>). */
export function tinyText(seed: number, words: number): string {
  let s = '';
  for (let i = 0; i < words; i++) s += `${i ? ' ' : ''}${WORDS[(seed * 7 + i * 3) % WORDS.length]}`;
  return s;
}

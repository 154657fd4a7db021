// In-process tokenization of OpenAI request bodies from the model's tokenizer files,
// giving the ids vLLM's render endpoints return for the same body:
// - chat (/v1/chat/completions/render): the chat template rendered (chat-template.ts),
//   then encoded with add_special_tokens false unless the body sets it (the template
//   already writes BOS and the like);
// - completions (/v1/completions/render): a text prompt is encoded with
//   add_special_tokens true unless the body sets false; a prompt of token ids is
//   checked against the vocabulary and passed through.
// An empty result is an error, as vLLM's "No token_ids rendered". Errors for a request
// are TokenizeRequestError with a short message that never quotes the prompt; a bad
// file is a TokenizerLoadError at load.
import { ChatTemplates } from './chat-template.ts';
import { TokenizeRequestError, type ChatRenderInput } from './chat-messages.ts';
import { selectCutTokens, type CutToken } from './prefix-cut.ts';
import { TextTokenizer } from './text-tokenizer.ts';
import { readTokenizerFiles } from './tokenizer-files.ts';

export { TokenizeRequestError, type ChatRenderInput } from './chat-messages.ts';
export { TokenizerLoadError } from './tokenizer-files.ts';

/** A completions prompt: text, or token ids the client tokenized itself. */
export type CompletionPrompt = string | readonly number[];

export class LocalTokenizer {
  /** Added tokens after which tokenization restarts (the prefix cache's cut points). */
  readonly cutTokens: readonly CutToken[];
  private readonly text: TextTokenizer;
  private readonly chat: ChatTemplates;

  constructor(text: TextTokenizer, chat: ChatTemplates) {
    this.text = text;
    this.chat = chat;
    this.cutTokens = selectCutTokens(text.addedTokens, (t) => text.modelMayProduce(t));
  }

  /** Ids of `text`, with or without the post-processor's special tokens. */
  encode(text: string, addSpecialTokens: boolean): Promise<Uint32Array> {
    return this.text.encode(text, addSpecialTokens);
  }

  /** Ids of `text` without special tokens (see withSpecialTokens). */
  encodeRaw(text: string): Promise<Uint32Array> {
    return this.text.encodeRaw(text);
  }

  /** Raw ids with the special tokens encode(…, true) would add. */
  withSpecialTokens(raw: Uint32Array): Uint32Array {
    return this.text.withSpecialTokens(raw);
  }

  /** The prompt text vLLM renders for a chat body. */
  renderChat(body: ChatRenderInput): string {
    return this.chat.render(body);
  }

  /** The ids vLLM's /v1/chat/completions/render returns for `body`. */
  async tokenizeChat(body: ChatRenderInput): Promise<Uint32Array> {
    return nonEmpty(await this.encode(this.renderChat(body), chatAddsSpecialTokens(body)));
  }

  /** The ids vLLM's /v1/completions/render returns for one prompt. */
  async tokenizeCompletion(prompt: CompletionPrompt, addSpecialTokens = true): Promise<Uint32Array> {
    if (typeof prompt === 'string') return nonEmpty(await this.encode(prompt, addSpecialTokens));
    return this.checkTokenIds(prompt);
  }

  /** A prompt given as token ids, checked: integers within the vocabulary. */
  checkTokenIds(prompt: readonly number[]): Uint32Array {
    if (!Array.isArray(prompt)) throw new TokenizeRequestError('prompt must be a string or a list of token ids');
    for (const id of prompt) {
      if (!Number.isInteger(id) || id < 0 || id > this.text.maxTokenId) throw new TokenizeRequestError('prompt holds a token id outside the vocabulary');
    }
    return nonEmpty(Uint32Array.from(prompt));
  }
}

/**
 * Reads and checks the tokenizer at `path` (a directory with tokenizer.json, or the
 * file): rejects with a TokenizerLoadError naming the file and the problem.
 */
export async function loadLocalTokenizer(path: string): Promise<LocalTokenizer> {
  const files = readTokenizerFiles(path);
  return new LocalTokenizer(await TextTokenizer.load(files), new ChatTemplates(files));
}

/** add_special_tokens of a chat body: false unless set (the template writes them). */
export function chatAddsSpecialTokens(body: ChatRenderInput): boolean {
  const v = body.add_special_tokens;
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new TokenizeRequestError('add_special_tokens must be true or false');
  return v;
}

export function nonEmpty(ids: Uint32Array): Uint32Array {
  if (ids.length === 0) throw new TokenizeRequestError('the prompt renders to no tokens');
  return ids;
}

// How a simulated pod turns an OpenAI request body into prompt token ids: the one place the
// generation routes, the render routes and the prefix-match oracle all go through, so the ids
// a render returns are the ids the pod's prefix cache uses for the same body.
// Two token models:
// - synthetic (default, cheap): chat messages go through a fixed template whose every piece
//   (role header, content + newline, the assistant header that ends the prompt) is padded with
//   spaces to whole 4-character tokens (tokens.ts). A conversation's prompt is then exactly a
//   prefix of its next turn's, token for token: the next turn repeats the same messages, the
//   same assistant header, and the reply (whole tokens) after it — as with a real template,
//   whose special tokens keep the pieces apart.
// - a real tokenizer (fleet --tokenizer): the model's chat template and tokenizer, as vLLM.
import { CHARS_PER_TOKEN, promptTokenIds, tokenize } from './tokens.ts';

/** A request body the token model cannot read (answered with 400). */
export class PromptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PromptError';
  }
}

/** What a pod tokenizes with. A real one is src/tokenize/local-tokenizer.ts's LocalTokenizer. */
export interface PromptTokenizer {
  /** Ids of a chat body: its messages rendered by the chat template, generation prompt included. */
  tokenizeChat(body: Record<string, unknown>): Uint32Array;
  /** Ids of one completions prompt: text is tokenized (with the special tokens, vLLM's default), token ids taken as they are. */
  tokenizeCompletion(prompt: string | readonly number[], addSpecialTokens: boolean): Uint32Array;
}

/** `s` padded with spaces to whole tokens. */
function wholeTokens(s: string): string {
  const r = s.length % CHARS_PER_TOKEN;
  return r === 0 ? s : s + ' '.repeat(CHARS_PER_TOKEN - r);
}

function contentText(content: unknown): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw new PromptError('message content must be a string or a list of parts');
  let s = '';
  for (const p of content) {
    const part = p as { type?: unknown; text?: unknown };
    if (part && part.type === 'text' && typeof part.text === 'string') s += part.text;
    // Non-text parts (images, audio) have no token model here; they add nothing.
  }
  return s;
}

/** The synthetic chat template: per message a role header and its content, then the assistant's header. */
export function renderChat(messages: unknown): string {
  if (!Array.isArray(messages) || messages.length === 0) throw new PromptError('messages must be a non-empty list');
  let out = '';
  for (const m of messages) {
    if (m === null || typeof m !== 'object') throw new PromptError('each message must be an object');
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string') throw new PromptError('each message needs a string role');
    out += wholeTokens(`<|${role}|>\n`) + wholeTokens(`${contentText(content)}\n`);
  }
  return out + wholeTokens('<|assistant|>\n');
}

/** Prompts of a /v1/completions body: one string, a list of strings, token ids, or lists of them. */
export function completionPrompts(prompt: unknown): Array<string | number[]> {
  const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && x >= 0);
  if (typeof prompt === 'string') return [prompt];
  if (isIds(prompt)) return [prompt];
  if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((p) => typeof p === 'string' || isIds(p))) return prompt as Array<string | number[]>;
  throw new PromptError('prompt must be a string, a list of strings, a list of token ids or a list of token-id lists');
}

/** The default token model (4 characters per token). */
export const SYNTHETIC_TOKENIZER: PromptTokenizer = {
  tokenizeChat: (body) => tokenize(renderChat(body.messages)),
  tokenizeCompletion: (prompt) => promptTokenIds(prompt),
};

/** The prompts' ids of a chat (one prompt) or completions body; tokenizer failures become PromptError. */
export function promptTokens(tokenizer: PromptTokenizer, body: Record<string, unknown>, chat: boolean): Uint32Array[] {
  if (chat && !Array.isArray(body.messages)) throw new PromptError('messages must be a non-empty list');
  const prompts = chat ? undefined : completionPrompts(body.prompt);
  const special = body.add_special_tokens ?? true;
  if (typeof special !== 'boolean') throw new PromptError('add_special_tokens must be true or false');
  try {
    return prompts === undefined ? [tokenizer.tokenizeChat(body)] : prompts.map((p) => tokenizer.tokenizeCompletion(p, special));
  } catch (e) {
    if (e instanceof PromptError) throw e;
    throw new PromptError(`cannot tokenize the prompt: ${String((e as Error).message ?? e).slice(0, 200)}`);
  }
}

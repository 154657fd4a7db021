// Parsing of OpenAI-style request bodies. This is the one place that decides
// what a request's routing text is (the text later cut into prefix blocks),
// the same way for every API.
import { isUtf8 } from 'node:buffer';
import { EppError, badRequest } from '../errors.ts';
import type { RequestBody } from './request-body.ts';
import type { ReadJson } from './streaming-json.ts';

export type ApiKind = 'completions' | 'chat' | 'responses' | 'embeddings' | 'messages' | 'generate';

export interface ParsedRequest {
  api: ApiKind;
  model: string;
  stream: boolean;
  /** stream_options.include_usage: the response will carry a usage chunk. */
  includeUsage: boolean;
  cacheSalt: string | undefined;
  /**
   * Text that identifies the prompt's prefix, in prompt order. Deterministic:
   * two requests sharing a prompt prefix share a prefix of this string.
   */
  routingText: string;
  /**
   * routingText as flat strings, in order. A long prompt read as it arrived is
   * never joined into one string unless something reads all of routingText:
   * prefix hashing encodes these parts one after the other instead.
   */
  routingParts: readonly string[];
  /** The decoded JSON body, for plugins that need other fields. */
  body: Record<string, unknown>;
}

/**
 * API selected from :path by suffix, as llm-d Router's parsers claim paths:
 * OpenAI (completions, chat completions and their /render forms, responses,
 * embeddings), Anthropic (/v1/messages, /v1/messages/count_tokens) and vLLM's
 * /inference/v1/generate. Undefined when no parser claims the path.
 */
export function claimedApi(path: string): ApiKind | undefined {
  const q = path.indexOf('?');
  let p = q >= 0 ? path.slice(0, q) : path;
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  if (p.endsWith('/render')) p = p.slice(0, -'/render'.length);
  if (p.endsWith('/chat/completions')) return 'chat';
  if (p.endsWith('/completions')) return 'completions';
  if (p.endsWith('/responses')) return 'responses';
  if (p.endsWith('/embeddings')) return 'embeddings';
  if (p.endsWith('/v1/messages') || p.endsWith('/v1/messages/count_tokens')) return 'messages';
  if (p.endsWith('/inference/v1/generate')) return 'generate';
  return undefined;
}

/** API for :path; paths no parser claims are read as completions, as the GAIE EPP did. */
export function apiForPath(path: string): ApiKind {
  return claimedApi(path) ?? 'completions';
}

export function parseRequestBody(raw: Buffer | RequestBody, path: string, api: ApiKind = apiForPath(path)): ParsedRequest {
  const read = Buffer.isBuffer(raw) ? undefined : raw.json;
  const body = read ? read.value : parseJson(Buffer.isBuffer(raw) ? raw : raw.bytes());
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('request body must be a JSON object');
  }
  const b = body as Record<string, unknown>;
  // vLLM's generate API may leave the model to the server.
  if (api === 'generate' && b.model === undefined) b.model = '';
  else if (typeof b.model !== 'string' || b.model === '') throw badRequest('"model" is required and must be a non-empty string', 'model');

  try {
    const text = new RoutingText(read?.pieces);
    extractRoutingText(api, b, text);
    return finish(api, b as Record<string, unknown> & { model: string }, text);
  } catch (e) {
    // Pathologically nested parts overflow JSON.stringify: still the client's fault.
    const err = e instanceof RangeError ? badRequest('request body is nested too deeply') : e;
    // The request named its model: its error is counted against it.
    if (err instanceof EppError) err.model = b.model as string;
    throw err;
  }
}

function parseJson(raw: Buffer): unknown {
  if (!isUtf8(raw)) throw badRequest('request body is not valid UTF-8');
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (e) {
    // V8's message quotes the body around the error; keep only the position so
    // no prompt text reaches logs.
    const pos = /position (\d+)/.exec((e as Error).message)?.[1];
    throw badRequest(`request body is not valid JSON${pos ? ` (error at byte ${pos})` : ''}`);
  }
}

/** Short strings are gathered into parts of about this many characters. */
const PART_CHARS = 16 * 1024;

/** The routing text as it is put together: all of it (a V8 concatenation) and its flat parts. */
class RoutingText {
  text = '';
  readonly #parts: string[] = [];
  #short = '';
  readonly #pieces: ReadJson['pieces'] | undefined;

  constructor(pieces: ReadJson['pieces'] | undefined) {
    this.#pieces = pieces;
  }

  add(s: string): void {
    // Concatenation, not join: V8 copies the characters only when something reads them all.
    this.text += s;
    if (s.length < PART_CHARS) {
      this.#short += s;
      if (this.#short.length >= PART_CHARS) this.#flush();
      return;
    }
    this.#flush();
    const pieces = this.#piecesOf(s);
    if (pieces) for (const p of pieces) this.#parts.push(p);
    else this.#parts.push(s);
  }

  parts(): string[] {
    this.#flush();
    return this.#parts;
  }

  #flush(): void {
    if (this.#short.length > 0) this.#parts.push(this.#short);
    this.#short = '';
  }

  /** A long string read as it arrived: its flat pieces (the same string object, so the comparison is immediate). */
  #piecesOf(s: string): readonly string[] | undefined {
    if (this.#pieces) for (const [full, pieces] of this.#pieces) if (full.length === s.length && full === s) return pieces;
    return undefined;
  }
}

function extractRoutingText(api: ApiKind, b: Record<string, unknown>, out: RoutingText): void {
  switch (api) {
    case 'completions':
      return promptText(b.prompt, 'prompt', out);
    case 'chat':
      return chatText(b, out);
    case 'responses':
      return responsesText(b, out);
    case 'embeddings':
      return promptText(b.input, 'input', out);
    case 'messages':
      return anthropicText(b, out);
    case 'generate':
      return generateText(b, out);
  }
}

function finish(api: ApiKind, b: Record<string, unknown> & { model: string }, text: RoutingText): ParsedRequest {
  const stream = b.stream === true;
  let includeUsage = false;
  if (b.stream_options !== undefined && b.stream_options !== null) {
    if (typeof b.stream_options !== 'object' || Array.isArray(b.stream_options)) {
      throw badRequest('"stream_options" must be an object', 'stream_options');
    }
    includeUsage = (b.stream_options as { include_usage?: unknown }).include_usage === true;
  }
  let cacheSalt: string | undefined;
  if (b.cache_salt !== undefined && b.cache_salt !== null) {
    if (typeof b.cache_salt !== 'string') throw badRequest('"cache_salt" must be a string', 'cache_salt');
    cacheSalt = b.cache_salt;
  }
  return { api, model: b.model, stream, includeUsage, cacheSalt, routingText: text.text, routingParts: text.parts(), body: b };
}

function isTokenList(v: unknown[]): boolean {
  for (const t of v) if (!Number.isInteger(t)) return false;
  return true;
}

// Token ids become decimal text, one separator each, so a shared token prefix
// is a shared string prefix.
function tokensText(tokens: readonly unknown[]): string {
  return tokens.join(' ') + ' ';
}

/** prompt / input: string, list of strings, token ids, or list of token-id lists. */
function promptText(value: unknown, field: string, out: RoutingText): void {
  if (typeof value === 'string') return out.add(value);
  if (Array.isArray(value) && value.length > 0) {
    if (value.every((v) => typeof v === 'string')) {
      for (let i = 0; i < value.length; i++) {
        if (i > 0) out.add('\n');
        out.add(value[i] as string);
      }
      return;
    }
    if (isTokenList(value)) return out.add(tokensText(value));
    if (value.every((v) => Array.isArray(v) && v.length > 0 && isTokenList(v))) {
      return out.add((value as unknown[][]).map(tokensText).join('\n'));
    }
  }
  if (value === undefined || value === null) throw badRequest(`"${field}" is required`, field);
  throw badRequest(`"${field}" must be a string, a list of strings, or token ids`, field);
}

function chatText(b: Record<string, unknown>, out: RoutingText): void {
  const messages = b.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw badRequest('"messages" is required and must be a non-empty list', 'messages');
  }
  // Tools are rendered ahead of the conversation by chat templates.
  if (Array.isArray(b.tools) && b.tools.length > 0) out.add(JSON.stringify(b.tools));
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as Record<string, unknown> | null;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw badRequest(`messages[${i}] must be an object`, 'messages');
    if (typeof m.role !== 'string') throw badRequest(`messages[${i}].role must be a string`, 'messages');
    out.add(m.role);
    out.add('\n');
    contentText(m.content, `messages[${i}].content`, m.tool_calls !== undefined || m.role === 'assistant', out);
    out.add('\n');
    if (m.tool_calls !== undefined && m.tool_calls !== null) {
      out.add(JSON.stringify(m.tool_calls));
      out.add('\n');
    }
  }
}

/** Message content: a string, null (assistant tool calls), or a list of typed parts. */
function contentText(content: unknown, where: string, mayBeNull: boolean, out: RoutingText): void {
  if (typeof content === 'string') return out.add(content);
  if (content === null || content === undefined) {
    if (mayBeNull) return;
    throw badRequest(`${where} is required`, 'messages');
  }
  if (!Array.isArray(content)) throw badRequest(`${where} must be a string or a list of content parts`, 'messages');
  for (let j = 0; j < content.length; j++) {
    const part = content[j] as Record<string, unknown> | null;
    if (part === null || typeof part !== 'object' || typeof part.type !== 'string') {
      throw badRequest(`${where}[${j}] must be an object with a "type"`, 'messages');
    }
    if (typeof part.text === 'string') out.add(part.text);
    else if (part.type === 'image_url' && typeof (part.image_url as { url?: unknown } | undefined)?.url === 'string') {
      out.add((part.image_url as { url: string }).url);
    } else {
      // Other media (audio, video, files): their JSON identifies them well enough.
      out.add(JSON.stringify(part));
    }
    out.add('\n');
  }
}

/** Responses API: optional instructions, then input (string or list of items). */
function responsesText(b: Record<string, unknown>, out: RoutingText): void {
  if (typeof b.instructions === 'string') {
    out.add('instructions\n');
    out.add(b.instructions);
    out.add('\n');
  }
  const input = b.input;
  if (typeof input === 'string') return out.add(input);
  if (!Array.isArray(input) || input.length === 0) throw badRequest('"input" is required and must be a string or a non-empty list', 'input');
  for (let i = 0; i < input.length; i++) {
    const item = input[i] as Record<string, unknown> | null;
    if (item === null || typeof item !== 'object' || Array.isArray(item)) throw badRequest(`input[${i}] must be an object`, 'input');
    if (typeof item.role === 'string') {
      out.add(item.role);
      out.add('\n');
      contentText(item.content, `input[${i}].content`, true, out);
      out.add('\n');
    } else {
      // function_call, function_call_output, reasoning, ...: keep them in order.
      out.add(JSON.stringify(item));
      out.add('\n');
    }
  }
}

/** Anthropic Messages: tools and system come first in the rendered prompt, then the turns. */
function anthropicText(b: Record<string, unknown>, out: RoutingText): void {
  const messages = b.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw badRequest('"messages" is required and must be a non-empty list', 'messages');
  }
  if (Array.isArray(b.tools) && b.tools.length > 0) {
    out.add(JSON.stringify(b.tools));
    out.add('\n');
  }
  if (b.system !== undefined && b.system !== null) {
    out.add('system\n');
    contentText(b.system, '"system"', false, out);
    out.add('\n');
  }
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as Record<string, unknown> | null;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw badRequest(`messages[${i}] must be an object`, 'messages');
    if (typeof m.role !== 'string') throw badRequest(`messages[${i}].role must be a string`, 'messages');
    out.add(m.role);
    out.add('\n');
    contentText(m.content, `messages[${i}].content`, false, out);
    out.add('\n');
  }
}

/** vLLM /inference/v1/generate: pre-tokenized prompt in token_ids. */
function generateText(b: Record<string, unknown>, out: RoutingText): void {
  const ids = b.token_ids;
  if (!Array.isArray(ids) || ids.length === 0 || !isTokenList(ids)) throw badRequest('"token_ids" is required and must be a non-empty list of token ids', 'token_ids');
  out.add(tokensText(ids));
}

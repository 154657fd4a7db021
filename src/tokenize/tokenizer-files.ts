// Reads a Hugging Face tokenizer from disk: tokenizer.json (the model, added tokens,
// pre/post-processing), tokenizer_config.json (chat template, special-token strings)
// and, when present, chat_template.jinja (newer repositories keep the template there,
// and transformers prefers it to the config's). `path` names the directory holding
// them or the tokenizer.json itself. Sizes are checked before reading, and every
// failure is a TokenizerLoadError naming the file and what is wrong with it.
// tokenizer.json is handed to the native tokenizer as text; only its "added_tokens"
// are parsed here — parsing the whole file (a 150k-entry vocabulary and as many
// merges) would cost ~0.5 s and ~100 MB of heap per thread for nothing.
import { readFileSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Largest tokenizer.json accepted (the biggest public ones are ~35 MB). */
const MAX_TOKENIZER_JSON_BYTES = 128 * 1024 * 1024;
/** Largest tokenizer_config.json / chat_template.jinja accepted. */
const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export class TokenizerLoadError extends Error {
  override name = 'TokenizerLoadError';
}

export interface TokenizerFiles {
  /** tokenizer.json's text. */
  readonly tokenizerText: string;
  /** tokenizer.json's "added_tokens", parsed (undefined when absent). */
  readonly addedTokens: unknown;
  /** tokenizer_config.json, parsed; {} when the file is absent. */
  readonly config: Record<string, unknown>;
  /** chat_template.jinja's text, when the file exists. */
  readonly chatTemplateFile: string | undefined;
  /** The tokenizer.json path, for messages. */
  readonly source: string;
}

export function readTokenizerFiles(path: string): TokenizerFiles {
  const st = statOrNull(path);
  if (st === null) throw new TokenizerLoadError(`tokenizer path ${path} does not exist`);
  const dir = st.isDirectory() ? path : dirname(path);
  const tokenizerPath = st.isDirectory() ? join(path, 'tokenizer.json') : path;
  if (!st.isDirectory() && basename(path) !== 'tokenizer.json' && !path.endsWith('.json')) {
    throw new TokenizerLoadError(`tokenizer path ${path} is neither a directory nor a tokenizer.json file`);
  }
  const tokenizerText = readText(tokenizerPath, MAX_TOKENIZER_JSON_BYTES);
  if (tokenizerText === undefined) throw new TokenizerLoadError(`${tokenizerPath} does not exist (a Hugging Face tokenizer.json is required)`);
  const added = topLevelValue(tokenizerText, 'added_tokens', tokenizerPath);
  const addedTokens = added === undefined ? undefined : parseJson(added, tokenizerPath);
  const config = readJsonObject(join(dir, 'tokenizer_config.json'), MAX_CONFIG_BYTES) ?? {};
  const chatTemplateFile = readText(join(dir, 'chat_template.jinja'), MAX_CONFIG_BYTES);
  return { tokenizerText, addedTokens, config, chatTemplateFile, source: tokenizerPath };
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/** The file's text, undefined when it does not exist; any other failure throws. */
function readText(path: string, maxBytes: number): string | undefined {
  const st = statOrNull(path);
  if (st === null) return undefined;
  if (!st.isFile()) throw new TokenizerLoadError(`${path} is not a regular file`);
  if (st.size > maxBytes) throw new TokenizerLoadError(`${path} is ${st.size} bytes, more than the ${maxBytes}-byte limit`);
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new TokenizerLoadError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/** The file's JSON object, undefined when it does not exist. */
function readJsonObject(path: string, maxBytes: number): Record<string, unknown> | undefined {
  const text = readText(path, maxBytes);
  return text === undefined ? undefined : parseJsonObject(text, path);
}

function parseJsonObject(text: string, path: string): Record<string, unknown> {
  const parsed = parseJson(text, path);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TokenizerLoadError(`${path} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new TokenizerLoadError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * The JSON text of `key`'s value in the object `json` holds, found by skipping the
 * other values without building them; undefined when the object has no such key.
 */
function topLevelValue(json: string, key: string, path: string): string | undefined {
  const bad = (): TokenizerLoadError => new TokenizerLoadError(`${path} is not a JSON object`);
  let i = skipSpace(json, 0);
  if (json[i] !== '{') throw bad();
  i = skipSpace(json, i + 1);
  if (json[i] === '}') return undefined;
  for (;;) {
    if (json[i] !== '"') throw bad();
    const keyEnd = endOfString(json, i, bad);
    const k = parseJson(json.slice(i, keyEnd), path);
    i = skipSpace(json, keyEnd);
    if (json[i] !== ':') throw bad();
    const start = skipSpace(json, i + 1);
    const end = endOfValue(json, start, bad);
    if (k === key) return json.slice(start, end);
    i = skipSpace(json, end);
    if (json[i] === '}') return undefined;
    if (json[i] !== ',') throw bad();
    i = skipSpace(json, i + 1);
  }
}

function skipSpace(s: string, i: number): number {
  while (i < s.length && (s[i] === ' ' || s[i] === '\n' || s[i] === '\r' || s[i] === '\t')) i++;
  return i;
}

/** Index after the string starting at s[i] === '"'. */
function endOfString(s: string, i: number, bad: () => Error): number {
  for (let j = i + 1; ; ) {
    const q = s.indexOf('"', j);
    if (q < 0) throw bad();
    let backslashes = 0;
    for (let k = q - 1; s[k] === '\\'; k--) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    j = q + 1;
  }
}

/** Index after the value starting at s[i]. */
function endOfValue(s: string, i: number, bad: () => Error): number {
  if (s[i] === '"') return endOfString(s, i, bad);
  if (s[i] !== '{' && s[i] !== '[') {
    let j = i;
    while (j < s.length && !',}] \n\r\t'.includes(s[j])) j++;
    if (j === i) throw bad();
    return j;
  }
  let depth = 0;
  for (let j = i; j < s.length; j++) {
    const c = s[j];
    if (c === '"') j = endOfString(s, j, bad) - 1;
    else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) return j + 1;
  }
  throw bad();
}

// The model's chat template rendered the way vLLM's render endpoint renders it
// (vLLM's safe_apply_chat_template → transformers' apply_chat_template), with
// @huggingface/jinja:
// - template: chat_template.jinja, else tokenizer_config's chat_template; a named set
//   picks "tool_use" when the request has tools, else "default". A per-request
//   chat_template is refused (vLLM refuses it unless started with
//   --trust-request-chat-template).
// - variables: the config's special-token strings (bos_token, eos_token, …), then the
//   request's chat_template_kwargs, then messages, tools, documents and
//   add_generation_prompt (default true). continue_final_message with
//   add_generation_prompt (also when the latter is left at its default) is an error, as
//   in vLLM; alone, the output is cut right after the last message's text.
// - content format: "openai" (content as a list of parts) when the template loops over
//   a message's content, else "string" — vLLM's detection, on the parsed template.
// Known differences from Python's Jinja: a float such as 1.0 inside tool-call
// arguments prints as 1 (JSON.parse keeps no float/int distinction), and objects with
// integer-like keys list those keys first.
import { Template } from '@huggingface/jinja';
import { buildConversation, isObject, normalizeTools, TokenizeRequestError, type ChatRenderInput, type ContentFormat, type JsonObject } from './chat-messages.ts';
import { TokenizerLoadError, type TokenizerFiles } from './tokenizer-files.ts';

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];
/** apply_chat_template's own parameters: consumed by it, never passed to the template. */
const APPLY_PARAMS = new Set([
  'add_generation_prompt',
  'continue_final_message',
  'documents',
  'padding',
  'truncation',
  'max_length',
  'return_tensors',
  'return_dict',
  'return_assistant_tokens_mask',
  'tokenizer_kwargs',
  'conversation',
]);
/** chat_template_kwargs keys vLLM or transformers reject. */
const FORBIDDEN_KWARGS = ['chat_template', 'tokenize', 'messages', 'tools'];
/** Longest template error message passed on (they are the template author's text). */
const MAX_ERROR_CHARS = 200;

interface CompiledTemplate {
  readonly template: Template;
  readonly format: ContentFormat;
}

export class ChatTemplates {
  private readonly byName: ReadonlyMap<string, CompiledTemplate>;
  private readonly specialTokens: JsonObject;

  constructor(files: TokenizerFiles) {
    const sources = templateSources(files);
    const byName = new Map<string, CompiledTemplate>();
    for (const [name, text] of sources) {
      let template: Template;
      try {
        template = new Template(withoutGenerationTags(text));
      } catch (err) {
        throw new TokenizerLoadError(`${files.source}: chat template "${name}" does not compile: ${(err as Error).message}`);
      }
      byName.set(name, { template, format: contentFormat(template.parsed) });
    }
    this.byName = byName;
    this.specialTokens = specialTokenStrings(files.config);
  }

  /** Whether the tokenizer has a chat template at all. */
  get available(): boolean {
    return this.byName.size > 0;
  }

  /** The prompt text vLLM renders for this chat body. */
  render(body: ChatRenderInput): string {
    if (!isObject(body)) throw new TokenizeRequestError('the chat body must be an object');
    if (body.chat_template !== undefined && body.chat_template !== null) {
      throw new TokenizeRequestError('a per-request chat_template is not supported');
    }
    const addGenerationPrompt = flag(body.add_generation_prompt, true, 'add_generation_prompt');
    const continueFinal = flag(body.continue_final_message, false, 'continue_final_message');
    if (addGenerationPrompt && continueFinal) {
      throw new TokenizeRequestError('continue_final_message needs add_generation_prompt set to false');
    }
    const tools = normalizeTools(body.tools);
    const compiled = this.pick(tools !== null);
    const messages = buildConversation(body.messages, compiled.format);
    const vars: JsonObject = { ...this.specialTokens, ...templateKwargs(body) };
    vars.messages = messages;
    vars.tools = tools;
    vars.documents = body.documents ?? null;
    vars.add_generation_prompt = addGenerationPrompt;
    let text: string;
    try {
      text = compiled.template.render(vars);
    } catch (err) {
      throw new TokenizeRequestError(`the chat template failed: ${String((err as Error).message).slice(0, MAX_ERROR_CHARS)}`);
    }
    return continueFinal ? cutAfterFinalMessage(text, messages) : text;
  }

  /** transformers' choice among named templates. */
  private pick(hasTools: boolean): CompiledTemplate {
    if (this.byName.size === 0) throw new TokenizeRequestError('the tokenizer has no chat template');
    const only = this.byName.get('');
    if (only) return only;
    const named = (hasTools ? this.byName.get('tool_use') : undefined) ?? this.byName.get('default');
    if (!named) throw new TokenizeRequestError('the tokenizer has several chat templates and none is named "default"');
    return named;
  }
}

/** [name, text] of every template; one unnamed template is ['', text]. */
function templateSources(files: TokenizerFiles): [string, string][] {
  if (files.chatTemplateFile !== undefined) return [['', files.chatTemplateFile]];
  const raw = files.config.chat_template;
  if (raw === undefined || raw === null) return [];
  if (typeof raw === 'string') return [['', raw]];
  if (Array.isArray(raw) && raw.every((t) => isObject(t) && typeof t.name === 'string' && typeof t.template === 'string')) {
    return raw.map((t: JsonObject) => [t.name as string, t.template as string]);
  }
  throw new TokenizerLoadError(`${files.source}: tokenizer_config.json's chat_template must be a string or a list of {name, template}`);
}

/**
 * transformers' `{% generation %}…{% endgeneration %}` marks assistant text for its
 * token masks and renders its body unchanged; @huggingface/jinja has no such tag, so it
 * becomes an always-true `if` keeping the tag's whitespace control.
 */
function withoutGenerationTags(text: string): string {
  return text.replace(/\{%(-?)\s*(end)?generation\s*(-?)%\}/g, (_m, l: string, end: string | undefined, r: string) => `{%${l} ${end ? 'endif' : 'if true'} ${r}%}`);
}

function flag(v: unknown, dflt: boolean, name: string): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new TokenizeRequestError(`${name} must be true or false`);
  return v;
}

/**
 * The request's chat_template_kwargs as the template sees them, with what vLLM adds:
 * reasoning_effort (unless "auto") and, for it, enable_thinking when not given.
 */
function templateKwargs(body: ChatRenderInput): JsonObject {
  const user = body.chat_template_kwargs ?? {};
  if (!isObject(user)) throw new TokenizeRequestError('chat_template_kwargs must be an object');
  for (const k of FORBIDDEN_KWARGS) if (k in user) throw new TokenizeRequestError(`chat_template_kwargs may not set ${k}`);
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(user)) if (!APPLY_PARAMS.has(k)) out[k] = v;
  const effort = body.reasoning_effort;
  if (effort !== undefined && effort !== null && effort !== 'auto') {
    out.reasoning_effort = effort;
    if (!('enable_thinking' in user)) out.enable_thinking = effort !== 'none';
  }
  return out;
}

/** The config's special tokens as strings (an AddedToken object gives its content). */
function specialTokenStrings(config: JsonObject): JsonObject {
  const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : isObject(v) && typeof v.content === 'string' ? v.content : undefined);
  const out: JsonObject = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const v = text(config[key]);
    if (v !== undefined) out[key] = v;
  }
  if (Array.isArray(config.additional_special_tokens)) {
    out.additional_special_tokens = config.additional_special_tokens.map(text).filter((v) => v !== undefined);
  }
  return out;
}

/** transformers' continue_final_message: the text ends where the last message's text ends. */
function cutAfterFinalMessage(rendered: string, messages: JsonObject[]): string {
  const last = messages.at(-1);
  if (!last) throw new TokenizeRequestError('continue_final_message needs at least one message');
  let final = last.content;
  if (Array.isArray(final)) {
    const part = final.findLast((p: JsonObject) => typeof p.text === 'string') as JsonObject | undefined;
    if (!part) throw new TokenizeRequestError('continue_final_message: the final message has no text to continue');
    final = part.text;
  }
  if (typeof final !== 'string') throw new TokenizeRequestError('continue_final_message: the final message has no text to continue');
  const stripped = pyStrip(final);
  const at = rendered.lastIndexOf(stripped);
  if (at < 0) throw new TokenizeRequestError('continue_final_message: the chat template dropped part of the final message');
  const keep = pyLstrip(final);
  return rendered.slice(0, at + (rendered.startsWith(final, at) ? keep.length : stripped.length));
}

// Python's str.strip() whitespace (str.isspace), which differs from String.prototype.trim.
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_LEADING = new RegExp(`^[${PY_SPACE}]+`);
const PY_TRAILING = new RegExp(`[${PY_SPACE}]+$`);

function pyLstrip(s: string): string {
  return s.replace(PY_LEADING, '');
}

function pyStrip(s: string): string {
  return pyLstrip(s).replace(PY_TRAILING, '');
}

// --- content format detection (vLLM's _detect_content_format) ---

interface AstNode {
  readonly type: string;
  readonly [k: string]: unknown;
}

function isNode(v: unknown): v is AstNode {
  return typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string';
}

function allNodes(root: unknown): AstNode[] {
  const out: AstNode[] = [];
  const stack: unknown[] = [root];
  while (stack.length) {
    const v = stack.pop();
    if (Array.isArray(v)) stack.push(...v);
    else if (v instanceof Map) for (const [k, val] of v) stack.push(k, val);
    else if (isNode(v)) {
      out.push(v);
      for (const child of Object.values(v)) if (typeof child === 'object' && child !== null) stack.push(child);
    }
  }
  return out;
}

/** The expression under filters, tests, slices and `for … if` selections. */
function unwrap(e: unknown): unknown {
  for (;;) {
    if (!isNode(e)) return e;
    if (e.type === 'FilterExpression' || e.type === 'TestExpression') e = e.operand;
    else if (e.type === 'SelectExpression') e = e.lhs;
    else if (e.type === 'MemberExpression' && isNode(e.property) && e.property.type === 'SliceExpression') e = e.object;
    else return e;
  }
}

function nameOf(e: unknown): string | undefined {
  const u = unwrap(e);
  return isNode(u) && u.type === 'Identifier' ? (u.value as string) : undefined;
}

/** `x.content` or `x['content']` for an x in `names`. */
function isContentOf(e: unknown, names: ReadonlySet<string>): boolean {
  const u = unwrap(e);
  if (!isNode(u) || u.type !== 'MemberExpression' || !isNode(u.object) || u.object.type !== 'Identifier' || !names.has(u.object.value as string)) return false;
  const p = u.property;
  return isNode(p) && ((p.type === 'Identifier' && !u.computed) || (p.type === 'StringLiteral' && u.computed === true)) && p.value === 'content';
}

/** "openai" when some `for` loops over a message's content, where messages may be renamed by `set`. */
function contentFormat(program: unknown): ContentFormat {
  const nodes = allNodes(program);
  const messageLists = new Set(['messages']);
  for (let grew = true; grew; ) {
    grew = false;
    for (const n of nodes) {
      if (n.type !== 'Set' || !isNode(n.assignee) || n.assignee.type !== 'Identifier') continue;
      const from = nameOf(n.value);
      const to = n.assignee.value as string;
      if (from !== undefined && messageLists.has(from) && !messageLists.has(to)) {
        messageLists.add(to);
        grew = true;
      }
    }
  }
  const loops = nodes.filter((n) => n.type === 'For');
  const messageVars = new Set<string>();
  for (const f of loops) {
    const list = nameOf(f.iterable);
    if (list !== undefined && messageLists.has(list) && isNode(f.loopvar) && f.loopvar.type === 'Identifier') messageVars.add(f.loopvar.value as string);
  }
  return loops.some((f) => isContentOf(f.iterable, messageVars)) ? 'openai' : 'string';
}

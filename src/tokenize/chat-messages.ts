// An OpenAI chat body turned into what vLLM hands the chat template: its conversation
// messages (vllm/renderers/chat_utils: text parts joined with "\n" for templates that
// read `message.content` as a string, kept as [{type:"text",text}] parts for templates
// that loop over it; assistant tool-call arguments parsed from JSON into objects;
// `reasoning_content` renamed `reasoning`; Claude Code's per-request billing header
// dropped from system text) and its tools (pydantic's model_dump of each tool: declared
// fields first, description/parameters present as null when absent). Images, audio and
// video need the model's processor, so their parts are refused here: the caller falls
// back to vLLM's render endpoint. Error messages name the field, never its text.

/** The chat-completions fields that shape the prompt (vLLM's names; values unchecked). */
export interface ChatRenderInput {
  readonly messages?: unknown;
  readonly tools?: unknown;
  readonly documents?: unknown;
  readonly chat_template?: unknown;
  readonly chat_template_kwargs?: unknown;
  readonly add_generation_prompt?: unknown;
  readonly continue_final_message?: unknown;
  readonly add_special_tokens?: unknown;
  readonly reasoning_effort?: unknown;
}

/** How the template reads message content: one string, or a list of typed parts. */
export type ContentFormat = 'string' | 'openai';

export type JsonObject = Record<string, unknown>;

/** A request the local tokenizer cannot render; the message never quotes prompt text. */
export class TokenizeRequestError extends Error {
  override name = 'TokenizeRequestError';
}

const TEXT_FIELD: Readonly<Record<string, string>> = {
  text: 'text',
  input_text: 'text',
  output_text: 'text',
  refusal: 'refusal',
  thinking: 'thinking',
};
const BILLING_HEADER = 'x-anthropic-billing-header';

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** vLLM's conversation for `messages`, in the template's content format. */
export function buildConversation(messages: unknown, format: ContentFormat): JsonObject[] {
  if (!Array.isArray(messages)) throw new TokenizeRequestError('messages must be a list');
  return messages.map((m, i) => buildMessage(m, i, format));
}

function buildMessage(m: unknown, i: number, format: ContentFormat): JsonObject {
  const where = `messages[${i}]`;
  if (!isObject(m)) throw new TokenizeRequestError(`${where} must be an object`);
  const role = m.role;
  if (typeof role !== 'string') throw new TokenizeRequestError(`${where}.role must be a string`);
  let texts = contentTexts(m.content, `${where}.content`);
  if (role === 'system') texts = withoutBillingHeader(texts);
  const out: JsonObject = { role, content: format === 'string' ? texts.join('\n') : texts.map((text) => ({ type: 'text', text })) };
  if (role === 'assistant') {
    if (m.tool_calls !== undefined && m.tool_calls !== null) {
      const calls = toolCalls(m.tool_calls, `${where}.tool_calls`);
      if (calls !== undefined) out.tool_calls = calls;
    }
    const reasoning = m.reasoning ?? m.reasoning_content;
    if (reasoning !== undefined && reasoning !== null) {
      out.reasoning = reasoning;
      out.reasoning_content = reasoning;
    }
  } else if (role === 'tool') {
    if ('tool_call_id' in m) out.tool_call_id = m.tool_call_id;
    if (Array.isArray(out.content)) out.content = texts.join('\n');
  }
  if (typeof m.name === 'string') out.name = m.name;
  if (typeof m.task === 'string') out.task = m.task;
  if (role === 'developer') out.tools = m.tools ?? null;
  return out;
}

/** The text of each part of a message's content (a string is one text part; null none). */
function contentTexts(content: unknown, where: string): string[] {
  if (content === undefined || content === null) return [];
  if (typeof content === 'string') return [content];
  if (!Array.isArray(content)) throw new TokenizeRequestError(`${where} must be a string, a list of parts or null`);
  const texts: string[] = [];
  content.forEach((part, j) => {
    if (typeof part === 'string') {
      texts.push(part);
      return;
    }
    if (!isObject(part)) throw new TokenizeRequestError(`${where}[${j}] must be an object`);
    const field = typeof part.type === 'string' ? TEXT_FIELD[part.type] : undefined;
    if (field === undefined) throw new TokenizeRequestError(`${where}[${j}] is not a text part; only text parts can be rendered locally`);
    const text = part[field];
    if (text === undefined || text === null) return;
    if (typeof text !== 'string') throw new TokenizeRequestError(`${where}[${j}].${field} must be a string`);
    texts.push(text);
  });
  return texts;
}

/** Drops the first line of system text that starts with Claude Code's billing header. */
function withoutBillingHeader(texts: string[]): string[] {
  const out: string[] = [];
  for (const text of texts) {
    if (!text.startsWith(BILLING_HEADER)) {
      out.push(text);
      continue;
    }
    const nl = text.indexOf('\n');
    const rest = nl < 0 ? '' : text.slice(nl + 1);
    if (rest !== '') out.push(rest);
  }
  return out;
}

/** Assistant tool calls with `arguments` as an object, as templates expect; an empty list is dropped. */
function toolCalls(raw: unknown, where: string): JsonObject[] | undefined {
  if (!Array.isArray(raw)) throw new TokenizeRequestError(`${where} must be a list`);
  if (raw.length === 0) return undefined;
  return raw.map((item, k) => {
    const fn = isObject(item) ? item.function : undefined;
    if (!isObject(item) || (item.type ?? 'function') !== 'function' || !isObject(fn)) {
      throw new TokenizeRequestError(`${where}[${k}] must be a function tool call`);
    }
    return { ...item, function: { ...fn, arguments: parsedArguments(fn.arguments) } };
  });
}

/** vLLM's reading of tool-call arguments: a JSON object string or an object; anything else becomes {}. */
function parsedArguments(args: unknown): unknown {
  if (!args) return {};
  if (isObject(args)) return args;
  if (typeof args !== 'string') return {};
  try {
    const parsed: unknown = JSON.parse(args);
    return isObject(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

/** Tools as vLLM passes them to the template, or null when the request has none. */
export function normalizeTools(tools: unknown): JsonObject[] | null {
  if (tools === undefined || tools === null) return null;
  if (!Array.isArray(tools)) throw new TokenizeRequestError('tools must be a list');
  if (tools.length === 0) throw new TokenizeRequestError('tools must not be an empty list');
  return tools.map((tool, i) => {
    const where = `tools[${i}]`;
    if (!isObject(tool) || (tool.type ?? 'function') !== 'function') throw new TokenizeRequestError(`${where} must be a function tool`);
    const { type: _type, function: fn, ...toolExtra } = tool;
    if (!isObject(fn) || typeof fn.name !== 'string') throw new TokenizeRequestError(`${where}.function needs a string name`);
    const { name, description = null, parameters = null, ...fnExtra } = fn;
    if (description !== null && typeof description !== 'string') throw new TokenizeRequestError(`${where}.function.description must be a string`);
    if (parameters !== null && !isObject(parameters)) throw new TokenizeRequestError(`${where}.function.parameters must be an object`);
    return { type: 'function', function: { name, description, parameters, ...fnExtra }, ...toolExtra };
  });
}

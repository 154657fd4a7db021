// The prompts of the cost-of-precision benchmark, as OpenAI chat bodies (the
// in-process tokenizer renders them with the model's chat template, as vLLM
// does). Text is seeded English-like prose (≈ 6 characters per Qwen2.5 token):
// what matters is the token count and which parts repeat, not the meaning.
// - chat8k: multi-turn chats on shared system prompts. 8 system prompts of
//   ≈ 6.5k tokens (an app's instructions and reference material), 6
//   conversations on each; request k is turn ⌊k / 48⌋ + 1 of conversation
//   k mod 48: the system prompt, the earlier turns (≈ 500-token user
//   message, ≈ 200-token answer, resent by the client as chat clients do) and
//   a new user message: ≈ 7k tokens at turn 1, ≈ 9k at turn 4.
// - long-cold: a unique ≈ 100k-token document per request (and a question in
//   the same message): nothing repeats beyond the short system prompt.
// - long-warm: one ≈ 100k-token document for every request (warm-up included,
//   so the measured requests find it known), followed by the assistant's
//   acknowledgement and a different ≈ 50-token question as the next user turn
//   (a chat about a document). The question is a turn of its own: the
//   tokenizer's prefix cache cuts a prompt only after an added token such as
//   <|im_start|>, so a question appended to the document's own message would
//   have the whole document tokenized again.
import { mulberry32 } from '../../src/random.ts';

export interface ChatBody {
  model: string;
  stream: boolean;
  messages: { role: 'system' | 'user' | 'assistant'; content: string }[];
}

export const WORKLOADS = ['chat8k', 'long-cold', 'long-warm'] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export const WORKLOAD_DESCRIPTIONS: Record<WorkloadName, string> = {
  chat8k: 'multi-turn chats, 8 shared ≈6.5k-token system prompts × 6 conversations, ≈500-token user turns and ≈200-token answers (≈7k–9k tokens)',
  'long-cold': 'a unique ≈100k-token document per request (cold: nothing shared)',
  'long-warm': 'one ≈100k-token document for all requests + a different ≈50-token question as the next turn (warm)',
};

/** Characters per Qwen2.5 token of `prose` (measured: 5.96 on 20k tokens). */
const CHARS_PER_TOKEN = 5.95;
const MODEL = 'Qwen/Qwen2.5-7B-Instruct';
const CHAT_APPS = 8;
const CONVERSATIONS_PER_APP = 6;
const CONVERSATIONS = CHAT_APPS * CONVERSATIONS_PER_APP;

const WORDS = (
  'the a of and to in is was for on that with as by it at from this be or are an which have not has had but one their its new after ' +
  'they been other when there all during into time may years more most only over some would where later such used many can about out ' +
  'then made system request model server cluster memory network latency cache token block prompt answer question document report ' +
  'engine gateway service policy budget metric window queue worker thread process signal window value table index record section ' +
  'chapter figure result method analysis sample estimate measure average increase decrease remains between within across against ' +
  'before because however therefore although whether while since until unless each every several these those both either neither ' +
  'customer account order invoice payment shipment product feature release version update change review approval contract clause ' +
  'party notice period term agreement obligation liability warranty license owner tenant lease property insurance claim coverage ' +
  'patient treatment dose trial outcome protocol study cohort baseline follow adverse event safety efficacy endpoint criteria ' +
  'river mountain village harbor market street garden bridge castle forest island valley winter summer morning evening history ' +
  'quickly slowly carefully clearly directly nearly rarely usually often never always sometimes probably certainly perhaps ' +
  'large small early late high low long short strong weak simple complex common rare public private local global final initial'
).split(' ');

/** ≈ `tokens` tokens of sentences and paragraphs drawn from `random`. */
export function prose(random: () => number, tokens: number): string {
  const chars = Math.round(tokens * CHARS_PER_TOKEN);
  const parts: string[] = [];
  let length = 0;
  let sentences = 0;
  while (length < chars) {
    const n = 6 + Math.floor(random() * 16);
    const words: string[] = [];
    for (let i = 0; i < n; i++) words.push(WORDS[Math.floor(random() * WORDS.length)]);
    if (random() < 0.15) words.splice(1 + Math.floor(random() * (n - 1)), 0, String(Math.floor(random() * 10_000)));
    const s = words.join(' ');
    const sentence = s.charAt(0).toUpperCase() + s.slice(1) + (random() < 0.1 ? '?' : '.');
    const sep = ++sentences % 6 === 0 ? '\n\n' : ' ';
    parts.push(sentence, sep);
    length += sentence.length + sep.length;
  }
  return parts.join('').trimEnd();
}

const SHORT_SYSTEM = 'You are a careful assistant. Answer from the document the user gives you and say when it does not contain the answer.';

/** Which set a request belongs to: the measured one, or the few sent before it to warm up. */
export type RequestSet = 'measured' | 'warmup';

/**
 * Request `k` (0-based) of a workload. The warm-up set has its own system prompts and
 * cold documents, and the same long-warm document: warm means that document is known.
 */
export function workloadRequest(name: WorkloadName, k: number, set: RequestSet): ChatBody {
  const seed = set === 'measured' ? 1 : 2;
  switch (name) {
    case 'chat8k':
      return chatTurn(seed, k % CONVERSATIONS, Math.floor(k / CONVERSATIONS) + 1);
    case 'long-cold':
      return chat([
        { role: 'system', content: SHORT_SYSTEM },
        { role: 'user', content: `Document ${seed}-${k}:\n\n${prose(mulberry32(seed * 1_000_003 + k), 100_000)}\n\nWhat does the document say about the harbor?` },
      ]);
    case 'long-warm':
      return chat([
        { role: 'system', content: SHORT_SYSTEM },
        { role: 'user', content: `Document:\n\n${sharedDocument()}` },
        { role: 'assistant', content: 'I have read the document. What would you like to know?' },
        { role: 'user', content: prose(mulberry32(seed * 7_919 + k * 2 + 1), 50) },
      ]);
  }
}

let document: string | undefined;
/** The long-warm document, built once. */
function sharedDocument(): string {
  document ??= prose(mulberry32(38), 100_000);
  return document;
}

const systems = new Map<string, string>();
/** Turn `turn` (from 1) of conversation `c`: the whole history resent, then the new user message. */
function chatTurn(seed: number, c: number, turn: number): ChatBody {
  const app = c % CHAT_APPS;
  const key = `${seed}:${app}`;
  let system = systems.get(key);
  if (system === undefined) {
    system = `You are the assistant of application ${app}. Follow these instructions and use the reference material below.\n\n${prose(mulberry32(seed * 101 + app), 6_500)}`;
    systems.set(key, system);
  }
  const messages: ChatBody['messages'] = [{ role: 'system', content: system }];
  for (let t = 1; t <= turn; t++) {
    messages.push({ role: 'user', content: prose(mulberry32(seed * 1_009 + c * 97 + t), 500) });
    if (t < turn) messages.push({ role: 'assistant', content: prose(mulberry32(seed * 2_003 + c * 89 + t), 200) });
  }
  return chat(messages);
}

function chat(messages: ChatBody['messages']): ChatBody {
  return { model: MODEL, stream: true, messages };
}

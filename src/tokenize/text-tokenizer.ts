// Text → token ids with a Hugging Face tokenizer.json, through `tokenizers`, the native
// binding of the Rust crate that transformers (and so vLLM) runs: the reference itself.
// bench/tokenizer.bench.ts chose it over the pure-JS @huggingface/tokenizers (identical
// ids on its corpus and fuzz) for 1.8× less CPU per token and a third of the memory.
// Its encode runs on libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE says
// otherwise), which DNS lookups and file I/O share; the calling thread only converts
// the ids (≈ 7 ms per 100k tokens), which is why long prompts go through the worker
// pool, whose size also caps how many pool threads tokenization holds at once.
//
// Ids are produced without special tokens and wrapped afterwards: the post-processor's
// additions (BOS/EOS, …) do not depend on the text, so they are measured once, on a
// probe, at load. That lets the prefix cache join cached and fresh ids and still add
// the specials exactly once.
import { Tokenizer } from 'tokenizers';
import { TokenizerLoadError, type TokenizerFiles } from './tokenizer-files.ts';

/** One entry of tokenizer.json's added_tokens: text split out before the model runs. */
export interface AddedTokenSpec {
  readonly content: string;
  readonly id: number;
  readonly special: boolean;
  readonly singleWord: boolean;
  readonly lstrip: boolean;
  readonly rstrip: boolean;
  /** Matched on the normalized text (true) or the raw text (false). */
  readonly normalized: boolean;
}

const EMPTY = new Uint32Array(0);

export class TextTokenizer {
  readonly addedTokens: readonly AddedTokenSpec[];
  /** Highest id the tokenizer knows (model vocabulary and added tokens). */
  readonly maxTokenId: number;
  private readonly tok: Tokenizer;
  private readonly source: string;
  /** Size of the model's own vocabulary (ids 0 … size − 1), added tokens aside. */
  private readonly modelVocabSize: number;
  private before = EMPTY;
  private after = EMPTY;

  /** Builds the tokenizer from its files and measures its special tokens. */
  static async load(files: TokenizerFiles): Promise<TextTokenizer> {
    const t = new TextTokenizer(files);
    await t.measureSpecialTokens();
    return t;
  }

  private constructor(files: TokenizerFiles) {
    try {
      this.tok = Tokenizer.fromString(files.tokenizerText);
    } catch (err) {
      throw new TokenizerLoadError(`${files.source}: cannot build the tokenizer: ${(err as Error).message}`);
    }
    this.source = files.source;
    this.addedTokens = parseAddedTokens(files.addedTokens, files.source);
    this.modelVocabSize = this.tok.getVocabSize(false);
    this.maxTokenId = this.addedTokens.reduce((max, t) => Math.max(max, t.id), this.modelVocabSize - 1);
  }

  /** The ids the post-processor puts before and after a sequence. */
  private async measureSpecialTokens(): Promise<void> {
    const probe = 'a';
    const raw = await this.ids(probe, false);
    const full = await this.ids(probe, true);
    for (let at = 0; at + raw.length <= full.length; at++) {
      if (raw.every((id, i) => full[at + i] === id)) {
        this.before = full.slice(0, at);
        this.after = full.slice(at + raw.length);
        return;
      }
    }
    throw new TokenizerLoadError(`${this.source}: the post_processor rewrites the sequence instead of adding special tokens around it; not supported`);
  }

  /** Ids of `text` as vLLM's tokenizer.encode(text, add_special_tokens=…) returns them. */
  async encode(text: string, addSpecialTokens: boolean): Promise<Uint32Array> {
    const raw = await this.encodeRaw(text);
    return addSpecialTokens ? this.withSpecialTokens(raw) : raw;
  }

  /** Ids of `text` without the post-processor's special tokens. */
  encodeRaw(text: string): Promise<Uint32Array> {
    return this.ids(text, false);
  }

  private async ids(text: string, addSpecialTokens: boolean): Promise<Uint32Array> {
    return Uint32Array.from((await this.tok.encode(text, null, { addSpecialTokens })).getIds());
  }

  /** `raw` with the post-processor's special tokens around it. */
  withSpecialTokens(raw: Uint32Array): Uint32Array {
    if (this.before.length === 0 && this.after.length === 0) return raw;
    const out = new Uint32Array(this.before.length + raw.length + this.after.length);
    out.set(this.before, 0);
    out.set(raw, this.before.length);
    out.set(this.after, this.before.length + raw.length);
    return out;
  }

  /**
   * Whether the model itself may produce this added token's id: true when the id lies
   * inside the model's vocabulary (an added token that is also a vocabulary piece keeps
   * the piece's id; a gap in the vocabulary answers true too, which only costs a cut).
   */
  modelMayProduce(token: AddedTokenSpec): boolean {
    return token.id < this.modelVocabSize;
  }
}

function parseAddedTokens(raw: unknown, source: string): AddedTokenSpec[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new TokenizerLoadError(`${source}: "added_tokens" must be a list`);
  return raw.map((t: Record<string, unknown>, i) => {
    if (typeof t?.content !== 'string' || !Number.isInteger(t.id)) {
      throw new TokenizerLoadError(`${source}: added_tokens[${i}] needs a string "content" and an integer "id"`);
    }
    const special = t.special === true;
    return {
      content: t.content,
      id: t.id as number,
      special,
      singleWord: t.single_word === true,
      lstrip: t.lstrip === true,
      rstrip: t.rstrip === true,
      normalized: typeof t.normalized === 'boolean' ? t.normalized : !special,
    };
  });
}

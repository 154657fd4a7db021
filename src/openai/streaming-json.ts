// A JSON request body read while its chunks arrive, so that little is left to
// do after the last one. Prompts dominate a long body, and they are string
// values: each long string is decoded (UTF-8, escapes) as its bytes come in,
// piece by piece when it spans chunks, and stands in the rest of the body (the
// "skeleton": structure, keys, numbers, short strings) as a placeholder. The
// reader follows the structure, so it knows where each long string sits (its
// path of keys and indices). At the end only the small skeleton is parsed,
// and each placeholder is swapped for its string.
//
// The result is what JSON.parse would give for the whole body. Anything the
// reader is unsure of (invalid UTF-8 or JSON, duplicate keys over a long
// string, a body that is mostly skeleton, nesting past its depth bound) makes
// end() return undefined, and the caller parses the whole body the usual way,
// which also gives the usual error.
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** A value string at least this long (bytes) is decoded as it arrives. */
const LONG = 256;
/** Container nesting the reader follows; deeper bodies take the whole-body path. */
const MAX_DEPTH = 512;
/**
 * A skeleton past this size (a body of token ids, or of many short strings) gains
 * little from reading ahead: the reader stops, and the whole body is parsed at its end.
 */
const MAX_SKELETON = 32 * 1024;

// The placeholder: a per-process random string no client can guess. Each long string has
// its own path, so one placeholder serves them all (a duplicate key over one shows in #fill).
const PLACEHOLDER_TEXT = 'llm-epp:' + randomBytes(16).toString('hex');
const PLACEHOLDER = Buffer.from(JSON.stringify(PLACEHOLDER_TEXT), 'latin1');

/**
 * The JSON value, and the strings that spanned chunks with their decoded pieces.
 * Such a string is V8's concatenation of its pieces, never joined into one flat
 * copy unless something reads all of it; its pieces are flat, so a reader of
 * the bytes (prefix hashing) can take them one by one without that copy.
 */
export interface ReadJson {
  readonly value: unknown;
  /** [the string as it is in value, its flat pieces in order]. */
  readonly pieces: readonly (readonly [string, readonly string[]])[];
}

const OUT = 0;
const IN_STRING = 1;

type Path = (string | number)[];

export class StreamingJsonReader {
  #failed = false;
  #mode = OUT;
  /** Bytes of the skeleton: views of the received chunks, and placeholders. */
  #skeleton: Buffer[] = [];
  #skeletonBytes = 0;
  // The containers around the current position, outermost first.
  #isObject: boolean[] = [];
  /** An object's latest key; an array's current index. */
  #at: (string | number)[] = [];
  /** In an object, the next string is a key. */
  #expectKey = false;
  // ---- the string being read ----
  #isKey = false;
  /** Where its opening quote is in the current chunk; -1 when it opened in an earlier chunk. */
  #openAt = -1;
  /** Raw bytes of a string cut by a chunk's end and not (yet) known to be long, from its opening quote. */
  #raw: Buffer[] = [];
  #rawBytes = 0;
  /** Backslashes ending the string's content so far (escape parity across chunks). */
  #backslashes = 0;
  /** The string being read is long: its pieces so far, and a character or escape cut short by a chunk's end. */
  #long = false;
  /** Decoded pieces of the long string being read. */
  #pieces: string[] = [];
  /** A high surrogate that ended a piece (an escaped pair cut in two), for the next one. */
  #surrogate = '';
  #spanning: [string, string[]][] = [];
  #held: Buffer | undefined;
  /** Long strings, in order, with where they go; the skeleton holds a placeholder for each. */
  #strings: string[] = [];
  #paths: Path[] = [];

  push(chunk: Buffer): void {
    if (this.#failed || chunk.length === 0) return;
    try {
      this.#read(chunk);
    } catch {
      this.#fail();
    }
  }

  /** The body's JSON value, or undefined: parse the whole body instead. */
  end(): ReadJson | undefined {
    if (this.#failed || this.#mode !== OUT || this.#isObject.length !== 0) return this.#fail();
    try {
      const root: unknown = JSON.parse(utf8(concat(this.#skeleton, this.#skeletonBytes)));
      return this.#fill(root);
    } catch {
      return undefined;
    } finally {
      this.#fail();
    }
  }

  /** Each long string in its place; undefined when a placeholder is not where it was put. */
  #fill(root: unknown): ReadJson | undefined {
    const strings = this.#strings;
    for (let i = 0; i < strings.length; i++) {
      const path = this.#paths[i];
      if (path.length === 0) {
        if (root !== PLACEHOLDER_TEXT) return undefined;
        root = strings[i];
        continue;
      }
      let holder = root as Record<string | number, unknown>;
      for (let d = 0; d < path.length - 1; d++) holder = step(holder, path[d]) as Record<string | number, unknown>;
      const last = path[path.length - 1];
      // A later duplicate key replaced it: JSON.parse's answer differs from ours.
      if (step(holder, last) !== PLACEHOLDER_TEXT) return undefined;
      holder[last] = strings[i];
    }
    return { value: root, pieces: this.#spanning };
  }

  #fail(): undefined {
    this.#failed = true;
    this.#skeleton = [];
    this.#raw = [];
    this.#strings = [];
    this.#paths = [];
    this.#pieces = [];
    this.#surrogate = '';
    this.#spanning = [];
    this.#long = false;
    return undefined;
  }

  #read(chunk: Buffer): void {
    let at = 0;
    const n = chunk.length;
    this.#openAt = -1;
    while (at < n) {
      if (this.#mode === IN_STRING) {
        at = this.#readString(chunk, at);
        continue;
      }
      // Outside strings: structure, numbers, literals, whitespace, byte by byte up to the next string.
      let i = at;
      for (; i < n; i++) {
        const c = chunk[i];
        if (c === QUOTE) break;
        if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
          if (this.#isObject.length >= MAX_DEPTH) throw new Error('depth');
          this.#isObject.push(c === 0x7b);
          this.#at.push(c === 0x7b ? '' : 0);
          this.#expectKey = c === 0x7b;
        } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
          this.#isObject.pop();
          this.#at.pop();
          this.#expectKey = false;
        } else if (c === 0x2c /* , */) {
          const top = this.#isObject.length - 1;
          if (this.#isObject[top]) this.#expectKey = true;
          else if (top >= 0) (this.#at[top] as number)++;
        } else if (c === 0x3a /* : */) {
          this.#expectKey = false;
        }
      }
      if (i > at) this.#addSkeleton(chunk.subarray(at, i));
      if (i === n) return;
      // An opening quote.
      this.#mode = IN_STRING;
      this.#isKey = this.#expectKey;
      this.#expectKey = false;
      this.#backslashes = 0;
      this.#openAt = i;
      at = i + 1;
    }
    if (this.#mode === IN_STRING && this.#openAt >= 0) {
      // The chunk ends right after an opening quote.
      this.#raw = [chunk.subarray(this.#openAt)];
      this.#rawBytes = n - this.#openAt;
    }
  }

  /** Inside a string from `at`: up to its closing quote (returns the index after it) or the chunk's end. */
  #readString(chunk: Buffer, at: number): number {
    const n = chunk.length;
    let close = -1;
    for (let from = at; ; ) {
      const q = chunk.indexOf(QUOTE, from);
      if (q < 0) break;
      // Escaped when an odd run of backslashes precedes it (the run may start in an earlier chunk).
      let run = 0;
      let k = q - 1;
      while (k >= at && chunk[k] === BACKSLASH) {
        run++;
        k--;
      }
      if (k < at && this.#openAt < 0) run += this.#backslashes;
      if ((run & 1) === 0) {
        close = q;
        break;
      }
      from = q + 1;
    }
    if (close >= 0 && this.#openAt >= 0) {
      // Opened and closed in this chunk: the whole literal at once.
      const literal = chunk.subarray(this.#openAt, close + 1);
      this.#mode = OUT;
      // A key is also part of the skeleton; a long value string is kept apart.
      if (this.#isKey) this.#key(literal);
      if (!this.#isKey && literal.length - 2 >= LONG) this.#addString(JSON.parse(utf8(literal)) as string);
      else this.#addSkeleton(literal);
      return close + 1;
    }
    const end = close < 0 ? n : close;
    if (this.#openAt >= 0) {
      // Opened here, continues in the next chunk.
      this.#raw = [chunk.subarray(this.#openAt, at)];
      this.#rawBytes = at - this.#openAt;
      this.#openAt = -1;
    }
    if (end > at) {
      let run = 0;
      for (let k = end - 1; k >= at && chunk[k] === BACKSLASH; k--) run++;
      this.#backslashes = run === end - at ? this.#backslashes + run : run;
      this.#content(chunk.subarray(at, end));
    }
    if (close < 0) return n;
    this.#closeString(chunk.subarray(close, close + 1));
    return close + 1;
  }

  /** Content bytes (no quotes) of a string that spans chunks. */
  #content(bytes: Buffer): void {
    if (this.#long) return this.#decodePiece(bytes, false);
    this.#raw.push(bytes);
    this.#rawBytes += bytes.length;
    if (!this.#isKey && this.#rawBytes > LONG) {
      // Long enough to read as it arrives: what was kept so far is its first piece.
      this.#long = true;
      const raw = concat(this.#raw, this.#rawBytes);
      this.#raw = [];
      this.#rawBytes = 0;
      this.#decodePiece(raw.subarray(1), false); // after the opening quote
    }
  }

  #closeString(quote: Buffer): void {
    this.#mode = OUT;
    if (this.#long) {
      this.#decodePiece(EMPTY, true);
      this.#long = false;
      const pieces = this.#pieces;
      this.#pieces = [];
      if (pieces.length <= 1) return this.#addString(pieces[0] ?? '');
      // Concatenation, not join: no flat copy of a long prompt is made after its last byte.
      let value = '';
      for (const p of pieces) value += p;
      this.#spanning.push([value, pieces]);
      this.#addString(value);
      return;
    }
    this.#raw.push(quote);
    const literal = concat(this.#raw, this.#rawBytes + 1);
    this.#raw = [];
    this.#rawBytes = 0;
    if (this.#isKey) this.#key(literal);
    this.#addSkeleton(literal);
  }

  /** A key: the object's current key, for the paths of the long strings under it. */
  #key(literal: Buffer): void {
    // Without escapes the key is its bytes (whether they are valid is checked with the skeleton).
    this.#at[this.#at.length - 1] = literal.includes(BACKSLASH) ? (JSON.parse(utf8(literal)) as string) : literal.toString('utf8', 1, literal.length - 1);
  }

  /** A long string read: kept with its path, a placeholder in the skeleton. */
  #addString(value: string): void {
    this.#strings.push(value);
    this.#paths.push(this.#at.slice());
    this.#addSkeleton(PLACEHOLDER);
  }

  /**
   * Decode a piece of a long string's content: UTF-8, then JSON escapes and
   * validity. A character or an escape cut by the piece's end waits in #held
   * for the next piece.
   */
  #decodePiece(bytes: Buffer, last: boolean): void {
    let piece = bytes;
    if (this.#held) {
      piece = concat([this.#held, bytes], this.#held.length + bytes.length);
      this.#held = undefined;
    }
    if (!last) {
      const cut = Math.min(escapeCut(piece), utf8Cut(piece));
      if (cut < piece.length) {
        this.#held = Buffer.from(piece.subarray(cut));
        piece = piece.subarray(0, cut);
      }
    } else if (piece.length === 0 && this.#surrogate === '') return;
    const text = utf8(piece);
    if (text.length === 0 && this.#surrogate === '') return;
    // Escapes and control characters are JSON's business: the piece is parsed as a string literal.
    // A raw control character is invalid JSON (the whole-body parse reports it); escapes are JSON's
    // to decode. Most pieces have neither: their text is their value, with no further copy.
    if (CONTROL.test(text)) throw new Error('control character');
    let decoded = this.#surrogate + (piece.includes(BACKSLASH) ? (JSON.parse('"' + text + '"') as string) : text);
    this.#surrogate = '';
    // Pieces are encoded one by one later: a pair must not be split between two.
    const lastUnit = decoded.charCodeAt(decoded.length - 1);
    if (!last && lastUnit >= 0xd800 && lastUnit <= 0xdbff) {
      this.#surrogate = decoded.slice(-1);
      decoded = decoded.slice(0, -1);
    }
    if (decoded.length > 0) this.#pieces.push(decoded);
  }

  #addSkeleton(bytes: Buffer): void {
    this.#skeleton.push(bytes);
    this.#skeletonBytes += bytes.length;
    if (this.#skeletonBytes > MAX_SKELETON) throw new Error('skeleton');
  }
}

/** holder[key] when holder is an object or array that has it as its own. */
function step(holder: unknown, key: string | number): unknown {
  if (holder === null || typeof holder !== 'object' || !Object.hasOwn(holder, key)) throw new Error('path');
  return (holder as Record<string | number, unknown>)[key];
}

/** Where an escape sequence cut short by the end of `b` starts (b.length when none is). */
export function escapeCut(b: Uint8Array): number {
  const n = b.length;
  // An escape is at most 6 bytes (\uXXXX): look for its backslash in the last 5.
  for (let q = n - 1; q >= 0 && q >= n - 5; q--) {
    if (b[q] !== BACKSLASH) continue;
    let run = 1;
    while (q - run >= 0 && b[q - run] === BACKSLASH) run++;
    // q ends a run of `run` backslashes: pairs are complete escapes; an odd one starts an escape at q.
    if ((run & 1) === 0) return n;
    const need = b[q + 1] === 0x75 /* u */ ? 6 : 2;
    return n - q < need ? q : n;
  }
  return n;
}

function concat(parts: readonly Buffer[], bytes: number): Buffer {
  return parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes);
}

/** Where a UTF-8 character cut short by the end of `b` starts (b.length when none is). */
export function utf8Cut(b: Uint8Array): number {
  const n = b.length;
  let i = n - 1;
  while (i >= 0 && i >= n - 3 && (b[i] & 0xc0) === 0x80) i--;
  if (i < 0) return n;
  const lead = b[i];
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return n - i < need ? i : n;
}

/** Valid UTF-8 as a string; throws otherwise. */
function utf8(b: Buffer): string {
  if (!isUtf8(b)) throw new Error('utf-8');
  return b.toString('utf8');
}

const EMPTY = Buffer.alloc(0);
const CONTROL = /[\u0000-\u001f]/;

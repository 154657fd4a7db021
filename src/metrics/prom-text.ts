// Parser for the Prometheus text exposition format 0.0.4, tuned for the EPP's scrape loop
// (~2,500 pages/s). Only samples are returned: HELP/TYPE and every other `#` line are
// skipped, because the EPP reads a handful of known gauges and does not need metadata.
//
// Speed notes (why the code looks the way it does):
// - One pass over the string with charCodeAt; no regexes, no split('\n').
// - With a `wanted` filter nothing is sliced for unwanted lines: for each distinct length L
//   of the wanted names, the character at name start + L must end a name ('{' or a blank)
//   before the few candidates of that length are compared in place. An unwanted line costs
//   a handful of charCodeAt calls plus the indexOf('\n') that finds its end.
// - The previous sample's name, and its label names and values by position
//   (model_name="…", engine="0", le), are compared in place and reused rather than sliced.
// - Plain decimals of at most 15 significant digits are parsed by hand (exactly: an
//   integer below 2^53 divided by an exact power of ten is correctly rounded), everything
//   else goes through Number().

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

/** Counters, added to (not reset) by each call so one object can total several pages. */
export interface ParseStats {
  /** Samples returned. */
  samples: number;
  /** Sample lines dropped by the `wanted` filter (not validated beyond the name). */
  skipped: number;
  /** Lines that are neither blank, comment, nor a valid sample. */
  malformed: number;
  /** 1-based line number of the first malformed line seen in the last page that had one. */
  firstMalformedLine?: number;
}

// Character classes, ASCII only: metric names [a-zA-Z_:][a-zA-Z0-9_:]*,
// label names [a-zA-Z_][a-zA-Z0-9_]*.
const NAME_START = 1;
const NAME_CHAR = 2;
const LABEL_START = 4;
const LABEL_CHAR = 8;
const CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  const alpha = /[a-zA-Z_]/.test(ch);
  const digit = c >= 48 && c <= 57;
  let k = 0;
  if (alpha || ch === ':') k |= NAME_START | NAME_CHAR;
  if (digit) k |= NAME_CHAR | LABEL_CHAR;
  if (alpha) k |= LABEL_START | LABEL_CHAR;
  CLASS[c] = k;
}

const TAB = 9;
const SPACE = 32;
const QUOTE = 34;
const HASH = 35;
const PLUS = 43;
const COMMA = 44;
const MINUS = 45;
const DOT = 46;
const EQUALS = 61;
const BACKSLASH = 92;
const LBRACE = 123;
const RBRACE = 125;

const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

// parseLine results.
const SAMPLE = 0;
const BLANK = 1;
const SKIPPED = 2;
const MALFORMED = 3;

/** Per-call state; one object per page keeps the hot function free of closures. */
interface Ctx {
  readonly text: string;
  readonly out: Map<string, Sample[]>;
  /** undefined = no filter. */
  readonly filter: Filter | undefined;
  lastName: string;
  lastList: Sample[] | undefined;
  // Label names/values of the previous sample by position, for reuse.
  readonly prevLabelNames: string[];
  readonly prevLabelValues: (string | undefined)[];
  /** parseLabels leaves its object here so it can return the end index as a plain number. */
  labelsOut: Record<string, string> | undefined;
  /** readEscapedValue leaves its string here. */
  stringOut: string;
}

/** text.startsWith(s, pos) without the builtin's call overhead (this is the hot path). */
function matchAt(text: string, pos: number, s: string): boolean {
  for (let k = 0; k < s.length; k++) if (text.charCodeAt(pos + k) !== s.charCodeAt(k)) return false;
  return true;
}

/** Wanted names grouped by length. */
interface Filter {
  readonly lens: number[];
  readonly byLen: (string[] | undefined)[];
}

function compileFilter(wanted: ReadonlySet<string>): Filter {
  const lens: number[] = [];
  const byLen: (string[] | undefined)[] = [];
  for (const name of wanted) {
    if (name === '') continue;
    const list = byLen[name.length];
    if (list === undefined) {
      byLen[name.length] = [name];
      lens.push(name.length);
    } else {
      list.push(name);
    }
  }
  return { lens, byLen };
}

function isLabelChar(c: number): boolean {
  return c < 128 && (CLASS[c] & LABEL_CHAR) !== 0;
}

function isNameEnd(c: number): boolean {
  return c === LBRACE || c === SPACE || c === TAB;
}

/**
 * Parse a page. When `wanted` is given, only samples whose metric name is in it are
 * returned; others are skipped cheaply (the name is checked before labels are parsed).
 * Result keyed by sample name (e.g. 'vllm:num_requests_waiting', 'vllm:cache_config_info'),
 * samples in page order. Never throws on bad input: malformed lines are skipped and counted
 * in `stats` when given.
 */
export function parsePrometheusText(
  text: string,
  wanted?: ReadonlySet<string>,
  stats?: ParseStats,
): Map<string, Sample[]> {
  const ctx: Ctx = {
    text,
    out: new Map(),
    filter: wanted === undefined ? undefined : compileFilter(wanted),
    lastName: '',
    lastList: undefined,
    prevLabelNames: [],
    prevLabelValues: [],
    labelsOut: undefined,
    stringOut: '',
  };
  const len = text.length;
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0; // tolerate a UTF-8 BOM
  let lineNo = 0;
  let samples = 0;
  let skipped = 0;
  let malformed = 0;
  while (pos < len) {
    let eol = text.indexOf('\n', pos);
    if (eol === -1) eol = len;
    let end = eol;
    if (end > pos && text.charCodeAt(end - 1) === 13) end--; // CRLF
    lineNo++;
    const r = parseLine(ctx, pos, end);
    if (r === SAMPLE) samples++;
    else if (r === SKIPPED) skipped++;
    else if (r === MALFORMED) {
      if (malformed === 0 && stats !== undefined) stats.firstMalformedLine = lineNo;
      malformed++;
    }
    pos = eol + 1;
  }
  if (stats !== undefined) {
    stats.samples += samples;
    stats.skipped += skipped;
    stats.malformed += malformed;
  }
  return ctx.out;
}

function parseLine(ctx: Ctx, start: number, end: number): number {
  const text = ctx.text;
  let i = start;
  let c = 0;
  while (i < end && ((c = text.charCodeAt(i)) === SPACE || c === TAB)) i++;
  if (i === end || c === HASH) return BLANK;

  // Metric name. The previous sample's name is tried first: histogram series repeat it.
  const nameStart = i;
  let name: string | undefined;
  const last = ctx.lastName;
  const lastEnd = nameStart + last.length;
  if (last !== '' && lastEnd < end && isNameEnd(text.charCodeAt(lastEnd)) && matchAt(text, nameStart, last)) {
    name = last;
    i = lastEnd;
  } else if (ctx.filter !== undefined) {
    // A wanted name of length L must be followed by '{' or a blank at nameStart + L;
    // probing the few wanted lengths avoids scanning (and validating) unwanted names.
    const { lens, byLen } = ctx.filter;
    for (let k = 0; k < lens.length; k++) {
      const e = nameStart + lens[k];
      if (e >= end || !isNameEnd(text.charCodeAt(e))) continue;
      const cands = byLen[lens[k]] as string[];
      for (let j = 0; j < cands.length; j++) {
        if (matchAt(text, nameStart, cands[j])) {
          name = cands[j];
          i = e;
          break;
        }
      }
      if (name !== undefined) break;
    }
    if (name === undefined) return SKIPPED;
  } else {
    if (c >= 128 || (CLASS[c] & NAME_START) === 0) return MALFORMED;
    i++;
    while (i < end && (c = text.charCodeAt(i)) < 128 && (CLASS[c] & NAME_CHAR) !== 0) i++;
    if (i === end || !isNameEnd(text.charCodeAt(i))) return MALFORMED; // no value, or bad char
    name = text.slice(nameStart, i);
  }
  c = text.charCodeAt(i);

  // Labels.
  let labels: Record<string, string> = {};
  if (c === LBRACE) {
    const li = parseLabels(ctx, i + 1, end);
    if (li < 0) return MALFORMED;
    labels = ctx.labelsOut as Record<string, string>;
    i = li;
  }

  // Value. A bare name is already followed by a blank (checked above); after '}' the
  // blank is optional, as in Prometheus' parser.
  while (i < end && ((c = text.charCodeAt(i)) === SPACE || c === TAB)) i++;
  if (i === end) return MALFORMED;
  const vStart = i;
  while (i < end && (c = text.charCodeAt(i)) !== SPACE && c !== TAB) i++;
  const value = parseNumber(text, vStart, i);
  if (value === undefined) return MALFORMED;

  // Optional timestamp (integer milliseconds), then only blanks.
  while (i < end && ((c = text.charCodeAt(i)) === SPACE || c === TAB)) i++;
  let timestampMs: number | undefined;
  if (i < end) {
    const tStart = i;
    while (i < end && (c = text.charCodeAt(i)) !== SPACE && c !== TAB) i++;
    timestampMs = parseInteger(text, tStart, i);
    if (timestampMs === undefined) return MALFORMED;
    while (i < end && ((c = text.charCodeAt(i)) === SPACE || c === TAB)) i++;
    if (i < end) return MALFORMED;
  }

  const sample: Sample =
    timestampMs === undefined ? { name, labels, value } : { name, labels, value, timestampMs };
  let list = name === ctx.lastName ? ctx.lastList : undefined;
  if (list === undefined) {
    list = ctx.out.get(name);
    if (list === undefined) {
      list = [];
      ctx.out.set(name, list);
    }
    ctx.lastName = name;
    ctx.lastList = list;
  }
  list.push(sample);
  return SAMPLE;
}

/** Parses `name="value",…}` starting after '{'. Returns the index after '}' or -1. */
function parseLabels(ctx: Ctx, start: number, end: number): number {
  const text = ctx.text;
  const prevNames = ctx.prevLabelNames;
  const prevValues = ctx.prevLabelValues;
  const labels: Record<string, string> = {};
  let i = start;
  let c = 0;
  let k = 0; // label position, for reuse of the previous sample's strings
  for (;;) {
    while (i < end && ((c = text.charCodeAt(i)) === SPACE || c === TAB)) i++;
    if (i === end) return -1;
    if (c === RBRACE) {
      i++;
      break;
    }
    // Label name: the previous sample's name at this position, else scan and slice.
    const lnStart = i;
    let ln = prevNames[k];
    if (ln !== undefined && lnStart + ln.length < end && !isLabelChar(text.charCodeAt(lnStart + ln.length)) && matchAt(text, lnStart, ln)) {
      i = lnStart + ln.length;
    } else {
      if (c >= 128 || (CLASS[c] & LABEL_START) === 0) return -1;
      i++;
      while (i < end && (c = text.charCodeAt(i)) < 128 && (CLASS[c] & LABEL_CHAR) !== 0) i++;
      ln = text.slice(lnStart, i);
      // '__proto__' cannot be stored as an own property of a plain object; Prometheus
      // reserves '__' names anyway.
      if (ln === '__proto__') return -1;
      prevNames[k] = ln;
      prevValues[k] = undefined;
    }
    if (Object.hasOwn(labels, ln)) return -1; // duplicate label name
    while (i < end && ((c = text.charCodeAt(i)) === SPACE || c === TAB)) i++;
    if (c !== EQUALS || i === end) return -1;
    i++;
    while (i < end && ((c = text.charCodeAt(i)) === SPACE || c === TAB)) i++;
    if (c !== QUOTE || i === end) return -1;
    i++;
    // Label value. The previous sample's value at this position (cached only when it had
    // no escapes, so no quote inside) is tried first; then a scan without escapes.
    const vStart = i;
    const pv = prevValues[k];
    let v: string;
    if (pv !== undefined && vStart + pv.length < end && text.charCodeAt(vStart + pv.length) === QUOTE && matchAt(text, vStart, pv)) {
      v = pv;
      i = vStart + pv.length + 1;
    } else {
      while (i < end && (c = text.charCodeAt(i)) !== QUOTE && c !== BACKSLASH) i++;
      if (i === end) return -1;
      if (c === QUOTE) {
        v = text.slice(vStart, i);
        prevValues[k] = v;
        i++;
      } else {
        i = readEscapedValue(ctx, vStart, i, end);
        if (i < 0) return -1;
        v = ctx.stringOut;
        prevValues[k] = undefined; // raw text differs from the decoded value
      }
    }
    labels[ln] = v;
    k++;
    while (i < end && ((c = text.charCodeAt(i)) === SPACE || c === TAB)) i++;
    if (i === end) return -1;
    if (c === COMMA) {
      i++;
      continue;
    }
    if (c === RBRACE) {
      i++;
      break;
    }
    return -1;
  }
  ctx.labelsOut = labels;
  return i;
}

/**
 * Label value containing a backslash at `i`. Only `\\`, `\"` and `\n` are defined; anything
 * else is an error, as in Prometheus' own parser. Leaves the decoded value in ctx.stringOut and
 * returns the index after the closing quote, or -1.
 */
function readEscapedValue(ctx: Ctx, vStart: number, i: number, end: number): number {
  const text = ctx.text;
  let acc = text.slice(vStart, i);
  for (;;) {
    if (i >= end) return -1;
    let c = text.charCodeAt(i);
    if (c === QUOTE) break;
    if (c === BACKSLASH) {
      if (i + 1 >= end) return -1;
      const e = text.charCodeAt(i + 1);
      if (e === BACKSLASH) acc += '\\';
      else if (e === QUOTE) acc += '"';
      else if (e === 110) acc += '\n';
      else return -1;
      i += 2;
      continue;
    }
    const segStart = i;
    while (i < end && (c = text.charCodeAt(i)) !== QUOTE && c !== BACKSLASH) i++;
    acc += text.slice(segStart, i);
  }
  ctx.stringOut = acc;
  return i + 1;
}

/** Float as printed by Go, Python or Rust exporters; undefined when invalid. */
function parseNumber(text: string, s: number, e: number): number | undefined {
  if (s === e) return undefined;
  let i = s;
  let c = text.charCodeAt(i);
  let neg = false;
  if (c === MINUS) {
    neg = true;
    i++;
  } else if (c === PLUS) {
    i++;
  }
  // Fast path: [sign] digits [. digits], at most 15 digits.
  let n = 0;
  let digits = 0;
  let frac = -1;
  for (; i < e; i++) {
    c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      n = n * 10 + (c - 48);
      digits++;
    } else if (c === DOT && frac < 0) {
      frac = digits;
    } else {
      break;
    }
  }
  if (i === e && digits > 0 && digits <= 15) {
    const v = frac < 0 ? n : n / POW10[digits - frac];
    return neg ? -v : v;
  }
  return parseNumberSlow(text.slice(s, e));
}

function parseNumberSlow(str: string): number | undefined {
  const v = Number(str);
  if (v === v) {
    // Number() also takes hex/binary/octal integer literals and 'Infinity'; Prometheus
    // (Go ParseFloat) rejects the former, so do we.
    let j = 0;
    const c0 = str.charCodeAt(0);
    if (c0 === PLUS || c0 === MINUS) j = 1;
    if (str.charCodeAt(j) === 48 && str.length > j + 1) {
      const c1 = str.charCodeAt(j + 1) | 0x20;
      if (c1 === 0x78 || c1 === 0x62 || c1 === 0x6f) return undefined;
    }
    return v;
  }
  switch (str.toLowerCase()) {
    case 'nan':
    case '+nan':
    case '-nan':
      return NaN;
    case 'inf':
    case '+inf':
      return Infinity;
    case '-inf':
      return -Infinity;
    default:
      return undefined;
  }
}

/** Integer timestamp in ms; undefined when not an integer. */
function parseInteger(text: string, s: number, e: number): number | undefined {
  let i = s;
  let neg = false;
  const c0 = text.charCodeAt(i);
  if (c0 === MINUS || c0 === PLUS) {
    neg = c0 === MINUS;
    i++;
  }
  if (i === e) return undefined;
  let n = 0;
  for (; i < e; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
    n = n * 10 + (c - 48);
  }
  // Above 2^53 the running sum may round; acceptable for ms timestamps (< 2^53 until year 287396).
  return neg ? -n : n;
}

// A minimal HTTP/1.1 client for one thing: GET one path from one origin over
// a kept-alive connection, one request at a time, every 50 ms. A general
// client (undici) spends most of a scrape's CPU on machinery this loop never
// uses (dispatch queues, pipelining, header objects, the WASM parser's calls);
// at 128 pods × 20 scrapes/s that was the largest single cost of an idle
// llm-epp (bench/RESULTS.md). Handles Content-Length, chunked and read-to-close
// bodies, servers that close idle connections, and a per-scrape timeout.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface HttpScraperOptions {
  /** IP address (IPv6 without brackets). */
  host: string;
  port: number;
  /** Value of the Host header (ip:port, IPv6 in brackets). */
  authority: string;
  path: string;
  https: boolean;
  rejectUnauthorized: boolean;
  /** PEM: CA bundle to verify the server against, client certificate and key for mTLS. */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  timeoutMs: number;
  /** Largest body accepted (a misbehaving server must not exhaust memory). Default 16 MiB. */
  maxBodyBytes?: number;
}

export type ScrapeCallback = (err: Error | undefined, status: number, body: Buffer | undefined) => void;

const CRLF2 = Buffer.from('\r\n\r\n');
const MAX_HEAD = 64 * 1024;

// Body framing of the response being read.
const LENGTH = 0;
const CHUNKED = 1;
const TO_CLOSE = 2;

// Chunked decoder states.
const SIZE = 0;
const DATA = 1;
const DATA_CRLF = 2;
const TRAILERS = 3;

export class HttpScraper {
  readonly #o: HttpScraperOptions;
  readonly #request: Buffer;
  readonly #maxBody: number;
  #socket: Socket | undefined;
  /** The socket has served a response before (a failure on it may be a stale keep-alive). */
  #reused = false;
  #cb: ScrapeCallback | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  // Response state.
  #head: Buffer[] = [];
  #headBytes = 0;
  #inBody = false;
  #gotBytes = false;
  #status = 0;
  #framing = LENGTH;
  #remaining = 0;
  #keepAlive = true;
  #body: Buffer[] = [];
  #bodyBytes = 0;
  #chunkState = SIZE;
  #sizeLine = '';
  #trailerTail = '';

  constructor(o: HttpScraperOptions) {
    this.#o = o;
    this.#maxBody = o.maxBodyBytes ?? 16 << 20;
    this.#request = Buffer.from(`GET ${o.path} HTTP/1.1\r\nHost: ${o.authority}\r\nAccept: text/plain;version=0.0.4\r\nUser-Agent: llm-epp\r\n\r\n`, 'latin1');
  }

  /** The address scraped. */
  get host(): string {
    return this.#o.host;
  }

  get busy(): boolean {
    return this.#cb !== undefined;
  }

  /** Start one GET; `cb` is called exactly once. Not re-entrant: one scrape at a time. */
  scrape(cb: ScrapeCallback): void {
    if (this.#closed) {
      cb(new Error('scraper closed'), 0, undefined);
      return;
    }
    if (this.#cb) throw new Error('a scrape is already in flight');
    this.#cb = cb;
    this.#timer = setTimeout(() => this.#fail(new Error(`scrape timed out after ${this.#o.timeoutMs} ms`), false), this.#o.timeoutMs);
    this.#send();
  }

  close(): void {
    this.#closed = true;
    this.#drop();
    if (this.#cb) this.#fail(new Error('scraper closed'), false);
  }

  #send(): void {
    this.#resetResponse();
    let s = this.#socket;
    if (!s || s.destroyed) {
      s = this.#open();
      this.#reused = false;
    } else this.#reused = true;
    s.write(this.#request);
  }

  #open(): Socket {
    const o = this.#o;
    const s: Socket = o.https
      ? tlsConnect({ host: o.host, port: o.port, rejectUnauthorized: o.rejectUnauthorized, ALPNProtocols: ['http/1.1'], ...o.tls })
      : netConnect({ host: o.host, port: o.port });
    s.setNoDelay(true);
    s.on('data', (d: Buffer) => this.#onData(s, d));
    s.on('end', () => this.#onClose(s));
    s.on('close', () => this.#onClose(s));
    s.on('error', (err: Error) => this.#onError(s, err));
    this.#socket = s;
    return s;
  }

  #resetResponse(): void {
    this.#head = [];
    this.#headBytes = 0;
    this.#inBody = false;
    this.#gotBytes = false;
    this.#status = 0;
    this.#framing = LENGTH;
    this.#remaining = 0;
    this.#keepAlive = true;
    this.#body = [];
    this.#bodyBytes = 0;
    this.#chunkState = SIZE;
    this.#sizeLine = '';
    this.#trailerTail = '';
  }

  #onData(s: Socket, d: Buffer): void {
    if (s !== this.#socket) return;
    if (!this.#cb) {
      // Bytes nobody asked for: the connection is out of step; start afresh next time.
      this.#drop();
      return;
    }
    this.#gotBytes = true;
    if (!this.#inBody) {
      this.#head.push(d);
      this.#headBytes += d.length;
      const head = this.#head.length === 1 ? this.#head[0] : Buffer.concat(this.#head, this.#headBytes);
      const end = head.indexOf(CRLF2);
      if (end < 0) {
        if (this.#headBytes > MAX_HEAD) this.#fail(new Error('response headers too large'), true);
        else if (this.#head.length > 1) this.#head = [head];
        return;
      }
      const err = this.#parseHead(head.toString('latin1', 0, end));
      if (err) {
        this.#fail(err, true);
        return;
      }
      this.#inBody = true;
      if (this.#framing === LENGTH && this.#remaining === 0) {
        this.#finish();
        return;
      }
      const rest = head.subarray(end + 4);
      if (rest.length > 0) this.#onBody(rest);
      return;
    }
    this.#onBody(d);
  }

  /** Status line and the headers that frame the body. Returns an error for a response it cannot read. */
  #parseHead(text: string): Error | undefined {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0]);
    if (!m) return new Error(`not an HTTP/1.x response: ${JSON.stringify(lines[0].slice(0, 40))}`);
    this.#status = Number(m[2]);
    this.#keepAlive = m[1] === '1';
    let length = -1;
    let chunked = false;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'content-length') {
        if (!/^\d+$/.test(value)) return new Error(`bad Content-Length ${JSON.stringify(value)}`);
        length = Number(value);
      } else if (name === 'transfer-encoding') chunked = value.toLowerCase().split(',').map((v) => v.trim()).includes('chunked');
      else if (name === 'connection') {
        const v = value.toLowerCase();
        if (v.includes('close')) this.#keepAlive = false;
        else if (v.includes('keep-alive')) this.#keepAlive = true;
      }
    }
    if (this.#status === 204 || this.#status === 304 || this.#status < 200) {
      // No body by definition.
      this.#framing = LENGTH;
      this.#remaining = 0;
    } else if (chunked) this.#framing = CHUNKED;
    else if (length >= 0) {
      this.#framing = LENGTH;
      this.#remaining = length;
    } else {
      this.#framing = TO_CLOSE;
      this.#keepAlive = false;
    }
    if (this.#framing === LENGTH && length > this.#maxBody) return new Error(`metrics page larger than ${this.#maxBody} bytes`);
    return undefined;
  }

  #push(b: Buffer): boolean {
    this.#bodyBytes += b.length;
    if (this.#bodyBytes > this.#maxBody) {
      this.#fail(new Error(`metrics page larger than ${this.#maxBody} bytes`), true);
      return false;
    }
    this.#body.push(b);
    return true;
  }

  #onBody(d: Buffer): void {
    if (this.#framing === LENGTH) {
      const take = Math.min(d.length, this.#remaining);
      if (!this.#push(take === d.length ? d : d.subarray(0, take))) return;
      this.#remaining -= take;
      if (this.#remaining === 0) {
        // Anything after the body would be a second response nobody asked for.
        if (take < d.length) this.#keepAlive = false;
        this.#finish();
      }
      return;
    }
    if (this.#framing === TO_CLOSE) {
      this.#push(d);
      return;
    }
    this.#onChunked(d);
  }

  #onChunked(d: Buffer): void {
    let i = 0;
    while (i < d.length) {
      switch (this.#chunkState) {
        case SIZE: {
          const nl = d.indexOf(10, i);
          if (nl < 0) {
            this.#sizeLine += d.toString('latin1', i);
            if (this.#sizeLine.length > 1024) return this.#fail(new Error('bad chunk size line'), true);
            return;
          }
          const line = (this.#sizeLine + d.toString('latin1', i, nl)).replace(/\r$/, '');
          this.#sizeLine = '';
          i = nl + 1;
          const hex = line.split(';')[0].trim();
          if (!/^[0-9a-fA-F]+$/.test(hex)) return this.#fail(new Error(`bad chunk size ${JSON.stringify(hex.slice(0, 20))}`), true);
          const size = parseInt(hex, 16);
          if (size === 0) {
            this.#chunkState = TRAILERS;
            this.#trailerTail = '\r\n';
          } else {
            this.#remaining = size;
            this.#chunkState = DATA;
          }
          break;
        }
        case DATA: {
          const take = Math.min(d.length - i, this.#remaining);
          if (!this.#push(d.subarray(i, i + take))) return;
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) {
            this.#chunkState = DATA_CRLF;
            this.#remaining = 2;
          }
          break;
        }
        case DATA_CRLF: {
          const take = Math.min(d.length - i, this.#remaining);
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#chunkState = SIZE;
          break;
        }
        case TRAILERS: {
          // Trailer fields end with an empty line: wait for CRLF CRLF (counting the one after "0").
          this.#trailerTail = (this.#trailerTail + d.toString('latin1', i)).slice(-4096);
          i = d.length;
          const end = this.#trailerTail.indexOf('\r\n\r\n');
          if (end >= 0) {
            if (end + 4 < this.#trailerTail.length) this.#keepAlive = false;
            this.#finish();
          }
          return;
        }
      }
    }
  }

  #onClose(s: Socket): void {
    if (s !== this.#socket) return;
    this.#socket = undefined;
    if (!this.#cb) return;
    if (this.#inBody && this.#framing === TO_CLOSE) {
      this.#finish();
      return;
    }
    this.#fail(new Error('connection closed before the response was complete'), !this.#gotBytes);
  }

  #onError(s: Socket, err: Error): void {
    if (s !== this.#socket) return;
    this.#socket = undefined;
    s.destroy();
    if (this.#cb) this.#fail(err, !this.#gotBytes);
  }

  #finish(): void {
    const cb = this.#cb;
    if (!cb) return;
    this.#cb = undefined;
    clearTimeout(this.#timer);
    const body = this.#body.length === 1 ? this.#body[0] : Buffer.concat(this.#body, this.#bodyBytes);
    const status = this.#status;
    if (!this.#keepAlive) this.#drop();
    this.#resetResponse();
    cb(undefined, status, body);
  }

  /**
   * End the scrape with an error. `retryable`: nothing of a response arrived on a
   * reused connection, which is how a server's close of an idle keep-alive
   * connection looks; the request is then sent once more on a new connection.
   */
  #fail(err: Error, retryable: boolean): void {
    const cb = this.#cb;
    if (!cb) return;
    this.#drop();
    if (retryable && this.#reused && !this.#closed) {
      // The socket was dropped, so #send opens a fresh one (not reused): a second failure is reported.
      this.#send();
      return;
    }
    this.#cb = undefined;
    clearTimeout(this.#timer);
    this.#resetResponse();
    cb(err, 0, undefined);
  }

  #drop(): void {
    const s = this.#socket;
    this.#socket = undefined;
    if (s) s.destroy();
  }
}

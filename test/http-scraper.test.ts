// The collector's HTTP/1.1 client against scripted servers: each test's server
// writes exactly the bytes a real (or misbehaving) model server might, split at
// awkward places, so every framing path and failure mode is exercised.
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpScraper, type HttpScraperOptions } from '../src/metrics/http-scraper.ts';
import { loadTlsMaterial } from '../src/tls.ts';

type Handler = (socket: Socket, request: string, n: number) => void;

const servers: Server[] = [];
const scrapers: HttpScraper[] = [];
afterEach(async () => {
  for (const s of scrapers.splice(0)) s.close();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

/** A server that calls `handle` for every complete request head; counts connections. */
async function scripted(handle: Handler, tls?: { cert: Buffer; key: Buffer }): Promise<{ port: number; connections: () => number; requests: string[] }> {
  let connections = 0;
  const requests: string[] = [];
  const onSocket = (socket: Socket) => {
    connections++;
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const req = buf.slice(0, end);
        buf = buf.slice(end + 4);
        requests.push(req);
        handle(socket, req, requests.length);
      }
    });
    socket.on('error', () => {});
  };
  const server = tls ? createTlsServer({ cert: tls.cert, key: tls.key }, onSocket) : createNetServer(onSocket);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, connections: () => connections, requests };
}

function scraper(port: number, o: Partial<HttpScraperOptions> = {}): HttpScraper {
  const s = new HttpScraper({ host: '127.0.0.1', port, authority: `127.0.0.1:${port}`, path: '/metrics', https: false, rejectUnauthorized: true, timeoutMs: 1000, ...o });
  scrapers.push(s);
  return s;
}

function get(s: HttpScraper): Promise<{ err?: Error; status: number; body?: string }> {
  return new Promise((resolve) => s.scrape((err, status, body) => resolve({ err, status, body: body?.toString('utf8') })));
}

/** Write `bytes` in pieces of the given sizes, one event-loop turn apart. */
async function dribble(socket: Socket, bytes: Buffer, sizes: number[]): Promise<void> {
  let i = 0;
  for (let k = 0; i < bytes.length; k++) {
    const n = sizes[k % sizes.length];
    socket.write(bytes.subarray(i, i + n));
    i += n;
    await new Promise((r) => setTimeout(r, 1));
  }
}

const PAGE = '# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name="m"} 3.0\n# é ✓\n';

describe('HttpScraper', () => {
  it('reads Content-Length bodies and keeps one connection for many scrapes', async () => {
    const srv = await scripted((s) => s.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(PAGE)}\r\n\r\n${PAGE}`));
    const s = scraper(srv.port);
    for (let i = 0; i < 5; i++) expect(await get(s)).toEqual({ err: undefined, status: 200, body: PAGE });
    expect(srv.connections()).toBe(1);
    expect(srv.requests[0]).toBe(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nAccept: text/plain;version=0.0.4\r\nUser-Agent: llm-epp`);
  });

  it('decodes chunked bodies split anywhere, with chunk extensions and trailers', async () => {
    const parts = [PAGE.slice(0, 7), PAGE.slice(7, 40), PAGE.slice(40)];
    const chunked = parts.map((p, i) => `${Buffer.byteLength(p).toString(16)}${i === 1 ? ';ext=1' : ''}\r\n${p}\r\n`).join('') + '0\r\nX-Trailer: yes\r\n\r\n';
    const raw = Buffer.from(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`);
    for (const sizes of [[1], [2, 3], [5, 17], [raw.length]]) {
      const srv = await scripted((sock) => void dribble(sock, raw, sizes));
      const s = scraper(srv.port);
      expect(await get(s), `pieces of ${sizes}`).toEqual({ err: undefined, status: 200, body: PAGE });
      expect(await get(s)).toEqual({ err: undefined, status: 200, body: PAGE }); // the connection is still usable
      expect(srv.connections()).toBe(1);
    }
  });

  it('reads an HTTP/1.0 body to the end of the connection, and reconnects for the next scrape', async () => {
    const srv = await scripted((sock) => sock.end(`HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n${PAGE}`));
    const s = scraper(srv.port);
    expect(await get(s)).toEqual({ err: undefined, status: 200, body: PAGE });
    expect(await get(s)).toEqual({ err: undefined, status: 200, body: PAGE });
    expect(srv.connections()).toBe(2);
  });

  it('honours Connection: close, and retries once when a kept-alive connection was closed by the server', async () => {
    const srv = await scripted((sock, _req, n) => {
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n${n === 1 ? 'Connection: close\r\n' : ''}\r\nok`);
      // The second connection is closed by the server right after its first answer, as an idle timeout would.
      if (n === 2) setTimeout(() => sock.destroy(), 5);
    });
    const s = scraper(srv.port);
    expect((await get(s)).body).toBe('ok');
    expect((await get(s)).body).toBe('ok');
    await new Promise((r) => setTimeout(r, 30));
    expect((await get(s)).body).toBe('ok'); // stale socket noticed (or retried) transparently
    expect(srv.connections()).toBe(3);
  });

  it('resends once on a new connection when a reused one dies before any response byte (the keep-alive race)', async () => {
    const srv = await scripted((sock, _req, n) => {
      if (n === 2) sock.destroy(); // the server had just timed the idle connection out
      else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const s = scraper(srv.port);
    expect((await get(s)).body).toBe('ok');
    expect(await get(s)).toEqual({ err: undefined, status: 200, body: 'ok' });
    expect(srv.connections()).toBe(2);
    expect(srv.requests).toHaveLength(3);
    // On a fresh connection the same failure is reported, not retried.
    const dead = await scripted((sock) => sock.destroy());
    expect((await get(scraper(dead.port))).err).toBeDefined();
    expect(dead.requests).toHaveLength(1);
  });

  it('returns non-200 statuses with their body, and bodiless 204s at once', async () => {
    const srv = await scripted((sock, _r, n) => sock.write(n === 1 ? 'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy' : 'HTTP/1.1 204 No Content\r\n\r\n'));
    const s = scraper(srv.port);
    expect(await get(s)).toEqual({ err: undefined, status: 503, body: 'busy' });
    expect(await get(s)).toMatchObject({ status: 204, body: '' });
  });

  it('times out a server that never answers, then works again when it does', async () => {
    let answer = false;
    const srv = await scripted((sock) => {
      if (answer) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const s = scraper(srv.port, { timeoutMs: 100 });
    const t0 = performance.now();
    const r = await get(s);
    expect(r.err?.message).toMatch(/timed out after 100 ms/);
    expect(performance.now() - t0).toBeLessThan(1000);
    answer = true;
    expect((await get(s)).body).toBe('ok');
  });

  it('reports refused connections, garbage, bad framing and oversized pages as errors', async () => {
    const closed = await scripted(() => {});
    const port = closed.port;
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    expect((await get(scraper(port))).err?.message).toMatch(/ECONNREFUSED/);

    const garbage = await scripted((sock) => sock.write('SSH-2.0-OpenSSH\r\n\r\n'));
    expect((await get(scraper(garbage.port))).err?.message).toMatch(/not an HTTP\/1.x response/);

    const badChunk = await scripted((sock) => sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'));
    expect((await get(scraper(badChunk.port))).err?.message).toMatch(/bad chunk size/);

    const big = await scripted((sock) => sock.write(`HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n${'x'.repeat(5000)}`));
    expect((await get(scraper(big.port, { maxBodyBytes: 1000 }))).err?.message).toMatch(/larger than 1000 bytes/);

    const cut = await scripted((sock) => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly this'));
    expect((await get(scraper(cut.port))).err?.message).toMatch(/closed before the response was complete/);
  });

  it('refuses a second scrape while one is in flight, and fails pending scrapes on close', async () => {
    const srv = await scripted(() => {});
    const s = scraper(srv.port, { timeoutMs: 5000 });
    const pending = get(s);
    expect(s.busy).toBe(true);
    expect(() => s.scrape(() => {})).toThrow(/already in flight/);
    s.close();
    expect((await pending).err?.message).toBe('scraper closed');
  });

  it('speaks HTTPS, verifying the certificate unless told not to', async () => {
    const tls = await loadTlsMaterial('');
    const srv = await scripted((sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'), tls);
    expect((await get(scraper(srv.port, { https: true, rejectUnauthorized: false }))).body).toBe('ok');
    expect((await get(scraper(srv.port, { https: true, rejectUnauthorized: true }))).err?.message).toMatch(/self[- ]signed|certificate/i);
  }, 20_000);
});

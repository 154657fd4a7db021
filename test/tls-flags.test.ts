// The TLS flags llm-d Router v0.10 has: --tls-min-version, --tls-cipher-suites,
// --enable-cert-reload on the ext_proc port; --metrics-cert-dir and
// --metrics-client-ca-file on the metrics port. Checked with real TLS handshakes.
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import { loadTlsMaterial, type TlsMaterial } from '../src/tls.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { startTestApp } from './helpers/app-harness.ts';

const apps: App[] = [];
const pods: FakePod[] = [];
afterAll(async () => {
  await Promise.all(apps.map((a) => a.stop()));
  await Promise.all(pods.map((p) => p.stop()));
});

async function certDir(m: TlsMaterial): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'llm-epp-tls-'));
  writeFileSync(join(dir, 'tls.crt'), m.cert);
  writeFileSync(join(dir, 'tls.key'), m.key);
  return dir;
}

async function start(flags: string[]): Promise<App> {
  const pod = new FakePod();
  await pod.start();
  pods.push(pod);
  const { app } = await startTestApp([`--endpoints=${pod.key}`, ...flags]);
  apps.push(app);
  return app;
}

interface Handshake { ok: boolean; protocol?: string | null; cipher?: string; cert?: PeerCertificate; error?: string }

function handshake(port: number, opts: { maxVersion?: 'TLSv1.2' | 'TLSv1.3'; ciphers?: string; cert?: Buffer; key?: Buffer; alpn?: string[] } = {}): Promise<Handshake> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: opts.alpn ?? ['h2'], maxVersion: opts.maxVersion, ciphers: opts.ciphers, cert: opts.cert, key: opts.key });
    s.once('secureConnect', () => {
      const r = { ok: true, protocol: s.getProtocol(), cipher: s.getCipher().name, cert: s.getPeerCertificate() };
      s.end();
      resolve(r);
    });
    s.once('error', (e) => resolve({ ok: false, error: e.message }));
  });
}

describe('ext_proc TLS flags', () => {
  it('--tls-min-version=VersionTLS13 refuses a TLS 1.2 client; the default accepts it', async () => {
    const m = await loadTlsMaterial('');
    const strict = await start(['--secure-serving', `--cert-path=${await certDir(m)}`, '--tls-min-version=VersionTLS13']);
    expect((await handshake(strict.ports.grpc, { maxVersion: 'TLSv1.2' })).ok).toBe(false);
    expect((await handshake(strict.ports.grpc)).protocol).toBe('TLSv1.3');
    const lax = await start(['--secure-serving', `--cert-path=${await certDir(m)}`]);
    expect((await handshake(lax.ports.grpc, { maxVersion: 'TLSv1.2' })).protocol).toBe('TLSv1.2');
  });

  it('--tls-cipher-suites (Go names) limits TLS 1.2 to those suites', async () => {
    const m = await loadTlsMaterial('');
    const app = await start(['--secure-serving', `--cert-path=${await certDir(m)}`, '--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384']);
    const ok = await handshake(app.ports.grpc, { maxVersion: 'TLSv1.2' });
    expect(ok.cipher).toBe('ECDHE-RSA-AES256-GCM-SHA384');
    expect((await handshake(app.ports.grpc, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' })).ok).toBe(false);
  });

  it('--enable-cert-reload serves a renewed tls.crt / tls.key to new connections and keeps the old one when the new pair is broken', async () => {
    const first = await loadTlsMaterial('');
    const second = await loadTlsMaterial('');
    const dir = await certDir(first);
    const app = await start(['--secure-serving', `--cert-path=${dir}`, '--enable-cert-reload']);
    const fp = async () => (await handshake(app.ports.grpc)).cert?.fingerprint256;
    const before = await fp();
    // A broken pair (the new certificate with the old key) is refused; the old one stays.
    writeFileSync(join(dir, 'tls.crt.tmp'), second.cert);
    renameSync(join(dir, 'tls.crt.tmp'), join(dir, 'tls.crt'));
    await new Promise((r) => setTimeout(r, 600));
    expect(await fp()).toBe(before);
    writeFileSync(join(dir, 'tls.key.tmp'), second.key);
    renameSync(join(dir, 'tls.key.tmp'), join(dir, 'tls.key'));
    // The watcher applies it after a short debounce; poll new connections until they see it.
    let after = before;
    for (let i = 0; i < 100 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await fp();
    }
    expect(after).not.toBe(before);
    expect(after).toBeDefined();
  });
});

function scrape(port: number, opts: { cert?: Buffer; key?: Buffer } = {}): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', rejectUnauthorized: false, cert: opts.cert, key: opts.key }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode }));
    });
    req.on('error', (e) => resolve({ error: e.message }));
    req.end();
  });
}

/** A self-signed certificate usable for client authentication and as its own CA. */
async function clientCert(): Promise<TlsMaterial> {
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: 'prometheus' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  });
  return { cert: Buffer.from(pems.cert), key: Buffer.from(pems.private), selfSigned: true };
}

describe('metrics TLS flags', () => {
  it('--metrics-cert-dir with --metrics-client-ca-file: /metrics over HTTPS, only for a client certificate the CA signed', async () => {
    const server = await loadTlsMaterial('');
    const client = await clientCert(); // self-signed: its own CA
    const stranger = await clientCert();
    const caFile = join(await certDir(client), 'tls.crt');
    const app = await start([`--metrics-cert-dir=${await certDir(server)}`, `--metrics-client-ca-file=${caFile}`]);
    expect((await scrape(app.ports.metrics, { cert: client.cert, key: client.key })).status).toBe(200);
    expect((await scrape(app.ports.metrics)).status).toBeUndefined();
    expect((await scrape(app.ports.metrics, { cert: stranger.cert, key: stranger.key })).status).toBeUndefined();
  });

  it('refuses a client CA file with no certificate, naming the flag', async () => {
    const server = await loadTlsMaterial('');
    const dir = await certDir(server);
    writeFileSync(join(dir, 'ca.pem'), 'not a certificate\n');
    await expect(start([`--metrics-cert-dir=${dir}`, `--metrics-client-ca-file=${join(dir, 'ca.pem')}`])).rejects.toThrow(/--metrics-client-ca-file .*no valid CA certificate/);
  });
});

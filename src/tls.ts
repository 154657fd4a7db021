// Server credentials for the ext_proc port: plaintext, the operator's
// certificate (--cert-path with tls.crt / tls.key), or a self-signed one made
// at start-up, as the GAIE EPP does. Envoy's EPP cluster accepts it with an
// empty validation_context. --tls-min-version and --tls-cipher-suites shape
// the TLS context; --enable-cert-reload serves a renewed certificate to new
// connections (CertWatcher, also used by the metrics server).
import { ServerCredentials } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from './log.ts';
import { opensslCiphers } from './tls-ciphers.ts';

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  selfSigned: boolean;
}

/** A certificate directory's tls.crt and tls.key (the Kubernetes TLS Secret layout). */
export async function readCertPair(dir: string): Promise<{ cert: Buffer; key: Buffer }> {
  const [cert, key] = await Promise.all([readFile(join(dir, 'tls.crt')), readFile(join(dir, 'tls.key'))]);
  return { cert, key };
}

export async function loadTlsMaterial(certPath: string): Promise<TlsMaterial> {
  if (certPath) {
    const { cert, key } = await readCertPair(certPath).catch((err: Error) => {
      throw new Error(`--cert-path ${certPath}: cannot read tls.crt and tls.key: ${err.message}`);
    });
    return { cert, key, selfSigned: false };
  }
  const notAfterDate = new Date(Date.now() + 10 * 365 * 24 * 3600 * 1000);
  // Loaded only when a certificate must be made: the X.509 stack behind it
  // costs ~20 MB of resident memory that a process given --cert-path or
  // serving plaintext never needs.
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: 'llm-epp' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
    ],
  });
  return { cert: Buffer.from(pems.cert), key: Buffer.from(pems.private), selfSigned: true };
}

export interface TlsPolicy {
  /** Go's name, as --tls-min-version takes it; '' = Node's default (TLS 1.2). */
  minVersion?: '' | 'VersionTLS10' | 'VersionTLS11' | 'VersionTLS12' | 'VersionTLS13';
  /** Go / IANA TLS 1.2 suite names (--tls-cipher-suites); empty = Node's default list. */
  cipherSuites?: readonly string[];
}

const MIN_VERSIONS = { VersionTLS10: 'TLSv1', VersionTLS11: 'TLSv1.1', VersionTLS12: 'TLSv1.2', VersionTLS13: 'TLSv1.3' } as const;

/** The secure-context options for a certificate under a policy; throws if OpenSSL refuses them. */
export function contextOptions(tls: Pick<TlsMaterial, 'cert' | 'key'>, policy: TlsPolicy = {}): SecureContextOptions {
  const opts: SecureContextOptions = { cert: tls.cert, key: tls.key };
  if (policy.minVersion) opts.minVersion = MIN_VERSIONS[policy.minVersion];
  const ciphers = opensslCiphers(policy.cipherSuites ?? []);
  if (ciphers) opts.ciphers = ciphers;
  createSecureContext(opts); // a key that does not match, or a cipher list OpenSSL rejects, fails here and not per connection
  return opts;
}

/** TLS credentials whose context can be replaced while serving (new connections get the new one). */
class ReloadableCredentials extends ServerCredentials {
  constructor(options: SecureContextOptions) {
    super({}, options);
  }

  replace(options: SecureContextOptions): void {
    this.updateSecureContextOptions(options);
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

export interface ExtProcCredentials {
  credentials: ServerCredentials;
  /** Serve this certificate to new connections (validated first; a bad one is refused and the old one kept). */
  replace?(tls: Pick<TlsMaterial, 'cert' | 'key'>): void;
}

export function serverCredentials(tls: TlsMaterial | undefined, policy: TlsPolicy = {}): ExtProcCredentials {
  if (!tls) return { credentials: ServerCredentials.createInsecure() };
  const creds = new ReloadableCredentials(contextOptions(tls, policy));
  return { credentials: creds, replace: (next) => creds.replace(contextOptions(next, policy)) };
}

/**
 * Watches a directory's tls.crt and tls.key (a Kubernetes Secret volume swaps
 * them through a symlink, so the directory is watched, with a slow poll as a
 * backstop) and hands a changed, valid pair to `apply`. A half-written or
 * mismatched pair is logged and skipped: the certificate being served stays.
 */
export class CertWatcher {
  readonly #dir: string;
  readonly #apply: (tls: Pick<TlsMaterial, 'cert' | 'key'>) => void;
  readonly #log: Logger;
  #last = '';
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;

  constructor(dir: string, current: Pick<TlsMaterial, 'cert' | 'key'>, apply: (tls: Pick<TlsMaterial, 'cert' | 'key'>) => void, log: Logger) {
    this.#dir = dir;
    this.#apply = apply;
    this.#log = log;
    this.#last = fingerprint(current.cert, current.key);
  }

  start(pollMs = 30_000): void {
    try {
      this.#watcher = watch(this.#dir, () => this.#soon());
      this.#watcher.on('error', (err) => this.#log.warn({ dir: this.#dir, err: err.message }, 'certificate directory watch failed; polling only'));
    } catch (err) {
      this.#log.warn({ dir: this.#dir, err: (err as Error).message }, 'cannot watch the certificate directory; polling only');
    }
    this.#poll = setInterval(() => void this.check(), pollMs).unref();
  }

  stop(): void {
    this.#watcher?.close();
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
  }

  #soon(): void {
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.check(), 200).unref();
  }

  /** Read the pair now; apply it if it changed and is valid. */
  check(): Promise<void> {
    this.#checking ??= this.#read().finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  async #read(): Promise<void> {
    let cert: Buffer;
    let key: Buffer;
    try {
      ({ cert, key } = await readCertPair(this.#dir));
    } catch (err) {
      this.#log.warn({ dir: this.#dir, err: (err as Error).message }, 'cannot read the renewed certificate; still serving the previous one');
      return;
    }
    const fp = fingerprint(cert, key);
    if (fp === this.#last) return;
    try {
      this.#apply({ cert, key });
    } catch (err) {
      this.#log.warn({ dir: this.#dir, err: (err as Error).message }, 'renewed certificate refused; still serving the previous one');
      return;
    }
    this.#last = fp;
    this.#log.info({ dir: this.#dir }, 'serving the renewed certificate');
  }
}

function fingerprint(cert: Buffer, key: Buffer): string {
  return createHash('sha256').update(cert).update('\0').update(key).digest('hex');
}

// Server credentials for the ext_proc port: plaintext, the operator's
// certificate (--cert-path with tls.crt / tls.key), or a self-signed one made
// at start-up, as the GAIE EPP does. Envoy's EPP cluster accepts it with an
// empty validation_context.
import { ServerCredentials } from '@grpc/grpc-js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  selfSigned: boolean;
}

export async function loadTlsMaterial(certPath: string): Promise<TlsMaterial> {
  if (certPath) {
    const [cert, key] = await Promise.all([readFile(join(certPath, 'tls.crt')), readFile(join(certPath, 'tls.key'))]).catch(
      (err: Error) => {
        throw new Error(`--cert-path ${certPath}: cannot read tls.crt and tls.key: ${err.message}`);
      },
    );
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

export function serverCredentials(tls: TlsMaterial | undefined): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false);
}

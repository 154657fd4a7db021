// TLS material for the metrics server (--metrics-cert-dir, --metrics-client-ca-file),
// read and checked at start-up so a bad file stops llm-epp with the flag named.
import { readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { contextOptions, readCertPair } from '../tls.ts';
import type { MetricsTls } from './metrics-server.ts';

export async function loadMetricsTls(certDir: string, clientCaFile: string): Promise<MetricsTls> {
  const { cert, key } = await readCertPair(certDir).catch((err: Error) => {
    throw new Error(`--metrics-cert-dir ${certDir}: cannot read tls.crt and tls.key: ${err.message}`);
  });
  try {
    contextOptions({ cert, key });
  } catch (err) {
    throw new Error(`--metrics-cert-dir ${certDir}: tls.crt / tls.key unusable: ${(err as Error).message}`);
  }
  if (!clientCaFile) return { cert, key };
  const clientCa = await readFile(clientCaFile).catch((err: Error) => {
    throw new Error(`--metrics-client-ca-file ${clientCaFile}: ${err.message}`);
  });
  // At least one parseable certificate, as llm-d requires ("no valid CA certs").
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(clientCa.toString('utf8'));
  try {
    if (!first) throw new Error('no PEM certificate');
    new X509Certificate(first[0]);
  } catch (err) {
    throw new Error(`--metrics-client-ca-file ${clientCaFile}: no valid CA certificate (${(err as Error).message})`);
  }
  return { cert, key, clientCa };
}

// --metrics-endpoint-auth: who may read /metrics. The page names every pool
// pod and the models clients ask for, so clusters that need it can require a
// bearer token, as llm-d Router does:
// - with --metrics-endpoint-auth-token-file, the token must be one of the
//   file's lines (compared in constant time; the file is re-read when it
//   changes, so a rotated Secret takes effect without a restart);
// - otherwise the Kubernetes API decides: a TokenReview authenticates the
//   token and a SubjectAccessReview asks whether its user may `get` the
//   non-resource URL /metrics (RBAC: create tokenreviews and
//   subjectaccessreviews for llm-epp; get on nonResourceURLs /metrics for the
//   scraper). Answers are cached for a minute, for at most 1,000 tokens.
import { createHash, timingSafeEqual } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { LRUCache } from 'lru-cache';
import { readBoundedFile } from '../bounded-file.ts';
import type { Logger } from '../log.ts';

export type AuthResult = { ok: true } | { ok: false; status: 401 | 403 | 500; message: string };
export type MetricsAuth = (req: IncomingMessage) => Promise<AuthResult>;

export interface MetricsAuthOptions {
  tokenFile?: string;
  /** A @kubernetes/client-node KubeConfig; loaded from the environment when absent. */
  kubeConfig?: unknown;
  cacheTtlMs?: number;
}

const MAX_TOKEN_BYTES = 16_384;
const MAX_TOKEN_FILE_BYTES = 1 << 20;

function bearer(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (!h || h.length > MAX_TOKEN_BYTES + 7) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

const unauthenticated: AuthResult = { ok: false, status: 401, message: 'Unauthorized: a valid bearer token is required' };

export async function createMetricsAuth(opts: MetricsAuthOptions, log: Logger): Promise<MetricsAuth> {
  return opts.tokenFile ? tokenFileAuth(opts.tokenFile, log) : kubeAuth(opts, log);
}

async function tokenFileAuth(file: string, log: Logger): Promise<MetricsAuth> {
  let tokens: Buffer[] = [];
  let loadedMtime = -1;
  const load = async () => {
    const s = await stat(file);
    if (s.mtimeMs === loadedMtime) return;
    const text = await readBoundedFile(file, MAX_TOKEN_FILE_BYTES);
    tokens = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((l) => Buffer.from(l));
    loadedMtime = s.mtimeMs;
  };
  await load().catch((err: Error) => {
    throw new Error(`--metrics-endpoint-auth-token-file ${file}: ${err.message}`);
  });
  if (tokens.length === 0) throw new Error(`--metrics-endpoint-auth-token-file ${file}: no token in the file`);
  return async (req) => {
    const token = bearer(req);
    if (!token) return unauthenticated;
    try {
      await load();
    } catch (err) {
      // Keep the tokens already read: a Secret being swapped is briefly absent.
      log.warn({ err: (err as Error).message, file }, 'cannot re-read the metrics token file; using the tokens read before');
    }
    const given = Buffer.from(token);
    let ok = false;
    for (const t of tokens) if (t.length === given.length && timingSafeEqual(t, given)) ok = true;
    return ok ? { ok: true } : unauthenticated;
  };
}

async function kubeAuth(opts: MetricsAuthOptions, log: Logger): Promise<MetricsAuth> {
  const k8s = await import('@kubernetes/client-node');
  let kc = opts.kubeConfig as InstanceType<typeof k8s.KubeConfig> | undefined;
  if (!kc) {
    kc = new k8s.KubeConfig();
    kc.loadFromDefault();
  }
  const authn = kc.makeApiClient(k8s.AuthenticationV1Api);
  const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
  const cache = new LRUCache<string, AuthResult>({ max: 1000, ttl: opts.cacheTtlMs ?? 60_000 });

  const review = async (token: string, verb: string, path: string): Promise<AuthResult> => {
    const tr = await authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } });
    const user = tr.status?.user;
    if (!tr.status?.authenticated || !user) return unauthenticated;
    const sar = await authz.createSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: { user: user.username, uid: user.uid, groups: user.groups, extra: user.extra, nonResourceAttributes: { path, verb } },
      },
    });
    if (!sar.status?.allowed) return { ok: false, status: 403, message: `Forbidden: user "${user.username}" may not ${verb} ${path}` };
    return { ok: true };
  };

  return async (req) => {
    const token = bearer(req);
    if (!token) return unauthenticated;
    const verb = (req.method ?? 'GET').toLowerCase();
    const path = '/metrics';
    // Tokens are kept only as hashes.
    const key = `${verb} ${createHash('sha256').update(token).digest('hex')}`;
    const cached = cache.get(key);
    if (cached) return cached;
    try {
      const result = await review(token, verb, path);
      cache.set(key, result);
      return result;
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'metrics auth: TokenReview or SubjectAccessReview failed');
      return { ok: false, status: 500, message: 'Internal Server Error: cannot check the token' };
    }
  };
}

// The gateway's start-up check of its EPP: one HTTP/2 connection in the mode
// the flags ask for, ready when the EPP's SETTINGS arrive. When it fails, a
// second look says why in terms of the gateway's flags: nothing listening,
// TLS on one side only, a certificate it cannot verify, or not HTTP/2 at all.
import { connect as h2connect } from 'node:http2';
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { sessionOptions, type EppAddress } from './epp-channel.ts';
import { GatewayError } from './errors.ts';

interface Attempt {
  ok: boolean;
  code?: string;
  message?: string;
  timedOut?: boolean;
}

/** Open an HTTP/2 session and wait for the peer's SETTINGS. */
function tryHttp2(a: EppAddress, timeoutMs: number): Promise<Attempt> {
  const { authority, options } = sessionOptions(a);
  return new Promise((resolve) => {
    const s = h2connect(authority, options);
    const done = (r: Attempt) => {
      clearTimeout(timer);
      s.removeAllListeners();
      s.on('error', () => {});
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, timedOut: true }), timeoutMs);
    s.once('remoteSettings', () => done({ ok: true }));
    s.once('error', (err: NodeJS.ErrnoException) => done({ ok: false, code: err.code, message: err.message }));
    s.once('close', () => done({ ok: false, message: 'the connection was closed' }));
  });
}

/** Does a TLS handshake (any certificate) succeed? */
function speaksTls(a: EppAddress, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = tlsConnect({ host: a.host, port: a.port, rejectUnauthorized: false, ALPNProtocols: ['h2'], servername: isIP(a.host) ? undefined : a.host });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.removeAllListeners();
      sock.on('error', () => {});
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('secureConnect', () => done(true));
    sock.once('error', () => done(false));
    sock.once('close', () => done(false));
  });
}

const CERT_PROBLEM = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME/;

/** Resolves when the EPP answers HTTP/2 as configured; otherwise a GatewayError that says what to change. */
export async function checkEpp(a: EppAddress, timeoutMs = 5000): Promise<void> {
  const r = await tryHttp2(a, timeoutMs);
  if (r.ok) return;
  const where = `the EPP at ${a.host}:${a.port}`;
  if (r.code === 'ECONNREFUSED') throw new GatewayError(`nothing listens at ${a.host}:${a.port} (--epp): start llm-epp first, or point --epp at its --grpc-port (default 9002)`);
  if (r.code === 'ENOTFOUND' || r.code === 'EAI_AGAIN') throw new GatewayError(`--epp host "${a.host}" cannot be resolved`);
  if (r.timedOut) throw new GatewayError(`${where} did not answer within ${timeoutMs / 1000} s (--epp)`);
  if (!a.tls) {
    if (await speaksTls(a, timeoutMs)) {
      throw new GatewayError(`${where} speaks TLS: pass --epp-tls (and --epp-ca FILE, or --epp-insecure-skip-verify for llm-epp's default self-signed certificate)`);
    }
    throw new GatewayError(`${where} accepted a connection but did not answer HTTP/2 (${r.message ?? r.code}): is --epp llm-epp's --grpc-port?`);
  }
  if (CERT_PROBLEM.test(r.code ?? '')) {
    throw new GatewayError(
      `${where} presented a certificate the gateway cannot verify (${r.code}): pass --epp-ca FILE with the certificate that signed it (llm-epp's tls.crt from --cert-path), or --epp-insecure-skip-verify (llm-epp's default certificate is self-signed)`,
    );
  }
  if ((await tryHttp2({ host: a.host, port: a.port }, timeoutMs)).ok) {
    throw new GatewayError(`${where} does not speak TLS: drop --epp-tls (or serve llm-epp with --secure-serving=true)`);
  }
  throw new GatewayError(`TLS to ${where} failed (${r.code ?? r.message}): check --epp, --epp-tls and --epp-ca`);
}

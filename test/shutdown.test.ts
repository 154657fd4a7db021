// SIGTERM as a Kubernetes pod gets it, on the real process: health goes
// NOT_SERVING at once on both ports (liveness stays SERVING), ext_proc keeps
// accepting and serving new streams for --shutdown-delay, streams that were
// open finish during --drain-timeout, and the process exits 0.
import { credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProcessingRequest, ProcessingResponse } from '../src/extproc/messages.ts';
import { ExternalProcessorClient } from '../bench/lib/ext-proc-client.ts';
import { EnvoyClient } from './helpers/envoy-client.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { startEppProcess as startEpp, type EppProcess } from './helpers/epp-process.ts';
import { healthClient, readiness } from './helpers/health-client.ts';

type Stream = ClientDuplexStream<ProcessingRequest, ProcessingResponse>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SIGTERM', () => {
  const pod = new FakePod();
  let epp: EppProcess;

  beforeAll(async () => {
    await pod.start();
    epp = await startEpp([
      `--endpoints=${pod.key}`,
      '--grpc-port=0',
      '--grpc-health-port=0',
      '--metrics-port=0',
      '--secure-serving=false',
      '--refresh-metrics-interval=20ms',
      '--shutdown-delay=1500ms',
      '--drain-timeout=10s',
    ]);
  });
  afterAll(async () => {
    if (epp.proc.exitCode === null) epp.proc.kill('SIGKILL');
    await pod.stop();
  });

  it('goes NOT_SERVING first, keeps serving through the delay, drains open streams, exits 0', async () => {
    const healthPort = healthClient(epp.healthPort);
    const extProcPortHealth = healthClient(epp.grpcPort);
    const envoy = new EnvoyClient(`127.0.0.1:${epp.grpcPort}`);
    const raw = new ExternalProcessorClient(`127.0.0.1:${epp.grpcPort}`, credentials.createInsecure());
    const route = () => envoy.send({ body: '{"model":"m","prompt":"p"}', response: { status: 200, chunks: ['{"ok":true}'] } });

    // Ready, and routing (the pod has been scraped).
    const deadline = Date.now() + 10_000;
    while ((await readiness(healthPort)).some((s) => s !== 'SERVING') || (await route()).immediate) {
      if (Date.now() > deadline) throw new Error('llm-epp never became ready');
      await sleep(50);
    }

    // Streams open before SIGTERM, routed and waiting for their responses.
    const open: { call: Stream; replies: ProcessingResponse[]; ended: Promise<string> }[] = [];
    for (let i = 0; i < 8; i++) {
      const call = (raw as unknown as { Process(): Stream }).Process();
      const replies: ProcessingResponse[] = [];
      call.on('data', (m: ProcessingResponse) => replies.push(m));
      const ended = new Promise<string>((resolve) => {
        call.on('status', (s: { code: number }) => resolve(s.code === 0 ? 'OK' : `status ${s.code}`));
        call.on('error', (e: Error) => resolve(e.message));
      });
      call.write({
        request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/completions') }] }, end_of_stream: false },
        protocol_config: { request_body_mode: 4, response_body_mode: 4 },
      });
      call.write({ request_body: { body: Buffer.from('{"model":"m","prompt":"in flight"}'), end_of_stream: true } });
      open.push({ call, replies, ended });
    }
    const t = Date.now();
    while (open.some((s) => s.replies.length < 2)) {
      if (Date.now() - t > 5000) throw new Error('open streams were not routed');
      await sleep(10);
    }

    const t0 = Date.now();
    epp.proc.kill('SIGTERM');
    // Health: NOT_SERVING at once, on the health port and on the ext_proc port.
    let notServingAfter = -1;
    while (Date.now() - t0 < 1000) {
      const both = [...(await readiness(healthPort)), ...(await readiness(extProcPortHealth))];
      if (both.every((s) => s === 'NOT_SERVING')) {
        notServingAfter = Date.now() - t0;
        break;
      }
      await sleep(5);
    }
    expect(notServingAfter).toBeGreaterThanOrEqual(0);
    expect(notServingAfter).toBeLessThan(500);
    expect(await healthPort.check('liveness')).toBe('SERVING');

    // New streams during the delay are accepted and served.
    for (let i = 0; i < 5; i++) {
      const r = await route();
      expect(r.immediate, `request ${i} during the delay`).toBeUndefined();
      expect(r.violations).toEqual([]);
      await sleep(100);
    }
    expect(Date.now() - t0).toBeLessThan(1500);

    // Past the delay: no longer accepting; the open streams finish now.
    await sleep(1700 - (Date.now() - t0));
    expect(epp.proc.exitCode).toBeNull();
    for (const s of open) {
      s.call.write({ response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('200') }] }, end_of_stream: false } });
      s.call.write({ response_body: { body: Buffer.from('{"ok":true}'), end_of_stream: true } });
      s.call.end();
    }
    const endings = await Promise.all(open.map((s) => s.ended));
    expect(endings).toEqual(open.map(() => 'OK'));
    for (const s of open) {
      expect(s.replies.map((r) => Object.keys(r).find((k) => k.startsWith('re')))).toEqual(['request_headers', 'request_body', 'response_headers', 'response_body']);
    }

    expect(await epp.exit).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    const msgs = epp.logs.map((l) => l.msg);
    expect(msgs).toContain('draining: health NOT_SERVING, still accepting ext_proc streams');
    expect(msgs).toContain('draining: no longer accepting ext_proc streams');
    expect(msgs.at(-1)).toBe('stopped');
    for (const c of [healthPort, extProcPortHealth]) c.close();
    envoy.close();
    raw.close();
  }, 30_000);

  it('still exits when whatever read its stdout is gone (a broken pipe must not hang the exit)', async () => {
    const lone = await startEpp([`--endpoints=${pod.key}`, '--grpc-port=0', '--grpc-health-port=0', '--metrics-port=0', '--secure-serving=false', '--shutdown-delay=0s', '--drain-timeout=1s']);
    lone.proc.stdout!.destroy();
    await sleep(100);
    const t0 = Date.now();
    lone.proc.kill('SIGTERM');
    const code = await Promise.race([lone.exit, sleep(8000).then(() => 'hung' as const)]);
    if (code === 'hung') lone.proc.kill('SIGKILL');
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
  }, 20_000);
});

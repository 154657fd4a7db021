// --tracing: OpenTelemetry spans named as llm-d Router names them
// (gateway.request → gateway.request_orchestration → llm_d.epp.scoring →
// llm_d.epp.scorer.<type>), continuing a W3C traceparent, sampled as
// OTEL_TRACES_SAMPLER says, and exported over OTLP gRPC (llm-d's default) or
// HTTP/JSON to real receivers.
import { Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import protobuf from 'protobufjs';
import { afterEach, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import type { EnvoyClient } from './helpers/envoy-client.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import { FakePod } from './helpers/fake-pod.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function start(env: NodeJS.ProcessEnv, spanExporter?: InMemorySpanExporter): Promise<{ app: App; client: EnvoyClient }> {
  const pods = [new FakePod({ waiting: 1 }), new FakePod({ waiting: 4 })];
  await Promise.all(pods.map((p) => p.start()));
  const { app, client } = await startTestApp([`--endpoints=${pods.map((p) => p.key).join(',')}`, '--tracing'], { deps: { spanExporter, tracingEnv: env } }).catch(async (err: unknown) => {
    await Promise.all(pods.map((p) => p.stop()));
    throw err;
  });
  cleanup.push(async () => {
    client.close();
    await app.stop(100, 0);
    await Promise.all(pods.map((p) => p.stop()));
  });
  await waitFor(() => app.director.candidates(undefined).length === 2);
  return { app, client };
}

const request = (headers: Record<string, string> = {}) => ({
  body: JSON.stringify({ model: 'm', prompt: 'hello' }),
  headers,
  response: { status: 200, chunks: ['{"usage":{"prompt_tokens":1,"completion_tokens":1}}'] },
});

describe('spans', () => {
  it('a request with a traceparent: its spans continue the trace, nested as llm-d Router nests them', async () => {
    const exporter = new InMemorySpanExporter();
    const { client } = await start({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }, exporter);
    const r = await client.send(request({ traceparent: `00-${TRACE_ID}-${PARENT_SPAN}-01`, 'x-request-id': 'req-1' }));
    expect(r.immediate).toBeUndefined();
    await waitFor(() => exporter.getFinishedSpans().some((s) => s.name === 'gateway.request'));
    const spans = exporter.getFinishedSpans();
    const byName = (n: string) => spans.filter((s) => s.name === n);
    const root = byName('gateway.request')[0];
    const orchestration = byName('gateway.request_orchestration')[0];
    const scoring = byName('llm_d.epp.scoring')[0];
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
    for (const s of spans) expect(s.spanContext().traceId).toBe(TRACE_ID);
    expect(parentOf(root)).toBe(PARENT_SPAN);
    expect(root.attributes['gen_ai.request.id']).toBe('req-1');
    expect(parentOf(orchestration)).toBe(root.spanContext().spanId);
    expect(orchestration.attributes['gen_ai.request.model']).toBe('m');
    expect(parentOf(scoring)).toBe(orchestration.spanContext().spanId);
    expect(scoring.attributes['llm_d.epp.scoring.candidate_endpoints']).toBe(2);
    // The default config's scorers, each its own span under scoring.
    const scorers = spans.filter((s) => s.name.startsWith('llm_d.epp.scorer.'));
    expect(scorers.map((s) => s.name).sort()).toEqual(['llm_d.epp.scorer.kv-cache-utilization-scorer', 'llm_d.epp.scorer.prefix-cache-scorer', 'llm_d.epp.scorer.queue-scorer']);
    for (const s of scorers) expect(parentOf(s)).toBe(scoring.spanContext().spanId);
    const queue = scorers.find((s) => s.name === 'llm_d.epp.scorer.queue-scorer')!;
    expect(queue.attributes).toMatchObject({ 'llm_d.epp.scorer.type': 'queue-scorer', 'llm_d.epp.scorer.weight': 2, 'llm_d.epp.scorer.endpoints_scored': 2, 'llm_d.epp.scorer.score.max': 1 });
  });

  it('the sampler decides for requests without a parent: ratio 0 traces nothing, always_on everything', async () => {
    const none = new InMemorySpanExporter();
    const off = await start({ OTEL_TRACES_SAMPLER_ARG: '0' }, none);
    await off.client.send(request());
    const all = new InMemorySpanExporter();
    const on = await start({ OTEL_TRACES_SAMPLER: 'always_on' }, all);
    await on.client.send(request());
    await waitFor(() => all.getFinishedSpans().some((s) => s.name === 'gateway.request'));
    expect(none.getFinishedSpans()).toEqual([]);
  });

  it('a request llm-epp refuses ends its span with an error status and the HTTP code', async () => {
    const exporter = new InMemorySpanExporter();
    const { client } = await start({ OTEL_TRACES_SAMPLER: 'always_on' }, exporter);
    const r = await client.send({ body: '{"prompt":' });
    expect(r.immediate?.status).toBe(400);
    await waitFor(() => exporter.getFinishedSpans().some((s) => s.name === 'gateway.request'));
    const root = exporter.getFinishedSpans().find((s) => s.name === 'gateway.request')!;
    expect(root.status.code).toBe(2);
    expect(root.attributes['http.response.status_code']).toBe(400);
  });

  it('an exporter or protocol llm-epp does not have is refused at start with the variable named', async () => {
    await expect(start({ OTEL_TRACES_EXPORTER: 'zipkin' })).rejects.toThrow(/OTEL_TRACES_EXPORTER=zipkin/);
    await expect(start({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' })).rejects.toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL=http\/protobuf/);
  });
});

// The OTLP trace request, as much of it as the test reads (opentelemetry-proto
// field numbers: collector/trace/v1, trace/v1, common/v1).
const OTLP = protobuf.Root.fromJSON({
  nested: {
    AnyValue: { fields: { stringValue: { type: 'string', id: 1 }, boolValue: { type: 'bool', id: 2 }, intValue: { type: 'int64', id: 3 }, doubleValue: { type: 'double', id: 4 } } },
    KeyValue: { fields: { key: { type: 'string', id: 1 }, value: { type: 'AnyValue', id: 2 } } },
    Resource: { fields: { attributes: { rule: 'repeated', type: 'KeyValue', id: 1 } } },
    Span: {
      fields: {
        traceId: { type: 'bytes', id: 1 },
        spanId: { type: 'bytes', id: 2 },
        parentSpanId: { type: 'bytes', id: 4 },
        name: { type: 'string', id: 5 },
        attributes: { rule: 'repeated', type: 'KeyValue', id: 9 },
      },
    },
    ScopeSpans: { fields: { spans: { rule: 'repeated', type: 'Span', id: 2 } } },
    ResourceSpans: { fields: { resource: { type: 'Resource', id: 1 }, scopeSpans: { rule: 'repeated', type: 'ScopeSpans', id: 2 } } },
    ExportTraceServiceRequest: { fields: { resourceSpans: { rule: 'repeated', type: 'ResourceSpans', id: 1 } } },
  },
});
const ExportRequest = OTLP.lookupType('ExportTraceServiceRequest');

interface Received {
  service: string;
  names: string[];
}

function decode(buf: Buffer): Received {
  const msg = ExportRequest.toObject(ExportRequest.decode(buf), { bytes: String }) as {
    resourceSpans?: { resource?: { attributes?: { key: string; value: { stringValue?: string } }[] }; scopeSpans?: { spans?: { name: string }[] }[] }[];
  };
  const rs = msg.resourceSpans ?? [];
  return {
    service: rs[0]?.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '',
    names: rs.flatMap((r) => (r.scopeSpans ?? []).flatMap((s) => (s.spans ?? []).map((x) => x.name))),
  };
}

describe('OTLP export to a real receiver', () => {
  it('gRPC (llm-d Router\'s default): OTEL_EXPORTER_OTLP_ENDPOINT, service name from OTEL_SERVICE_NAME', async () => {
    const got: Received[] = [];
    const server = new Server();
    server.addService(
      {
        Export: {
          path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
          requestStream: false,
          responseStream: false,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      {
        Export: (call: ServerUnaryCall<Buffer, Buffer>, done: sendUnaryData<Buffer>) => {
          got.push(decode(call.request));
          done(null, Buffer.alloc(0));
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    cleanup.push(() => new Promise((r) => server.tryShutdown(() => r())));
    const { app, client } = await start({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_TRACES_SAMPLER: 'always_on', OTEL_SERVICE_NAME: 'llm-d-router/epp', OTEL_BSP_SCHEDULE_DELAY: '50' });
    await client.send(request());
    await app.stop(100, 0); // flushes
    const names = got.flatMap((g) => g.names);
    expect(names).toContain('gateway.request');
    expect(names).toContain('llm_d.epp.scorer.queue-scorer');
    expect(got[0].service).toBe('llm-d-router/epp');
  });

  it('HTTP/JSON with OTEL_EXPORTER_OTLP_PROTOCOL=http/json', async () => {
    const bodies: { path: string; body: { resourceSpans: { scopeSpans: { spans: { name: string }[] }[] }[] } }[] = [];
    const http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        // An export cut short by the shutdown arrives empty: answered as a collector would, not thrown.
        let body;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString());
        } catch {
          res.writeHead(400).end();
          return;
        }
        bodies.push({ path: req.url ?? '', body });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise((r) => http.close(() => r())));
    const port = (http.address() as AddressInfo).port;
    const { app, client } = await start({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_TRACES_SAMPLER: 'always_on' });
    await client.send(request());
    await app.stop(100, 0);
    expect(bodies.map((b) => b.path)).toContain('/v1/traces');
    const names = bodies.flatMap((b) => b.body.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans.map((x) => x.name))));
    expect(names).toContain('gateway.request_orchestration');
  });
});

// The hand-written encoder for body echoes must produce what protobufjs
// (and so Envoy) decodes as the same message.
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { chunkBody } from '../src/extproc/messages.ts';
import { decodeResponse, encodeResponse } from '../src/extproc/proto.ts';

describe('ext_proc codec', () => {
  it('encodes streamed body replies that decode back to the same body and end_of_stream', () => {
    for (const size of [0, 1, 127, 128, 16_383, 16_384, 62_000, 200_000]) {
      const body = Buffer.alloc(size, 0x61);
      for (const kind of ['request_body', 'response_body'] as const) {
        for (const msg of chunkBody(kind, body, true)) {
          const bytes = encodeResponse(msg);
          const back = decodeResponse(bytes);
          const s = back[kind]!.response.body_mutation!.streamed_response!;
          const sent = msg[kind]!.response.body_mutation!.streamed_response!;
          expect(Buffer.from(s.body ?? []).equals(sent.body)).toBe(true);
          expect(Boolean(s.end_of_stream)).toBe(sent.end_of_stream);
          expect(back.request_headers ?? undefined).toBeUndefined();
        }
      }
    }
  });

  it('matches protobufjs byte for byte (protobufjs also writes an explicit end_of_stream: false; proto3 omits it)', async () => {
    const { PROTO_DIR } = await import('../src/extproc/proto.ts');
    const root = new protobuf.Root();
    root.resolvePath = (_o, t) => (t.startsWith('google/protobuf/') ? t : PROTO_DIR + t);
    root.loadSync('envoy/service/ext_proc/v3/external_processor.proto', { keepCase: true });
    const T = root.lookupType('envoy.service.ext_proc.v3.ProcessingResponse');
    const msg = { response_body: { response: { body_mutation: { streamed_response: { body: Buffer.from('data: {"x":1}\n\n'), end_of_stream: true } } } } };
    expect(encodeResponse(msg).equals(Buffer.from(T.encode(T.fromObject(msg)).finish()))).toBe(true);
    const open = { request_body: { response: { body_mutation: { streamed_response: { body: Buffer.from('ab'), end_of_stream: false } } } } };
    expect(T.toObject(T.decode(encodeResponse(open)), { defaults: true })).toEqual(T.toObject(T.decode(T.encode(T.fromObject(open)).finish()), { defaults: true }));
  });
});

// The Envoy bootstraps users run in front of llm-epp (deploy/envoy.yaml and the
// in-cluster copy in examples/gateway-envoy.yaml): no Envoy binary runs in CI,
// so check the settings the EPP protocol depends on, and that the two agree.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { DESTINATION_HEADER, SERVED_KEY, SUBSET_KEY } from '../src/extproc/messages.ts';
import { FAIRNESS_HEADERS, OBJECTIVE_HEADERS, REWRITE_HEADERS } from '../src/request-control/policy.ts';

// Parsed YAML of known shape; checked field by field below.
type Obj = Record<string, any>;

const root = new URL('../deploy/', import.meta.url);
const standalone = parse(readFileSync(new URL('envoy.yaml', root), 'utf8')) as Obj;
const cm = parseAllDocuments(readFileSync(new URL('kubernetes/examples/gateway-envoy.yaml', root), 'utf8'))
  .map((d) => d.toJS() as Obj)
  .find((d) => d.kind === 'ConfigMap')!;
const inCluster = parse(cm.data['envoy.yaml']) as Obj;

function parts(bootstrap: Obj) {
  const listener = bootstrap.static_resources.listeners[0];
  const hcm = listener.filter_chains[0].filters[0].typed_config;
  const extProc = hcm.http_filters.find((f: Obj) => f.name === 'envoy.filters.http.ext_proc').typed_config;
  const clusters = new Map<string, Obj>(bootstrap.static_resources.clusters.map((c: Obj) => [c.name, c]));
  return { hcm, extProc, clusters };
}

describe.each([
  ['deploy/envoy.yaml', standalone],
  ['examples/gateway-envoy.yaml', inCluster],
])('%s', (_name, bootstrap) => {
  const { hcm, extProc, clusters } = parts(bootstrap);

  it('runs ext_proc in FULL_DUPLEX_STREAMED mode with trailers, fail-closed, before the router', () => {
    expect(extProc.processing_mode).toEqual({
      request_header_mode: 'SEND',
      response_header_mode: 'SEND',
      request_body_mode: 'FULL_DUPLEX_STREAMED',
      response_body_mode: 'FULL_DUPLEX_STREAMED',
      request_trailer_mode: 'SEND',
      response_trailer_mode: 'SEND',
    });
    expect(extProc.failure_mode_allow).toBe(false);
    expect(extProc.grpc_service.envoy_grpc.cluster_name).toBe('llm-epp');
    expect(hcm.http_filters.map((f: Obj) => f.name)).toEqual(['envoy.filters.http.ext_proc', 'envoy.filters.http.router']);
  });

  it('receives the envoy.lb metadata namespace and forwards the subset hint', () => {
    expect(extProc.metadata_options.receiving_namespaces.untyped).toContain('envoy.lb');
    expect(extProc.metadata_options.forwarding_namespaces.untyped).toEqual(expect.arrayContaining(['envoy.lb', 'envoy.lb.subset_hint']));
  });

  it('routes on the destination header with an ORIGINAL_DST cluster, clients cannot set it', () => {
    const route = hcm.route_config.virtual_hosts[0].routes[0].route;
    const dst = clusters.get(route.cluster)!;
    expect(dst.type).toBe('ORIGINAL_DST');
    expect(dst.lb_policy).toBe('CLUSTER_PROVIDED');
    expect(dst.original_dst_lb_config).toEqual({ use_http_header: true, http_header_name: 'x-gateway-destination-endpoint' });
    expect(route.timeout).toBe('0s');
    expect(hcm.early_header_mutation_extensions[0].typed_config.mutations).toContainEqual({ remove: 'x-gateway-destination-endpoint' });
  });

  it('strips every x-gateway-* / x-llm-d-* request header llm-epp reads from clients, before ext_proc', () => {
    const removed = hcm.early_header_mutation_extensions[0].typed_config.mutations.map((m: Obj) => m.remove);
    const read = [...OBJECTIVE_HEADERS, ...FAIRNESS_HEADERS, ...REWRITE_HEADERS, DESTINATION_HEADER, SERVED_KEY, SUBSET_KEY];
    expect(removed).toEqual(expect.arrayContaining(read));
  });

  it('talks HTTP/2 over TLS (ALPN h2) to llm-epp and health-checks the ext_proc service', () => {
    const epp = clusters.get('llm-epp')!;
    expect(epp.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config).toHaveProperty('http2_protocol_options');
    expect(epp.transport_socket.typed_config.common_tls_context.alpn_protocols).toEqual(['h2']);
    expect(epp.health_checks[0].grpc_health_check.service_name).toBe('envoy.service.ext_proc.v3.ExternalProcessor');
    const port = epp.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value;
    expect(port).toBe(9002);
  });
});

describe('in-cluster Envoy example', () => {
  it('has the same ext_proc filter settings as deploy/envoy.yaml, and mounts its bootstrap where Envoy reads it', () => {
    const a = parts(standalone).extProc;
    const b = parts(inCluster).extProc;
    expect(b.processing_mode).toEqual(a.processing_mode);
    expect(b.metadata_options).toEqual(a.metadata_options);
    expect(b.message_timeout).toBe(a.message_timeout);
    const docs = parseAllDocuments(readFileSync(new URL('kubernetes/examples/gateway-envoy.yaml', root), 'utf8')).map((d) => d.toJS() as Obj);
    const dep = docs.find((d) => d.kind === 'Deployment')!;
    const c = dep.spec.template.spec.containers[0];
    const mount = c.volumeMounts[0].mountPath;
    expect(c.args.slice(0, 2)).toEqual(['-c', `${mount}/envoy.yaml`]);
    expect(dep.spec.template.spec.volumes[0].configMap.name).toBe(cm.metadata.name);
    const listenPort = inCluster.static_resources.listeners[0].address.socket_address.port_value;
    expect(c.ports[0].containerPort).toBe(listenPort);
  });
});

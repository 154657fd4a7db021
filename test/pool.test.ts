import { describe, expect, it } from 'vitest';
import { Datastore } from '../src/pool/datastore.ts';
import { hostOf, joinHostPort, parseHostPort } from '../src/pool/endpoint.ts';
import { parseEndpointsYaml } from '../src/pool/file-source.ts';
import { parseEndpointList } from '../src/pool/static-source.ts';

describe('endpoints', () => {
  it('formats and parses ip:port with IPv6 in brackets', () => {
    expect(joinHostPort('10.0.0.1', 8000)).toBe('10.0.0.1:8000');
    expect(joinHostPort('2600:1f::1', 80)).toBe('[2600:1f::1]:80');
    expect(parseHostPort('[::1]:8000')).toEqual({ address: '::1', port: 8000 });
    expect(parseHostPort('10.1.2.3:80')).toEqual({ address: '10.1.2.3', port: 80 });
    expect(() => parseHostPort('::1:8000')).toThrow(/\[addr\]:port/);
    expect(() => parseHostPort('host.example:80')).toThrow(/not an IP/);
    expect(() => parseHostPort('10.0.0.1:70000')).toThrow(/1-65535/);
    expect(hostOf('[::1]:80')).toBe('::1');
    expect(hostOf('10.0.0.1:80')).toBe('10.0.0.1');
    expect(hostOf('::1')).toBe('::1');
  });

  it('parses --endpoints lists', () => {
    expect(parseEndpointList('10.0.0.1:8000, [fd00::2]:8001,')).toEqual([
      { address: '10.0.0.1', port: 8000 },
      { address: 'fd00::2', port: 8001 },
    ]);
    expect(() => parseEndpointList(' , ')).toThrow(/no endpoint/);
  });

  it('parses endpoints YAML strictly with errors that say where', () => {
    expect(parseEndpointsYaml('- {address: 10.0.0.1, port: 8000, labels: {a: b, n: 1}}')).toEqual([{ address: '10.0.0.1', port: 8000, labels: { a: 'b', n: '1' } }]);
    expect(parseEndpointsYaml('endpoints: []')).toEqual([]);
    expect(() => parseEndpointsYaml('endpoints:\n  - address: 10.0.0.1\n    port: 80\n    weight: 2\n', 'f.yaml')).toThrow('f.yaml: endpoints[0]: unknown field "weight"');
    expect(() => parseEndpointsYaml('pods: []')).toThrow(/unknown top-level field "pods"/);
    expect(() => parseEndpointsYaml('endpoints: [{address: 10.0.0.1}]')).toThrow(/port/);
    expect(() => parseEndpointsYaml('endpoints: [oops')).toThrow(/invalid YAML/);
  });

  it('keeps endpoint identity across pool updates and reports changes', () => {
    const ds = new Datastore();
    const changes: number[][] = [];
    ds.on('change', (c) => changes.push([c.added.length, c.removed.length]));
    expect(ds.synced).toBe(false);
    ds.replaceAll([{ address: '10.0.0.1', port: 1 }, { address: '10.0.0.2', port: 1 }]);
    const a = ds.get('10.0.0.1:1')!;
    a.inFlight = 3;
    ds.replaceAll([{ address: '10.0.0.1', port: 1, labels: { x: 'y' } }, { address: '10.0.0.3', port: 1 }]);
    expect(ds.get('10.0.0.1:1')).toBe(a);
    expect(a.inFlight).toBe(3);
    expect(a.labels).toEqual({ x: 'y' });
    expect(ds.get('10.0.0.2:1')).toBeUndefined();
    expect(changes).toEqual([[2, 0], [1, 1]]);
    expect(ds.synced).toBe(true);
  });
});

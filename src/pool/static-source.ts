// --endpoints ip:port,ip:port,... : a fixed pool.
import { parseHostPort, type EndpointSpec } from './endpoint.ts';

export function parseEndpointList(text: string): EndpointSpec[] {
  const specs: EndpointSpec[] = [];
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    specs.push(parseHostPort(part));
  }
  if (specs.length === 0) throw new Error('--endpoints: no endpoint given');
  return specs;
}

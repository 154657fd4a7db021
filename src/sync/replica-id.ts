// This process's id among the replicas that share state: the pod name
// (HOSTNAME in Kubernetes) and a random suffix, so a restarted pod is a new
// origin whose load starts from zero.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

export function replicaId(): string {
  const host = (process.env.HOSTNAME || hostname() || 'llm-epp').replace(/[^A-Za-z0-9.-]/g, '').slice(0, 63);
  return `${host}-${randomBytes(4).toString('hex')}`;
}

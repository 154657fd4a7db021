// A worker's ext_proc port serves gRPC health too (Envoy health-checks the EPP
// cluster there): it says what the control thread decided.
import type { HealthState } from '../health.ts';
import type { HealthStatus } from './messages.ts';

export function applyHealth(health: HealthState, h: HealthStatus): void {
  if (h.draining) health.setDraining();
  else health.setReady(h.ready);
  for (const [service, status] of h.services) health.impl.setStatus(service, status);
}

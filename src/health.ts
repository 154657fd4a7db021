// grpc.health.v1 as the EPP protocol asks: `liveness` answers while the
// process runs; `readiness`, "" and the ext_proc service name are SERVING once
// the pool has been read and the ext_proc server accepts streams.
import { HealthImplementation } from 'grpc-health-check';
import { EXT_PROC_SERVICE_NAME } from './extproc/messages.ts';

export const READINESS_SERVICES = ['', 'readiness', EXT_PROC_SERVICE_NAME] as const;

export class HealthState {
  readonly impl = new HealthImplementation({
    liveness: 'SERVING',
    readiness: 'NOT_SERVING',
    '': 'NOT_SERVING',
    [EXT_PROC_SERVICE_NAME]: 'NOT_SERVING',
  });
  #ready = false;
  #draining = false;

  get ready(): boolean {
    return this.#ready;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Shutting down: NOT_SERVING from now on, whatever setReady says later. `liveness` stays SERVING. */
  setDraining(): void {
    this.setReady(false);
    this.#draining = true;
  }

  setReady(ready: boolean): void {
    if (this.#draining || ready === this.#ready) return;
    this.#ready = ready;
    for (const s of READINESS_SERVICES) this.impl.setStatus(s, ready ? 'SERVING' : 'NOT_SERVING');
  }
}

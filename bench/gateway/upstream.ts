// The gateway's upstream leg: one request to the first endpoint of a list
// that accepts the connection (Envoy's walk of the EPP's fallback list), over
// undici's keep-alive pools, its response handed on chunk by chunk through
// dispatch callbacks (no response stream object, no async iteration).
import type { Agent, Dispatcher } from 'undici';

/** Where the response goes. onData returning false pauses the upstream until resume(). */
export interface UpstreamSink {
  onStart(target: string, status: number, headers: Record<string, string | string[] | undefined>): void;
  onData(chunk: Buffer): boolean;
  onEnd(): void;
  onError(err: Error): void;
}

export interface UpstreamRequest {
  method: string;
  path: string;
  /** Flat: name, value, name, value… (hop-by-hop headers already removed). */
  headers: string[];
  /** The request body: one buffer, or its chunks in order (sent without joining them). */
  body: Buffer | Buffer[] | null;
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ECONNRESET', 'ENETUNREACH']);

function isConnectError(err: unknown): boolean {
  const e = err as { code?: string; cause?: { code?: string } };
  return CONNECT_ERRORS.has(e.code ?? '') || CONNECT_ERRORS.has(e.cause?.code ?? '');
}

/** Requests in flight per endpoint, for least-request and for the fallback walk's bookkeeping. */
export type InFlight = Map<string, number>;

/** One request and its attempts down the list. */
export class UpstreamCall implements Dispatcher.DispatchHandler {
  readonly #agent: Agent;
  readonly #inFlight: InFlight;
  readonly #targets: readonly string[];
  readonly #req: UpstreamRequest;
  readonly #sink: UpstreamSink;
  #index = 0;
  #controller: Dispatcher.DispatchController | undefined;
  #started = false;
  #done = false;
  #counted: string | undefined;

  constructor(agent: Agent, inFlight: InFlight, targets: readonly string[], req: UpstreamRequest, sink: UpstreamSink) {
    this.#agent = agent;
    this.#inFlight = inFlight;
    this.#targets = targets;
    this.#req = req;
    this.#sink = sink;
    if (targets.length === 0) {
      this.#done = true;
      sink.onError(new Error('no endpoint to send the request to'));
      return;
    }
    this.#attempt();
  }

  resume(): void {
    this.#controller?.resume();
  }

  abort(reason: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#release();
    this.#controller?.abort(reason);
  }

  #attempt(): void {
    const target = this.#targets[this.#index];
    this.#inFlight.set(target, (this.#inFlight.get(target) ?? 0) + 1);
    this.#counted = target;
    const r = this.#req;
    // An array body is sent chunk by chunk: undici takes any iterable, as its request() documents (dispatch's types list fewer).
    const body = r.body as Buffer | null;
    this.#agent.dispatch({ origin: `http://${target}`, path: r.path, method: r.method as Dispatcher.HttpMethod, headers: r.headers, body }, this);
  }

  #release(): void {
    const t = this.#counted;
    if (t === undefined) return;
    this.#counted = undefined;
    this.#inFlight.set(t, Math.max(0, (this.#inFlight.get(t) ?? 1) - 1));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (this.#done || statusCode < 200) return;
    this.#started = true;
    this.#sink.onStart(this.#targets[this.#index], statusCode, headers);
    void controller;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#done) return;
    if (!this.#sink.onData(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    if (this.#done) return;
    this.#done = true;
    this.#release();
    this.#sink.onEnd();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#done) return;
    this.#release();
    if (!this.#started && isConnectError(err) && this.#index + 1 < this.#targets.length) {
      this.#index++;
      this.#attempt();
      return;
    }
    this.#done = true;
    this.#sink.onError(err);
  }
}

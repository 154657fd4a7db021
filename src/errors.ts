// Errors that end a request with an ImmediateResponse. The body follows OpenAI's
// error shape so clients (OpenAI SDKs) surface a readable message.

export type ErrorCode =
  | 'BadRequest'
  | 'PayloadTooLarge'
  | 'ServiceUnavailable'
  | 'ResourceExhausted'
  | 'Internal';

const STATUS: Record<ErrorCode, number> = {
  BadRequest: 400,
  PayloadTooLarge: 413,
  ResourceExhausted: 429,
  Internal: 500,
  ServiceUnavailable: 503,
};

const OPENAI_TYPE: Record<ErrorCode, string> = {
  BadRequest: 'invalid_request_error',
  PayloadTooLarge: 'invalid_request_error',
  ResourceExhausted: 'rate_limit_error',
  Internal: 'server_error',
  ServiceUnavailable: 'server_error',
};

export class EppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Request field the error is about, e.g. "model" (OpenAI's `param`). */
  readonly param: string | null;
  /** The model the rejected request named, when it got that far (for error metrics). */
  model: string | undefined;
  /** The model it would have been sent to (after a rewrite), when known. */
  targetModel: string | undefined;
  /** Its fairness id and priority, when resolved (for error metrics). */
  fairnessId: string | undefined;
  priority: number | undefined;
  /** Headers for the client with the error (llm-d's x-llm-d-request-dropped-reason). */
  headers: readonly (readonly [string, string])[] | undefined;

  constructor(code: ErrorCode, message: string, param: string | null = null) {
    super(message);
    this.name = 'EppError';
    this.code = code;
    this.status = STATUS[code];
    this.param = param;
    this.model = undefined;
    this.targetModel = undefined;
    this.fairnessId = undefined;
    this.priority = undefined;
    this.headers = undefined;
  }
}

/** llm-d Router's header saying why a request was not served (pkg/common/error). */
export const DROPPED_REASON_HEADER = 'x-llm-d-request-dropped-reason';

/** `err` with x-llm-d-request-dropped-reason set to `reason`. */
export function dropped<E extends EppError>(err: E, reason: string): E {
  err.headers = [[DROPPED_REASON_HEADER, reason]];
  return err;
}

export function badRequest(message: string, param: string | null = null): EppError {
  return new EppError('BadRequest', message, param);
}

/** JSON body in OpenAI's error shape: {"error":{"message","type","param","code"}}. */
export function openAIErrorBody(err: EppError): Buffer {
  return Buffer.from(
    JSON.stringify({
      error: {
        message: err.message,
        type: OPENAI_TYPE[err.code],
        param: err.param,
        code: err.status,
      },
    }),
  );
}

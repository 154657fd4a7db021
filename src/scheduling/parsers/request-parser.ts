// Request parsers (llm-d Router's requestHandler.parsers): each parser claims
// the API paths it reads; the first configured parser that claims a request's
// path parses it, and a parser that claims no path (passthrough-parser) takes
// everything else. The body parsing itself lives in src/openai/request.ts;
// a parser plugin only says which APIs are read.
import type { ApiKind } from '../../openai/request.ts';
import type { Plugin } from '../framework.ts';

export class RequestParser implements Plugin {
  readonly type: string;
  readonly name: string;
  /** APIs this parser reads; empty = the fallback parser that reads no body. */
  readonly apis: readonly ApiKind[];

  constructor(type: string, name: string, apis: readonly ApiKind[]) {
    this.type = type;
    this.name = name;
    this.apis = apis;
  }
}

export function isRequestParser(p: Plugin): p is RequestParser {
  return p instanceof RequestParser;
}

/**
 * The configured parsers in order: which API a request's body is read as.
 * `null` = forward the body unread (passthrough); undefined = no configured
 * parser reads this path.
 */
export class ParserTable {
  readonly #byApi = new Map<ApiKind, RequestParser>();
  readonly #fallback: RequestParser | undefined;
  readonly #openaiDefault: boolean;
  readonly parsers: readonly RequestParser[];

  constructor(parsers: readonly RequestParser[]) {
    this.parsers = parsers;
    let fallback: RequestParser | undefined;
    for (const p of parsers) {
      if (p.apis.length === 0) {
        // As llm-d: the first claim-nothing parser ends the list.
        fallback = p;
        break;
      }
      for (const api of p.apis) if (!this.#byApi.has(api)) this.#byApi.set(api, p);
    }
    this.#fallback = fallback;
    this.#openaiDefault = this.#byApi.has('completions');
  }

  resolve(api: ApiKind | undefined): ApiKind | null | undefined {
    if (api !== undefined && this.#byApi.has(api)) return api;
    if (this.#fallback) return null;
    // A path no parser claims: read as completions when OpenAI is configured (GAIE v1.5 did).
    if (api === undefined && this.#openaiDefault) return 'completions';
    return undefined;
  }
}

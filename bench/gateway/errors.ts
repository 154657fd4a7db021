// Errors the gateway reports to a person: one line that says what is wrong and what to do.

/** A start-up problem with a message fit to print as it is (no stack). */
export class GatewayError extends Error {
  override name = 'GatewayError';
}

/** The listening socket's error, naming the flag that chose the address. */
export function listenError(err: NodeJS.ErrnoException, host: string, port: number): GatewayError {
  switch (err.code) {
    case 'EADDRINUSE':
      return new GatewayError(`--port ${port} is already in use on ${host}: pick another --port (0 = any free port)`);
    case 'EACCES':
      return new GatewayError(`--port ${port} needs privileges this process lacks: pick a port above 1023`);
    case 'EADDRNOTAVAIL':
      return new GatewayError(`--host ${host} is not an address of this machine`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new GatewayError(`--host ${host} cannot be resolved`);
    default:
      return new GatewayError(`cannot listen on ${host}:${port} (--host, --port): ${err.message}`);
  }
}

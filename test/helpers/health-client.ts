// A grpc.health.v1 client for tests: Check one service name.
import { credentials, loadPackageDefinition, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

export const READINESS = ['readiness', '', 'envoy.service.ext_proc.v3.ExternalProcessor'];

export interface HealthClient {
  check(service: string): Promise<string>;
  close(): void;
}

export function healthClient(port: number, host = '127.0.0.1'): HealthClient {
  const def = loadSync(healthProtoPath, { keepCase: true, enums: String });
  const Health = (loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: ServiceClientConstructor } } } }).grpc.health.v1.Health;
  const c = new Health(`${host}:${port}`, credentials.createInsecure());
  return {
    check: (service) =>
      new Promise<string>((resolve, reject) =>
        (c as unknown as { Check(r: object, o: object, cb: (e: Error | null, res: { status: string }) => void): void }).Check(
          { service },
          { deadline: Date.now() + 2000 },
          (e, res) => (e ? reject(e) : resolve(res.status)),
        ),
      ),
    close: () => c.close(),
  };
}

export function readiness(c: HealthClient): Promise<string[]> {
  return Promise.all(READINESS.map((s) => c.check(s)));
}

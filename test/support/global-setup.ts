// Starts the real services the integration tests share: Temporal's dev server and MinIO.
// PostgreSQL is the machine's own (127.0.0.1:5432); sshd hosts are started per test file.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startMinio, startTemporalDev, type Minio, type TemporalDev } from '../../scripts/lib/services';
import { searchAttributeArgs } from '../../src/shared/search-attributes';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    minio: { endpoint: string; accessKey: string; secretKey: string; region: string };
  }
}

let temporal: TemporalDev | undefined;
let minio: Minio | undefined;
let dir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-services-'));
  [temporal, minio] = await Promise.all([
    startTemporalDev({ dbFile: join(dir, 'temporal.db'), headless: true, logFile: join(dir, 'temporal.log'), searchAttributeArgs: searchAttributeArgs() }),
    startMinio({ dataDir: join(dir, 'minio'), logFile: join(dir, 'minio.log') }),
  ]);
  project.provide('temporalAddress', temporal.address);
  project.provide('minio', { endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey, region: minio.region });
}

export async function teardown(): Promise<void> {
  await Promise.allSettled([temporal?.stop(), minio?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
}

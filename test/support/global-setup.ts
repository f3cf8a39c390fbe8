// Starts the real services the integration tests share: Temporal's dev server and MinIO.
// PostgreSQL is the machine's own (127.0.0.1:5432); sshd hosts are started per test file. The restore drill's
// role is made there once, as the README tells an operator to (fixtures.ts: SCRATCH_POSTGRES).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
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

// Idempotent, also when another run does the same at once; attributes reset in case an earlier run changed them.
const DRILL_ROLE_SQL = `DO $$ BEGIN
  CREATE ROLE lifeboat_drill LOGIN CREATEDB;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
ALTER ROLE lifeboat_drill LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOREPLICATION;`;

async function ensureDrillRole(): Promise<void> {
  await execa('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-c', DRILL_ROLE_SQL]);
}

export async function setup(project: TestProject): Promise<void> {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-services-'));
  await ensureDrillRole();
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

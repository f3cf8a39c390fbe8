// metadata.yml: what a person (or a restore) needs to know about a snapshot without opening the data.
import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ArtifactResult } from '../sources/types';
import type { QuiesceRecord } from '../shared/types';
import { LIFEBOAT_VERSION } from '../shared/version';
import type { ArchiveFormat } from './naming';

export interface SnapshotMetadata {
  lifeboat_version: string;
  snapshot: string;
  plan: string;
  tier: string;
  deploy_id?: string;
  backup_host: string;
  started_at: string;
  captured_at: string;
  sources: Array<{ name: string; host: string; app_version?: string | null }>;
  /** Services stopped for the copy and started again, per source. */
  quiesce?: QuiesceRecord[];
  components: Record<string, { type: string; source: string; status: string; required: boolean; paths: string[]; bytes: number; error?: string; details: Record<string, unknown> }>;
  archive: { format: ArchiveFormat; file: string };
  extra: Record<string, unknown>;
}

export function buildMetadata(input: Omit<SnapshotMetadata, 'lifeboat_version' | 'backup_host' | 'components'> & { artifacts: ArtifactResult[] }): SnapshotMetadata {
  const { artifacts, ...rest } = input;
  const components = Object.fromEntries(
    artifacts.map((a) => [
      a.name,
      { type: a.type, source: a.source, status: a.status, required: a.required, paths: a.paths, bytes: a.bytes, ...(a.error ? { error: a.error } : {}), details: a.details },
    ]),
  );
  return { lifeboat_version: LIFEBOAT_VERSION, backup_host: hostname(), ...rest, components };
}

export async function writeMetadata(dir: string, meta: SnapshotMetadata): Promise<void> {
  await writeFile(join(dir, 'metadata.yml'), stringify(meta), { mode: 0o600 });
}

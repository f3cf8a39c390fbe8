// tar.zst (zstd -T0, all cores) or tar.gz (pigz when present), streamed: tar → compressor → hash → file.
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { meter } from '../shared/meter';
import type { ArchiveFormat } from './naming';
import { dieWithWorker } from '../shared/die-with-worker';

export interface ArchiveInfo {
  path: string;
  format: ArchiveFormat;
  sha256: string;
  size: number;
}

export function compressorArgv(format: ArchiveFormat, level?: number, hasPigz = false): string[] {
  if (format === 'tar.zst') return ['zstd', '-T0', `-${level ?? 3}`, '-q', '-c'];
  return [hasPigz ? 'pigz' : 'gzip', `-${Math.min(level ?? 6, 9)}`, '-c'];
}

export async function createArchive(
  snapshotDir: string,
  out: string,
  format: ArchiveFormat,
  opts: { level?: number; signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
): Promise<ArchiveInfo> {
  const [comp, ...compArgs] = compressorArgv(format, opts.level, format === 'tar.gz' && (await hasCommand('pigz')));
  const partial = `${out}.partial`;
  const common = { cancelSignal: opts.signal, forceKillAfterDelay: 5000, buffer: false } as const;
  const tar = execa(...dieWithWorker('tar', ['-C', dirname(snapshotDir), '--sort=name', '-cf', '-', '--', basename(snapshotDir)]), { ...common, stdin: 'ignore' });
  const compressor = execa(...dieWithWorker(comp!, compArgs), common);
  tar.stdout.pipe(compressor.stdin);

  const tap = meter({ sha256: true, onBytes: opts.onProgress });
  try {
    await Promise.all([tar, compressor, pipeline(compressor.stdout, tap, createWriteStream(partial, { mode: 0o600 }))]);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  await rename(partial, out);
  return { path: out, format, sha256: tap.digest(), size: tap.bytes };
}

/** The argv that lists or extracts an archive of this format with GNU tar. */
export function tarDecompressFlag(format: ArchiveFormat): string {
  return format === 'tar.zst' ? '--zstd' : '--gzip';
}

async function hasCommand(name: string): Promise<boolean> {
  const r = await execa('sh', ['-c', 'command -v "$1"', 'sh', name], { reject: false });
  return r.exitCode === 0;
}

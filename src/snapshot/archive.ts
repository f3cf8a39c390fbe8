// tar.zst (zstd -T0, all cores) or tar.gz (pigz when present), streamed: tar → compressor → hash → file.
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { meter } from '../shared/meter';
import type { ArchiveFormat } from './naming';
import { dieWithWorker } from '../shared/die-with-worker';
import { encryptArgv } from './encryption';

export interface ArchiveInfo {
  path: string;
  format: ArchiveFormat;
  sha256: string;
  size: number;
  /** Set when the stored bytes are age ciphertext. */
  encryption?: 'age';
}

export function compressorArgv(format: ArchiveFormat, level?: number, hasPigz = false): string[] {
  if (format === 'tar.zst') return ['zstd', '-T0', `-${level ?? 3}`, '-q', '-c'];
  return [hasPigz ? 'pigz' : 'gzip', `-${Math.min(level ?? 6, 9)}`, '-c'];
}

export async function createArchive(
  snapshotDir: string,
  out: string,
  format: ArchiveFormat,
  opts: { level?: number; recipients?: string[]; signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
): Promise<ArchiveInfo> {
  const [comp, ...compArgs] = compressorArgv(format, opts.level, format === 'tar.gz' && (await hasCommand('pigz')));
  const partial = `${out}.partial`;
  const common = { cancelSignal: opts.signal, forceKillAfterDelay: 5000, buffer: false } as const;
  // Numeric owners, modes, hard links, ns mtimes and the kept xattrs (user.*, security.capability; ACLs as their
  // system.posix_acl_* xattrs, numeric, unlike tar 1.34's --acls): see KEPT_XATTRS in remote/rsync.ts. atime and
  // ctime are never restored: not stored.
  const tar = execa(...dieWithWorker('tar', ['-C', dirname(snapshotDir), '--sort=name', '--format=posix', '--pax-option=delete=atime,delete=ctime', '--numeric-owner', '--xattrs', ...['user.*', 'security.capability', 'system.posix_acl_access', 'system.posix_acl_default'].map((x) => `--xattrs-include=${x}`), '-cf', '-', '--', basename(snapshotDir)]), { ...common, stdin: 'ignore' });
  const compressor = execa(...dieWithWorker(comp!, compArgs), common);
  tar.stdout.pipe(compressor.stdin);
  // age after compression (ciphertext does not compress); the hash and size are those of the stored bytes.
  const encryptor = opts.recipients?.length ? execa(...dieWithWorker(...encryptArgv(opts.recipients)), common) : undefined;
  if (encryptor) compressor.stdout.pipe(encryptor.stdin);
  const last = encryptor ?? compressor;

  const tap = meter({ sha256: true, onBytes: opts.onProgress });
  try {
    await Promise.all([tar, compressor, ...(encryptor ? [encryptor] : []), pipeline(last.stdout, tap, createWriteStream(partial, { mode: 0o600 }))]);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  await rename(partial, out);
  return { path: out, format, sha256: tap.digest(), size: tap.bytes, ...(encryptor ? { encryption: 'age' as const } : {}) };
}

/** The argv that lists or extracts an archive of this format with GNU tar. */
export function tarDecompressFlag(format: ArchiveFormat): string {
  return format === 'tar.zst' ? '--zstd' : '--gzip';
}

async function hasCommand(name: string): Promise<boolean> {
  const r = await execa('sh', ['-c', 'command -v "$1"', 'sh', name], { reject: false });
  return r.exitCode === 0;
}
